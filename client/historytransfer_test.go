package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
)

// historyCanary is a plaintext that must never reach the server's disk.
const historyCanary = "canary-history-7d1f0c2b9e"

// historyChat gives alice and bob a conversation whose first messages
// carry the canary, and returns alice's history of it.
func historyChat(t *testing.T, srv *testServer, alice, bob *Client) []Message {
	t.Helper()
	mustSend(t, alice, "@bob", "first: "+historyCanary)
	mustSync(t, bob)
	for i := range 3 {
		mustSend(t, bob, "@alice", "bob says "+string(rune('a'+i)))
		mustSend(t, alice, "@bob", "alice says "+string(rune('a'+i))+" "+historyCanary)
	}
	mustSync(t, bob)
	mustSync(t, alice)
	h, err := alice.History(context.Background(), "@bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts(h)) != 7 {
		t.Fatalf("alice's history: %q", texts(h))
	}
	return h
}

// blobFiles lists the blob files on the server's disk.
func blobFiles(t *testing.T, srv *testServer) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(srv.dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(srv.dataDir, "blobs", e.Name()))
		}
	}
	return out
}

// assertCanaryNotOnDisk reads every file under the server's data
// directory (database, its WAL, blobs, log) looking for the canary.
func assertCanaryNotOnDisk(t *testing.T, srv *testServer) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(srv.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(historyCanary)) || bytes.Contains(b, []byte("7d1f0c2b9e")) {
			t.Errorf("the server's %s holds the canary plaintext", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("only %d files under the server's data directory", n)
	}
}

