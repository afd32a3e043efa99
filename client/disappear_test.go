package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/server"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newUserAt registers a user whose client reads clock.
func (s *testServer) newUserAt(t *testing.T, name string, clock *testClock) *Client {
	t.Helper()
	opts := testOptions(t, name)
	opts.Now = clock.Now
	c, err := Init(context.Background(), opts, s.url, name, "")
	if err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.SetSetting(context.Background(), SettingMessageRequests, false); err != nil { // as newUser
		t.Fatal(err)
	}
	return c
}

// filesContaining returns the files under dir whose bytes contain any of
// needles.
func filesContaining(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if len(n) > 0 && bytes.Contains(b, n) {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// profileHolds reports whether any value in c's profile, opened, holds
// canary, and returns those rows as sealed on disk.
func profileHolds(t *testing.T, c *Client, canary string) (bool, [][]byte) {
	t.Helper()
	var sealed [][]byte
	err := c.store.Values(func(s, v []byte) error {
		if bytes.Contains(v, []byte(canary)) {
			sealed = append(sealed, bytes.Clone(s))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(sealed) > 0, sealed
}

// TestDisappearingMessages: a timer set by one member reaches every
// device; a text, a file and a reaction sent under it are gone, when it
// passes, from every profile (opened and on disk), from the downloaded
// file, and from the server's database and blob directory, though one
// device never fetched them.
func TestDisappearingMessages(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Now = clock.Now
		cfg.SweepInterval = time.Hour // the test sweeps by hand
	})
	alice := srv.newUserAt(t, "alice", clock)
	bob := srv.newUserAt(t, "bob", clock)
	mustSend(t, alice, "@bob", "before the timer")
	mustSync(t, bob)
	bob2 := srv.linkDevice(t, bob, "bob2") // stays offline from now on
	bob2.opts.Now = clock.Now
	mustSync(t, alice)

	set, err := bob.SetTimer(ctx, "@alice", time.Hour)
	if err != nil || set.Timer != "1h" || set.Seconds != 3600 {
		t.Fatalf("SetTimer = %+v, %v", set, err)
	}
	var notice bool
	for _, m := range mustSync(t, alice) {
		if m.Kind == KindTimer && m.Text == "bob set disappearing messages to 1h" {
			notice = true
		}
	}
	if d, err := alice.Timer(ctx, "@bob"); err != nil || d != time.Hour || !notice {
		t.Fatalf("alice's timer for @bob = %v, %v (notice shown: %v)", d, err, notice)
	}

	canary := "canary-" + hex.EncodeToString(randBytes(8))
	sent := mustSend(t, alice, "@bob", canary+" text")
	file := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(file, []byte(canary+" file contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileSent, err := alice.SendFile(ctx, "@bob", file, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got *Message
	for _, m := range mustSync(t, bob) {
		if m.ID == sent.ID {
			got = &m
		}
	}
	if got == nil || got.ExpiresAt.IsZero() || got.ExpiresAt.Sub(clock.Now()) > time.Hour {
		t.Fatalf("bob got %+v; want the text with an expiry within the hour", got)
	}
	if _, err := bob.React(ctx, sent.ID, "👍", false); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()
	path, _, err := bob.GetFile(ctx, fileSent.ID, downloads, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)

	// What the server holds of them: bob2 has not fetched, so it keeps them.
	conv := directID("alice", "bob")
	held, err := srv.store.Fetch(ctx, bob2.Self().DeviceID, conv, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ciphertexts [][]byte
	for _, m := range held {
		if hexID(m.ID) == sent.ID || hexID(m.ID) == fileSent.ID {
			ciphertexts = append(ciphertexts, m.Payload)
		}
	}
	blobs, _ := filepath.Glob(filepath.Join(srv.dataDir, "blobs", strings.Repeat("?", 32)))
	if len(ciphertexts) != 2 || len(blobs) != 1 {
		t.Fatalf("the server holds %d of the two messages and %d blobs", len(ciphertexts), len(blobs))
	}
	blobBytes, err := os.ReadFile(blobs[0])
	if err != nil {
		t.Fatal(err)
	}
	needles := append(ciphertexts, blobBytes[:64], []byte(canary))
	// The checks below can fail: before the expiry everything is there.
	if f := filesContaining(t, srv.dataDir, ciphertexts...); len(f) == 0 {
		t.Fatal("the ciphertexts are not in the server's files before the expiry: the check below proves nothing")
	}
	sealedBefore := map[*Client][][]byte{}
	for _, c := range []*Client{alice, bob} {
		ok, sealed := profileHolds(t, c, canary)
		if !ok {
			t.Fatalf("%s's profile does not hold the canary before the expiry", c.Self().User)
		}
		sealedBefore[c] = sealed
	}

	// A second before the expiry nothing goes.
	clock.Add(time.Hour - time.Second)
	srv.srv.Sweep(ctx)
	if h, _ := bob.History(ctx, "@alice", 0); !containsText(h, canary) {
		t.Fatal("the message went before its time")
	}
	clock.Add(2 * time.Second)
	// Never shown once expired, even before a sweep.
	if h, _ := bob.History(ctx, "@alice", 0); containsText(h, canary) {
		t.Fatal("History shows an expired message")
	}
	if res, err := bob.Search(ctx, canary, 0); err != nil || len(res) != 0 {
		t.Fatalf("Search finds an expired message: %v, %v", res, err)
	}
	srv.srv.Sweep(ctx)
	for _, c := range []*Client{alice, bob, bob2} {
		for _, m := range mustSync(t, c) {
			if strings.Contains(m.Text, canary) {
				t.Fatalf("%s synced the expired message %+v", c.Self().User, m)
			}
		}
	}

	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bob's downloaded file is still there: %v", err)
	}
	if ms, err := srv.store.Fetch(ctx, bob2.Self().DeviceID, conv, 1000); err != nil || len(ms) != 0 {
		t.Fatalf("the server still serves %d messages to bob2: %v", len(ms), err)
	}
	if f := filesContaining(t, srv.dataDir, needles...); len(f) != 0 {
		t.Fatalf("the server's files still hold the message or its blob: %v", f)
	}
	for _, c := range []*Client{alice, bob, bob2} {
		if ok, _ := profileHolds(t, c, canary); ok {
			t.Fatalf("%s's profile still holds the expired message", c.Self().User)
		}
		if f := filesContaining(t, c.opts.Dir, append(sealedBefore[c], []byte(canary))...); len(f) != 0 {
			t.Fatalf("%s's profile files still hold the expired message's rows: %v", c.Self().User, f)
		}
		h, err := c.History(ctx, "@"+map[string]string{"alice": "bob", "bob": "alice"}[c.Self().User], 0)
		if err != nil {
			t.Fatal(err)
		}
		if containsText(h, canary) || len(h) == 0 {
			t.Fatalf("%s's history after the expiry: %+v", c.Self().User, h)
		}
		for _, m := range h {
			if len(m.Reactions) > 0 {
				t.Fatalf("%s keeps a reaction to the expired message: %+v", c.Self().User, m)
			}
		}
	}

	// Turned off, messages stay.
	if _, err := alice.SetTimer(ctx, "@bob", 0); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	if d, _ := bob.Timer(ctx, "@alice"); d != 0 {
		t.Fatalf("bob's timer after alice turned it off: %v", d)
	}
	kept := mustSend(t, alice, "@bob", "kept")
	mustSync(t, bob)
	clock.Add(48 * time.Hour)
	srv.srv.Sweep(ctx)
	mustSync(t, bob)
	if h, _ := bob.History(ctx, "@alice", 0); !containsID(h, kept.ID) {
		t.Fatal("a message sent with the timer off disappeared")
	}
}

// TestDisappearingWithoutSendersExpiry: a member's client that leaves the
// expiry out (and so does not tell the server) does not keep its message
// on the others' devices: they delete it the timer after the server
// accepted it.
func TestDisappearingWithoutSendersExpiry(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	srv := startServerWith(t, func(cfg *server.Config) { cfg.Now = clock.Now; cfg.SweepInterval = time.Hour })
	alice := srv.newUserAt(t, "alice", clock)
	bob := srv.newUserAt(t, "bob", clock)
	mustSend(t, alice, "@bob", "hi")
	mustSync(t, bob)
	if _, err := bob.SetTimer(ctx, "@alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	alice.testHookContent = func(c *content.Content) { c.Expires = nil }
	sent := mustSend(t, alice, "@bob", "kept forever, says alice's client")
	var got *Message
	for _, m := range mustSync(t, bob) {
		if m.ID == sent.ID {
			got = &m
		}
	}
	if got == nil || got.ExpiresAt.IsZero() {
		t.Fatalf("bob got %+v; want it with the conversation's expiry", got)
	}
	clock.Add(2 * time.Minute)
	mustSync(t, bob)
	if h, _ := bob.History(ctx, "@alice", 0); containsID(h, sent.ID) {
		t.Fatal("bob keeps a message past the timer because its sender's client left the expiry out")
	}
	if ok, _ := profileHolds(t, bob, "kept forever"); ok {
		t.Fatal("bob's profile still holds it")
	}
}

// TestTimerParse covers the timer's written forms.
func TestTimerParse(t *testing.T) {
	for in, want := range map[string]time.Duration{"off": 0, "30s": 30 * time.Second, "1h": time.Hour, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "90m": 90 * time.Minute} {
		d, err := ParseTimer(in)
		if err != nil || d != want {
			t.Errorf("ParseTimer(%q) = %v, %v; want %v", in, d, err, want)
		}
		if in != "off" && FormatTimer(d) != in {
			t.Errorf("FormatTimer(%v) = %q; want %q", d, FormatTimer(d), in)
		}
	}
	for _, in := range []string{"", "-1h", "0.5s", "1ms", "366d", "x", "1y", "99999999d"} {
		if _, err := ParseTimer(in); !errors.Is(err, ErrBadTimer) {
			t.Errorf("ParseTimer(%q) accepted", in)
		}
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func containsText(ms []Message, s string) bool {
	for _, m := range ms {
		if strings.Contains(m.Text, s) || strings.Contains(m.Quote, s) {
			return true
		}
	}
	return false
}

func containsID(ms []Message, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// FuzzParseTimerBody: a timer message is either refused with
// errBadContent (changing nothing: the caller drops the message) or a
// whole number of seconds within range, whose own encoding is accepted.
func FuzzParseTimerBody(f *testing.F) {
	for _, d := range []time.Duration{0, time.Second, time.Hour, MaxTimer} {
		b, _ := timerBody(d)
		f.Add(b.Content)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x67, 's', 'e', 'c', 'o', 'n', 'd', 's', 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseTimerBody(b)
		if err != nil {
			if !errors.Is(err, errBadContent) {
				t.Fatalf("error %v does not wrap errBadContent", err)
			}
			return
		}
		if d < 0 || d > MaxTimer || d%time.Second != 0 {
			t.Fatalf("accepted %v", d)
		}
		again, err := timerBody(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseTimerBody(again.Content); err != nil {
			t.Fatalf("its own encoding of %v is refused: %v", d, err)
		}
	})
}
