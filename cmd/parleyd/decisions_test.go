package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// The console's decisions on a report case have the server look the
// reported account's sessions up again (so a ban signs it out at once);
// a refused action and a hold case's decision do not.
func TestConsoleDecisionsTakeEffect(t *testing.T) {
	ctx := context.Background()
	ms, err := modsqlite.Open(ctx, filepath.Join(t.TempDir(), "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	var rechecked []string
	d := decisionsTakeEffect{Store: ms, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		recheck: func(_ context.Context, account string) error {
			rechecked = append(rechecked, account)
			return errors.New("the store is down") // logged; the decision stands
		}}
	now := time.Now()
	id, err := ms.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "harassment", Received: now}, "mallory",
		[]moderation.CaseMessage{{Tag: []byte("t"), Conversation: []byte("c"), SenderUser: "mallory", SenderDevice: "d",
			Accepted: now, Content: []byte("x"), Salt: []byte("s"), Frank: []byte("f")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ActOnCase(ctx, id, moderation.CaseEvent{Action: "smite", Moderator: "mod1"}); err == nil {
		t.Fatal("an unknown action was recorded")
	}
	if len(rechecked) != 0 {
		t.Fatalf("a refused action rechecked %v", rechecked)
	}
	if _, err := d.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionBan, Moderator: "mod1", Reason: "threats"}); err != nil {
		t.Fatalf("ban: %v", err)
	}
	if len(rechecked) != 1 || rechecked[0] != "mallory" {
		t.Fatalf("after the ban, rechecked %v, want [mallory]", rechecked)
	}
	if sn, err := ms.Sanction(ctx, "mallory", now); err != nil || !sn.Banned {
		t.Fatalf("the ban was not recorded: %+v %v", sn, err)
	}
	hold, err := ms.FileHold(ctx, moderation.Hold{Post: 7, Channel: "news", Author: "mallory",
		Matches: []moderation.HoldMatch{{List: "review", Type: "pdq", Hash: "ab12", Distance: 3}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ActOnCase(ctx, hold, moderation.CaseEvent{Action: moderation.ActionRelease, Moderator: "mod1"}); err != nil {
		t.Fatalf("release: %v", err)
	}
	if len(rechecked) != 1 {
		t.Fatalf("a hold decision rechecked %v", rechecked)
	}
}
