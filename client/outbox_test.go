package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/content"
)

// TestOutbox: messages sent while the server is down stay queued (across
// a restart of the client), are delivered in order when it is back, and
// never twice, even when the entry survives a delivery whose
// acknowledgement was lost.
func TestOutbox(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	aliceOpts := testOptions(t, "alice")
	alice, err := Init(ctx, aliceOpts, s.url, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetSetting(ctx, SettingMessageRequests, false); err != nil { // as newUser
		t.Fatal(err)
	}
	bob := s.newUser(t, "bob")
	mustSend(t, alice, "@bob", "first, online")
	mustSync(t, bob)

	s.stop()
	for _, text := range []string{"one", "two", "three"} {
		res, err := alice.Send(ctx, "@bob", text)
		if err != nil {
			t.Fatalf("send %q with the server down: %v (want it queued)", text, err)
		}
		if res.Queued == nil || res.Sent != nil || res.Err == nil {
			t.Fatalf("send %q with the server down: %+v", text, res)
		}
	}
	// A restart of the client keeps the outbox.
	alice.Close()
	alice, err = Open(ctx, aliceOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	q, err := alice.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for _, e := range q {
		queued = append(queued, e.Text)
	}
	if !slices.Equal(queued, []string{"one", "two", "three"}) {
		t.Fatalf("outbox after restart: %q", queued)
	}

	s.restart(t)
	// A new message goes after the queued ones.
	res, err := alice.Send(ctx, "@bob", "four")
	if err != nil || res.Sent == nil || len(res.Before) != 3 {
		t.Fatalf("send after the server is back: %+v, %v", res, err)
	}
	if q, _ := alice.Outbox(ctx); len(q) != 0 {
		t.Fatalf("outbox not empty after delivery: %+v", q)
	}
	got := texts(mustSync(t, bob))
	want := []string{"alice: one", "alice: two", "alice: three", "alice: four"}
	if !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	// Queued messages keep the time they were typed.
	hist, err := alice.History(ctx, "@bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, m := range hist {
		if m.Kind == KindText {
			outs = append(outs, m.Text)
		}
	}
	if !slices.Equal(outs, []string{"first, online", "one", "two", "three", "four"}) {
		t.Fatalf("alice's history: %q", outs)
	}

	// An entry whose delivery was acknowledged but not removed (the
	// client died in between) is resent with its id: the server answers
	// with the first copy, and bob gets nothing new.
	entry := q[1]
	if err := alice.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketOutbox, entry.ID, entry) }); err != nil {
		t.Fatal(err)
	}
	fr, err := alice.FlushOutbox(ctx)
	if err != nil || len(fr.Sent) != 1 || !fr.Sent[0].Duplicate || fr.Sent[0].ID != entry.ID {
		t.Fatalf("resending a delivered entry: %+v, %v", fr, err)
	}
	if got := texts(mustSync(t, bob)); len(got) != 0 {
		t.Fatalf("bob got a message twice: %q", got)
	}
}

