package client

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/wire"
)

// sendOwnSync sends body as own-device sync content in target's
// conversation ("" for the account's own-devices conversation), as a
// device of c's account would, or as an attacker in another. It
// encrypts and posts the bytes itself, so that malformed content, which
// the client's own send path refuses, goes out too.
func sendOwnSync(t *testing.T, c *Client, target string, body []byte) {
	t.Helper()
	ctx := context.Background()
	part := content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeOwnSync, Content: body}
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if err := c.syncAll(ctx, conn); err != nil {
			return err
		}
		var r *convRecord
		if err := c.store.Update(func(tx *profile.Tx) (err error) {
			if target == "" {
				r, err = ownConv(tx)
			} else {
				r, err = lookupLocal(tx, c.acct.User, target)
			}
			return err
		}); err != nil {
			return err
		}
		if r == nil {
			return errors.New("no own-devices conversation")
		}
		mid, plaintext, err := newContent(part).MessageID(senderURI(c.acct.User), roomURI(r.ID))
		if err != nil {
			return err
		}
		var ciphertext []byte
		var epoch uint64
		if err := c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			epoch = g.Epoch()
			if ciphertext, err = g.Encrypt(plaintext, nil); err != nil {
				return err
			}
			return saveGroup(tx, g)
		}); err != nil {
			return err
		}
		_, err = conn.SendApplication(ctx, mid[:wire.MessageIDSize], r.ID, epoch, ciphertext)
		return err
	})
	if err != nil {
		t.Fatalf("send own-device sync: %v", err)
	}
}

func hasWarning(ws []Warning, part string) bool {
	for _, w := range ws {
		if strings.Contains(w.Err, part) {
			return true
		}
	}
	return false
}

