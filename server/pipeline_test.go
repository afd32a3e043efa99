package server_test

import (
	"fmt"
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Sends written back to back on one connection (pipelined) are stored in
// the order sent and answered in request order, and a request after them
// sees their effects.
func TestPipelinedSendsKeepOrder(t *testing.T) {
	ts := newServer(t)
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	rc := dialRaw(t, ts)
	h := rc.hello(t)
	if f := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(alice, h)}); f.GetSession() == nil {
		t.Fatalf("auth: %v", f)
	}
	const n = 200
	first := rc.id + 1
	for i := range n {
		rc.id++
		req := &parleypb.SendRequest{MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 1,
			Kind: parleypb.Kind_APPLICATION, Payload: fmt.Appendf(nil, "m%03d", i)}
		if i == n/2 {
			req.Epoch = 7 // one refused in the middle: WRONG_EPOCH, order kept
		}
		b, err := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: &parleypb.ClientFrame_Send{Send: req}})
		if err != nil {
			t.Fatal(err)
		}
		rc.writeRaw(t, websocket.MessageBinary, b)
	}
	// A fetch right behind them must see all of them.
	rc.id++
	b, _ := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: &parleypb.ClientFrame_ListConversations{ListConversations: &parleypb.ListConversationsRequest{}}})
	rc.writeRaw(t, websocket.MessageBinary, b)
	var lastSeq uint64
	for i := range n {
		f := rc.response(t, first+uint64(i))
		if f.RequestId != first+uint64(i) {
			t.Fatalf("response %d has request id %d, want %d", i, f.RequestId, first+uint64(i))
		}
		if i == n/2 {
			if f.GetError().GetCode() != parleypb.ErrorCode_WRONG_EPOCH {
				t.Fatalf("send with a future epoch: %v", f)
			}
			continue
		}
		seq := f.GetSend().GetSeq()
		if seq <= lastSeq {
			t.Fatalf("send %d got seq %d after %d", i, seq, lastSeq)
		}
		lastSeq = seq
	}
	f := rc.response(t, rc.id)
	if cs := f.GetListConversations().GetConversations(); len(cs) != 1 || cs[0].HeadSeq != lastSeq {
		t.Fatalf("list after the sends: %v, want head %d", f, lastSeq)
	}
	ms, _, err := bob.conn.Fetch(bg, conv, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != n-1 {
		t.Fatalf("bob got %d messages, want %d", len(ms), n-1)
	}
	for i, m := range ms {
		want := i
		if i >= n/2 {
			want = i + 1
		}
		if got := string(m.Payload); got != fmt.Sprintf("m%03d", want) {
			t.Fatalf("message %d is %q, want m%03d", i, got, want)
		}
	}
}