// TestOutboxRefused: a queued message the server refuses for good (no
// such user) is kept, marked failed, without holding up the next ones;
// Send returns such an error at once and keeps nothing.
func TestOutboxRefused(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	if _, err := alice.Send(ctx, "@nobody", "hello?"); err == nil {
		t.Fatal("send to no such user: no error")
	}
	if q, _ := alice.Outbox(ctx); len(q) != 0 {
		t.Fatalf("a refused send stayed in the outbox: %+v", q)
	}
	s.stop()
	for _, target := range []string{"@nobody", "@bob"} {
		if res, err := alice.Send(ctx, target, "queued for "+target); err != nil || res.Queued == nil {
			t.Fatalf("queue for %s: %+v %v", target, res, err)
		}
	}
	s.restart(t)
	fr, err := alice.FlushOutbox(ctx)
	if err != nil || len(fr.Sent) != 1 || len(fr.Failed) != 1 || fr.Failed[0].Conversation != "@nobody" {
		t.Fatalf("flush: %+v, %v", fr, err)
	}
	q, _ := alice.Outbox(ctx)
	if len(q) != 1 || !q[0].Failed || q[0].LastError == "" {
		t.Fatalf("outbox after a refusal: %+v", q)
	}
	// Not retried by itself ...
	if fr, _ := alice.FlushOutbox(ctx); len(fr.Sent)+len(fr.Failed) != 0 {
		t.Fatalf("a failed entry was retried: %+v", fr)
	}
	// ... only when asked, and discarded on request.
	if n, _ := alice.RetryOutbox(ctx, "@nobody"); n != 1 {
		t.Fatalf("retry cleared %d entries", n)
	}
	if fr, _ := alice.FlushOutbox(ctx); len(fr.Failed) != 1 {
		t.Fatalf("retried entry: %+v", fr)
	}
	if n, _ := alice.DiscardOutbox(ctx, ""); n != 1 {
		t.Fatalf("discard removed %d", n)
	}
	if got := texts(mustSync(t, bob)); !slices.Equal(got, []string{"alice: queued for @bob"}) {
		t.Fatalf("bob got %q", got)
	}
}