func historyIDs(t *testing.T, c *Client, target string) []string {
	t.Helper()
	h, err := c.History(context.Background(), target, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range h {
		if m.Kind == KindText {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func hasCanary(t *testing.T, c *Client, target string) bool {
	t.Helper()
	h, err := c.History(context.Background(), target, 0)
	if err != nil {
		return false
	}
	for _, m := range h {
		if strings.Contains(m.Text, historyCanary) {
			return true
		}
	}
	return false
}

func waitHistory(t *testing.T, c *Client) (HistoryReceived, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.WaitForHistory(ctx)
}

// TestHistoryTransfer: alice links a laptop and, with her consent, sends
// it her history: it arrives end to end (the server's disk never holds
// the plaintext, not even while the blob waits), shows in the
// conversation's order, and what bob sends afterwards follows it.
func TestHistoryTransfer(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	want := historyChat(t, srv, alice, bob)
	laptop := srv.linkDevice(t, alice, "laptop")
	if hasCanary(t, laptop, "@bob") {
		t.Fatal("the laptop has the history before any transfer")
	}
	before := len(blobFiles(t, srv))
	var stages []string
	sent, err := alice.SendHistory(context.Background(), laptop.Self().DeviceID, func(stage string, done, total int64) {
		if len(stages) == 0 || stages[len(stages)-1] != stage {
			stages = append(stages, stage)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent.Messages < 7 || sent.Conversations != 1 || sent.Bytes <= 0 || !slices.Equal(stages, []string{"export", "upload"}) {
		t.Fatalf("sent %+v, stages %v", sent, stages)
	}
	if got := len(blobFiles(t, srv)); got != before+1 {
		t.Fatalf("%d blob files after the upload, %d before", got, before)
	}
	assertCanaryNotOnDisk(t, srv) // the encrypted history is on the disk now

	var progress []string
	laptop.opts.OnHistoryProgress = func(stage string, done, total int64) {
		if len(progress) == 0 || progress[len(progress)-1] != stage {
			progress = append(progress, stage)
		}
	}
	got, err := waitHistory(t, laptop)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != alice.Self().DeviceID || got.Messages < 7 || !slices.Equal(progress, []string{"download", "import"}) {
		t.Fatalf("received %+v, progress %v", got, progress)
	}
	var wantIDs []string
	for _, m := range want {
		if m.Kind == KindText {
			wantIDs = append(wantIDs, m.ID)
		}
	}
	if ids := historyIDs(t, laptop, "@bob"); !slices.Equal(ids, wantIDs) {
		t.Fatalf("the laptop's history:\n%v\nalice's:\n%v", ids, wantIDs)
	}
	// The laptop's note that it was added comes after the past.
	if h, _ := laptop.History(context.Background(), "@bob", 0); len(h) == 0 || h[len(h)-1].Kind != KindMembership {
		var kinds []string
		for _, m := range h {
			kinds = append(kinds, m.Kind+":"+m.Text)
		}
		t.Fatalf("the laptop's history does not end with its joining: %q", kinds)
	}
	// New messages follow the transferred past.
	m := mustSend(t, bob, "@alice", "after the link")
	mustSync(t, laptop)
	ids := historyIDs(t, laptop, "@bob")
	if len(ids) != len(wantIDs)+1 || ids[len(ids)-1] != m.ID {
		t.Fatalf("after bob's new message the laptop shows %v", ids)
	}
	// Imported, then deleted from the server.
	if got := len(blobFiles(t, srv)); got != before {
		t.Fatalf("%d blob files after the import, %d before the transfer", got, before)
	}
	assertCanaryNotOnDisk(t, srv)
}

// TestHistoryTransferNeedsConsent: linking alone sends nothing: no blob
// is uploaded and the new device sees nothing from before.
func TestHistoryTransferNeedsConsent(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	historyChat(t, srv, alice, bob)
	before := len(blobFiles(t, srv))
	laptop := srv.linkDevice(t, alice, "laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := laptop.WaitForHistory(ctx); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("waiting for history nobody sent: %v", err)
	}
	if hasCanary(t, laptop, "@bob") {
		t.Fatal("the laptop shows history from before it was linked")
	}
	if got := len(blobFiles(t, srv)); got != before {
		t.Fatalf("%d blob files after linking, %d before: something was uploaded", got, before)
	}
}

// TestHistoryTransferTamperedBlob: a server that corrupts or swaps the
// stored history is caught by the digest before anything is decrypted,
// and the new device's profile is unchanged.
func TestHistoryTransferTamperedBlob(t *testing.T) {
	for _, attack := range []string{"flip", "swap", "truncate"} {
		t.Run(attack, func(t *testing.T) {
			srv := startServer(t)
			alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
			historyChat(t, srv, alice, bob)
			laptop := srv.linkDevice(t, alice, "laptop")
			mustSync(t, laptop) // it joins the conversation with bob
			before := blobFiles(t, srv)
			if _, err := alice.SendHistory(context.Background(), laptop.Self().DeviceID, nil); err != nil {
				t.Fatal(err)
			}
			var blob string
			for _, f := range blobFiles(t, srv) {
				if !slices.Contains(before, f) {
					blob = f
				}
			}
			b, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			switch attack {
			case "flip":
				b[len(b)/2] ^= 1
			case "swap": // other bytes of the same length
				rand.Read(b)
			case "truncate": // one chunk fewer, as long as the pointer says
				b = b[:len(b)-1]
			}
			if err := os.WriteFile(blob, b, 0o600); err != nil {
				t.Fatal(err)
			}
			convsBefore, err := laptop.Conversations(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			idsBefore := historyIDs(t, laptop, "@bob")
			_, err = waitHistory(t, laptop)
			if !errors.Is(err, ErrHistoryDigest) {
				t.Fatalf("a tampered history blob: %v, want ErrHistoryDigest", err)
			}
			if ids := historyIDs(t, laptop, "@bob"); !slices.Equal(ids, idsBefore) || hasCanary(t, laptop, "@bob") {
				t.Fatalf("the profile changed: %v, was %v", ids, idsBefore)
			}
			if convs, _ := laptop.Conversations(context.Background()); len(convs) != len(convsBefore) {
				t.Fatalf("conversations: %d, were %d", len(convs), len(convsBefore))
			}
			// Dropped: the next sync does not try again.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := laptop.WaitForHistory(ctx); !errors.Is(err, ErrNoHistory) {
				t.Fatalf("after the refusal: %v", err)
			}
		})
	}
}

// TestHistoryTransferOnlyOwnDevices: the pointer goes only to a device
// of the account's signed list: not to another account's device, not to
// a device the server added on its own (a ghost); and a device takes a
// transfer only from its own account's devices.
func TestHistoryTransferOnlyOwnDevices(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	historyChat(t, srv, alice, bob)
	laptop := srv.linkDevice(t, alice, "laptop")
	mustSync(t, laptop)
	ghost := addGhost(t, srv, "alice")
	before := len(blobFiles(t, srv))
	for _, dev := range []string{bob.Self().DeviceID, ghost} {
		if _, err := alice.SendHistory(context.Background(), dev, nil); !errors.Is(err, ErrUnlistedDevice) {
			t.Fatalf("history to %s: %v, want ErrUnlistedDevice", dev, err)
		}
	}
	if got := len(blobFiles(t, srv)); got != before {
		t.Fatalf("%d blob files, %d before: something was uploaded for a device that is not alice's", got, before)
	}

	// Mallory, who has a key package of alice's laptop, sends it a
	// "history" of hers.
	mallory := srv.newUser(t, "mallory")
	mustSend(t, mallory, "@bob", "mallory's "+historyCanary)
	ctx := context.Background()
	err := mallory.withLock(ctx, func() error {
		conn, err := mallory.connection(ctx)
		if err != nil {
			return err
		}
		kps, err := conn.FetchKeyPackagesOf(ctx, uint16(xwingSuite), "alice", laptop.Self().DeviceID)
		if err != nil || len(kps) != 1 {
			t.Fatalf("alice's laptop's key packages: %v %v", kps, err)
		}
		p, _, err := mallory.uploadHistory(ctx, conn, nil)
		if err != nil {
			return err
		}
		return mallory.sendHistoryPointer(ctx, conn, xwingSuite, kps[0], laptop.Self().DeviceID, p.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
	convs, _ := laptop.Conversations(ctx)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := laptop.WaitForHistory(wctx); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("mallory's transfer: %v", err)
	}
	if !warned(laptop, ErrOutsider) {
		t.Fatal("no alert about mallory's transfer")
	}
	if hasCanary(t, laptop, "@bob") {
		t.Fatal("the laptop imported mallory's history")
	}
	if after, _ := laptop.Conversations(ctx); len(after) != len(convs) {
		t.Fatalf("conversations: %d, were %d", len(after), len(convs))
	}
}

// warned reports whether c's warnings include target (and clears them).
func warned(c *Client, target error) bool {
	found := false
	for _, w := range c.Warnings() {
		if strings.Contains(w.Err, target.Error()) {
			found = true
		}
	}
	return found
}

// TestHistoryTransferHostilePointer: a malformed pointer, or one naming
// a blob that is not there, from alice's own primary (compromised, or a
// bug) is refused with a clear error and changes nothing.
func TestHistoryTransferHostilePointer(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	historyChat(t, srv, alice, bob)
	laptop := srv.linkDevice(t, alice, "laptop")
	mustSync(t, laptop)
	ctx := context.Background()
	good := historyPointer{Blob: make([]byte, 16), Key: make([]byte, 32), SHA256: make([]byte, 32), BlobSize: 100, PlainSize: 10, Messages: 1}
	truncated := good.marshal()
	truncated = truncated[:len(truncated)-1]
	huge := good
	huge.PlainSize = 1 << 50
	cases := []struct {
		name string
		ext  []byte
		want error
	}{
		{"garbage", []byte("not a pointer"), ErrBadHistoryPointer},
		{"truncated", truncated, ErrBadHistoryPointer},
		{"sizes", huge.marshal(), ErrBadHistoryPointer},
		{"no such blob", good.marshal(), nil}, // well formed: refused when fetched
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			convs, _ := laptop.Conversations(ctx)
			ids := historyIDs(t, laptop, "@bob")
			err := alice.withLock(ctx, func() error {
				conn, err := alice.connection(ctx)
				if err != nil {
					return err
				}
				own, err := alice.verifiedList(ctx, conn, "alice")
				if err != nil {
					return err
				}
				kp, suite, err := alice.ownKeyPackage(ctx, conn, laptop.Self().DeviceID, own)
				if err != nil {
					return err
				}
				return alice.sendHistoryPointer(ctx, conn, suite, kp, laptop.Self().DeviceID, tc.ext)
			})
			if err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err = laptop.WaitForHistory(wctx)
			var he *transport.HTTPError
			switch {
			case tc.want != nil:
				if !errors.Is(err, ErrNoHistory) || !warned(laptop, tc.want) {
					t.Fatalf("got %v, and no warning %v", err, tc.want)
				}
			case !errors.As(err, &he) || he.StatusCode != 404:
				t.Fatalf("a pointer to no blob: %v", err)
			}
			if after, _ := laptop.Conversations(ctx); len(after) != len(convs) {
				t.Fatalf("conversations: %d, were %d", len(after), len(convs))
			}
			if after := historyIDs(t, laptop, "@bob"); !slices.Equal(after, ids) {
				t.Fatalf("history changed: %v, was %v", after, ids)
			}
		})
	}
}

// TestPadme pins the padding: never shorter, at most 12% longer, and
// lengths in one bucket pad alike.
func TestPadme(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 100, 1000, 65536, 65537, 1 << 20, 12345678, 1<<40 - 1} {
		p := padme(n)
		if p < n || float64(p) > float64(n)*1.12+1 {
			t.Errorf("padme(%d) = %d", n, p)
		}
	}
	if padme(1000000) != padme(1000001) {
		t.Errorf("padme(1000000) = %d, padme(1000001) = %d", padme(1000000), padme(1000001))
	}
}

// FuzzHistoryPointer: the pointer decoder (untrusted bytes from a
// Welcome) accepts exactly the canonical encoding of a pointer within
// bounds: whatever it accepts re-encodes to the same bytes and names
// sizes that fit; everything else is ErrBadHistoryPointer.
func FuzzHistoryPointer(f *testing.F) {
	p := historyPointer{Blob: make([]byte, 16), Key: make([]byte, 32), SHA256: make([]byte, 32), BlobSize: 1 << 20, PlainSize: 1000, Messages: 3}
	f.Add(p.marshal())
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseHistoryPointer(b)
		if err != nil {
			if p != nil || !errors.Is(err, ErrBadHistoryPointer) {
				t.Fatalf("rejected with %v and a pointer %v", err, p)
			}
			return
		}
		if !bytes.Equal(p.marshal(), b) {
			t.Fatalf("accepted %x, which encodes as %x", b, p.marshal())
		}
		if p.BlobSize > maxHistoryBlob || p.PlainSize == 0 || p.PlainSize > p.BlobSize || len(p.Key) != 32 {
			t.Fatalf("accepted out-of-bounds %+v", p)
		}
	})
}

// TestHistoryTransferDisappearing: a disappearing message whose time
// passed is not transferred; one still running is, and disappears from
// the new device when it does everywhere else.
func TestHistoryTransferDisappearing(t *testing.T) {
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
	mustSend(t, alice, "@bob", "expired")
	clock.Add(90 * time.Minute)
	mustSend(t, alice, "@bob", "fleeting")

	laptop := srv.linkDevice(t, alice, "laptop")
	laptop.opts.Now = clock.Now
	mustSync(t, laptop)
	if _, err := alice.SendHistory(ctx, laptop.Self().DeviceID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := waitHistory(t, laptop); err != nil {
		t.Fatal(err)
	}
	hist, _ := laptop.History(ctx, "@bob", 0)
	if got := texts(hist); !slices.Contains(got, "alice: kept") || !slices.Contains(got, "alice: fleeting") || slices.Contains(got, "alice: expired") {
		t.Fatalf("transferred history: %q", got)
	}
	for _, m := range hist {
		if m.Text == "fleeting" && m.ExpiresAt.IsZero() {
			t.Fatal("the transferred message lost its timer")
		}
	}
	clock.Add(2 * time.Hour)
	mustSync(t, laptop)
	if hist, _ := laptop.History(ctx, "@bob", 0); slices.Contains(texts(hist), "alice: fleeting") || !slices.Contains(texts(hist), "alice: kept") {
		t.Fatalf("after the timer: %q", texts(hist))
	}
}

// TestHistoryTransferWatch: a device that only watches (the web client,
// sync --follow, the daemon) imports the history as it arrives and
// reports it as an event.
func TestHistoryTransferWatch(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	historyChat(t, srv, alice, bob)
	laptop := srv.linkDevice(t, alice, "laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := make(chan Event, 16)
	watching := make(chan error, 1)
	go func() {
		watching <- laptop.Watch(ctx, WatchOptions{}, func(ev Event) {
			if ev.Type == EventHistory || ev.Type == EventConnected {
				events <- ev
			}
		})
	}()
	if ev := <-events; ev.Type != EventConnected {
		t.Fatalf("first event %+v", ev)
	}
	if _, err := alice.SendHistory(ctx, laptop.Self().DeviceID, nil); err != nil {
		t.Fatal(err)
	}
	var ev Event
	select {
	case ev = <-events:
	case err := <-watching:
		t.Fatalf("watch ended: %v", err)
	case <-ctx.Done():
		t.Fatal("no history event")
	}
	if ev.Type != EventHistory || ev.History.Messages < 7 || ev.History.From != alice.Self().DeviceID {
		t.Fatalf("event %+v", ev)
	}
	cancel()
	<-watching
	if !hasCanary(t, laptop, "@bob") {
		t.Fatal("the watcher did not import the history")
	}
}
