package channels_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/moderation"
)

// openHold returns the post's open hold case, failing if it has none.
func (e *env) openHold(post int64) moderation.Case {
	e.t.Helper()
	id, err := e.mstore.OpenHold(e.ctx, post)
	if err != nil {
		e.t.Fatalf("post %d has no open hold case: %v", post, err)
	}
	c, err := e.mstore.Case(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// A post a review list holds goes into the moderators' case queue with
// the list, hash and distance it matched; deciding the case acts on the
// channel (release, remove the post, delete the channel) and closes it.
func TestHoldsGoToTheCaseQueue(t *testing.T) {
	e := newEnv(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	entry := pdqEntry(t, orig)
	e.importBank("maybe", hashlist.Review, entry)

	held := func(text string) int64 {
		t.Helper()
		code, body := e.post("alice", "news", text, file{"a.jpg", "image/jpeg", orig})
		if code != 202 {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		p, _ := e.cstore.Posts(e.ctx, 0, 1000, channels.Held)
		return p[len(p)-1].ID
	}
	p1 := held("first")
	c := e.openHold(p1)
	if c.Kind != moderation.KindHold || c.Reported != "alice" || c.Hold.Channel != "news" || c.Hold.Text != "first" || len(c.Hold.Matches) == 0 {
		t.Fatalf("hold case: %+v", c)
	}
	m := c.Hold.Matches[0]
	if m.List != "maybe" || m.Type != string(hashlist.PDQ) || m.Hash != entry.Value || m.Distance != 0 || m.Label != "terrorist content" {
		t.Fatalf("the match: %+v (entry %s)", m, entry.Value)
	}

	// Report actions and unknown ones are refused and change nothing.
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, c.ID, moderation.CaseEvent{Action: moderation.ActionBan, Moderator: "m", Reason: "x"}); !errors.Is(err, moderation.ErrAction) {
		t.Fatalf("ban on a hold: %v", err)
	}
	if p, _ := e.cstore.Post(e.ctx, p1); p.Status != channels.Held {
		t.Fatalf("a refused decision changed the post: %s", p.Status)
	}

	// Release: published, the case closed, the approval in the log.
	k, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, c.ID, moderation.CaseEvent{Action: moderation.ActionRelease, Moderator: "mod", Reason: "news footage"})
	if err != nil || k.State != moderation.CaseClosed {
		t.Fatalf("release: %+v %v", k, err)
	}
	if p, _ := e.cstore.Post(e.ctx, p1); p.Status != channels.Published {
		t.Fatalf("released post is %s", p.Status)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 1 || evs.Events[0].Post == nil || evs.Events[0].Post.ID != p1 {
		t.Fatalf("the released post is not in the feed: %+v", evs)
	}
	if ds, _ := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", p1), 0); len(ds) == 0 || ds[0].Kind != moderation.DecisionApprove || ds[0].Actor != "mod" {
		t.Fatalf("decisions: %+v", ds)
	}
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, c.ID, moderation.CaseEvent{Action: moderation.ActionRemovePost, Moderator: "mod", Reason: "x"}); !errors.Is(err, moderation.ErrCaseState) {
		t.Fatalf("deciding a closed hold: %v", err)
	}

	// Remove the post.
	p2 := held("second")
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, e.openHold(p2).ID, moderation.CaseEvent{Action: moderation.ActionRemovePost, Moderator: "mod", Reason: "recruiting"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.cstore.Post(e.ctx, p2); p.Status != channels.Removed {
		t.Fatalf("removed post is %s", p.Status)
	}

	// The old path (parleyd admin takedowns approve) closes the case too.
	p3 := held("third")
	c3 := e.openHold(p3)
	if _, err := channels.Approve(e.ctx, e.cstore, e.mstore, p3, "mod"); err != nil {
		t.Fatal(err)
	}
	if k, _ := e.mstore.Case(e.ctx, c3.ID); k.State != moderation.CaseClosed || k.Events[0].Action != moderation.ActionRelease {
		t.Fatalf("the hold case after takedowns approve: %+v", k)
	}

	// A held post its author deleted cannot be released; removing it
	// closes the case.
	p4 := held("fourth")
	c4 := e.openHold(p4)
	if _, err := e.cstore.DeletePost(e.ctx, p4, "deleted by its author"); err != nil {
		t.Fatal(err)
	}
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, c4.ID, moderation.CaseEvent{Action: moderation.ActionRelease, Moderator: "mod", Reason: "ok"}); !errors.Is(err, moderation.ErrHoldGone) {
		t.Fatalf("releasing a deleted post: %v", err)
	}
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, c4.ID, moderation.CaseEvent{Action: moderation.ActionRemovePost, Moderator: "mod", Reason: "gone"}); err != nil {
		t.Fatalf("removing a deleted post: %v", err)
	}

	// Remove the channel: it is gone with its posts.
	p5 := held("fifth")
	if _, err := channels.DecideHold(e.ctx, e.cstore, e.mstore, e.openHold(p5).ID, moderation.CaseEvent{Action: moderation.ActionRemoveChannel, Moderator: "lead", Reason: "a recruiting channel"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cstore.Channel(e.ctx, "news"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("the channel after remove_channel: %v", err)
	}
	if ds, _ := e.mstore.Decisions(e.ctx, "channel:news", 0); len(ds) != 1 || ds[0].Kind != moderation.DecisionRemoveChannel || ds[0].Actor != "lead" {
		t.Fatalf("decisions: %+v", ds)
	}
}

// A published post that a review list gains later is held, and queued.
func TestRescanHoldIsQueued(t *testing.T) {
	e := newEnv(t)
	data := []byte("a clip that a review list gains later")
	p := e.mustPost("alice", "news", "clip", file{"c.mp4", "video/mp4", data})
	a, _ := e.svc.Analyse(data, "video/mp4")
	ent, _ := hashlist.NewEntry(hashlist.MD5, fmt.Sprintf("%x", a.MD5), nil)
	e.importBank("maybe", hashlist.Review, ent)
	c := e.openHold(p.ID)
	if len(c.Hold.Matches) != 1 || c.Hold.Matches[0].Type != string(hashlist.MD5) || c.Hold.Matches[0].Hash != ent.Value {
		t.Fatalf("hold: %+v", c.Hold)
	}
}

// Posts held before holds went into the queue (or whose case could not
// be filed) get a case when the service starts (CatchUp).
func TestCatchUpQueuesHeldPosts(t *testing.T) {
	e := newEnv(t)
	p, err := e.cstore.AddPost(e.ctx, channels.Post{Channel: "news", Author: "alice", Text: "held long ago", Status: channels.Held, Created: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.mstore.OpenHold(e.ctx, p.ID); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("a case before CatchUp: %v", err)
	}
	if err := e.svc.CatchUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	c := e.openHold(p.ID)
	if c.Hold.Text != "held long ago" {
		t.Fatalf("hold: %+v", c.Hold)
	}
	// Twice: still one case.
	if err := e.svc.CatchUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	if cs, _ := e.mstore.Cases(e.ctx, moderation.CaseOpen, 0); len(cs) != 1 {
		t.Fatalf("cases after a second CatchUp: %d", len(cs))
	}
}
