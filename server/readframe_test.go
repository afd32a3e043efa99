package server

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readFrame fills the buffer it is given, grows past it as needed,
// reads at most max bytes of a frame and drains a longer one.
func TestReadFrameReusesBuffer(t *testing.T) {
	frame := bytes.Repeat([]byte("parley"), 50) // 300 bytes
	buf := make([]byte, 0, 1024)
	data, tooLarge, err := readFrame(buf, iotest.OneByteReader(bytes.NewReader(frame)), 300)
	if err != nil || tooLarge || !bytes.Equal(data, frame) {
		t.Fatalf("got %d bytes, too large %v, err %v", len(data), tooLarge, err)
	}
	if &data[0] != &buf[:1][0] {
		t.Fatal("a frame that fits was not read into the buffer given")
	}
	// Larger than the buffer, within max: grown.
	big := bytes.Repeat([]byte("x"), 5000)
	data, tooLarge, err = readFrame(buf, iotest.HalfReader(bytes.NewReader(big)), 5000)
	if err != nil || tooLarge || !bytes.Equal(data, big) {
		t.Fatalf("got %d bytes, too large %v, err %v", len(data), tooLarge, err)
	}
	// One byte over max: too large, the rest drained, the start kept.
	r := strings.NewReader(strings.Repeat("y", 5001) + "")
	data, tooLarge, err = readFrame(buf, r, 5000)
	if err != nil || !tooLarge || len(data) != 16 || r.Len() != 0 {
		t.Fatalf("got %d bytes, too large %v, err %v, %d left unread", len(data), tooLarge, err, r.Len())
	}
	// A read error is returned.
	if _, _, err := readFrame(buf, iotest.ErrReader(io.ErrUnexpectedEOF), 10); err != io.ErrUnexpectedEOF {
		t.Fatalf("err %v", err)
	}
}
