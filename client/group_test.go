package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
)

// groupState returns a copy of c's MLS state of target.
func groupState(t *testing.T, c *Client, target string) *mls.Group {
	t.Helper()
	var g *mls.Group
	err := c.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, c.acct.User, target)
		if err != nil {
			return err
		}
		g, err = loadGroup(tx, r.ID)
		return err
	})
	if err != nil {
		t.Fatalf("%s: group state of %s: %v", c.Self().User, target, err)
	}
	return g
}

// rawFetch returns the log entries after c's cursor without processing
// or acknowledging them.
func rawFetch(t *testing.T, c *Client, convID []byte) []transport.Message {
	t.Helper()
	conn, err := c.connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := conn.Fetch(context.Background(), convID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestFiveMemberGroupAddRemove(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	users := map[string]*Client{}
	for _, n := range names {
		users[n] = srv.newUser(t, n)
	}
	alice, bob, carol, frank := users["alice"], users["bob"], users["carol"], users["frank"]

	conv, err := alice.CreateGroup(ctx, "team", []string{"@bob", "@carol", "@dave", "@erin"})
	if err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "#team", "hello team")
	for _, n := range []string{"bob", "carol", "dave", "erin"} {
		got := texts(mustSync(t, users[n]))
		if !slices.Equal(got, []string{"alice: hello team"}) {
			t.Fatalf("%s got %q", n, got)
		}
	}
	if g := groupState(t, alice, "#team"); len(g.Members()) != 5 {
		t.Fatalf("group has %d members, want 5", len(g.Members()))
	}

	// Add frank, remove carol.
	if err := alice.AddMembers(ctx, "team", []string{"frank"}); err != nil {
		t.Fatal(err)
	}
	carolBefore, err := groupState(t, carol, "#team").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveMembers(ctx, "#team", []string{"@carol"}); err != nil {
		t.Fatal(err)
	}
	const secret = "after removal: carol must not read this"
	mustSend(t, alice, "#team", secret)

	// bob's view of the log: add commit, meta, remove commit, message.
	id := mustHex(t, conv.ID)
	raw := rawFetch(t, bob, id)
	var removal, after *transport.Message
	for i := range raw {
		if raw[i].Kind == transport.KindCommit {
			removal = &raw[i]
		}
	}
	if removal == nil {
		t.Fatal("no commit in the log")
	}
	for i := range raw {
		if raw[i].Seq > removal.Seq && raw[i].Kind == transport.KindApplication {
			after = &raw[i]
		}
	}
	if after == nil {
		t.Fatal("no message after the removal")
	}

	// carol's state from before her removal cannot decrypt the message
	// sent after it, neither directly nor after processing the removal.
	g, err := mls.UnmarshalGroup(carolBefore)
	if err != nil {
		t.Fatal(err)
	}
	// Catch the stale state up to the epoch just before the removal.
	for i := range raw {
		if raw[i].Seq >= removal.Seq {
			break
		}
		g.Process(raw[i].Payload)
	}
	if _, err := g.Process(after.Payload); !errors.Is(err, mls.ErrWrongEpoch) {
		t.Fatalf("removed member processing a message sent after removal (without processing the removal): %v", err)
	}
	res, err := g.Process(removal.Payload)
	if err != nil {
		t.Fatalf("carol processes her removal: %v", err)
	}
	if res.Commit == nil || !res.Commit.RemovedSelf {
		t.Fatalf("removal result %+v", res.Commit)
	}
	res, err = g.Process(after.Payload)
	if err == nil {
		t.Fatalf("removed member decrypted a message sent after removal: %q", res.Plaintext)
	}
	if !errors.Is(err, mls.ErrRemoved) {
		t.Fatalf("removed member processing a message sent after removal: %v", err)
	}
	// The stale state is exactly one epoch behind the message: only the
	// removal commit stands between them, and processing it (above)
	// leaves carol removed, because its path secrets are encrypted to the
	// remaining members only.
	g2, err := mls.UnmarshalGroup(carolBefore)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		if raw[i].Seq < removal.Seq {
			g2.Process(raw[i].Payload)
		}
	}
	if g2.Epoch()+1 != groupState(t, alice, "#team").Epoch() {
		t.Fatalf("stale state at epoch %d, group at %d", g2.Epoch(), groupState(t, alice, "#team").Epoch())
	}

	// Through the client: carol sees her removal and nothing after it.
	got := mustSync(t, carol)
	for _, m := range got {
		if strings.Contains(m.Text, secret) {
			t.Fatal("carol received the message sent after her removal")
		}
	}
	if !slices.ContainsFunc(got, func(m Message) bool { return m.Kind == KindMembership && strings.Contains(m.Text, "removed carol") }) {
		t.Fatalf("carol did not see her removal: %+v", got)
	}
	if _, err := carol.SendText(ctx, "#team", "let me back"); err == nil {
		t.Fatal("removed member could still send")
	}

	// Everyone else, frank included, reads it and agrees on the epoch.
	var auth []byte
	for _, n := range []string{"alice", "bob", "dave", "erin", "frank"} {
		c := users[n]
		msgs := mustSync(t, c)
		if n != "alice" && !slices.Contains(texts(msgs), "alice: "+secret) {
			t.Fatalf("%s did not get the message: %q", n, texts(msgs))
		}
		a := groupState(t, c, "#team").EpochAuthenticator()
		if auth == nil {
			auth = a
		} else if !bytes.Equal(a, auth) {
			t.Fatalf("%s has a different epoch authenticator", n)
		}
	}
	if g := groupState(t, frank, "#team"); len(g.Members()) != 5 {
		t.Fatalf("frank sees %d members, want 5", len(g.Members()))
	}
	// frank joined after "hello team": he never got it.
	hist, err := frank.History(ctx, "#team", 0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(texts(hist), "alice: hello team") {
		t.Fatal("frank sees a message from before he joined")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOfflineDeviceCatchesUpInOrderOnce(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	if _, err := alice.CreateGroup(ctx, "crew", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	// bob is offline while 30 messages and a membership change happen.
	var want []string
	for i := range 30 {
		from := alice
		if i%3 == 2 {
			from = carol
			if i == 2 {
				mustSync(t, carol) // carol joins
			}
		}
		text := fmt.Sprintf("message %02d", i)
		mustSend(t, from, "#crew", text)
		want = append(want, from.Self().User+": "+text)
		if i == 10 {
			srv.newUser(t, "dave")
			if err := alice.AddMembers(ctx, "crew", []string{"dave"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Simulate a crash after receiving but before acknowledging: process
	// the first entries without an ack, then sync normally. The server
	// delivers them again; the client must drop the duplicates.
	joined := mustSyncInbox(t, bob)
	raw := rawFetch(t, bob, joined[0])
	if len(raw) < 10 {
		t.Fatalf("only %d entries waiting", len(raw))
	}
	for _, m := range raw[:10] {
		if err := bob.processLogMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	got := texts(mustSync(t, bob))
	if !slices.Equal(got, want) {
		t.Fatalf("bob got\n%q\nwant\n%q", got, want)
	}
	if again := mustSync(t, bob); len(again) != 0 {
		t.Fatalf("second sync returned %d messages", len(again))
	}
	hist, err := bob.History(ctx, "#crew", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h := texts(hist); !slices.Equal(h, want) {
		t.Fatalf("history has %d texts, want %d", len(h), len(want))
	}
}

// mustSyncInbox processes only the Welcomes (joins) without reading logs.
func mustSyncInbox(t *testing.T, c *Client) [][]byte {
	t.Helper()
	conn, err := c.connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var joined [][]byte
	err = c.withLock(context.Background(), func() error {
		msgs, _, err := conn.FetchInbox(context.Background(), 0)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			id, err := c.joinFromWelcome(m)
			if err != nil {
				return err
			}
			joined = append(joined, id)
		}
		if len(msgs) > 0 {
			return conn.AckInbox(context.Background(), msgs[len(msgs)-1].Seq)
		}
		return nil
	})
	if err != nil || len(joined) == 0 {
		t.Fatalf("join: %v (%d joined)", err, len(joined))
	}
	return joined
}

func TestLinkedDeviceAndOwnMessages(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	phone := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	mustSend(t, phone, "@bob", "before the laptop")
	mustSync(t, bob)

	laptop := srv.linkDevice(t, phone, "alice-laptop")
	mustSend(t, bob, "@alice", "after the laptop")
	got := texts(mustSync(t, laptop))
	if !slices.Equal(got, []string{"bob: after the laptop"}) {
		t.Fatalf("laptop got %q", got)
	}
	mustSend(t, laptop, "@bob", "from the laptop")
	msgs := mustSync(t, phone)
	var fromLaptop *Message
	for i := range msgs {
		if msgs[i].Text == "from the laptop" {
			fromLaptop = &msgs[i]
		}
	}
	if fromLaptop == nil || fromLaptop.Sender != (Sender{User: "alice", Device: laptop.Self().DeviceID}) || fromLaptop.Outgoing {
		t.Fatalf("phone got %+v", msgs)
	}
	mustSend(t, phone, "@bob", "from the phone")
	if got := texts(mustSync(t, laptop)); !slices.Contains(got, "alice: from the phone") {
		t.Fatalf("laptop got %q", got)
	}
	if got := texts(mustSync(t, bob)); !slices.Equal(got, []string{"alice: from the laptop", "alice: from the phone"}) {
		t.Fatalf("bob got %q", got)
	}
	// A group bob creates later includes both of alice's devices.
	if _, err := bob.CreateGroup(ctx, "later", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, phone)
	mustSync(t, laptop)
	if n := len(groupState(t, laptop, "#later").Members()); n != 3 {
		t.Fatalf("#later has %d members, want 3", n)
	}
	// Safety numbers agree and cover both devices.
	n1, err := bob.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	n2, err := laptop.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if n1 != n2 || len(n1) != 60 {
		t.Fatalf("safety numbers %q vs %q", n1, n2)
	}
}

func TestConcurrentCommitsConverge(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	dave := srv.newUser(t, "dave")
	erin := srv.newUser(t, "erin")
	if _, err := alice.CreateGroup(ctx, "race", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	// bob adds people below: only admins may.
	if err := alice.SetAdmin(ctx, "race", "bob", true); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSync(t, carol)
	epoch := groupState(t, alice, "#race").Epoch()

	// alice and bob commit in the same epoch at once, several times.
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if round == 0 {
				errs[0] = alice.AddMembers(ctx, "race", []string{"dave"})
			} else {
				errs[0] = alice.Rekey(ctx, "#race")
			}
		}()
		go func() {
			defer wg.Done()
			if round == 0 {
				errs[1] = bob.AddMembers(ctx, "race", []string{"erin"})
			} else {
				errs[1] = bob.Rekey(ctx, "#race")
			}
		}()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	// A forced conflict: while alice's commit is in flight, bob commits
	// (and wins) the same epoch; alice must process bob's commit and
	// rebuild hers.
	once := true
	alice.testHookBeforeCommit = func() {
		if once {
			once = false
			if err := bob.Rekey(ctx, "#race"); err != nil {
				t.Error(err)
			}
		}
	}
	before := alice.conflicts.Load()
	if err := alice.Rekey(ctx, "#race"); err != nil {
		t.Fatal(err)
	}
	alice.testHookBeforeCommit = nil
	if alice.conflicts.Load() != before+1 {
		t.Fatalf("alice saw %d conflicts, want 1", alice.conflicts.Load()-before)
	}
	t.Logf("epoch conflicts: alice %d, bob %d", alice.conflicts.Load(), bob.conflicts.Load())

	clients := []*Client{alice, bob, carol, dave, erin}
	for _, c := range clients {
		mustSync(t, c)
	}
	var auth []byte
	var ep uint64
	for _, c := range clients {
		g := groupState(t, c, "#race")
		if auth == nil {
			auth, ep = g.EpochAuthenticator(), g.Epoch()
		} else if !bytes.Equal(auth, g.EpochAuthenticator()) || ep != g.Epoch() {
			t.Fatalf("%s diverged: epoch %d vs %d", c.Self().User, g.Epoch(), ep)
		}
		if len(g.Members()) != 5 {
			t.Fatalf("%s sees %d members", c.Self().User, len(g.Members()))
		}
	}
	if ep < epoch+8 {
		t.Fatalf("epoch %d, want at least %d (eight commits)", ep, epoch+8)
	}
	// And the group still works for everyone.
	mustSend(t, erin, "#race", "still in sync")
	for _, c := range clients[:4] {
		if got := texts(mustSync(t, c)); !slices.Contains(got, "erin: still in sync") {
			t.Fatalf("%s got %q", c.Self().User, got)
		}
	}
}

func TestNoCanaryOnServerOrDisk(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	canaries := []string{"CANARY-a1b2c3-text", "CANARY-group-d4e5", "CANARY-file-f6a7", "CANARY-reply-0042", "CANARY-name.txt"}
	mustSend(t, alice, "@bob", "direct "+canaries[0])
	if _, err := alice.CreateGroup(ctx, "ops", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "#ops", "group "+canaries[1])
	path := filepath.Join(t.TempDir(), canaries[4])
	content := bytes.Repeat([]byte("secret file "+canaries[2]+"\n"), 20000) // several chunks
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendFile(ctx, "#ops", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSend(t, bob, "#ops", "reply "+canaries[3])
	mustSync(t, carol)
	mustSync(t, alice)
	out := filepath.Join(t.TempDir(), "got")
	if _, _, err := carol.GetFile(ctx, sent.ID, out, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Fatal("file differs")
	}
	os.Remove(out)
	os.Remove(path)

	dirs := []string{srv.dataDir, alice.opts.Dir, bob.opts.Dir, carol.opts.Dir}
	files := 0
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for _, c := range canaries {
				if bytes.Contains(data, []byte(c)) {
					t.Errorf("%s contains %q", p, c)
				}
			}
			return nil
		})
	}
	for _, want := range []string{"parley.db-wal", "profile.db-wal", "server.log"} {
		found := false
		for _, dir := range dirs {
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				found = found || filepath.Base(p) == want
				return nil
			})
		}
		if !found {
			t.Errorf("no %s was checked", want)
		}
	}
	t.Logf("checked %d files", files)
}

func TestWrongPassphrase(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	opts := alice.opts
	alice.Close()
	opts.Passphrase = []byte("not it")
	if _, err := Open(context.Background(), opts); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("Open with the wrong passphrase: %v", err)
	}
	opts.Passphrase = []byte("passphrase of alice")
	c, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestPendingCommitSettled covers a commit whose response was lost: the
// server stored it, the client never heard. The client must resend it
// under the same id and merge, not wedge or fork. And a commit that never
// reached the server must be dropped once another commit wins its epoch.
func TestPendingCommitSettled(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	dave := srv.newUser(t, "dave")
	if _, err := alice.CreateGroup(ctx, "g", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)

	// build makes and stores a pending commit adding user, without
	// sending it.
	build := func(c *Client, user string) (*pendingCommit, []byte) {
		var pc *pendingCommit
		var convID []byte
		err := c.withLock(ctx, func() error {
			conn, err := c.connection(ctx)
			if err != nil {
				return err
			}
			r, err := c.resolve(ctx, "#g", false)
			if err != nil {
				return err
			}
			convID = r.ID
			kps, _, err := c.fetchKeyPackages(ctx, conn, user, xwingSuite)
			if err != nil {
				return err
			}
			return c.store.Update(func(tx *profile.Tx) error {
				g, err := loadGroup(tx, r.ID)
				if err != nil {
					return err
				}
				pc = &pendingCommit{ID: transport.NewMessageID(), Epoch: g.Epoch(), Added: []string{kps[0].DeviceID},
					Membership: &Membership{Added: []Sender{{User: user, Device: kps[0].DeviceID}}}}
				out, err := g.Commit(mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}})
				if err != nil {
					return err
				}
				pc.Payload, pc.Welcome = out.Commit, out.Welcome
				if err := saveGroup(tx, g); err != nil {
					return err
				}
				return tx.PutJSON(bucketPending, hexID(r.ID), pc)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return pc, convID
	}

	// 1. Stored by the server, response lost.
	pc, convID := build(alice, "carol")
	conn, _ := alice.connection(ctx)
	if _, err := conn.SendCommit(ctx, transport.Commit{ID: pc.ID, ConversationID: convID, Epoch: pc.Epoch,
		Payload: pc.Payload, Added: pc.Added, Welcome: pc.Welcome}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice) // settles: resend is a duplicate, merge
	mustSync(t, bob)
	mustSync(t, carol)
	for _, c := range []*Client{alice, bob, carol} {
		if g := groupState(t, c, hexID(convID)); g.Epoch() != pc.Epoch+1 || len(g.Members()) != 3 || g.HasPendingCommit() {
			t.Fatalf("%s: epoch %d, %d members, pending %v", c.Self().User, g.Epoch(), len(g.Members()), g.HasPendingCommit())
		}
	}
	if !bytes.Equal(groupState(t, alice, "#g").EpochAuthenticator(), groupState(t, carol, hexID(convID)).EpochAuthenticator()) {
		t.Fatal("alice and carol diverged")
	}

	// 2. Never reached the server; bob commits the epoch meanwhile.
	pc2, _ := build(alice, "dave")
	if err := bob.Rekey(ctx, "#g"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice) // resend conflicts: dropped; bob's commit processed
	g := groupState(t, alice, "#g")
	if g.HasPendingCommit() || g.Epoch() != pc2.Epoch+1 || len(g.Members()) != 3 {
		t.Fatalf("alice: epoch %d, %d members, pending %v", g.Epoch(), len(g.Members()), g.HasPendingCommit())
	}
	// The group works and alice can still add dave.
	if err := alice.AddMembers(ctx, "g", []string{"dave"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "#g", "all here")
	for _, c := range []*Client{bob, carol, dave} {
		if got := texts(mustSync(t, c)); !slices.Contains(got, "alice: all here") {
			t.Fatalf("%s got %q", c.Self().User, got)
		}
	}
}
