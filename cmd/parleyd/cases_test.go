package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// A channel post held by a review list is in "parleyd admin cases list"
// beside the abuse reports, "show" gives the list, hash and distance it
// matched, and "decide" acts on the channel.
func TestCasesHoldCommands(t *testing.T) {
	data, _, _ := consoleServer(t)
	ctx := context.Background()
	cs, err := chansqlite.OpenExisting(ctx, filepath.Join(data, "channels.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ms, err := modsqlite.OpenExisting(ctx, filepath.Join(data, "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if err := cs.CreateChannel(ctx, channels.Channel{ID: "news", Title: "News", Owner: "poster", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p, err := cs.AddPost(ctx, channels.Post{Channel: "news", Author: "poster", Text: "join us", Status: channels.Held}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ms.FileHold(ctx, moderation.Hold{Post: p.ID, Channel: "news", Author: "poster", Text: "join us",
		Matches: []moderation.HoldMatch{{List: "review-x", Label: "extremism", Type: "pdq", Hash: "c0ffee", Distance: 9}}}, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ids := strconv.FormatInt(id, 10)
	out := legalCmd(t, 0, "cases", "list", "--data", data)
	if !strings.Contains(out, "hold") || !strings.Contains(out, "list review-x (pdq distance 9)") {
		t.Fatalf("cases list: %s", out)
	}
	var listed []moderation.Case
	if err := json.Unmarshal([]byte(legalCmd(t, 0, "cases", "list", "--kind", "hold", "--older-than", "1h", "--json", "--data", data)), &listed); err != nil ||
		len(listed) != 1 || listed[0].Hold == nil || listed[0].Hold.Matches[0].Hash != "c0ffee" {
		t.Fatalf("cases list --kind hold --json: %+v %v", listed, err)
	}
	if out := legalCmd(t, 0, "cases", "list", "--older-than", "3h", "--json", "--data", data); strings.TrimSpace(out) != "[]" {
		t.Fatalf("nothing waited 3h: %s", out)
	}
	out = legalCmd(t, 0, "cases", "show", ids, "--data", data)
	for _, want := range []string{"public channel news", "matched list review-x (extremism): pdq c0ffee, distance 9", `"join us"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("cases show lacks %q: %s", want, out)
		}
	}
	if out := legalCmd(t, 1, "cases", "decide", ids, "--action", "ban", "--moderator", "ana", "--reason", "x", "--data", data); !strings.Contains(out, "held channel post") {
		t.Fatalf("ban on a hold: %s", out)
	}
	legalCmd(t, 0, "cases", "decide", ids, "--action", "release", "--moderator", "ana", "--reason", "news footage", "--data", data)
	if got, _ := cs.Post(ctx, p.ID); got.Status != channels.Published {
		t.Fatalf("the released post is %s", got.Status)
	}
	if c, _ := ms.Case(ctx, id); c.State != moderation.CaseClosed || c.Events[0].Moderator != "ana" {
		t.Fatalf("the case: %+v", c)
	}
}

// "parleyd admin moderators remove" deactivates an account and the audit
// log records it; the last lead stays.
func TestModeratorsRemove(t *testing.T) {
	data, _, _ := consoleServer(t)
	addModerator(t, data, "ana", "a long enough password", true)
	addModerator(t, data, "bo", "another long password", false)
	if out := legalCmd(t, 1, "moderators", "remove", "ana", "--data", data); !strings.Contains(out, "last active lead") {
		t.Fatalf("removing the last lead: %s", out)
	}
	legalCmd(t, 0, "moderators", "remove", "bo", "--by", "ana", "--data", data)
	var mods []struct {
		Name    string    `json:"name"`
		Removed time.Time `json:"removed"`
	}
	if err := json.Unmarshal([]byte(legalCmd(t, 0, "moderators", "list", "--json", "--data", data)), &mods); err != nil || len(mods) != 2 || mods[1].Removed.IsZero() || !mods[0].Removed.IsZero() {
		t.Fatalf("moderators list --json: %+v %v", mods, err)
	}
	ms, err := modsqlite.OpenExisting(context.Background(), filepath.Join(data, "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if ds, _ := ms.Decisions(context.Background(), "moderator:bo", 0); len(ds) != 1 || ds[0].Actor != "ana" {
		t.Fatalf("the audit log: %+v", ds)
	}
}
