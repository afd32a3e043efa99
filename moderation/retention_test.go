package moderation_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// Case retention, with a clock the test moves: a decided case loses what
// reporters sent once its period has passed; a warning's case goes
// whole, a ban's keeps its decision (so the ban stays) without the
// messages; open cases stay; the decisions log keeps its entries.
func TestCaseRetention(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "moderation.db")
	st, err := modsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	r := moderation.CaseRetention{Store: st, Period: 30 * 24 * time.Hour, Now: func() time.Time { return now }}
	file := func(user, content string) int64 {
		t.Helper()
		id, err := st.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "harassment", Note: "note about " + content, Received: now}, user,
			[]moderation.CaseMessage{{Tag: []byte(content), Conversation: []byte("c"), SenderUser: user, SenderDevice: "d", Accepted: now, Content: []byte(content), Salt: []byte("s"), Frank: []byte("f")}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	decide := func(id int64, action string) {
		t.Helper()
		if _, err := st.ActOnCase(ctx, id, moderation.CaseEvent{Time: now, Action: action, Moderator: "mod", Reason: "decided " + action}); err != nil {
			t.Fatal(err)
		}
	}
	warned := file("wendy", "CANARY-warned-message")
	decide(warned, moderation.ActionWarn)
	banned := file("bert", "CANARY-banned-message")
	decide(banned, moderation.ActionBan)
	open := file("oscar", "still open")
	hold, _ := st.FileHold(ctx, moderation.Hold{Post: 5, Channel: "news", Author: "pat", Text: "CANARY-held-text"}, now)
	if _, err := st.ActOnCase(ctx, hold, moderation.CaseEvent{Time: now, Action: moderation.ActionRemovePost, Moderator: "mod", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(20 * 24 * time.Hour)
	recent := file("rita", "recent")
	decide(recent, moderation.ActionWarn)

	// Within the period, nothing goes.
	if n, err := r.Once(ctx); err != nil || n != 0 {
		t.Fatalf("purge within the period: %d %v", n, err)
	}
	now = t0.Add(31 * 24 * time.Hour)
	if n, err := r.Once(ctx); err != nil || n != 3 {
		t.Fatalf("purge: %d %v (want 3: the warning, the ban's content, the hold)", n, err)
	}
	if _, err := st.Case(ctx, warned); err == nil {
		t.Fatal("the warned case is still there")
	}
	if _, err := st.Case(ctx, hold); err == nil {
		t.Fatal("the decided hold is still there")
	}
	b, err := st.Case(ctx, banned)
	if err != nil || len(b.Messages) != 0 || b.Reports[0].Note != "" || len(b.Events) != 1 {
		t.Fatalf("the ban's case: %+v %v", b, err)
	}
	if sn, err := st.Sanction(ctx, "bert", now); err != nil || !sn.Banned {
		t.Fatalf("the ban after retention: %+v %v", sn, err)
	}
	for _, id := range []int64{open, recent} {
		if c, err := st.Case(ctx, id); err != nil || len(c.Messages) != 1 {
			t.Fatalf("case %d: %+v %v", id, c, err)
		}
	}
	// The audit log keeps who decided what, when and why.
	if ds, _ := st.Decisions(ctx, "case:"+strconv.FormatInt(warned, 10), 0); len(ds) != 1 || ds[0].Kind != "case:warn" || ds[0].Actor != "mod" {
		t.Fatalf("the audit log of the purged case: %+v", ds)
	}
	// Purging again changes nothing.
	if n, err := r.Once(ctx); err != nil || n != 0 {
		t.Fatalf("a second purge: %d %v", n, err)
	}
	// The reported contents are gone from the database file, not just
	// unlinked (secure_delete).
	st.Close()
	for _, f := range []string{path, path + "-wal"} {
		raw, _ := os.ReadFile(f)
		for _, canary := range []string{"CANARY-warned-message", "CANARY-banned-message", "CANARY-held-text"} {
			if bytes.Contains(raw, []byte(canary)) {
				t.Errorf("%s still holds %s", filepath.Base(f), canary)
			}
		}
	}
}
