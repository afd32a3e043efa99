package client

import (
	"slices"
	"testing"
)

func TestDirectConversation(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")

	s := mustSend(t, alice, "@bob", "hello bob")
	if s.Seq == 0 || s.Conversation != "@bob" {
		t.Fatalf("sent = %+v", s)
	}
	got := mustSync(t, bob)
	if want := []string{"alice: hello bob"}; !slices.Equal(texts(got), want) {
		t.Fatalf("bob got %q, want %q (all: %+v)", texts(got), want, got)
	}
	if got[len(got)-1].Conversation != "@alice" {
		t.Fatalf("bob sees conversation %q", got[len(got)-1].Conversation)
	}
	mustSend(t, bob, "@alice", "hi alice")
	got = mustSync(t, alice)
	var receipts, textsGot int
	for _, m := range got {
		switch m.Kind {
		case KindReceipt:
			receipts++
			if !slices.Contains(m.ReceiptFor, s.ID) {
				t.Errorf("receipt for %v, want %s", m.ReceiptFor, s.ID)
			}
		case KindText:
			textsGot++
		}
	}
	if receipts != 1 || textsGot != 1 {
		t.Fatalf("alice got %+v", got)
	}
	// Nothing new the second time.
	if got := mustSync(t, bob); len(texts(got)) != 0 {
		t.Fatalf("second sync: %+v", got)
	}
}
