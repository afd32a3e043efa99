package server

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
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

// The directly encoded response to a send is what wire.Encode gives, so
// clients see the same bytes as before.
func TestSendResponseFrame(t *testing.T) {
	big := uint64(1<<64 - 1)
	for _, id := range []uint64{0, 1, 300, big} {
		for _, r := range []*parleypb.SendResponse{{}, {Seq: 1}, {Seq: big, Epoch: big, Duplicate: true}, {Epoch: 7}, {Duplicate: true}, {Seq: 128, Epoch: 16384}} {
			want, err := wire.Encode(&parleypb.ServerFrame{RequestId: id, Body: &parleypb.ServerFrame_Send{Send: r}})
			if err != nil {
				t.Fatal(err)
			}
			got := appendSendResponseFrame(nil, id, r)
			if !bytes.Equal(got, want) {
				t.Fatalf("id %d, %v: got %x, want %x", id, r, got, want)
			}
			if len(got) > sendResponseFrameMax {
				t.Fatalf("%d bytes, more than sendResponseFrameMax", len(got))
			}
		}
	}
}

func BenchmarkSendResponseFrame(b *testing.B) {
	r := &parleypb.SendResponse{Seq: 123456, Epoch: 1}
	b.Run("wire.Encode", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := wire.Encode(&parleypb.ServerFrame{RequestId: uint64(i), Body: &parleypb.ServerFrame_Send{Send: r}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			_ = appendSendResponseFrame(make([]byte, 0, sendResponseFrameMax), uint64(i), r)
		}
	})
}
