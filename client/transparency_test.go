package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/transparency/log"
)

// Attacks 5 and 6 of issue 11, with the server as the attacker: its
// directory rolled back, forked, and a ghost list shown to others but
// hidden from the account's own monitoring.

// snapshotServer copies the server's database aside (stopping and
// restarting it around the copy); restoreServer puts a copy back, as a
// server that rolls back or keeps a second history would.
func snapshotServer(t *testing.T, s *testServer) string {
	t.Helper()
	s.stop()
	dir := t.TempDir()
	copyDB(t, s.dataDir, dir)
	s.start(t, s.addr)
	return dir
}

func restoreServer(t *testing.T, s *testServer, snap string) {
	t.Helper()
	s.stop()
	copyDB(t, snap, s.dataDir)
	s.start(t, s.addr)
}

func copyDB(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(to, "parley.db"+suffix))
		b, err := os.ReadFile(filepath.Join(from, "parley.db"+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, "parley.db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func hasAlert(c *Client, substr string) bool {
	return slices.ContainsFunc(c.Warnings(), func(w Warning) bool { return w.Alert && strings.Contains(w.Err, substr) })
}

// A server restored from an older copy of its database serves an older
// checkpoint than bob's client has accepted: refused, a security alert.
func TestDirectoryRollbackIsAnAlert(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	snap := snapshotServer(t, srv)
	srv.linkDevice(t, alice, "alice-tablet") // new epochs
	mustSend(t, bob, "@alice", "hello")      // bob accepts them
	restoreServer(t, srv, snap)
	_, err := bob.verifiedList(ctx, mustConn(t, bob), "alice")
	var ie *log.InconsistencyError
	if !errors.As(err, &ie) || !IsSecurityAlert(err) {
		t.Fatalf("looking alice up after the directory rolled back: %v, want an inconsistent-checkpoint security alert", err)
	}
}

// Split view: the server keeps two histories from one point on. alice's
// devices saw the honest one (her new device went into it); the other
// shows a list of alice's with a ghost, signed by a key of the server's.
// Whatever view the server then shows alice, her client cannot reconcile
// it with the one it saw: a security alert.
func TestSplitViewIsCaughtByTheAccount(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	srv.newUser(t, "bob")
	snap := snapshotServer(t, srv)
	srv.linkDevice(t, alice, "alice-tablet")
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	alice.Warnings()

	restoreServer(t, srv, snap)
	forgeList(t, srv, alice, 40)
	waitDirectory(t, srv, "alice", 40)
	carol := srv.newUser(t, "carol") // sees the forked view (trusting alice's forged key on first use)
	if _, err := carol.verifiedList(ctx, mustConn(t, carol), "alice"); err != nil {
		t.Fatalf("carol's lookup in the forked view: %v", err)
	}
	_, err := alice.Sync(ctx)
	if !IsSecurityAlert(err) && !hasAlert(alice, "directory") {
		t.Fatalf("alice shown the forked directory: %v, warnings %+v", err, alice.Warnings())
	}
}

// Attack 6: the server puts a list of alice's with a ghost into the
// directory (bob's client, seeing alice for the first time, would send to
// the ghost), then puts alice's real list back. alice's own monitoring
// sees the version she did not sign; and a server that also deletes that
// version from what it shows her breaks the chain of her leaf.
func TestGhostVersionShownToOthersIsSeenByTheAccount(t *testing.T) {
	for _, hide := range []bool{false, true} {
		name := "shown"
		if hide {
			name = "hidden"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := startServer(t)
			alice := srv.newUser(t, "alice")
			if _, err := alice.Sync(ctx); err != nil { // the baseline of her monitoring
				t.Fatal(err)
			}
			db := serverDB(t, srv)
			var real []byte
			var version uint64
			if err := db.QueryRow(`SELECT device_list, device_list_version FROM accounts WHERE username = 'alice'`).Scan(&real, &version); err != nil {
				t.Fatal(err)
			}
			forgeList(t, srv, alice, 40)
			waitDirectory(t, srv, "alice", 40)
			bob := srv.newUser(t, "bob")
			if l, err := bob.verifiedList(ctx, mustConn(t, bob), "alice"); err != nil || len(l.Devices) != 2 {
				t.Fatalf("bob's lookup of alice (the ghost list): %d devices, %v", len(l.Devices), err)
			}
			if _, err := db.Exec(`UPDATE accounts SET device_list = ?, device_list_version = 41 WHERE username = 'alice'`, real); err != nil {
				t.Fatal(err)
			}
			waitDirectory(t, srv, "alice", 41)
			if hide {
				if _, err := db.Exec(`DELETE FROM kt_versions WHERE label = 'alice' AND version = 40`); err != nil {
					t.Fatal(err)
				}
			}
			_, err := alice.Sync(ctx)
			want := "that this account did not sign"
			if hide {
				want = directory.ErrHistory.Error()
			}
			if err != nil || !hasAlert(alice, want) {
				t.Fatalf("alice's monitoring: %v, warnings %+v, want an alert %q", err, alice.Warnings(), want)
			}
		})
	}
}

