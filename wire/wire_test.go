package wire

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parleychat/parley/wire/parleypb"
)

func TestCheckUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"bob.smith", true}, {"a_1-2", true}, {"007", true},
		{"al", false}, {"Alice", false}, {".alice", false}, {"-bob", false},
		{"al ice", false}, {"alicé", false}, {"", false},
		{"abcdefghijabcdefghijabcdefghijab", true},
		{"abcdefghijabcdefghijabcdefghijabc", false},
	} {
		if err := CheckUsername(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckUsername(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestChallengeMessageSeparatesPurposes(t *testing.T) {
	c := make([]byte, ChallengeSize)
	a := ChallengeMessage(c, "ctx", PurposeRegister)
	b := ChallengeMessage(c, "ctx", PurposeAuthenticate)
	if string(a) == string(b) {
		t.Fatal("register and authenticate messages are equal")
	}
	if string(ChallengeMessage(c, "ab", "c")) == string(ChallengeMessage(c, "a", "bc")) {
		t.Fatal("context/purpose boundary is ambiguous")
	}
}

func TestErrorIs(t *testing.T) {
	err := error(&Error{Code: parleypb.ErrorCode_EPOCH_CONFLICT, Message: "x"})
	if !errors.Is(err, ErrEpochConflict) || errors.Is(err, ErrNotMember) {
		t.Fatal("errors.Is on codes is wrong")
	}
}

func TestDecodeClientFrameRoundTrip(t *testing.T) {
	in := &parleypb.ClientFrame{RequestId: 7, Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeClientFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.RequestId != 7 || out.GetPing() == nil {
		t.Fatalf("round trip gave %v", out)
	}
	if _, err := DecodeClientFrame(nil); err == nil {
		t.Fatal("empty frame accepted")
	}
	if _, err := DecodeClientFrame([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzDecodeClientFrame(f *testing.F) {
	for _, fr := range []*parleypb.ClientFrame{
		{RequestId: 1, Body: &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: 1}}},
		{RequestId: 2, Body: &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{
			MessageId: make([]byte, 16), ConversationId: []byte("c"), Epoch: 3,
			Kind: parleypb.Kind_COMMIT, Payload: []byte("x"), AddedDeviceIds: []string{"d"}}}},
	} {
		b, _ := Encode(fr)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeClientFrame(data)
		if err != nil {
			return
		}
		b, err := Encode(fr)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeClientFrame(b); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestPeekRequestID(t *testing.T) {
	b, _ := Encode(&parleypb.ClientFrame{RequestId: 300, Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}})
	if got := PeekRequestID(b); got != 300 {
		t.Fatalf("PeekRequestID = %d", got)
	}
	if got := PeekRequestID(append(b[:len(b):len(b)], 0xff)); got != 300 {
		t.Fatalf("PeekRequestID with trailing garbage = %d", got)
	}
	for _, bad := range [][]byte{nil, {0xff}, {0x08}, {0x10, 0x01}} {
		if got := PeekRequestID(bad); got != 0 {
			t.Fatalf("PeekRequestID(%x) = %d", bad, got)
		}
	}
}

func FuzzPeekRequestID(f *testing.F) {
	f.Add(uint64(1), []byte{0x08, 0x01}, []byte{0x08, 0x01})
	f.Add(uint64(1<<63), []byte{0xff}, []byte{0x08, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, id uint64, rest, data []byte) {
		// A frame whose first field is request_id gives it, whatever
		// follows (the server answers frames it cannot decode with it).
		if id != 0 {
			b := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), id)
			if got := PeekRequestID(append(b, rest...)); got != id {
				t.Fatalf("peeked %d from a frame starting with request_id %d", got, id)
			}
		}
		// Any frame the server can decode is answered to its own id: the
		// encoder puts request_id first, and the peek agrees with the
		// full decode.
		if fr, err := DecodeClientFrame(data); err == nil {
			b, err := Encode(fr)
			if err != nil {
				t.Fatal(err)
			}
			if got := PeekRequestID(b); got != fr.RequestId {
				t.Fatalf("peeked %d, decoded %d", got, fr.RequestId)
			}
		}
		PeekRequestID(data) // never panics
	})
}

func TestUsernameSkeleton(t *testing.T) {
	alike := []string{"alice", "a1ice", "al1ce", "alice.", "alice_", "alice..", "al.ice", "a-l-i-c-e", "aiice"}
	for _, n := range alike {
		if UsernameSkeleton(n) != UsernameSkeleton("alice") {
			t.Errorf("%q does not share alice's skeleton (%q vs %q)", n, UsernameSkeleton(n), UsernameSkeleton("alice"))
		}
	}
	for _, pair := range [][2]string{{"modern", "rnodern"}, {"wendy", "vvendy"}, {"bob0", "bobo"}, {"s3an", "sean"}, {"5am", "sam"}} {
		if UsernameSkeleton(pair[0]) != UsernameSkeleton(pair[1]) {
			t.Errorf("%q and %q have different skeletons", pair[0], pair[1])
		}
	}
	for _, pair := range [][2]string{{"alice", "alicia"}, {"bob", "rob"}, {"carol", "karol"}, {"dave", "dave2"}} {
		if UsernameSkeleton(pair[0]) == UsernameSkeleton(pair[1]) {
			t.Errorf("%q and %q share a skeleton", pair[0], pair[1])
		}
	}
}

func TestCheckNewUsername(t *testing.T) {
	for _, ok := range []string{"alice", "john.smith", "a_b-c", "bob2"} {
		if err := CheckNewUsername(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"alice.", "alice_", "alice-", "al..ice", "al._ice", "Alice", "al"} {
		if err := CheckNewUsername(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Names registered before the rules still pass the general check.
	if err := CheckUsername("alice."); err != nil {
		t.Errorf("existing name alice. no longer valid: %v", err)
	}
}
