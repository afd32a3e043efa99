package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
)

// historyOf returns c's history of target keyed by message id.
func historyOf(t *testing.T, c *Client, target string) map[string]Message {
	t.Helper()
	msgs, err := c.History(context.Background(), target, 0)
	if err != nil {
		t.Fatalf("%s: history of %s: %v", c.Self().User, target, err)
	}
	out := map[string]Message{}
	for _, m := range msgs {
		out[m.ID] = m
	}
	return out
}

func find(msgs []Message, kind string) *Message {
	for i := range msgs {
		if msgs[i].Kind == kind {
			return &msgs[i]
		}
	}
	return nil
}

// sendRaw encrypts plaintext for target and sends it under id, as a
// hostile or broken client could.
func sendRaw(t *testing.T, c *Client, target string, id, plaintext []byte) {
	t.Helper()
	ctx := context.Background()
	err := c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		var ct []byte
		var epoch uint64
		err = c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			epoch = g.Epoch()
			if ct, err = g.Encrypt(plaintext, nil); err != nil {
				return err
			}
			if err := saveGroup(tx, g); err != nil {
				return err
			}
			return markSeen(tx, id)
		})
		if err != nil {
			return err
		}
		_, err = conn.SendApplication(ctx, id, r.ID, epoch, ct)
		return err
	})
	if err != nil {
		t.Fatalf("send raw: %v", err)
	}
}

// sendBuilt sends a content made by the test, returning its MIMI id.
func sendBuilt(t *testing.T, c *Client, target string, cont *content.Content) Sent {
	t.Helper()
	ctx := context.Background()
	var sent Sent
	err := c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		sent, err = c.sendContent(ctx, conn, r, cont, true)
		return err
	})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return sent
}