func mustSettings(t *testing.T, c *Client) Settings {
	t.Helper()
	s, err := c.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOwnDeviceSync: what the user chooses on one device holds on the
// others: a newly linked device starts with the account's settings, a
// setting, a mute, a block, a message-request decision and an invite
// code made on one device take effect on the other.
func TestOwnDeviceSync(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	// Before the second device exists: receipts off (newUser turned
	// requests off).
	if _, err := alice.SetSetting(ctx, SettingReadReceipts, false); err != nil {
		t.Fatal(err)
	}
	alice2 := srv.linkDevice(t, alice, "alice2")
	mustSync(t, alice2)
	if s := mustSettings(t, alice2); s.ReadReceipts || s.MessageRequests || !s.Typing {
		t.Fatalf("the newly linked device's settings: %+v", s)
	}

	t.Run("setting", func(t *testing.T) {
		if _, err := alice2.SetSetting(ctx, SettingTyping, false); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice)
		if s := mustSettings(t, alice); s.Typing {
			t.Fatalf("typing off on alice2, alice has %+v", s)
		}
		if on, err := alice.TypingIndicators(ctx); err != nil || on {
			t.Fatalf("alice sends typing indicators: %v, %v", on, err)
		}
		// The newest change wins, whichever device made it.
		if _, err := alice.SetSetting(ctx, SettingTyping, true); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice2)
		if s := mustSettings(t, alice2); !s.Typing {
			t.Fatalf("typing back on at alice, alice2 has %+v", s)
		}
	})

	t.Run("mute", func(t *testing.T) {
		mustSend(t, bob, "@alice", "hello")
		mustSync(t, alice)
		mustSync(t, alice2)
		if _, err := alice.SetMute(ctx, "@bob", time.Hour); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice2)
		mutes, err := alice2.Mutes(ctx)
		if err != nil || len(mutes) != 1 || mutes[0].Conversation != "@bob" {
			t.Fatalf("alice2's mutes: %+v, %v", mutes, err)
		}
		mustSend(t, bob, "@alice", "muted now")
		if got := mustSync(t, alice2); len(got) != 1 || !got[0].Muted {
			t.Fatalf("alice2 after the mute: %+v", got)
		}
		if _, err := alice2.Unmute(ctx, "@bob"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice)
		if mutes, _ := alice.Mutes(ctx); len(mutes) != 0 {
			t.Fatalf("unmuted on alice2, alice still has %+v", mutes)
		}
	})

	t.Run("block", func(t *testing.T) {
		mallory := srv.newUser(t, "mallory")
		if _, err := alice.CreateGroup(ctx, "club", []string{"mallory"}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, mallory)
		mustSync(t, alice2)
		if _, err := alice.UpdatePrivacy(ctx, []string{"mallory"}, nil, ""); err != nil {
			t.Fatal(err)
		}
		mustSend(t, mallory, "#club", "you cannot hide")
		for _, m := range mustSync(t, alice2) {
			if m.Sender.User == "mallory" {
				t.Fatalf("alice2 shows a blocked user's message: %+v", m)
			}
		}
		if hist, _ := alice2.History(ctx, "#club", 0); slices.Contains(texts(hist), "mallory: you cannot hide") {
			t.Fatal("alice2 kept a blocked user's message")
		}
	})

	t.Run("request decision", func(t *testing.T) {
		if _, err := alice.SetSetting(ctx, SettingMessageRequests, true); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice2)
		dave := srv.newUser(t, "dave")
		mustSend(t, dave, "@alice", "spam")
		if got := texts(mustSync(t, alice2)); len(got) != 0 {
			t.Fatalf("a stranger's message shown on alice2: %v", got)
		}
		mustSync(t, alice)
		if n, err := alice.DeleteRequest(ctx, "@dave"); err != nil || n != 1 {
			t.Fatalf("delete request: %d, %v", n, err)
		}
		mustSync(t, alice2)
		if reqs, _ := alice2.Requests(ctx); len(reqs) != 0 {
			t.Fatalf("deleted on alice, alice2 still lists %+v", reqs)
		}
		if hist, _ := alice2.History(ctx, "@dave", 0); len(hist) != 0 {
			t.Fatalf("alice2 kept the deleted request: %v", texts(hist))
		}
	})

	t.Run("invite", func(t *testing.T) {
		if _, err := alice.CreateGroup(ctx, "team", []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		inv, err := alice.CreateInvite(ctx, "#team")
		if err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice2)
		if _, err := carol.JoinGroup(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
		reqs, err := alice2.JoinRequests(ctx, "#team")
		if err != nil || len(reqs) != 1 || reqs[0].User != "carol" {
			t.Fatalf("alice2's join requests: %+v, %v", reqs, err)
		}
		if err := alice2.ApproveJoin(ctx, "#team", "@carol", false); err != nil {
			t.Fatal(err)
		}
		mustSync(t, carol)
		if _, err := carol.Send(ctx, "#team", "thanks"); err != nil {
			t.Fatalf("carol, approved on alice2, sends to the group: %v", err)
		}
		// A request denied on one device is gone from the other.
		erin := srv.newUser(t, "erin")
		if _, err := erin.JoinGroup(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
		if reqs, err := alice2.JoinRequests(ctx, "#team"); err != nil || len(reqs) != 1 {
			t.Fatalf("erin's request on alice2: %+v, %v", reqs, err)
		}
		if reqs, err := alice.JoinRequests(ctx, "#team"); err != nil || len(reqs) != 1 {
			t.Fatalf("erin's request on alice: %+v, %v", reqs, err)
		}
		if err := alice.ApproveJoin(ctx, "#team", "@erin", true); err != nil {
			t.Fatal(err)
		}
		if reqs, err := alice2.JoinRequests(ctx, "#team"); err != nil || len(reqs) != 0 {
			t.Fatalf("denied on alice, alice2 lists %+v, %v", reqs, err)
		}
	})

	t.Run("third device", func(t *testing.T) {
		alice3 := srv.linkDevice(t, alice, "alice3")
		mustSync(t, alice3)
		s := mustSettings(t, alice3)
		if s.ReadReceipts || !s.MessageRequests || !s.Typing {
			t.Fatalf("the third device's settings: %+v", s)
		}
		convs, err := alice3.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range convs {
			if cv.Kind == ConvSelf {
				t.Fatalf("the own-devices conversation is listed: %+v", cv)
			}
		}
	})
}

// TestOwnSyncFromAnotherAccountIgnored: the attacker's move. Another
// account sends own-device sync content that would turn the user's read
// receipts and message requests off; the user's device ignores it with
// a warning. With the own-device check switched off, the same message
// changes the settings: the check is what stops it.
func TestOwnSyncFromAnotherAccountIgnored(t *testing.T) {
	srv := startServer(t)
	alice, mallory := srv.newUserDefault(t, "alice"), srv.newUser(t, "mallory")
	mustSend(t, alice, "@mallory", "hi") // a conversation they share
	mustSync(t, mallory)
	forged, err := encodeOwnState([]ownEntry{
		{Key: ownSetting + SettingReadReceipts, Value: []byte("off"), Stamp: 1 << 50, Device: "forged"},
		{Key: ownSetting + SettingMessageRequests, Value: []byte("off"), Stamp: 1 << 50, Device: "forged"},
	})
	if err != nil {
		t.Fatal(err)
	}

	sendOwnSync(t, mallory, "@alice", forged)
	_, ws := syncWarnings(t, alice)
	if s := mustSettings(t, alice); !s.ReadReceipts || !s.MessageRequests {
		t.Fatalf("another account changed alice's settings: %+v", s)
	}
	if !hasWarning(ws, "own-device sync from mallory") {
		t.Errorf("no warning: %+v", ws)
	}

	alice.testNoOwnCheck = true
	sendOwnSync(t, mallory, "@alice", forged)
	mustSync(t, alice)
	if s := mustSettings(t, alice); s.ReadReceipts || s.MessageRequests {
		t.Fatalf("with the check off the forged sync should apply (or this test shows nothing): %+v", s)
	}
}

// TestOwnSyncMalformed: malformed sync content from the user's own
// device is refused with a clear warning and changes nothing.
func TestOwnSyncMalformed(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	alice2 := srv.linkDevice(t, alice, "alice2")
	mustSync(t, alice2)
	before := mustSettings(t, alice)
	good := ownEntry{Key: ownSetting + SettingReadReceipts, Value: []byte("off"), Stamp: 1 << 50, Device: "x"}
	enc := func(v any) []byte {
		b, err := ownEncMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, body := range map[string][]byte{
		"not cbor":       {0xff, 0x00},
		"wrong version":  enc(ownState{Version: 9, Entries: []ownEntry{good}}),
		"unknown key":    enc(ownState{Version: 1, Entries: []ownEntry{good, {Key: "wallpaper/x", Value: []byte("on"), Stamp: 1 << 50, Device: "x"}}}),
		"bad value":      enc(ownState{Version: 1, Entries: []ownEntry{good, {Key: ownSetting + SettingTyping, Value: []byte("maybe"), Stamp: 1 << 50, Device: "x"}}}),
		"key twice":      enc(ownState{Version: 1, Entries: []ownEntry{good, good}}),
		"no stamp":       enc(ownState{Version: 1, Entries: []ownEntry{{Key: good.Key, Value: good.Value, Device: "x"}}}),
		"bad mute":       enc(ownState{Version: 1, Entries: []ownEntry{good, {Key: ownMute + "00ff", Value: []byte(`{"forever":true,"extra":1}`), Stamp: 1 << 50, Device: "x"}}}),
		"truncated list": enc(ownState{Version: 1, Entries: []ownEntry{good}})[:5],
	} {
		sendOwnSync(t, alice2, "", body)
		_, ws := syncWarnings(t, alice)
		if s := mustSettings(t, alice); s != before {
			t.Fatalf("%s: settings changed to %+v", name, s)
		}
		if !hasWarning(ws, "malformed own-device sync content") {
			t.Fatalf("%s: no clear warning: %+v", name, ws)
		}
	}
	// The same entry well formed applies.
	sendOwnSync(t, alice2, "", enc(ownState{Version: 1, Entries: []ownEntry{good}}))
	mustSync(t, alice)
	if s := mustSettings(t, alice); s.ReadReceipts {
		t.Fatalf("a good sync did not apply: %+v", s)
	}
}

// TestOwnSyncNewestWins: entries merge by stamp, then device id, in any
// order of arrival; a removal is kept so an older value cannot return.
func TestOwnSyncNewestWins(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	key := ownSetting + SettingReadReceipts
	older := ownEntry{Key: key, Value: []byte("off"), Stamp: 100, Device: "b"}
	newer := ownEntry{Key: key, Value: []byte("on"), Stamp: 200, Device: "a"}
	tie := ownEntry{Key: key, Value: []byte("off"), Stamp: 200, Device: "c"}
	err := alice.store.Update(func(tx *profile.Tx) error {
		for _, step := range []struct {
			in   ownEntry
			want string
			n    int
		}{{newer, "on", 1}, {older, "on", 0}, {tie, "off", 1}, {newer, "off", 0}} {
			n, err := alice.mergeOwn(tx, []ownEntry{step.in})
			if err != nil {
				return err
			}
			v, _ := tx.Get(bucketSettings, SettingReadReceipts)
			if n != step.n || string(v) != step.want {
				t.Errorf("merge %+v: applied %d, setting %q; want %d, %q", step.in, n, v, step.n, step.want)
			}
		}
		// The clock moved past the stamps seen: the next local change wins.
		next, err := alice.ownClock(tx)
		if err != nil || next <= 200 && next <= uint64(time.Now().UnixMilli()) {
			t.Errorf("clock after merges: %d, %v", next, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTypingSettingMigrated: the typing row of older versions becomes
// "parley settings typing".
func TestTypingSettingMigrated(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	if err := alice.store.Update(func(tx *profile.Tx) error { return tx.Put(bucketSettings, settingNoTyping, []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if s := mustSettings(t, alice); s.Typing {
		t.Fatalf("old typing-off row read as %+v", s)
	}
	err := alice.store.Update(func(tx *profile.Tx) error {
		if ok, _ := tx.Has(bucketSettings, settingNoTyping); ok {
			t.Error("old row still there")
		}
		if v, _ := tx.Get(bucketSettings, SettingTyping); string(v) != "off" {
			t.Errorf("typing setting %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMessageRequestsOnByDefault: a new profile holds a stranger's first
// message in the requests list; answering accepts it.
func TestMessageRequestsOnByDefault(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUserDefault(t, "alice"), srv.newUserDefault(t, "bob")
	if s := mustSettings(t, bob); !s.MessageRequests || !s.ReadReceipts || !s.Typing {
		t.Fatalf("defaults: %+v", s)
	}
	mustSend(t, alice, "@bob", "hello bob")
	if got := texts(mustSync(t, bob)); len(got) != 0 {
		t.Fatalf("a stranger's first message shown: %v", got)
	}
	reqs, err := bob.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].User != "alice" || reqs[0].Preview != "hello bob" {
		t.Fatalf("requests: %+v, %v", reqs, err)
	}
	// alice started it: bob's answer is no request for her.
	mustSend(t, bob, "@alice", "hi alice")
	if got := texts(mustSync(t, alice)); !slices.Equal(got, []string{"bob: hi alice"}) {
		t.Fatalf("alice: %v", got)
	}
	if reqs, _ := bob.Requests(ctx); len(reqs) != 0 {
		t.Fatalf("answering did not accept: %+v", reqs)
	}
	// Turning requests off shows the pending ones at the next sync.
	carol := srv.newUserDefault(t, "carol")
	mustSend(t, carol, "@bob", "hi from carol")
	if got := texts(mustSync(t, bob)); len(got) != 0 {
		t.Fatalf("carol's first message shown: %v", got)
	}
	if _, err := bob.SetSetting(ctx, SettingMessageRequests, false); err != nil {
		t.Fatal(err)
	}
	if got := texts(mustSync(t, bob)); !slices.Equal(got, []string{"carol: hi from carol"}) {
		t.Fatalf("after requests off: %v", got)
	}
	if reqs, _ := bob.Requests(ctx); len(reqs) != 0 {
		t.Fatalf("still requests: %+v", reqs)
	}
}

// FuzzOwnState: received sync content is refused with ErrBadOwnSync or
// decodes to entries that each pass the checks and encode back to a
// state that decodes to the same entries.
func FuzzOwnState(f *testing.F) {
	good, _ := encodeOwnState([]ownEntry{
		{Key: ownSetting + SettingTyping, Value: []byte("off"), Stamp: 5, Device: "d1"},
		{Key: ownMute + "00ff", Value: []byte(`{"forever":true}`), Stamp: 6, Device: "d1"},
		{Key: ownRequest + "bob", Value: []byte(decisionAccepted), Stamp: 7, Device: "d2"},
		{Key: ownJoin + "0011/carol", Value: []byte(decisionDenied), Stamp: 8, Device: "d2"},
		{Key: ownInvite + strings.Repeat("ab", inviteHandleSz), Deleted: true, Stamp: 9, Device: "d2"},
	})
	f.Add(good)
	f.Add([]byte{0x82, 0x01, 0x80})
	f.Add([]byte{0x82, 0x02, 0x80})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeOwnState(b)
		if err != nil {
			if !errors.Is(err, ErrBadOwnSync) {
				t.Fatalf("error without ErrBadOwnSync: %v", err)
			}
			return
		}
		for i := range entries {
			if err := checkOwnEntry(&entries[i]); err != nil {
				t.Fatalf("accepted a bad entry: %v", err)
			}
		}
		again, err := encodeOwnState(entries)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeOwnState(again)
		if err != nil {
			t.Fatalf("re-encoded state refused: %v", err)
		}
		slices.SortFunc(entries, func(a, b ownEntry) int { return strings.Compare(a.Key, b.Key) })
		if len(back) != len(entries) {
			t.Fatalf("%d entries back from %d", len(back), len(entries))
		}
		for i := range back {
			a, b := back[i], entries[i]
			if a.Key != b.Key || !bytes.Equal(a.Value, b.Value) || a.Deleted != b.Deleted || a.Stamp != b.Stamp || a.Device != b.Device {
				t.Fatalf("entry %d: %+v back as %+v", i, b, a)
			}
		}
	})
}
