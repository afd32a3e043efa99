package client

// The server as the attacker (issue "no ghosts"): each test has the server
// misbehave, by writing to its own database as a hacked or compelled
// operator would, and checks that the clients catch it, that nothing
// reaches the attacker's keys, and that the user is told.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// serverDB opens the server's database as its operator could.
func serverDB(t *testing.T, s *testServer) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, "parley.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitDirectory waits until the server's key transparency directory
// serves user's list at version (0: user removed), whatever put it in the
// database: the server's epoch loop takes every list it finds there.
func waitDirectory(t *testing.T, s *testServer, user string, version uint64) {
	t.Helper()
	db := serverDB(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v uint64
		var stored int64
		if err := db.QueryRow(`SELECT kt_version FROM accounts WHERE username = ?`, user).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT COUNT(*) FROM kt_epochs`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if v == version {
			resp, err := http.Get(s.url + wire.PathKT + "/keys")
			if err != nil {
				t.Fatal(err)
			}
			var k server.KTKeysJSON
			err = json.NewDecoder(resp.Body).Decode(&k)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if k.Published >= stored {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory did not take %s's list version %d (it has %d)", user, version, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attackerKeyPackage makes a key package that claims to be user/device
// but is signed by a key the attacker holds.
func attackerKeyPackage(t *testing.T, user, device string, lastResort bool) transport.KeyPackage {
	t.Helper()
	s, err := ciphersuite.Lookup(xwingSuite)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	msg, bundle, err := mls.NewKeyPackage(s, mls.NewBasicCredential(credentialIdentity(user, device)), seed, &mls.KeyPackageOptions{LastResort: lastResort, Capabilities: leafCapabilities(s)})
	if err != nil {
		t.Fatal(err)
	}
	return transport.KeyPackage{Ref: bundle.KeyPackage.Ref(s), Data: msg, Suite: uint16(xwingSuite)}
}

// addGhost has the server create a device for user with a key it holds,
// with key packages, and returns the ghost's device id.
func addGhost(t *testing.T, s *testServer, user string) string {
	t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	code := "99999999"
	if err := s.store.CreateLink(ctx, store.Link{Username: user, Code: code, PublicKey: priv.Public().(ed25519.PublicKey), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	dev, err := s.store.ApproveLink(ctx, user, code, store.Device{ID: "ghost" + strings.Repeat("0", 27)}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := transport.Dial(ctx, s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Authenticate(ctx, priv); err != nil {
		t.Fatal(err)
	}
	lr := attackerKeyPackage(t, user, dev.ID, true)
	if _, err := conn.UploadKeyPackages(ctx, []transport.KeyPackage{attackerKeyPackage(t, user, dev.ID, false), attackerKeyPackage(t, user, dev.ID, false)}, &lr); err != nil {
		t.Fatal(err)
	}
	return dev.ID
}

// startLink runs LinkDevice for a new device of user in the background
// and returns the code it shows and where its result will arrive.
func startLink(t *testing.T, ctx context.Context, srv *testServer, user string) (code string, linked <-chan error) {
	t.Helper()
	codes := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		c, err := LinkDevice(ctx, testOptions(t, "laptop"), srv.url, user, func(code string, _ time.Time) { codes <- code })
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case code = <-codes:
	case err := <-done:
		t.Fatalf("link: %v", err)
	}
	return code, done
}

// members lists "user/device" of target's group on c.
func members(t *testing.T, c *Client, target string) []string {
	t.Helper()
	var out []string
	for _, m := range groupState(t, c, target).Members() {
		s, err := memberIdentity(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s.User+"/"+s.Device)
	}
	return out
}

// Attack 1: a device row inserted straight into the server's database.
// Before, alice's own client added it to every conversation at its next
// sync and bob's client added it to new ones; it read everything sent to
// alice. Now neither trusts a device her signed list does not name.
func TestGhostDeviceInDatabase(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	mustSync(t, bob)
	if _, err := alice.CreateGroup(context.Background(), "club", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)

	ghost := addGhost(t, srv, "alice")
	mustSync(t, alice) // before: "alice added a new device of alice"
	mustSync(t, bob)
	for _, target := range []string{"@bob", "#club"} {
		if ms := members(t, alice, target); slices.Contains(ms, "alice/"+ghost) {
			t.Fatalf("alice's client added the ghost to %s: %v", target, ms)
		}
	}
	// alice sees the ghost in her device list, marked as not signed.
	devs, err := alice.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Signed != (d.ID != ghost) {
			t.Fatalf("device %s signed=%v (ghost %s)", d.ID, d.Signed, ghost)
		}
	}
	// A new conversation: carol's client leaves the ghost out and says so.
	carol := srv.newUser(t, "carol")
	mustSend(t, carol, "@alice", "hi alice")
	if ms := members(t, carol, "@alice"); slices.Contains(ms, "alice/"+ghost) || len(ms) != 2 {
		t.Fatalf("carol's conversation with alice: %v", ms)
	}
	if !slices.ContainsFunc(carol.Warnings(), func(w Warning) bool { return strings.Contains(w.Err, "not in alice's list") }) {
		t.Fatalf("carol was not told of the unlisted device: %+v", carol.Warnings())
	}
	if got := texts(mustSync(t, alice)); !slices.Contains(got, "carol: hi alice") {
		t.Fatalf("alice got %q", got)
	}
}

// Attack 2: bob's key packages replaced by ones whose private keys the
// server holds. alice's client refuses them: their signature key is not
// the one bob's signed list gives his device.
func TestSwappedKeyPackage(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	bobDev := bob.Self().DeviceID
	// The server drains bob's own packages and puts its own last-resort
	// one in their place.
	for {
		got, err := srv.store.ConsumeKeyPackages(ctx, "bob", nil, uint16(xwingSuite))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].LastResort {
			break
		}
	}
	fake := attackerKeyPackage(t, "bob", bobDev, true)
	if _, err := srv.store.AddKeyPackages(ctx, bobDev, nil, &store.KeyPackage{Ref: fake.Ref, Data: fake.Data, Suite: fake.Suite}); err != nil {
		t.Fatal(err)
	}
	_, err := alice.SendText(ctx, "@bob", "for bob's eyes only")
	if !errors.Is(err, ErrUnlistedDevice) {
		t.Fatalf("send with bob's key package swapped: %v, want ErrUnlistedDevice", err)
	}
	if !strings.Contains(err.Error(), "bob/"+bobDev) {
		t.Fatalf("the error does not say which device: %v", err)
	}
}

// Attack 3: the server answers the link code with a key of its own
// instead of the new device's. The approving device checks the keys
// against the code's secret and approves nothing.
func TestLinkKeySwappedByServer(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	phone := srv.newUser(t, "alice")
	db := serverDB(t, srv)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	code, linked := startLink(t, lctx, srv, "alice")
	_, serverKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := db.Exec(`UPDATE links SET public_key = ?, mls_key = ? WHERE username = 'alice'`,
		[]byte(serverKey.Public().(ed25519.PublicKey)), []byte(serverKey.Public().(ed25519.PublicKey))); err != nil {
		t.Fatal(err)
	}
	_, _, err := phone.ApproveDevice(ctx, code, time.Second)
	if !errors.Is(err, ErrLinkTampered) {
		t.Fatalf("approving a swapped key: %v, want ErrLinkTampered", err)
	}
	devs, err := phone.Devices(ctx)
	if err != nil || len(devs) != 1 {
		t.Fatalf("alice has %d devices after a refused approval (%v)", len(devs), err)
	}
	cancel()
	<-linked
}

// Attack 3, the other way: the server approves the link itself (or
// relays a confirmation of its own making): the new device refuses to
// become a device of an account whose key it cannot check.
func TestLinkConfirmationForgedByServer(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	srv.newUser(t, "alice")
	code, linked := startLink(t, ctx, srv, "alice")
	serverCode, _, err := splitLinkCode(code)
	if err != nil {
		t.Fatal(err)
	}
	forged := make([]byte, 64)
	rand.Read(forged)
	if _, err := srv.store.ApproveLink(ctx, "alice", serverCode, store.Device{ID: strings.Repeat("f", 32)}, forged, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-linked:
		if !errors.Is(err, ErrLinkTampered) {
			t.Fatalf("link approved by the server: %v, want ErrLinkTampered", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the new device did not notice the forged approval")
	}
}

// The server cannot swap an account key: it signs a list of its own,
// naming alice's real device and a ghost, with a key of its own. bob's
// client pinned alice's key: it refuses the list and says why.
func TestAccountKeySwapped(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	mustSync(t, bob)
	mustSend(t, bob, "@alice", "hi") // bob pins alice's account key

	forgeList(t, srv, alice, 99)
	waitDirectory(t, srv, "alice", 99)
	_, err := bob.CreateGroup(ctx, "plot", []string{"alice"})
	if !errors.Is(err, ErrAccountKeyChanged) {
		t.Fatalf("bob adding alice after the server swapped her account key: %v, want ErrAccountKeyChanged", err)
	}
	// alice's own client notices too: its own list is signed by a key it
	// did not make.
	if _, err := alice.Sync(ctx); err == nil && !slices.ContainsFunc(alice.Warnings(), func(w Warning) bool {
		return w.Alert && strings.Contains(w.Err, "that this account did not sign")
	}) {
		t.Fatalf("alice's client did not notice: %+v", alice.Warnings())
	}
}

// Attack 4: a ghost asks to join a group with an external proposal (a
// new member's own Add, which needs no group secret), injected by the
// server into the group's log. Parley groups take members only by their
// members' commits: the proposal is refused and the user told.
func TestOutsiderProposalRefused(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	if _, err := alice.CreateGroup(ctx, "club", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	g := groupState(t, bob, "#club")
	s := g.Suite()
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	_, bundle, err := mls.NewKeyPackage(s, mls.NewBasicCredential(credentialIdentity("alice", "ghost")), seed, &mls.KeyPackageOptions{Capabilities: leafCapabilities(s)})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mls.NewJoinProposal(g.GroupID(), g.Epoch(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.store.Append(ctx, store.Append{ID: transport.NewMessageID(), ConversationID: g.GroupID(), Epoch: g.Epoch(),
		Kind: store.KindProposal, Sender: alice.Self().DeviceID, Payload: msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(bob.Warnings(), func(w Warning) bool { return strings.Contains(w.Err, "from outside the group") }) {
		t.Fatalf("bob was not told of the outsider's proposal: %+v", bob.Warnings())
	}
	mustSend(t, bob, "#club", "still fine")
	if got := texts(mustSync(t, alice)); !slices.Contains(got, "bob: still fine") {
		t.Fatalf("alice got %q", got)
	}
	if ms := members(t, bob, "#club"); len(ms) != 2 {
		t.Fatalf("#club members: %v", ms)
	}
}

// A member's client that adds an unlisted device (compromised, or a
// server-made key package it failed to check): every other member's
// client notices when the commit arrives, names the device, and sends
// nothing more to the group. (Fails without alertRoster and checkRoster.)
func TestUnlistedLeafFromAMember(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	if _, err := alice.CreateGroup(ctx, "club", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSend(t, bob, "#club", "before")
	ghost := addGhost(t, srv, "alice")
	kp := attackerKeyPackage(t, "alice", ghost, false)
	err := alice.withLock(ctx, func() error {
		r, err := alice.resolve(ctx, "#club", false)
		if err != nil {
			return err
		}
		return alice.addUsers(ctx, r, nil, false, map[string][]transport.DeviceKeyPackage{
			"alice": {{DeviceID: ghost, KeyPackage: kp}}})
	})
	if err != nil {
		t.Fatalf("the rogue add: %v", err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(bob.Warnings(), func(w Warning) bool { return strings.Contains(w.Err, "alice/"+ghost) }) {
		t.Fatalf("bob was not told of alice/%s: %+v", ghost, bob.Warnings())
	}
	_, err = bob.SendText(ctx, "#club", "secret plans")
	if !errors.Is(err, ErrUnlistedDevice) {
		t.Fatalf("bob's send to a group with an unlisted member: %v, want ErrUnlistedDevice", err)
	}
}

// A verified contact whose devices change gets nothing until the user
// compares safety numbers again and verifies once more. (Fails without
// checkVerified.)
func TestVerifiedContactChanges(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	mustSync(t, bob)
	if v, err := alice.Verify(ctx, "@bob", false); err != nil || !v.Verified || v.Devices != 1 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	mustSend(t, alice, "@bob", "verified")
	srv.linkDevice(t, bob, "bob-laptop") // bob's phone adds it to @alice
	_, err := alice.SendText(ctx, "@bob", "after bob's new device")
	if !errors.Is(err, ErrVerifiedChanged) {
		t.Fatalf("send to a verified contact with a new device: %v, want ErrVerifiedChanged", err)
	}
	// The safety number can still be read, to compare again.
	if _, err := alice.SafetyNumber(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Verify(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "@bob", "verified again")
	// Unverified contacts are not held back.
	if _, err := alice.Verify(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	srv.linkDevice(t, bob, "bob-tablet")
	mustSend(t, alice, "@bob", "not verified, not held back")
}

// A profile made before signed device lists (no account key, nothing
// pinned, no list on the server) becomes its account's primary at its
// next connection, signing a list of itself alone; a second such device
// of the account is told to link again. Contacts can then write to it.
func TestLegacyProfileUpgrade(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	laptop := srv.linkDevice(t, alice, "alice-laptop")
	// Make both of alice's profiles and the server look as they did before.
	for _, c := range []*Client{alice, laptop} {
		c.acct.AccountKey = nil
		if err := c.store.Update(func(tx *profile.Tx) error {
			if err := tx.PutJSON(bucketAccount, keySelf, c.acct); err != nil {
				return err
			}
			return tx.Delete(bucketPins, "alice")
		}); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.conn.Close()
		c.conn = nil
		c.mu.Unlock()
	}
	if _, err := serverDB(t, srv).Exec(`UPDATE accounts SET account_key = NULL, device_list = NULL, device_list_version = 0 WHERE username = 'alice'`); err != nil {
		t.Fatal(err)
	}
	waitDirectory(t, srv, "alice", 0)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatalf("the first legacy device to connect: %v", err)
	}
	if !alice.acct.isPrimary() {
		t.Fatal("alice's first device did not become the primary")
	}
	if _, err := laptop.Sync(ctx); !errors.Is(err, ErrNotInSignedList) {
		t.Fatalf("the second legacy device: %v, want ErrNotInSignedList", err)
	}
	mustSend(t, bob, "@alice", "after the upgrade")
	if got := texts(mustSync(t, alice)); !slices.Contains(got, "bob: after the upgrade") {
		t.Fatalf("alice got %q", got)
	}
}

// A list the server altered (here: a byte of alice's stored list flipped)
// does not verify: nothing is sent to alice, and it is a security alert.
func TestTamperedListIsAnAlert(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	db := serverDB(t, srv)
	var b []byte
	if err := db.QueryRow(`SELECT device_list FROM accounts WHERE username = 'alice'`).Scan(&b); err != nil {
		t.Fatal(err)
	}
	var s parleypb.SignedDeviceList
	if err := proto.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s.List[len(s.List)-1] ^= 1
	b, _ = proto.Marshal(&s)
	// The server puts it in its directory as a new version.
	if _, err := db.Exec(`UPDATE accounts SET device_list = ?, device_list_version = 7 WHERE username = 'alice'`, b); err != nil {
		t.Fatal(err)
	}
	waitDirectory(t, srv, "alice", 7)
	_, err := bob.SendText(ctx, "@alice", "hi")
	if !errors.Is(err, devicelist.ErrBadSignature) || !IsSecurityAlert(err) {
		t.Fatalf("send with a tampered list: %v, want a bad-signature security alert", err)
	}
}

// A version the server altered in its directory's storage, behind the
// directory's back (here: the commitment's opening of alice's list
// replaced), no longer opens its commitment in the tree: a security alert, and nothing
// is sent.
func TestTamperedDirectoryIsAnAlert(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	if _, err := serverDB(t, srv).Exec(`UPDATE kt_versions SET opening = zeroblob(16) WHERE label = 'alice'`); err != nil {
		t.Fatal(err)
	}
	_, err := bob.SendText(ctx, "@alice", "hi")
	if !errors.Is(err, ErrDirectory) || !IsSecurityAlert(err) {
		t.Fatalf("send with a tampered directory: %v, want ErrDirectory, a security alert", err)
	}
}