// TestRepliesReactionsEditsDeletes: three users, bob with two devices, in
// a group: mentions, a reply with its quote, a reaction and its removal,
// an edit with its history, a delete for everyone on every device, a
// forward, and delete for me.
func TestRepliesReactionsEditsDeletes(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	bob2 := srv.linkDevice(t, bob, "bob2")
	if _, err := alice.CreateGroup(ctx, "team", []string{"@bob", "@carol"}); err != nil {
		t.Fatal(err)
	}
	orig := mustSend(t, alice, "#team", "lunch at noon? @carol @nobody @bob.")
	for _, c := range []*Client{bob, bob2, carol} {
		m := find(mustSync(t, c), KindText)
		if m == nil || m.ID != orig.ID || m.MimiID == "" || !strings.HasPrefix(m.MimiID, orig.ID) {
			t.Fatalf("%s: got %+v", c.Self().User, m)
		}
		if !slices.Equal(m.Mentions, []string{"carol", "bob"}) || m.Mentioned != (c == carol || c == bob || c == bob2) {
			t.Fatalf("%s: mentions %v, mentioned %v", c.Self().User, m.Mentions, m.Mentioned)
		}
	}

	// A reply carries the id; everyone shows the quote.
	reply, err := bob.SendReply(ctx, "#team", orig.ID, "yes please")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendReply(ctx, "@alice", orig.ID, "wrong place"); !errors.Is(err, ErrCannotDo) && !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("reply into another conversation: %v", err)
	}
	m := find(mustSync(t, alice), KindText)
	if m == nil || m.ID != reply.ID || m.ReplyTo != orig.ID || !strings.HasPrefix(m.Quote, "lunch at noon?") {
		t.Fatalf("alice got reply %+v", m)
	}

	// A reaction, reported as an event and shown on the message.
	if _, err := carol.React(ctx, orig.ID, "👍", false); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.React(ctx, orig.ID, "👍", false); !errors.Is(err, ErrCannotDo) {
		t.Fatalf("reacting twice: %v", err)
	}
	ev := find(mustSync(t, alice), KindReaction)
	if ev == nil || ev.Target != orig.ID || ev.Reaction != "👍" || ev.Sender.User != "carol" {
		t.Fatalf("alice got reaction event %+v", ev)
	}
	mustSync(t, bob2)
	if r := historyOf(t, bob2, "#team")[orig.ID].Reactions; len(r) != 1 || r[0].User != "carol" || r[0].Emoji != "👍" {
		t.Fatalf("bob2 sees reactions %+v", r)
	}
	if _, err := carol.React(ctx, orig.ID, "👍", true); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob2)
	if r := historyOf(t, bob2, "#team")[orig.ID].Reactions; len(r) != 0 {
		t.Fatalf("bob2 still sees reactions %+v", r)
	}
	if r := historyOf(t, carol, "#team")[orig.ID].Reactions; len(r) != 0 {
		t.Fatalf("carol still sees her own reaction %+v", r)
	}

	// Only the sender edits; the history keeps the earlier version.
	if _, err := bob.Edit(ctx, orig.ID, "mine now"); !errors.Is(err, ErrNotYourMessage) {
		t.Fatalf("bob editing alice's message: %v", err)
	}
	if _, err := alice.Edit(ctx, orig.ID, "lunch at one?"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{alice, bob, bob2, carol} {
		mustSync(t, c)
		h := historyOf(t, c, "#team")[orig.ID]
		if h.Text != "lunch at one?" || !h.Edited || len(h.Edits) != 1 || h.Edits[0].Text != "lunch at noon? @carol @nobody @bob." {
			t.Fatalf("%s/%s: after the edit %+v", c.Self().User, c.Self().DeviceID, h)
		}
		if c == carol && h.Mentioned {
			t.Fatal("the edit dropped the mention, carol still marked")
		}
	}
	if h := historyOf(t, alice, "#team")[reply.ID]; h.Quote != "lunch at one?" {
		t.Fatalf("the reply's quote follows the edit: %q", h.Quote)
	}

	// Forward bob's reply to carol, marked.
	fw, err := alice.Forward(ctx, reply.ID, "@carol")
	if err != nil {
		t.Fatal(err)
	}
	m = find(mustSync(t, carol), KindText)
	if m == nil || m.ID != fw.ID || !m.Forwarded || m.Text != "yes please" || m.Conversation != "@alice" {
		t.Fatalf("carol got forward %+v", m)
	}

	// Delete for everyone: every device of every member.
	if _, err := bob.DeleteForEveryone(ctx, orig.ID); !errors.Is(err, ErrNotYourMessage) {
		t.Fatalf("bob deleting alice's message: %v", err)
	}
	if _, err := alice.DeleteForEveryone(ctx, orig.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{alice, bob, bob2, carol} {
		mustSync(t, c)
		h := historyOf(t, c, "#team")[orig.ID]
		if !h.Deleted || h.Text != "" || len(h.Edits) != 0 {
			t.Fatalf("%s/%s: after the delete %+v", c.Self().User, c.Self().DeviceID, h)
		}
	}
	if _, err := alice.Edit(ctx, orig.ID, "back"); !errors.Is(err, ErrCannotDo) {
		t.Fatalf("editing a deleted message: %v", err)
	}

	// Delete for me: gone from this device only, and later events for it
	// are dropped.
	if err := carol.DeleteForMe(ctx, reply.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := historyOf(t, carol, "#team")[reply.ID]; ok {
		t.Fatal("carol still has the reply")
	}
	if _, err := alice.React(ctx, reply.ID, "🎉", false); err != nil {
		t.Fatal(err)
	}
	if got := mustSync(t, carol); find(got, KindReaction) != nil {
		t.Fatalf("carol was told of a reaction to a message she deleted: %+v", got)
	}
	if _, ok := historyOf(t, bob2, "#team")[reply.ID]; !ok {
		t.Fatal("bob2 lost the reply carol deleted for herself")
	}

	// The sender's window.
	alice.opts.Now = func() time.Time { return time.Now().Add(DeleteWindow + time.Hour) }
	if _, err := alice.DeleteForEveryone(ctx, fw.ID); !errors.Is(err, ErrDeleteWindow) {
		t.Fatalf("delete after the window: %v", err)
	}
	alice.opts.Now = nil
}

// TestEventsBeforeTheirMessage: edits, a reaction and a delete that
// arrive before the message they refer to are applied, in log order,
// when it arrives.
func TestEventsBeforeTheirMessage(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	bob2 := srv.linkDevice(t, bob, "bob2")
	if _, err := alice.CreateGroup(ctx, "team", []string{"@bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSync(t, bob2)
	var room []byte
	alice.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, "alice", "#team")
		room = r.ID
		return err
	})
	// build makes a content with the extension sendContent will add, so
	// that its id is known before it is sent.
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
	first, firstID := build("version 1")
	edit := func(text string) *content.Content {
		c := newContent(textBody(text))
		c.Replaces = firstID
		return c
	}
	react := newContent(content.Part{Disposition: content.Reaction, Cardinality: content.SinglePart, ContentType: content.TypePlainText, Content: []byte("🔥")})
	react.InReplyTo = firstID
	sendBuilt(t, alice, "#team", edit("version 2"))
	sendBuilt(t, alice, "#team", react)
	sendBuilt(t, alice, "#team", edit("version 3"))
	if got := mustSync(t, bob); len(got) != 0 {
		t.Fatalf("bob was shown events for a message he does not have: %+v", got)
	}
	sendBuilt(t, alice, "#team", first)

	second, secondID := build("to be deleted")
	del := newContent(content.Part{Disposition: content.Render, Cardinality: content.NullPart})
	del.Replaces = secondID
	sendBuilt(t, alice, "#team", del)
	sendBuilt(t, alice, "#team", second)

	short := shortID(firstID)
	for _, c := range []*Client{alice, bob, bob2} {
		mustSync(t, c)
		h := historyOf(t, c, "#team")
		m := h[short]
		if m.Text != "version 3" || !m.Edited || len(m.Edits) != 2 || m.Edits[0].Text != "version 1" || m.Edits[1].Text != "version 2" {
			t.Fatalf("%s/%s: %+v", c.Self().User, c.Self().DeviceID, m)
		}
		if len(m.Reactions) != 1 || m.Reactions[0].Emoji != "🔥" {
			t.Fatalf("%s: reactions %+v", c.Self().User, m.Reactions)
		}
		if d := h[shortID(secondID)]; !d.Deleted || d.Text != "" {
			t.Fatalf("%s: the message deleted before it came: %+v", c.Self().User, d)
		}
	}
}

// TestHostileContent: malformed, mismatched and unknown content from a
// member is a warning and changes nothing; unknown kinds show as
// "unsupported message"; an old client's JSON text still reads.
func TestHostileContent(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, mallory := srv.newUser(t, "alice"), srv.newUser(t, "mallory")
	if _, err := alice.CreateGroup(ctx, "team", []string{"@mallory"}); err != nil {
		t.Fatal(err)
	}
	orig := mustSend(t, alice, "#team", "the plan")
	mustSync(t, mallory)
	mustSync(t, alice)
	var room []byte
	mallory.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, "mallory", "#team")
		room = r.ID
		return err
	})
	before := historyOf(t, alice, "#team")

	warnings := func(want ...string) {
		t.Helper()
		ws := alice.Warnings()
		for _, w := range want {
			if !slices.ContainsFunc(ws, func(x Warning) bool { return strings.Contains(x.Err, w) }) {
				t.Fatalf("no warning %q among %+v", w, ws)
			}
		}
	}
	sync := func() []Message {
		t.Helper()
		res, err := alice.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res.Messages
	}

	// Not CBOR at all; CBOR that is not a mimiContent; a content sent
	// under an id that is not its own.
	sendRaw(t, mallory, "#team", transport.NewMessageID(), []byte{0x87, 0xff, 0x00})
	sendRaw(t, mallory, "#team", transport.NewMessageID(), []byte{0x83, 0x01, 0x02, 0x03})
	good, _ := newContent(textBody("innocent")).Encode()
	sendRaw(t, mallory, "#team", transport.NewMessageID(), good)
	if got := sync(); len(got) != 0 {
		t.Fatalf("alice shows %+v", got)
	}
	warnings("malformed MIMI content", "does not match its content")

	// Edits, deletes and reaction removals of another's message.
	origMimi := before[orig.ID].MimiID
	ref, _ := parseMimiID(origMimi)
	edit := newContent(textBody("the plan is off"))
	edit.Replaces = ref
	sendBuilt(t, mallory, "#team", edit)
	del := newContent(content.Part{Cardinality: content.NullPart, Disposition: content.Render})
	del.Replaces = ref
	sendBuilt(t, mallory, "#team", del)
	if got := sync(); len(got) != 0 {
		t.Fatalf("alice shows %+v", got)
	}
	warnings("mallory tried to change alice's message")
	if h := historyOf(t, alice, "#team")[orig.ID]; h.Text != "the plan" || h.Edited || h.Deleted {
		t.Fatalf("alice's message changed: %+v", h)
	}

	// A bad Parley type: a receipt that is not a list of ids.
	bad := newContent(content.Part{Cardinality: content.SinglePart, ContentType: typeReceipt, Content: []byte{0x01}})
	b, _ := bad.Encode()
	id, _ := content.ComputeMessageID(senderURI("mallory"), roomURI(room), b)
	sendRaw(t, mallory, "#team", id[:16], b)
	if got := sync(); len(got) != 0 {
		t.Fatalf("alice shows %+v", got)
	}
	warnings("bad receipt")

	// Well formed but unknown: shown as unsupported, with a warning.
	img := sendBuilt(t, mallory, "#team", newContent(content.Part{Disposition: content.Inline, Cardinality: content.SinglePart,
		ContentType: "image/png", Content: []byte{0x89, 'P', 'N', 'G'}}))
	legacyID := transport.NewMessageID()
	poll, _ := json.Marshal(map[string]any{"v": 1, "id": hexID(legacyID), "kind": "poll", "sent_at": 1})
	sendRaw(t, mallory, "#team", legacyID, poll)
	oldID := transport.NewMessageID()
	old, _ := json.Marshal(payload{V: 1, ID: hexID(oldID), Kind: KindText, Text: "from an old client", SentAt: time.Now().UnixMilli()})
	sendRaw(t, mallory, "#team", oldID, old)
	got := sync()
	var kinds []string
	for _, m := range got {
		kinds = append(kinds, m.Kind+": "+m.Text)
	}
	if !slices.Equal(kinds, []string{"unsupported: unsupported message", "unsupported: unsupported message", "text: from an old client"}) || got[0].ID != img.ID {
		t.Fatalf("alice shows %q", kinds)
	}
	warnings(`unsupported message (content type image/png)`, `unsupported message (kind "poll")`)
	// An old client's message can be read but not referred to.
	if _, err := alice.React(ctx, hexID(oldID), "👍", false); !errors.Is(err, ErrLegacyMessage) {
		t.Fatalf("reacting to a legacy message: %v", err)
	}

	// A delete later than the window, as a receiver checks it.
	err := alice.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, "alice", "#team")
		if err != nil {
			return err
		}
		late := &event{ID: hexID(transport.NewMessageID()), Sender: Sender{User: "alice", Device: "x"}, Kind: KindDelete,
			Target: origMimi, At: before[orig.ID].SentAt.Add(DeleteWindow + time.Minute), Seq: 1 << 40}
		return alice.applyEvent(tx, r, nil, late, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	warnings("deleted for everyone only within")
	if h := historyOf(t, alice, "#team")[orig.ID]; h.Deleted {
		t.Fatal("a delete past the window was applied")
	}
}

func TestMentionsIn(t *testing.T) {
	members := map[string]bool{"carol": true, "bob.s": true, "al": true}
	for text, want := range map[string][]string{
		"@carol hi":             {"carol"},
		"hi @carol, @bob.s.":    {"carol", "bob.s"},
		"mail al@al.example":    nil,
		"@carolx @dave @al @al": {"al"},
		"(@carol)":              {"carol"},
	} {
		if got := mentionsIn(text, members); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
}
