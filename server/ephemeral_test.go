package server_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire/parleypb"
)

// TestEphemeralRelayedNotStored: an ephemeral message reaches the
// connected members' devices (not the sender's connection), is never in
// the log (nothing to fetch, the head does not move, its bytes are in no
// file of the server), is refused from a non-member as for a stored
// message, and is rate limited per device.
func TestEphemeralRelayedNotStored(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(cfg *server.Config) {
		cfg.Limits.EphemeralPerDevice = server.Limit{N: 3, Per: time.Hour}
	})
	alice, bob, mallory := register(t, ts, "alice"), register(t, ts, "bob"), register(t, ts, "mallory")
	conv := group(t, "typing-group", alice, bob)
	fetchAll(t, bob, conv)
	before, err := ts.st.Conversation(bg, conv)
	if err != nil {
		t.Fatal(err)
	}
	canary := []byte("ephemeral-canary-0f3a9c")
	if err := alice.conn.SendEphemeral(bg, transport.NewMessageID(), conv, 1, canary); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, bob.conn, transport.EventEphemeral)
	if !bytes.Equal(ev.Message.Payload, canary) || ev.Message.Sender != alice.id || ev.Message.Seq != 0 || ev.Message.Epoch != 1 {
		t.Fatalf("bob got %+v", ev.Message)
	}
	if _, ok := pendingEvent(alice.conn, transport.EventEphemeral); ok {
		t.Fatal("the sender's own connection got its ephemeral message back")
	}
	after, err := ts.st.Conversation(bg, conv)
	if err != nil || after.HeadSeq != before.HeadSeq {
		t.Fatalf("the log moved from %d to %d (%v)", before.HeadSeq, after.HeadSeq, err)
	}
	if ms := fetchAll(t, bob, conv); len(ms) != 0 {
		t.Fatalf("bob can fetch %d messages after an ephemeral one", len(ms))
	}
	filepath.WalkDir(ts.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, canary) {
				t.Errorf("the ephemeral message is in %s", p)
			}
		}
		return nil
	})

	err = mallory.conn.SendEphemeral(bg, transport.NewMessageID(), conv, 1, []byte("x"))
	wantCode(t, "ephemeral from a non-member", err, parleypb.ErrorCode_NOT_MEMBER)
	if _, err := alice.conn.SendExpiringApplication(bg, transport.NewMessageID(), conv, 1, []byte("p"), time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	err = alice.conn.SendEphemeral(bg, transport.NewMessageID(), conv, 1, bytes.Repeat([]byte("x"), 17<<10))
	wantCode(t, "oversized ephemeral", err, parleypb.ErrorCode_BAD_REQUEST)
	for i := 0; ; i++ {
		err := alice.conn.SendEphemeral(bg, transport.NewMessageID(), conv, 1, []byte("t"))
		if err != nil {
			wantCode(t, "ephemeral over the limit", err, parleypb.ErrorCode_RATE_LIMITED)
			if i > 3 {
				t.Fatalf("the limit of 3 took %d sends", i)
			}
			break
		}
	}
}

// TestExpiryOnlyOnApplications: the clear expiry is refused on commits
// and proposals, and on a negative time.
func TestExpiryOnlyOnApplications(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	conv := group(t, "expiry-group", alice)
	rc := authRaw(t, ts, alice)
	for what, req := range map[string]*parleypb.SendRequest{
		"expiry on a commit": {MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 0, Kind: parleypb.Kind_COMMIT,
			Payload: []byte("c"), ExpiresUnix: time.Now().Unix() + 60},
		"negative expiry": {MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 0, Kind: parleypb.Kind_APPLICATION,
			Payload: []byte("a"), ExpiresUnix: -5},
		"ephemeral with an expiry": {MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 0, Kind: parleypb.Kind_APPLICATION,
			Payload: []byte("a"), ExpiresUnix: 5, Ephemeral: true},
		"ephemeral commit": {MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 0, Kind: parleypb.Kind_COMMIT,
			Payload: []byte("a"), Ephemeral: true},
	} {
		if f := rc.call(t, &parleypb.ClientFrame_Send{Send: req}); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
			t.Errorf("%s: got %v, want BAD_REQUEST", what, f)
		}
	}
	if c, err := ts.st.Conversation(bg, conv); err != nil || c.HeadSeq != 0 {
		t.Fatalf("refused sends changed the log: %+v, %v", c, err)
	}
}

// TestSweeperWakesForExpiry: with retention sweeps an hour apart, a
// message sent with an expiry two seconds away is deleted at its time:
// the send wakes the sweeper, which then sleeps until the expiry.
func TestSweeperWakesForExpiry(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(cfg *server.Config) { cfg.SweepInterval = time.Hour })
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "sweep-group", alice, bob)
	expires := time.Now().Add(5 * time.Second) // room for the send and the first fetch on a busy machine
	if _, err := alice.conn.SendExpiringApplication(bg, transport.NewMessageID(), conv, 1, []byte("soon gone"), expires, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ms := fetchAll(t, bob, conv); len(ms) != 1 {
		t.Fatalf("before its expiry bob fetches %q", payloads(ms))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms, err := ts.st.Fetch(bg, bob.id, conv, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			if time.Now().Before(expires.Truncate(time.Second)) { // the wire has whole seconds
				t.Fatal("deleted before its expiry")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message is still stored %v after its expiry", time.Since(expires))
		}
		time.Sleep(50 * time.Millisecond) // polling a real-time deadline
	}
}

// TestFirstSentIdempotency: a retry that repeats the message id and the
// first-send time is answered with the first copy's seq, the same id with
// no time is another record (clients always repeat what they sent
// first), and a first-send time beyond the signed 64-bit range is
// refused without touching the log.
func TestFirstSentIdempotency(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	conv := group(t, "first-sent-group", alice)
	id, sent := transport.NewMessageID(), time.Now()
	r1, err := alice.conn.SendExpiringApplication(bg, id, conv, 0, []byte("once"), time.Time{}, sent)
	if err != nil || r1.Duplicate {
		t.Fatalf("first send: %+v, %v", r1, err)
	}
	r2, err := alice.conn.SendExpiringApplication(bg, id, conv, 0, []byte("once"), time.Time{}, sent)
	if err != nil || !r2.Duplicate || r2.Seq != r1.Seq {
		t.Fatalf("retry with the same first-send time: %+v, %v; want a duplicate of seq %d", r2, err, r1.Seq)
	}
	r3, err := alice.conn.SendExpiringApplication(bg, id, conv, 0, []byte("once"), time.Time{}, time.Time{})
	if err != nil || r3.Duplicate || r3.Seq != r1.Seq+1 {
		t.Fatalf("the same id without a first-send time: %+v, %v; want a new record at seq %d", r3, err, r1.Seq+1)
	}
	r1 = r3
	rc := authRaw(t, ts, alice)
	f := rc.call(t, &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: transport.NewMessageID(), ConversationId: conv,
		Kind: parleypb.Kind_APPLICATION, Payload: []byte("a"), FirstSentUnixMs: math.MaxInt64 + 1}})
	if errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("first_sent_unix_ms beyond int64: got %v, want BAD_REQUEST", f)
	}
	if c, err := ts.st.Conversation(bg, conv); err != nil || c.HeadSeq != r1.Seq {
		t.Fatalf("after the refused send: %+v, %v; want head %d", c, err, r1.Seq)
	}
}
