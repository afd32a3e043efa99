package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/wire"
)

func TestFollowDeliversPushedMessages(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "before follow")
	mustSync(t, bob)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Message, 16)
	done := make(chan error, 1)
	go func() { done <- bob.Follow(ctx, func(m Message) { got <- m }) }()
	for _, text := range []string{"pushed 1", "pushed 2"} {
		mustSend(t, alice, "@bob", text)
	}
	var texts []string
	timeout := time.After(20 * time.Second)
	for len(texts) < 2 {
		select {
		case m := <-got:
			if m.Kind == KindText {
				texts = append(texts, m.Text)
			}
		case err := <-done:
			t.Fatalf("Follow ended: %v", err)
		case <-timeout:
			t.Fatalf("only got %q", texts)
		}
	}
	if !slices.Equal(texts, []string{"pushed 1", "pushed 2"}) {
		t.Fatalf("got %q", texts)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
}

func TestKeyPackagesReplenished(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	bobDev := bob.Self().DeviceID
	// New conversations use X-Wing: those are the packages that run low.
	count := func() int {
		t.Helper()
		m, err := srv.store.KeyPackageCounts(ctx, bobDev)
		if err != nil {
			t.Fatal(err)
		}
		return m[uint16(xwingSuite)]
	}
	m, err := srv.store.KeyPackageCounts(ctx, bobDev)
	if err != nil || len(m) != 2 || m[uint16(xwingSuite)] != 20 || m[uint16(classicSuite)] != 20 {
		t.Fatalf("bob has %v key packages per suite after init (%v), want 20 of X-Wing and 20 of suite 1", m, err)
	}
	// Every group alice creates with bob consumes one of bob's packages.
	for i := range 15 {
		if _, err := alice.CreateGroup(ctx, "g"+string(rune('a'+i)), []string{"bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 5 {
		t.Fatalf("bob has %d key packages, want 5", n)
	}
	// bob is online: the server pushed "low"; his next sync tops up.
	msgs := mustSync(t, bob)
	if n := count(); n < 10 {
		t.Fatalf("bob has %d key packages after sync, want at least 10", n)
	}
	joined := 0
	for _, m := range msgs {
		if m.Kind == KindMembership {
			joined++
		}
	}
	if joined != 15 {
		t.Fatalf("bob joined %d groups, want 15", joined)
	}
	// A fresh connection (another process) also tops up.
	opts := bob.opts
	bob.Close()
	for i := range 12 {
		if _, err := alice.CreateGroup(ctx, "h"+string(rune('a'+i)), []string{"bob"}); err != nil {
			t.Fatal(err)
		}
	}
	bob2, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	if err := bob2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n < 10 {
		t.Fatalf("bob has %d key packages after reconnecting, want at least 10", n)
	}
	// Suite 1's packages were not touched, so none were added either.
	if m, _ := srv.store.KeyPackageCounts(ctx, bobDev); m[uint16(classicSuite)] != 20 {
		t.Fatalf("bob has %d suite-1 key packages, want the 20 of init", m[uint16(classicSuite)])
	}
	// Even with no packages left, the last-resort one lets people add bob.
	if got := mustSync(t, bob2); len(got) < 12 {
		t.Fatalf("bob joined %d, want 12", len(got))
	}
}

func TestDirectConversationRefusesThirdParty(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	srv.newUser(t, "mallory")
	mustSend(t, alice, "@bob", "just us")
	mustSync(t, bob)
	// bob (or a compromised bob device) adds mallory to the 1:1.
	err := bob.withLock(ctx, func() error {
		r, err := bob.resolve(ctx, "@alice", false)
		if err != nil {
			return err
		}
		return bob.addUsers(ctx, r, []string{"mallory"}, false, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	_, err = alice.SendText(ctx, "@bob", "secret for bob only")
	if !errors.Is(err, ErrNotDirect) || !strings.Contains(err.Error(), "mallory") {
		t.Fatalf("send to a direct conversation with a third member: %v", err)
	}
}

func TestPayloadChecks(t *testing.T) {
	id := strings.Repeat("ab", 16)
	good := `{"v":1,"id":"` + id + `","kind":"text","sent_at":1,"text":"hi"}`
	if _, err := decodePayload([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"v":2,"id":"` + id + `","kind":"text"}`,
		`{"v":1,"id":"abc","kind":"text"}`,
		`{"v":1,"id":"` + id + `","kind":"shout"}`,
		`{"v":1,"id":"` + id + `","kind":"file"}`,
		`{"v":1,"id":"` + id + `","kind":"file","file":{"blob":"x","key":"AAAA","sha256":"AAAA","name":"a","size":1}}`,
		`{"v":1,"id":"` + id + `","kind":"receipt","receipts":[]}`,
		`{"v":1,"id":"` + id + `","kind":"receipt","receipts":["zz"]}`,
		`{"v":1,"id":"` + id + `","kind":"meta","group":{"name":"no spaces allowed"}}`,
		`[]`,
	} {
		if _, err := decodePayload([]byte(bad)); !errors.Is(err, errBadPayload) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := parseIdentity([]byte("alice/dev")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"alice", "/dev", "Alice/dev", "alice/", ""} {
		if _, err := parseIdentity([]byte(bad)); err == nil {
			t.Errorf("identity %q accepted", bad)
		}
	}
	if got := safeName("../../etc/passwd"); got != "passwd" {
		t.Errorf("safeName = %q", got)
	}
	if got := safeName(".bashrc"); got != "attachment.bashrc" {
		t.Errorf("safeName = %q", got)
	}
	if a, b := directID("alice", "bob"), directID("bob", "alice"); hex.EncodeToString(a) != hex.EncodeToString(b) {
		t.Error("directID depends on order")
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"abababababababababababababababab","kind":"text","sent_at":1,"text":"hi"}`))
	f.Add([]byte(`{"v":1,"id":"abababababababababababababababab","kind":"receipt","receipts":["abababababababababababababababab"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePayload(b)
		if err != nil {
			return
		}
		if p.V != payloadVersion || len(p.Text) > maxTextBytes {
			t.Fatalf("accepted %+v", p)
		}
		if p.Kind == KindFile && (p.File == nil || len(p.File.Key) != 32) {
			t.Fatalf("accepted file without key")
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte("alice/0123"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseIdentity(b)
		if err == nil && string(credentialIdentity(s.User, s.Device)) != string(b) {
			t.Fatalf("%q does not round-trip", b)
		}
	})
}

func TestFollowSurvivesServerRestart(t *testing.T) {
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "before restart")
	mustSync(t, bob)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Message, 16)
	done := make(chan error, 1)
	go func() { done <- bob.Follow(ctx, func(m Message) { got <- m }) }()
	time.Sleep(200 * time.Millisecond)
	srv.restart(t)
	mustSend(t, alice, "@bob", "after restart")
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-got:
			if m.Text == "after restart" {
				cancel()
				<-done
				return
			}
		case err := <-done:
			t.Fatalf("Follow ended: %v", err)
		case <-timeout:
			t.Fatal("no message after the restart")
		}
	}
}

func TestTamperedFileRejected(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	path := filepath.Join(t.TempDir(), "doc.bin")
	if err := os.WriteFile(path, bytes.Repeat([]byte("data"), 50000), 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendFile(ctx, "@bob", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	// Flip one byte of the stored ciphertext on the server.
	var blobPath string
	filepath.WalkDir(filepath.Join(srv.dataDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && blobstore.ValidID(d.Name()) {
			blobPath = p
		}
		return nil
	})
	data, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(blobPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, _, err := bob.GetFile(ctx, sent.ID, out, nil); !errors.Is(err, filecrypt.ErrAuth) {
		t.Fatalf("tampered download: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a tampered file was written")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Fatalf("left behind %d files", len(entries))
	}
}

func TestRateLimitedSendsAreRetried(t *testing.T) {
	srv := startServerWith(t, func(cfg *server.Config) {
		cfg.Limits.SendPerAccount = server.Limit{N: 3, Per: time.Second}
	})
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	var want []string
	for i := range 8 {
		text := fmt.Sprintf("burst %d", i)
		mustSend(t, alice, "@bob", text)
		want = append(want, "alice: "+text)
	}
	if got := texts(mustSync(t, bob)); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
}

// TestSyncAddsMissingOwnDevices links a device whose approval added it
// nowhere (as if the approving device crashed); the next sync of any
// other device of the account adds it to that device's conversations.
func TestSyncAddsMissingOwnDevices(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	phone := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	mustSend(t, phone, "@bob", "hi")
	if _, err := phone.CreateGroup(ctx, "club", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)

	codes := make(chan string, 1)
	done := make(chan *Client, 1)
	go func() {
		c, err := LinkDevice(ctx, testOptions(t, "laptop"), srv.url, "alice", func(code string, _ time.Time) { codes <- code })
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	code := <-codes
	if _, err := phone.approveLink(ctx, code); err != nil { // approve and sign only
		t.Fatal(err)
	}
	laptop := <-done
	if laptop == nil {
		t.FailNow()
	}
	defer laptop.Close()

	mustSync(t, phone) // heals: adds the laptop to both conversations
	mustSend(t, bob, "@alice", "to all of alice")
	mustSend(t, bob, "#club", "club news")
	got := texts(mustSync(t, laptop))
	if !slices.Equal(got, []string{"bob: to all of alice", "bob: club news"}) {
		t.Fatalf("laptop got %q", got)
	}
	if n := len(groupState(t, laptop, "#club").Members()); n != 3 {
		t.Fatalf("#club has %d members", n)
	}
	// Nothing more to heal: no further commits.
	before := groupState(t, phone, "#club").Epoch()
	mustSync(t, phone)
	mustSync(t, laptop)
	if after := groupState(t, phone, "#club").Epoch(); after != before {
		t.Fatalf("epoch moved from %d to %d without a change", before, after)
	}
}

// TestLinkOutlastsAuthTimeout approves a link after the server has
// closed the new device's unauthenticated connection.
func TestLinkOutlastsAuthTimeout(t *testing.T) {
	ctx := context.Background()
	srv := startServerWith(t, func(cfg *server.Config) { cfg.AuthTimeout = time.Second })
	phone := srv.newUser(t, "alice")
	codes := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		c, err := LinkDevice(ctx, testOptions(t, "laptop"), srv.url, "alice", func(code string, _ time.Time) { codes <- code })
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	code := <-codes
	time.Sleep(2500 * time.Millisecond) // outlast the 1 s auth timeout
	if _, _, err := phone.ApproveDevice(ctx, code, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("link: %v", err)
	}
}

// refusingStore refuses application messages (NOT_MEMBER) while refuse is
// set, as a server does for a device removed meanwhile.
type refusingStore struct {
	store.Store
	refuse atomic.Bool
}

func (r *refusingStore) Append(ctx context.Context, a store.Append) (store.AppendResult, error) {
	if r.refuse.Load() && a.Kind == store.KindApplication {
		return store.AppendResult{}, store.ErrNotMember
	}
	return r.Store.Append(ctx, a)
}

// A file whose message the server refuses is deleted from the server
// again: no one can fetch it, and it would count against the sender's
// attachment quota until it expired.
func TestRefusedFileSendDeletesBlob(t *testing.T) {
	ctx := context.Background()
	var rs *refusingStore
	srv := startServerWith(t, func(c *server.Config) {
		rs = &refusingStore{Store: c.Store}
		c.Store = rs
	})
	alice := srv.newUser(t, "alice")
	srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	path := filepath.Join(t.TempDir(), "doc.bin")
	if err := os.WriteFile(path, bytes.Repeat([]byte("data"), 50000), 0o600); err != nil {
		t.Fatal(err)
	}
	blobs := func() int {
		entries, _ := os.ReadDir(filepath.Join(srv.dataDir, "blobs"))
		n := 0
		for _, e := range entries {
			if blobstore.ValidID(e.Name()) {
				n++
			}
		}
		return n
	}
	rs.refuse.Store(true)
	if _, err := alice.SendFile(ctx, "@bob", path, nil); !errors.Is(err, wire.ErrNotMember) {
		t.Fatalf("SendFile refused by the server: %v, want NOT_MEMBER", err)
	}
	if n := blobs(); n != 0 {
		t.Fatalf("%d blobs on the server after a refused file send, want 0", n)
	}
	rs.refuse.Store(false)
	if _, err := alice.SendFile(ctx, "@bob", path, nil); err != nil {
		t.Fatal(err)
	}
	if n := blobs(); n != 1 {
		t.Fatalf("%d blobs on the server after a file send, want 1", n)
	}
}

// History is in the server's order on every device, even where a device
// stored its own message (at the ack) before an earlier one from someone
// else (at its next sync).
func TestHistoryInServerOrder(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "one")
	mustSync(t, bob)
	mustSend(t, bob, "@alice", "two (bob)")     // seq n
	mustSend(t, alice, "@bob", "three (alice)") // seq n+1, stored by alice first
	mustSync(t, alice)
	h, err := alice.History(ctx, "@bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var last uint64
	for _, m := range h {
		if m.Kind == KindText {
			got = append(got, m.Text)
			if m.Seq < last {
				t.Fatalf("history out of order: seq %d after %d", m.Seq, last)
			}
			last = m.Seq
		}
	}
	if !slices.Equal(got, []string{"one", "two (bob)", "three (alice)"}) {
		t.Fatalf("alice's history: %q", got)
	}
}

// inLogOrder: what a device stored out of order (its own message at the
// ack, an earlier one at the next sync) is listed in the server's order;
// local notes (no seq) stay after what was stored before them.
func TestInLogOrder(t *testing.T) {
	in := []Message{{Text: "a", Seq: 1}, {Text: "note", Seq: 0}, {Text: "mine", Seq: 4}, {Text: "theirs", Seq: 3}, {Text: "b", Seq: 5}}
	var got []string
	for _, m := range inLogOrder(in) {
		got = append(got, m.Text)
	}
	if want := []string{"a", "note", "theirs", "mine", "b"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Read receipts: one line per reader however many devices read it, with
// the message's first words; an account's own devices report nothing to
// it. (Fails without the readby bookkeeping.)
func TestReceiptsPerReader(t *testing.T) {
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hello")
	mustSync(t, bob)
	bobLaptop := srv.linkDevice(t, bob, "bob-laptop")
	aliceLaptop := srv.linkDevice(t, alice, "alice-laptop")
	mustSync(t, alice)
	mustSync(t, aliceLaptop)
	mustSend(t, alice, "@bob", "see you at the station tomorrow morning at nine")
	mustSync(t, bob)
	mustSync(t, bobLaptop)
	mustSend(t, bob, "@alice", "ok") // aliceLaptop reads it and sends a receipt
	mustSync(t, aliceLaptop)
	var receipts []string
	for _, m := range mustSync(t, alice) {
		if m.Kind == KindReceipt {
			receipts = append(receipts, m.Text)
		}
	}
	want := "read by bob: \u201csee you at the station tomorrow \u2026\u201d"
	if len(receipts) != 1 || receipts[0] != want {
		t.Fatalf("alice's receipts: %q, want just %q", receipts, want)
	}
}
