package client

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parleychat/parley/client/profile"
)

// TestWelcomeDuringSyncLosesNothing: a conversation whose Welcome reaches
// the server after Sync read the inbox but before it listed the
// conversations is listed with unread messages while this device has no
// state for it yet. Those messages must wait for the Welcome, not be
// fetched, dropped and acknowledged (which lost them for good: a browser
// device, slow to join many new conversations at once, lost 124 of 1 000).
func TestWelcomeDuringSyncLosesNothing(t *testing.T) {
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	ctx := context.Background()
	sent := false
	alice.testHookAfterInbox = func() {
		if !sent {
			sent = true
			mustSend(t, bob, "@alice", "first")
			mustSend(t, bob, "@alice", "second")
		}
	}
	got := mustSync(t, alice)
	if !sent {
		t.Fatal("the hook did not run")
	}
	alice.testHookAfterInbox = nil
	// The same sync joined the conversation and read its messages.
	if n := countTexts(got); n != 2 {
		t.Errorf("the sync reported %d of bob's 2 messages", n)
	}
	h, err := alice.History(ctx, "@bob", 0)
	if err != nil {
		t.Fatalf("alice's history with bob: %v", err)
	}
	var texts []string
	for _, m := range h {
		if m.Kind == KindText {
			texts = append(texts, m.Text)
		}
	}
	if fmt.Sprint(texts) != "[first second]" {
		t.Fatalf("alice has %q of bob's messages, want first and second", texts)
	}
}

// TestLogOfUnjoinedConversationWaits: the log of a conversation this
// device has no state for yet is not acknowledged, so the sync after its
// Welcome reads it.
func TestLogOfUnjoinedConversationWaits(t *testing.T) {
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	ctx := context.Background()
	mustSend(t, bob, "@alice", "before the Welcome is read")
	id := directID("alice", "bob")
	err := alice.withLock(ctx, func() error {
		conn, err := alice.connection(ctx)
		if err != nil {
			return err
		}
		n, err := alice.syncConversation(ctx, conn, id)
		if n != 0 {
			t.Errorf("%d entries processed without the conversation's state", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countTexts(mustSync(t, alice)); n != 1 {
		t.Fatalf("the sync after the Welcome reported %d of bob's message", n)
	}
}

func countTexts(ms []Message) int {
	n := 0
	for _, m := range ms {
		if m.Kind == KindText {
			n++
		}
	}
	return n
}

// TestWelcomeKeptWhenStorageFails: a Welcome that could not be stored (a
// disk or IndexedDB failure) stays in the inbox for the next sync; it was
// acknowledged with a warning, and its whole conversation lost.
func TestWelcomeKeptWhenStorageFails(t *testing.T) {
	s := startServer(t)
	alice := s.newUser(t, "alice")
	bob := s.newUser(t, "bob")
	ctx := context.Background()
	mustSend(t, bob, "@alice", "hello")
	full := fmt.Errorf("%w: QuotaExceededError", profile.ErrStorage)
	alice.testHookJoin = func() error { return full }
	if _, err := alice.Sync(ctx); !errors.Is(err, profile.ErrStorage) {
		t.Errorf("sync with a profile that cannot be written: %v, want the storage error", err)
	}
	alice.testHookJoin = nil
	if n := countTexts(mustSync(t, alice)); n != 1 {
		t.Fatalf("the sync after the failure reported %d of bob's message", n)
	}
}
