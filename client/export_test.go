package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/historyfile"
	"github.com/parleychat/parley/server"
)

var cheapExportKDF = historyfile.KDF{Time: 1, MemoryKiB: 64, Threads: 1}

// TestExportImport: a new device of the same account imports the history
// of the first, read-only where it is not a member; another account's
// file, a wrong passphrase and a damaged file change nothing; the file
// holds no key of the exporting device.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	mustSend(t, bob, "@alice", "the old days")
	indeed := mustSend(t, alice, "@bob", "indeed")
	if _, err := carol.CreateGroup(ctx, "past", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, carol, "#past", "before you left")
	mustSync(t, alice)
	if err := carol.RemoveMembers(ctx, "past", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	mustSync(t, bob)
	if _, err := alice.React(ctx, indeed.ID, "👍", false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetMute(ctx, "@bob", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetSetting(ctx, SettingReadReceipts, false); err != nil {
		t.Fatal(err)
	}

	var file bytes.Buffer
	var calls int
	res, err := alice.Export(ctx, &file, []byte("export passphrase"), cheapExportKDF, func(done, total int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Conversations != 2 || res.Messages < 3 || calls == 0 {
		t.Fatalf("export: %+v, %d progress calls", res, calls)
	}
	// No key of the device is in it.
	plain := decryptAll(t, file.Bytes(), []byte("export passphrase"))
	for _, secret := range [][]byte{alice.acct.DeviceKey, alice.acct.SignKey, alice.acct.AccountKey} {
		if len(secret) > 0 && bytes.Contains(plain, secret) {
			t.Fatal("the export holds a key of the device")
		}
		js, _ := json.Marshal(secret)
		if len(secret) > 0 && bytes.Contains(plain, bytes.Trim(js, `"`)) {
			t.Fatal("the export holds a key of the device (base64)")
		}
	}

	alice2 := srv.linkDevice(t, alice, "alice2")
	mustSync(t, alice2)
	if hist, _ := alice2.History(ctx, "@bob", 0); slices.Contains(texts(hist), "bob: the old days") {
		t.Fatal("a new device has history before import")
	}
	// Bad inputs change nothing. (alice2 already has alice's settings:
	// own-device sync brought them.)
	settingsBefore, err := alice2.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice2.Import(ctx, bytes.NewReader(file.Bytes()), []byte("wrong"), nil); !errors.Is(err, historyfile.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	cut := file.Bytes()[:file.Len()-5]
	if _, err := alice2.Import(ctx, bytes.NewReader(cut), []byte("export passphrase"), nil); !errors.Is(err, historyfile.ErrCorrupt) {
		t.Errorf("cut file: %v", err)
	}
	if _, err := bob.Import(ctx, bytes.NewReader(file.Bytes()), []byte("export passphrase"), nil); !errors.Is(err, ErrOtherAccount) {
		t.Errorf("another account's file: %v", err)
	}
	if convs, _ := alice2.Conversations(ctx); slices.ContainsFunc(convs, func(c Conversation) bool { return c.Label == "#past" }) {
		t.Fatal("a failed import left a conversation")
	}
	if s, _ := alice2.Settings(ctx); s != settingsBefore {
		t.Fatalf("a failed import changed the settings: %+v, was %+v", s, settingsBefore)
	}

	res, err = alice2.Import(ctx, bytes.NewReader(file.Bytes()), []byte("export passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages < 3 {
		t.Errorf("import: %+v", res)
	}
	hist, err := alice2.History(ctx, "@bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(hist); !slices.Contains(got, "bob: the old days") || !slices.Contains(got, "alice: indeed") {
		t.Errorf("imported @bob history: %v", got)
	}
	past, err := alice2.History(ctx, "#past", 0)
	if err != nil || !slices.Contains(texts(past), "carol: before you left") {
		t.Errorf("imported #past: %v, %v", texts(past), err)
	}
	convs, _ := alice2.Conversations(ctx)
	for _, cv := range convs {
		if cv.Label == "#past" && (!cv.Imported || !cv.Removed) {
			t.Errorf("#past should be imported and read-only: %+v", cv)
		}
		if cv.Label == "@bob" && cv.Muted == nil {
			t.Errorf("the mute of @bob was not imported: %+v", cv)
		}
	}
	if _, err := alice2.SendText(ctx, "#past", "hello?"); err == nil {
		t.Error("sent to an imported, read-only group")
	}
	if s, _ := alice2.Settings(ctx); s.ReadReceipts {
		t.Error("settings not imported")
	}
	// The imported reaction can be taken back from the new device.
	if _, err := alice2.React(ctx, indeed.ID, "👍", true); err != nil {
		t.Errorf("remove an imported reaction: %v", err)
	}
	hist, _ = alice2.History(ctx, "@bob", 0)
	for _, m := range hist {
		if m.ID == indeed.ID && len(m.Reactions) != 0 {
			t.Errorf("the imported reaction stays after its removal: %+v", m.Reactions)
		}
	}
	mustSync(t, bob)
	// The conversation still works, and a second import adds nothing.
	mustSend(t, bob, "@alice", "welcome back")
	if got := texts(mustSync(t, alice2)); !slices.Equal(got, []string{"bob: welcome back"}) {
		t.Errorf("after import: %v", got)
	}
	res, err = alice2.Import(ctx, bytes.NewReader(file.Bytes()), []byte("export passphrase"), nil)
	if err != nil || res.Messages != 0 || res.Skipped == 0 {
		t.Errorf("second import: %+v, %v", res, err)
	}
}

func decryptAll(t *testing.T, file, pass []byte) []byte {
	t.Helper()
	r, err := historyfile.NewReader(bytes.NewReader(file), pass)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzReadExport: the decoder of an export's records accepts only what
// is consistent (every message in a declared conversation, the end's
// count right, nothing after it), and what it accepts decodes the same
// again once re-encoded.
func FuzzReadExport(f *testing.F) {
	conv := directID("alice", "bob")
	valid := []exportRecord{
		{Type: "header", Version: 1, User: "alice", Messages: 1},
		{Type: "conversation", Conv: &exportConv{ID: conv, Kind: ConvDirect, Peer: "bob", Created: time.Unix(1, 0).UTC()}},
		{Type: "message", ConvID: hexID(conv), Message: &Message{ID: strings.Repeat("ab", 16), Kind: KindText, Text: "hi", Sender: Sender{User: "bob", Device: "d"}}},
		{Type: "end", Messages: 1},
	}
	var seed bytes.Buffer
	for _, r := range valid {
		json.NewEncoder(&seed).Encode(&r)
	}
	f.Add(seed.Bytes())
	f.Add([]byte(`{"type":"header","version":1,"user":"alice"}` + "\n" + `{"type":"end"}` + "\n"))
	f.Add([]byte(`{"type":"header","version":1,"user":"mallory"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []*exportRecord
		err := readExport(bytes.NewReader(b), "alice", func(r *exportRecord) error { got = append(got, r); return nil })
		if err != nil {
			return
		}
		if got[0].Type != "header" || got[len(got)-1].Type != "end" {
			t.Fatalf("accepted without header or end: %d records", len(got))
		}
		var again bytes.Buffer
		for _, r := range got {
			if err := json.NewEncoder(&again).Encode(r); err != nil {
				t.Fatal(err)
			}
		}
		var got2 []*exportRecord
		if err := readExport(&again, "alice", func(r *exportRecord) error { got2 = append(got2, r); return nil }); err != nil {
			t.Fatalf("re-encoded records refused: %v", err)
		}
		if len(got2) != len(got) {
			t.Fatalf("%d records, then %d", len(got), len(got2))
		}
	})
}

// TestExportedDisappearingMessages: a disappearing message in a history
// file disappears on the importing device at the same time as everywhere
// else, and a file imported after that time does not bring it back.
func TestExportedDisappearingMessages(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Now = clock.Now
		cfg.SweepInterval = time.Hour
	})
	alice := srv.newUserAt(t, "alice", clock)
	bob := srv.newUserAt(t, "bob", clock)
	mustSend(t, alice, "@bob", "kept")
	mustSync(t, bob)
	if _, err := bob.SetTimer(ctx, "@alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	mustSend(t, alice, "@bob", "fleeting")

	var file bytes.Buffer
	if _, err := alice.Export(ctx, &file, []byte("pass"), cheapExportKDF, nil); err != nil {
		t.Fatal(err)
	}
	alice2 := srv.linkDevice(t, alice, "alice2")
	alice2.opts.Now = clock.Now
	if _, err := alice2.Import(ctx, bytes.NewReader(file.Bytes()), []byte("pass"), nil); err != nil {
		t.Fatal(err)
	}
	if hist, _ := alice2.History(ctx, "@bob", 0); !slices.Contains(texts(hist), "alice: fleeting") {
		t.Fatalf("imported history before expiry: %q", texts(hist))
	}

	clock.Add(2 * time.Hour)
	mustSync(t, alice2)
	hist, _ := alice2.History(ctx, "@bob", 0)
	if slices.Contains(texts(hist), "alice: fleeting") || !slices.Contains(texts(hist), "alice: kept") {
		t.Fatalf("imported history after expiry: %q", texts(hist))
	}
	// Not only hidden: gone from the profile.
	if err := alice2.store.Values(func(_, v []byte) error {
		if bytes.Contains(v, []byte("fleeting")) {
			return errors.New("the imported message is still in the profile after its expiry")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	alice3 := srv.linkDevice(t, alice, "alice3")
	alice3.opts.Now = clock.Now
	res, err := alice3.Import(ctx, bytes.NewReader(file.Bytes()), []byte("pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if hist, _ := alice3.History(ctx, "@bob", 0); slices.Contains(texts(hist), "alice: fleeting") || res.Skipped == 0 {
		t.Fatalf("a file imported after expiry brought the message back (%+v): %q", res, texts(hist))
	}
}

// TestImportSyncsSettings: the settings and mutes an import changes on
// one device reach the account's other devices by own-device sync, as
// if the user had set them there. (Before, the import wrote them on the
// importing device alone, and the devices disagreed.)
func TestImportSyncsSettings(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, bob, "@alice", "hello")
	mustSync(t, alice)
	alice2 := srv.linkDevice(t, alice, "alice2")
	mustSync(t, alice2)
	if _, err := alice.SetSetting(ctx, SettingReadReceipts, false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetMute(ctx, "@bob", 0); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := alice.Export(ctx, &file, []byte("export passphrase"), cheapExportKDF, nil); err != nil {
		t.Fatal(err)
	}
	// Changed back on alice, and so on alice2.
	if _, err := alice.SetSetting(ctx, SettingReadReceipts, true); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Unmute(ctx, "@bob"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice2)
	if s := mustSettings(t, alice2); !s.ReadReceipts {
		t.Fatalf("alice2 before the import: %+v", s)
	}
	if _, err := alice2.Import(ctx, bytes.NewReader(file.Bytes()), []byte("export passphrase"), nil); err != nil {
		t.Fatal(err)
	}
	if s := mustSettings(t, alice2); s.ReadReceipts {
		t.Fatalf("alice2 after importing receipts off: %+v", s)
	}
	mustSync(t, alice)
	if s := mustSettings(t, alice); s.ReadReceipts {
		t.Fatalf("alice after alice2 imported receipts off: %+v", s)
	}
	if mutes, err := alice.Mutes(ctx); err != nil || len(mutes) != 1 || mutes[0].Conversation != "@bob" || !mutes[0].Forever {
		t.Fatalf("alice's mutes after alice2 imported the mute of @bob: %+v, %v", mutes, err)
	}
}
