package client

import (
	"context"
	"testing"
	"time"
)

// TestTypingIndicators: a typing indicator reaches the online member's
// device through Watch, is never stored by the server (the log does not
// grow, an offline device never gets it and still reads what follows),
// and is not sent when the setting is off.
func TestTypingIndicators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startServer(t)
	// alice's clock moves only by hand, so the pacing is checked
	// exactly, however slow the machine.
	clock := &testClock{now: time.Now()}
	alice := srv.newUserAt(t, "alice", clock)
	bob := srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hi")
	mustSync(t, bob)
	bob2 := srv.linkDevice(t, bob, "bob2") // offline
	mustSync(t, alice)
	conv := directID("alice", "bob")
	before, err := srv.store.Conversation(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}

	events := make(chan Event, 100)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bob.Watch(wctx, WatchOptions{}, func(e Event) { events <- e }) }()
	defer func() { stop(); <-done }()
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

	sent, err := alice.SendTyping(ctx, "@bob", true)
	if err != nil || !sent {
		t.Fatalf("SendTyping = %v, %v", sent, err)
	}
	e := next(EventTyping)
	if e.Typing.User != "alice" || !e.Typing.Typing || e.Typing.Conversation != "@alice" || !e.Typing.Until.After(time.Now()) {
		t.Fatalf("bob's typing event: %+v", e.Typing)
	}
	// Paced: a second one within TypingEvery is not sent; after it, it is.
	clock.Add(TypingEvery - time.Millisecond)
	if sent, err := alice.SendTyping(ctx, "@bob", true); err != nil || sent {
		t.Fatalf("second SendTyping within TypingEvery = %v, %v; want not sent", sent, err)
	}
	clock.Add(time.Millisecond)
	if sent, err := alice.SendTyping(ctx, "@bob", true); err != nil || !sent {
		t.Fatalf("SendTyping once TypingEvery passed = %v, %v; want sent", sent, err)
	}
	if e := next(EventTyping); !e.Typing.Typing || !e.Typing.Until.After(time.Now()) {
		t.Fatalf("the second indicator: %+v", e.Typing)
	}
	if sent, err := alice.SendTyping(ctx, "@bob", false); err != nil || !sent {
		t.Fatalf("SendTyping(stopped) = %v, %v", sent, err)
	}
	if e := next(EventTyping); e.Typing.Typing {
		t.Fatalf("want a stop, got %+v", e.Typing)
	}

	// The server stored nothing of them.
	after, err := srv.store.Conversation(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if after.HeadSeq != before.HeadSeq {
		t.Fatalf("the conversation log grew from %d to %d with typing indicators only", before.HeadSeq, after.HeadSeq)
	}
	if ms, err := srv.store.Fetch(ctx, bob2.Self().DeviceID, conv, 100); err != nil || len(ms) != 0 {
		t.Fatalf("the offline device has %d messages to fetch: %v", len(ms), err)
	}
	// The offline device reads what follows (the skipped generations
	// are within the MLS out-of-order window).
	text := mustSend(t, alice, "@bob", "after typing")
	if got := mustSync(t, bob2); !containsID(got, text.ID) {
		t.Fatalf("bob2 did not read the message after the typing indicators: %+v", got)
	}

	if err := alice.SetTypingIndicators(ctx, false); err != nil {
		t.Fatal(err)
	}
	if on, _ := alice.TypingIndicators(ctx); on {
		t.Fatal("typing indicators still on")
	}
	if sent, err := alice.SendTyping(ctx, "@bob", true); err != nil || sent {
		t.Fatalf("SendTyping with the setting off = %v, %v", sent, err)
	}
}
