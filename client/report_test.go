package client

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/server"
)

// Reports with proof from the real client: mallory's messages reach alice
// franked; alice reports the last two and the server verifies them.
// A sender whose client lies about its tag has its message dropped, and
// the recipient is told.
func TestReportWithProof(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var filed []server.Report
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Report = func(ctx context.Context, r server.Report) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			filed = append(filed, r)
			return "case-1", nil
		}
	})
	alice, mallory := srv.newUser(t, "alice"), srv.newUser(t, "mallory")
	mustSend(t, mallory, "@alice", "hello")
	mustSend(t, mallory, "@alice", "you will regret this")
	mustSend(t, mallory, "@alice", "I know where you live")
	mustSend(t, alice, "@mallory", "leave me alone") // her own: never in a report
	mustSync(t, alice)

	plan, err := alice.PlanReport(ctx, "@mallory", nil, 2, "harassment", "threats")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range plan.Messages {
		texts = append(texts, m.Sender.User+": "+m.Text)
	}
	if strings.Join(texts, "|") != "mallory: you will regret this|mallory: I know where you live" {
		t.Fatalf("the report would send %q", texts)
	}
	if _, err := alice.PlanReport(ctx, "@mallory", nil, 2, "because", ""); err == nil {
		t.Fatal("an unknown reason was accepted")
	}
	id, err := alice.Report(ctx, plan)
	if err != nil || id != "case-1" {
		t.Fatalf("report: %q %v", id, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filed) != 1 || len(filed[0].Messages) != 2 || filed[0].Reporter != "alice" || filed[0].Messages[1].SenderUser != "mallory" {
		t.Fatalf("filed %+v", filed)
	}
}

func TestTamperedTagDropped(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, mallory := srv.newUser(t, "alice"), srv.newUser(t, "mallory")
	mustSend(t, mallory, "@alice", "hello")
	mustSync(t, alice)
	// mallory's client commits to other content than it sends.
	mallory.testHookTag = func(tag []byte) []byte {
		other, _ := franking.Tag(make([]byte, franking.SaltSize), []byte("something else"))
		return other
	}
	mustSend(t, mallory, "@alice", "deniable threat")
	res, err := alice.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(texts(res.Messages), "mallory: deniable threat") {
		t.Fatal("a message with a tag that does not commit to it was shown")
	}
	if !slices.ContainsFunc(alice.Warnings(), func(w Warning) bool { return strings.Contains(w.Err, "tampered") }) {
		t.Fatal("alice was not told")
	}
}

// Search finds messages across conversations, ignoring case, newest
// first; deleted messages are not found.
func TestSearchHistory(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	mustSend(t, bob, "@alice", "the Meeting is at noon")
	mustSend(t, carol, "@alice", "no meeting today")
	mustSend(t, carol, "@alice", "something else")
	mustSync(t, alice)
	got, err := alice.Search(ctx, "meeting", 0)
	var found []string
	for _, m := range got {
		found = append(found, m.Conversation+": "+m.Text)
	}
	slices.Sort(found)
	if err != nil || strings.Join(found, "|") != "@bob: the Meeting is at noon|@carol: no meeting today" {
		t.Fatalf("search: %q %v", found, err)
	}
	if _, err := alice.Search(ctx, "  ", 0); err == nil {
		t.Fatal("an empty query was accepted")
	}
	if got, _ := alice.Search(ctx, "meeting", 1); len(got) != 1 {
		t.Fatalf("limit 1: %d", len(got))
	}
}

// TestReportTooOld: a genuine report of messages older than the server
// accepts reports for is refused with that reason, not as a forgery.
func TestReportTooOld(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Now = clock.Now
		cfg.Report = func(ctx context.Context, r server.Report) (string, error) { return "case-1", nil }
	})
	alice, mallory := srv.newUserAt(t, "alice", clock), srv.newUserAt(t, "mallory", clock)
	mustSend(t, mallory, "@alice", "you will regret this")
	mustSync(t, alice)
	plan, err := alice.PlanReport(ctx, "@mallory", nil, 1, "harassment", "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(franking.DefaultMaxAge + time.Hour)
	if _, err := alice.Report(ctx, plan); err == nil || !strings.Contains(err.Error(), "older than reports are accepted") {
		t.Fatalf("a report of a message older than %v: %v", franking.DefaultMaxAge, err)
	}
	clock.Add(-franking.DefaultMaxAge)
	if _, err := alice.Report(ctx, plan); err != nil {
		t.Fatalf("the same report within the window: %v", err)
	}
}
