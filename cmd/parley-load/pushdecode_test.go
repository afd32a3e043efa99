package main

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

func pushFrame(t testing.TB, m *parleypb.Message) []byte {
	t.Helper()
	b, err := wire.Encode(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Push{Push: &parleypb.Push{Event: &parleypb.Push_Message{Message: m}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func samplePush() *parleypb.Message {
	return &parleypb.Message{Id: make([]byte, 16), ConversationId: []byte("conversation-id-0123456789abcdef"), Seq: 4242, Epoch: 1,
		Kind: parleypb.Kind_APPLICATION, SenderDeviceId: "device-0123456789abcdef", Payload: make([]byte, 256), StoredUnix: 1764950000,
		Frank: []byte{1, 2, 3}, SenderUser: "alice", AcceptedUnixMs: 1764950000123}
}

// The fast decoder takes what parleyd sends and yields the message
// proto.Unmarshal yields, reusing its Message across frames.
func TestPushDecoderMatchesProto(t *testing.T) {
	var d pushDecoder
	for _, m := range []*parleypb.Message{samplePush(), {Seq: 1}, {Kind: parleypb.Kind_COMMIT, Payload: []byte{9}}} {
		p, ok := d.decode(pushFrame(t, m))
		if !ok {
			t.Fatalf("declined %v", m)
		}
		if !proto.Equal(p.GetMessage(), m) {
			t.Fatalf("decoded %v, want %v", p.GetMessage(), m)
		}
	}
	// Not a push of a message: declined, left to proto.Unmarshal.
	for _, f := range []*parleypb.ServerFrame{
		{RequestId: 7, Body: &parleypb.ServerFrame_Send{Send: &parleypb.SendResponse{Seq: 3}}},
		{Body: &parleypb.ServerFrame_Push{Push: &parleypb.Push{Event: &parleypb.Push_Inbox{Inbox: samplePush()}}}},
		{RequestId: 7, Body: &parleypb.ServerFrame_Push{Push: &parleypb.Push{Event: &parleypb.Push_Message{Message: samplePush()}}}},
	} {
		b, err := wire.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.decode(b); ok {
			t.Fatalf("accepted %v", f)
		}
	}
	// A field the decoder does not know (a newer server): declined.
	b := pushFrame(t, samplePush())
	if _, ok := d.decode(append(b[:len(b):len(b)], 0x98, 0x01, 0x01)); ok { // field 19, varint, appended at top level
		t.Fatal("accepted a frame with an unknown field")
	}
}

// FuzzPushDecoder: whatever the fast decoder accepts, proto.Unmarshal
// decodes to a Push.message equal to it (so the generator counts exactly
// what a protobuf client would); and re-encoding an accepted message
// decodes to the same again.
func FuzzPushDecoder(f *testing.F) {
	f.Add(pushFrame(f, samplePush()))
	f.Add(pushFrame(f, &parleypb.Message{Seq: 1}))
	f.Add([]byte{0x82, 0x01, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d pushDecoder
		p, ok := d.decode(data)
		if !ok {
			return
		}
		var want parleypb.ServerFrame
		if err := proto.Unmarshal(data, &want); err != nil {
			t.Fatalf("accepted what proto.Unmarshal refuses: %v", err)
		}
		if want.RequestId != 0 || want.GetPush().GetMessage() == nil {
			t.Fatalf("accepted %v as a pushed message", &want)
		}
		if !proto.Equal(p.GetMessage(), want.GetPush().GetMessage()) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", p.GetMessage(), want.GetPush().GetMessage())
		}
		again, ok := d.decode(pushFrame(t, proto.Clone(p.GetMessage()).(*parleypb.Message)))
		if !ok || !proto.Equal(again.GetMessage(), want.GetPush().GetMessage()) {
			t.Fatalf("re-encoded message decoded to %v (ok %v)", again.GetMessage(), ok)
		}
	})
}

// BenchmarkClientReceivePush is the generator's work per pushed message
// once read off the socket: decode it and record it (loss, duplication,
// order, latency); "proto" decodes with proto.Unmarshal as the generator
// did before pushDecoder. Run with a fixed count (-benchtime 200000x):
// every frame is encoded beforehand.
func BenchmarkClientReceivePush(b *testing.B) {
	for _, fast := range []bool{true, false} {
		name := "proto"
		if fast {
			name = "fast"
		}
		b.Run(name, func(b *testing.B) {
			st := &stats{}
			d := newDevice(0, "bench", st)
			d.id = "receiver"
			c := &wsClient{onPush: d.onPush, pending: map[uint64]chan *parleypb.ServerFrame{}}
			m := samplePush()
			m.Frank, m.SenderUser, m.AcceptedUnixMs = nil, "", 0
			frames := make([][]byte, b.N) // distinct ids and seqs, as in a run
			for i := range frames {
				m.Seq = uint64(i + 1)
				m.Id[0], m.Id[1], m.Id[2], m.Id[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				stamp(m.Payload)
				frames[i] = pushFrame(b, m)
			}
			var pushes pushDecoder
			b.ReportAllocs()
			b.ResetTimer()
			for _, data := range frames {
				if fast {
					c.handle(data, &pushes)
				} else if f, err := wire.DecodeServerFrame(data); err == nil {
					c.onPush(f.GetPush())
				}
			}
			b.StopTimer()
			if st.delivered.Load() != int64(b.N) {
				b.Fatalf("delivered %d of %d", st.delivered.Load(), b.N)
			}
		})
	}
}
