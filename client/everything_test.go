package client

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/server"
)

// TestEveryFeatureThreeUsersTwoDevices is issue 12's end-to-end test: a
// real server on loopback and three users with two devices each in one
// group. carol2 stays offline while the others mention, reply, react,
// edit, delete (an edit and a delete even reach the server before the
// message they refer to), and while bob's modified client commits carol's
// removal, which every member refuses; carol2 then catches up and sees
// the same as everyone, each message once. carol blocks bob: nothing he
// sends is shown on either of her devices. Under a timer, an expired
// message is gone from all six profiles and the server's disk, though
// one device never fetched it.
//
// The single features have their own, deeper tests (content_test.go,
// roles_test.go, controls_test.go, disappear_test.go, group_test.go);
// this one checks they hold together across users and devices.
func TestEveryFeatureThreeUsersTwoDevices(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Now = clock.Now
		cfg.SweepInterval = time.Hour // the test sweeps by hand
	})
	alice, bob, carol := srv.newUserAt(t, "alice", clock), srv.newUserAt(t, "bob", clock), srv.newUserAt(t, "carol", clock)
	link := func(c *Client, name string) *Client {
		d := srv.linkDevice(t, c, name)
		d.opts.Now = clock.Now
		return d
	}
	alice2, bob2, carol2 := link(alice, "alice2"), link(bob, "bob2"), link(carol, "carol2")
	online := []*Client{alice, alice2, bob, bob2, carol}
	all := append(slices.Clone(online), carol2)
	syncAll := func(cs ...*Client) {
		t.Helper()
		for _, c := range cs {
			mustSync(t, c)
		}
	}
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	syncAll(online...)

	// Mentions, a reply, a reaction, an edit, a delete for everyone.
	hello := mustSend(t, alice, "#team", "hello @carol and @bob")
	syncAll(online...)
	reply, err := bob.SendReply(ctx, "#team", hello.ID, "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	syncAll(online...)
	if _, err := carol.React(ctx, reply.ID, "👍", false); err != nil {
		t.Fatal(err)
	}
	syncAll(online...)
	if _, err := alice2.Edit(ctx, hello.ID, "hello @carol"); err != nil { // her other device edits
		t.Fatal(err)
	}
	oops := mustSend(t, bob2, "#team", "oops")
	syncAll(online...)
	if _, err := bob.DeleteForEveryone(ctx, oops.ID); err != nil { // deleted from his other device
		t.Fatal(err)
	}

	// An edit and a delete that reach the server before their messages.
	var room []byte
	if err := alice.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, "alice", "#team")
		if err == nil {
			room = r.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	build := func(text string) (*content.Content, *content.MessageID) {
		c := newContent(textBody(text))
		if kt := alice.latestView(); kt != nil {
			c.SetExtension(extKT, []any{kt.Size, kt.Root})
		}
		id, _, err := c.MessageID(senderURI("alice"), roomURI(room))
		if err != nil {
			t.Fatal(err)
		}
		return c, &id
	}
	late, lateID := build("first draft")
	edit := newContent(textBody("final text"))
	edit.Replaces = lateID
	sendBuilt(t, alice, "#team", edit)
	gone, goneID := build("never seen")
	del := newContent(content.Part{Disposition: content.Render, Cardinality: content.NullPart})
	del.Replaces = goneID
	sendBuilt(t, alice, "#team", del)
	sendBuilt(t, alice, "#team", late)
	sendBuilt(t, alice, "#team", gone)

	// bob's modified client commits carol's removal (a non-admin's
	// commit); every member refuses it, bob's other device too.
	hostileCommit(t, bob, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		var leaves []uint32
		for s, l := range groupDevices(g) {
			if s.User == "carol" {
				leaves = append(leaves, l)
			}
		}
		return mls.CommitOptions{Removes: leaves}, nil, nil
	})
	for _, c := range []*Client{alice, alice2, bob2, carol} {
		if _, ws := syncWarnings(t, c); !hasPolicyWarning(ws, "bob, not an admin, removed carol") {
			t.Fatalf("%s/%s: warnings %+v, want bob's commit refused", c.Self().User, c.Self().DeviceID, ws)
		}
	}
	mustSend(t, alice, "#team", "after the refused commit")
	syncAll(online...)

	// carol2 catches up: the group from its Welcome, everything in order,
	// once, and bob's commit refused like everyone else.
	res, err := carol2.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ws := carol2.Warnings(); !hasPolicyWarning(ws, "bob, not an admin, removed carol") {
		t.Fatalf("carol2's warnings: %+v", ws)
	}
	seen := map[string]int{}
	for _, m := range res.Messages {
		if m.Kind == KindText {
			seen[m.ID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("carol2 got message %s %d times", id, n)
		}
	}
	for _, c := range all {
		who := c.Self().User + "/" + c.Self().DeviceID
		h := historyOf(t, c, "#team")
		if m := h[hello.ID]; m.Text != "hello @carol" || !m.Edited || m.Mentioned != (c.Self().User == "carol") {
			t.Fatalf("%s: the edited mention %+v", who, m)
		}
		if m := h[reply.ID]; m.ReplyTo != hello.ID || len(m.Reactions) != 1 || m.Reactions[0].User != "carol" || m.Reactions[0].Emoji != "👍" {
			t.Fatalf("%s: the reply %+v", who, m)
		}
		if m := h[oops.ID]; !m.Deleted || m.Text != "" {
			t.Fatalf("%s: the deleted message %+v", who, m)
		}
		if m := h[shortID(lateID)]; m.Text != "final text" || !m.Edited {
			t.Fatalf("%s: the message edited before it came %+v", who, m)
		}
		if m := h[shortID(goneID)]; !m.Deleted || m.Text != "" {
			t.Fatalf("%s: the message deleted before it came %+v", who, m)
		}
		msgs, err := c.History(ctx, "#team", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !containsText(msgs, "after the refused commit") {
			t.Fatalf("%s: the message after the refused commit is missing", who)
		}
		if got := usersOf(t, c, "#team"); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
			t.Fatalf("%s: members %v", who, got)
		}
	}

	// carol blocks bob (on each of her devices): nothing of his reaches
	// her screens; the others see it.
	for _, c := range []*Client{carol, carol2} {
		if _, err := c.UpdatePrivacy(ctx, []string{"bob"}, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	mustSend(t, bob, "#team", "from bob while blocked")
	mustSend(t, bob2, "#team", "from bob2 while blocked")
	for _, c := range all {
		got := texts(mustSync(t, c))
		msgs, err := c.History(ctx, "#team", 0)
		if err != nil {
			t.Fatal(err)
		}
		shown := slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "while blocked") }) ||
			containsText(msgs, "from bob while blocked") || containsText(msgs, "from bob2 while blocked")
		if want := c.Self().User != "carol"; shown != want {
			t.Fatalf("%s/%s: a blocked user's message shown: %v, want %v", c.Self().User, c.Self().DeviceID, shown, want)
		}
	}

	// A timer; a message under it; bob2 never fetches it.
	if _, err := carol.SetTimer(ctx, "#team", time.Hour); err != nil {
		t.Fatal(err)
	}
	syncAll(all...)
	canary := "canary-" + hex.EncodeToString(randBytes(8))
	sent := mustSend(t, alice, "#team", canary)
	syncAll(alice, alice2, bob, carol, carol2)
	held, err := srv.store.Fetch(ctx, bob2.Self().DeviceID, room, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ciphertext []byte
	for _, m := range held {
		if hexID(m.ID) == sent.ID {
			ciphertext = m.Payload
		}
	}
	if ciphertext == nil || len(filesContaining(t, srv.dataDir, ciphertext)) == 0 {
		t.Fatal("the server does not hold the message before the expiry: the check below proves nothing")
	}
	for _, c := range []*Client{alice, alice2, bob, carol, carol2} {
		if ok, _ := profileHolds(t, c, canary); !ok {
			t.Fatalf("%s/%s does not hold the message before the expiry", c.Self().User, c.Self().DeviceID)
		}
	}
	clock.Add(time.Hour + time.Second)
	srv.srv.Sweep(ctx)
	for _, c := range all {
		for _, m := range mustSync(t, c) {
			if strings.Contains(m.Text, canary) {
				t.Fatalf("%s/%s synced the expired message", c.Self().User, c.Self().DeviceID)
			}
		}
		if ok, _ := profileHolds(t, c, canary); ok {
			t.Fatalf("%s/%s's profile still holds the expired message", c.Self().User, c.Self().DeviceID)
		}
		if f := filesContaining(t, c.opts.Dir, []byte(canary)); len(f) != 0 {
			t.Fatalf("%s/%s's files hold the expired message: %v", c.Self().User, c.Self().DeviceID, f)
		}
	}
	if f := filesContaining(t, srv.dataDir, ciphertext, []byte(canary)); len(f) != 0 {
		t.Fatalf("the server's files still hold the expired message: %v", f)
	}
}