// forgeList makes the server publish a list of user's signed by a key of
// its own, naming the user's real device and a ghost, at version.
func forgeList(t *testing.T, srv *testServer, c *Client, version uint64) {
	t.Helper()
	ghost := addGhost(t, srv, c.acct.User)
	ghostDev, err := srv.store.Device(context.Background(), ghost)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	forged := devicelist.List{Username: c.acct.User, AccountKey: pub, Version: version, Signed: time.Now(), Devices: []devicelist.Device{
		{ID: c.Self().DeviceID, AuthKey: c.acct.deviceKey().Public().(ed25519.PublicKey), MLSKey: c.acct.mlsPublicKey()},
		{ID: ghost, AuthKey: ghostDev.PublicKey, MLSKey: pub},
	}}
	signed, err := devicelist.Sign(forged, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serverDB(t, srv).Exec(`UPDATE accounts SET account_key = ?, device_list = ?, device_list_version = ? WHERE username = ?`, []byte(pub), b, version, c.acct.User); err != nil {
		t.Fatal(err)
	}
}

func mustConn(t *testing.T, c *Client) *transport.Conn {
	t.Helper()
	conn, err := c.connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// A split view between two members: the server shows bob a history that
// forked from alice's (here: bob's device accepted a checkpoint the server
// signed for a second history, at a size alice has passed). bob's next
// message carries it; alice's device asks the server to prove it part of
// her log, which it cannot: a security alert naming bob.
func TestSplitViewIsCaughtInAConversation(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	mustSync(t, bob)
	mustSend(t, bob, "@alice", "hi")
	mustSync(t, alice)
	if hasAlert(alice, "") {
		t.Fatalf("alerts on the honest path: %+v", alice.Warnings())
	}
	srv.newUser(t, "carol")
	mustSend(t, alice, "@carol", "hey") // alice's view moves on

	mine := alice.latestView()
	if mine == nil || mine.Size < 2 {
		t.Fatalf("alice's checkpoint: %+v", mine)
	}
	var root tlog.Hash
	rand.Read(root[:])
	forked, err := log.Sign(log.Checkpoint{Origin: srv.kt.Directory.Origin, Size: mine.Size - 1, Hash: root}, srv.kt.Directory.Signer)
	if err != nil {
		t.Fatal(err)
	}
	bob.ktMu.Lock()
	st, err := bob.ktVerifier(ctx, mustConn(t, bob))
	if err == nil {
		st.v, err = log.NewVerifier(st.keys.Policy, forked)
	}
	bob.ktMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	mustSend(t, bob, "@alice", "from the other history")
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasAlert(alice, "split view") {
		t.Fatalf("alice's warnings: %+v", alice.Warnings())
	}
}

// Own-account monitoring runs at most every KTMonitorEvery (4 hours by
// default, to stay under 20 kB a day) and covers every epoch since the
// last check: a ghost version published in between is caught at the
// first sync after the interval.
func TestMonitoringInterval(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	alice := srv.newUserWith(t, "alice", func(o *Options) { o.KTMonitorEvery = 0; o.Now = clock })
	if _, err := alice.Sync(ctx); err != nil { // checks: the first time
		t.Fatal(err)
	}
	forgeList(t, srv, alice, 40)
	waitDirectory(t, srv, "alice", 40)
	now = now.Add(time.Hour)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if hasAlert(alice, "did not sign") {
		t.Fatal("checked again within the interval")
	}
	now = now.Add(4 * time.Hour)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasAlert(alice, "did not sign") {
		t.Fatalf("not caught after the interval: %+v", alice.Warnings())
	}
}

// Recovering from a lost primary: the laptop makes a new account key and
// removes the other devices. bob's client refuses the new key until bob
// compares safety numbers and verifies alice again; then messages reach
// the laptop, and the lost phone gets nothing.
func TestResetAccountKey(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	phone, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	laptop := srv.linkDevice(t, phone, "alice-laptop")
	mustSend(t, bob, "@alice", "before")
	mustSync(t, laptop)
	if _, err := phone.ResetAccountKey(ctx); err == nil {
		t.Fatal("the primary reset its own account key")
	}
	removed, err := laptop.ResetAccountKey(ctx)
	if err != nil || len(removed) != 1 || removed[0] != phone.Self().DeviceID {
		t.Fatalf("reset: %v, removed %v", err, removed)
	}
	if !laptop.acct.isPrimary() {
		t.Fatal("the laptop is not the primary after the reset")
	}
	_, err = bob.SendText(ctx, "@alice", "after")
	if !errors.Is(err, ErrAccountKeyChanged) || !IsSecurityAlert(err) {
		t.Fatalf("bob sending after alice's key changed: %v, want an account-key-changed alert", err)
	}
	if _, err := bob.Verify(ctx, "alice", false); err != nil {
		t.Fatalf("bob verifying alice's new key: %v", err)
	}
	mustSend(t, bob, "@alice", "after verifying")
	res, err := laptop.Sync(ctx)
	if err != nil || !slices.Contains(texts(res.Messages), "bob: after verifying") {
		t.Fatalf("the laptop got %q, %v", texts(res.Messages), err)
	}
	if hasAlert(laptop, "") {
		t.Fatalf("the honest reset raised an alert on the laptop: %+v", laptop.Warnings())
	}
	if _, err := phone.Sync(ctx); err == nil {
		t.Fatal("the removed phone can still sync")
	}
}

// The honest path raises no alarm anywhere: a group, a device linked,
// messages, a re-key, the device removed, everyone's own-account checks
// and checkpoint comparisons along the way.
func TestHonestPathRaisesNoAlarm(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	tablet := srv.linkDevice(t, alice, "alice-tablet")
	clients := []*Client{alice, bob, carol, tablet}
	quiet := func(when string) {
		t.Helper()
		for _, c := range clients {
			if _, err := c.Sync(ctx); err != nil && c != tablet {
				t.Fatalf("%s: %s sync: %v", when, c.Self().User, err)
			}
			for _, w := range c.Warnings() {
				if w.Alert {
					t.Fatalf("%s: %s/%s raised an alert: %s", when, c.Self().User, c.Self().DeviceID, w.Err)
				}
			}
		}
	}
	quiet("after linking")
	mustSend(t, bob, "#team", "hello all")
	mustSend(t, tablet, "#team", "from the tablet")
	mustSend(t, carol, "@alice", "just you")
	quiet("after messages")
	if err := alice.Rekey(ctx, "#team"); err != nil {
		t.Fatal(err)
	}
	quiet("after a re-key")
	if _, err := alice.RemoveDevice(ctx, tablet.Self().DeviceID); err != nil {
		t.Fatal(err)
	}
	clients = clients[:3]
	mustSend(t, carol, "#team", "after the removal")
	quiet("after removing the tablet")
	for _, c := range clients {
		rep, err := c.Audit(ctx)
		if err != nil || len(rep.Alerts) > 0 || rep.Size == 0 {
			t.Fatalf("%s audit: %v, %+v", c.Self().User, err, rep)
		}
	}
}