// TestWatchReconnects: Watch reports the lost connection with a short,
// growing, capped delay, and once the server is back reports it,
// delivers the outbox and the messages that arrived meanwhile.
func TestWatchReconnects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	mustSend(t, bob, "@alice", "hello")
	events := make(chan Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- alice.Watch(ctx, WatchOptions{Backoff: Backoff{First: 100 * time.Millisecond, Max: 400 * time.Millisecond}}, func(e Event) { events <- e })
	}()
	next := func(typ string) Event {
		t.Helper()
		for {
			select {
			case e := <-events:
				if e.Type == typ {
					return e
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", typ)
			}
		}
	}
	next(EventConnected)
	if m := next(EventMessage); m.Message.Text != "hello" {
		t.Fatalf("message %+v", m.Message)
	}
	s.stop()
	var delays []time.Duration
	for len(delays) < 4 {
		e := next(EventDisconnected)
		if e.Err == nil {
			t.Fatal("disconnected without a reason")
		}
		delays = append(delays, e.RetryIn)
	}
	for i, d := range delays {
		if d <= 0 || d > 400*time.Millisecond || (i == 0 && d > 100*time.Millisecond) {
			t.Fatalf("retry delays %v: want a first one under 100ms and none over the 400ms cap", delays)
		}
	}
	if _, err := alice.Send(ctx, "@bob", "typed offline"); err != nil {
		t.Fatal(err)
	}
	s.restart(t)
	mustSend(t, bob, "@alice", "while you were away")
	next(EventConnected)
	// The outbox and the new message, in either order.
	var sent, got bool
	for !sent || !got {
		select {
		case e := <-events:
			switch {
			case e.Type == EventSent && e.Sent.Conversation == "@bob":
				sent = true
			case e.Type == EventMessage && e.Message.Text == "while you were away":
				got = true
			}
		case <-ctx.Done():
			t.Fatalf("after the restart: sent %v, message %v", sent, got)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Watch returned %v", err)
	}
	if got := texts(mustSync(t, bob)); !slices.Contains(got, "alice: typed offline") {
		t.Fatalf("bob got %q", got)
	}
}

// TestOutboxKeepsContent: a queued message is encoded as MIMI content
// once; every attempt sends those exact bytes, so its MIMI id (and the
// server's id, the first 16 octets) is the same at every attempt, and the
// receiver accepts it (its id matches the content, its franking tag
// opens over the same bytes).
func TestOutboxKeepsContent(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	mustSend(t, alice, "@bob", "online")
	mustSync(t, bob)

	s.stop()
	res, err := alice.Send(ctx, "@bob", "queued while away")
	if err != nil || res.Queued == nil {
		t.Fatalf("send with the server down: %+v, %v", res, err)
	}
	q0 := *res.Queued
	mid, err := content.ComputeMessageID(senderURI("alice"), roomURI(directID("alice", "bob")), q0.Content)
	if err != nil || shortID(&mid) != q0.ID {
		t.Fatalf("queued id %s is not the content's (%x, %v)", q0.ID, mid, err)
	}
	if _, err := alice.FlushOutbox(ctx); !IsTransient(err) {
		t.Fatalf("flush with the server down: %v", err)
	}
	q, err := alice.Outbox(ctx)
	if err != nil || len(q) != 1 {
		t.Fatalf("outbox: %+v, %v", q, err)
	}
	if q[0].ID != q0.ID || !bytes.Equal(q[0].Content, q0.Content) || q[0].Attempts == 0 {
		t.Fatalf("a failed attempt changed the entry: %+v, was %+v", q[0], q0)
	}

	s.restart(t)
	fr, err := alice.FlushOutbox(ctx)
	if err != nil || len(fr.Sent) != 1 || fr.Sent[0].ID != q0.ID {
		t.Fatalf("flush: %+v, %v", fr, err)
	}
	var got *Message
	for _, m := range mustSync(t, bob) {
		if m.Kind == KindText && m.Text == "queued while away" {
			got = &m
		}
	}
	if got == nil || got.ID != q0.ID || got.MimiID != hex.EncodeToString(mid[:]) {
		t.Fatalf("bob got %+v, want id %s, MIMI id %x", got, q0.ID, mid)
	}
	if ws := bob.Warnings(); len(ws) != 0 {
		t.Fatalf("bob's warnings: %+v", ws)
	}
}

// TestReplyQueued: a reply written while the server is down is queued
// with its reference, survives a restart of the client, and arrives
// answering the right message; a reply to a message of another
// conversation is refused at once and nothing is queued.
func TestReplyQueued(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	aliceOpts := testOptions(t, "alice")
	alice, err := Init(ctx, aliceOpts, s.url, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetSetting(ctx, SettingMessageRequests, false); err != nil { // as newUser
		t.Fatal(err)
	}
	bob := s.newUser(t, "bob")
	carol := s.newUser(t, "carol")
	mustSend(t, bob, "@alice", "dinner on friday?")
	mustSend(t, carol, "@alice", "unrelated")
	var asked, other Message
	for _, m := range mustSync(t, alice) {
		switch m.Text {
		case "dinner on friday?":
			asked = m
		case "unrelated":
			other = m
		}
	}
	if asked.ID == "" || other.ID == "" {
		t.Fatal("alice did not receive both messages")
	}

	s.stop()
	if _, err := alice.Reply(ctx, "@bob", other.ID, "yes"); !errors.Is(err, ErrCannotDo) {
		t.Fatalf("reply to carol's message in bob's conversation: %v, want ErrCannotDo", err)
	}
	res, err := alice.Reply(ctx, "@bob", asked.ID, "yes, at eight")
	if err != nil || res.Queued == nil || res.Sent != nil || res.Queued.ReplyTo != asked.ID {
		t.Fatalf("reply with the server down: %+v, %v (want it queued)", res, err)
	}
	alice.Close()
	alice, err = Open(ctx, aliceOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if q, _ := alice.Outbox(ctx); len(q) != 1 || q[0].ReplyTo != asked.ID {
		t.Fatalf("outbox after restart: %+v", q)
	}

	s.restart(t)
	if fr, err := alice.FlushOutbox(ctx); err != nil || len(fr.Sent) != 1 {
		t.Fatalf("flush after the server is back: %+v, %v", fr, err)
	}
	var got *Message
	for _, m := range mustSync(t, bob) {
		if m.Text == "yes, at eight" {
			got = &m
		}
	}
	if got == nil {
		t.Fatal("bob did not receive the queued reply")
	}
	if got.ReplyTo != asked.ID || got.Quote != "dinner on friday?" {
		t.Fatalf("bob's copy answers %q (quote %q), want %q", got.ReplyTo, got.Quote, asked.ID)
	}
}
