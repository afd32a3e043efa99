package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

func TestRegisterAndAuthenticate(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	if len(alice.id) == 0 {
		t.Fatal("no device id")
	}

	c := dial(t, ts)
	s, err := c.Authenticate(bg, alice.key)
	if err != nil || s.DeviceID != alice.id || s.Username != "alice" || s.BlobToken == "" {
		t.Fatalf("Authenticate = %+v, %v", s, err)
	}
	_, err = c.Authenticate(bg, alice.key)
	wantCode(t, "authenticate twice", err, parleypb.ErrorCode_BAD_REQUEST)

	c2 := dial(t, ts)
	_, err = c2.Authenticate(bg, newKey())
	wantCode(t, "unknown key", err, parleypb.ErrorCode_UNAUTHENTICATED)
	_, err = c2.Register(bg, "alice", newKey(), "")
	wantCode(t, "taken username", err, parleypb.ErrorCode_ALREADY_EXISTS)
	_, err = c2.Register(bg, "bob", alice.key, "")
	wantCode(t, "taken key", err, parleypb.ErrorCode_ALREADY_EXISTS)
	if _, err := c2.Register(bg, "Bad Name", newKey(), ""); err == nil {
		t.Fatal("bad username accepted")
	}
}

// A signature over another connection's challenge (a replay) is refused,
// and so is one made for another purpose.
func TestSignatureReplayRefused(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	// Sign the authenticate purpose with a wrong challenge via a
	// register on a new connection using a link-purpose signature: the
	// client library always signs correctly, so use raw frames.
	rc := dialRaw(t, ts)
	hello := rc.hello(t)
	pub := alice.key.Public().(ed25519.PublicKey)
	wrong := ed25519.Sign(alice.key, wire.ChallengeMessage(hello.Challenge, hello.AuthContext, wire.PurposeLink))
	f := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: &parleypb.AuthenticateRequest{PublicKey: pub, Signature: wrong}})
	if f.GetError().GetCode() != parleypb.ErrorCode_UNAUTHENTICATED {
		t.Fatalf("link signature accepted for authenticate: %v", f)
	}
	other := make([]byte, wire.ChallengeSize)
	replay := ed25519.Sign(alice.key, wire.ChallengeMessage(other, hello.AuthContext, wire.PurposeAuthenticate))
	f = rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: &parleypb.AuthenticateRequest{PublicKey: pub, Signature: replay}})
	if f.GetError().GetCode() != parleypb.ErrorCode_UNAUTHENTICATED {
		t.Fatalf("signature over another challenge accepted: %v", f)
	}
}

func TestInviteRegistration(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.Registration = server.RegistrationInvite })
	c := dial(t, ts)
	_, err := c.Register(bg, "alice", newKey(), "")
	wantCode(t, "no invite", err, parleypb.ErrorCode_INVALID_INVITE)
	_, err = c.Register(bg, "alice", newKey(), "bogus")
	wantCode(t, "bad invite", err, parleypb.ErrorCode_INVALID_INVITE)
	if err := ts.st.CreateInvite(bg, "good-code", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(bg, "alice", newKey(), "good-code"); err != nil {
		t.Fatalf("register with invite: %v", err)
	}
	_, err = dial(t, ts).Register(bg, "bob", newKey(), "good-code")
	wantCode(t, "reused invite", err, parleypb.ErrorCode_INVALID_INVITE)
}

func TestLinkDevice(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")

	newDev := dial(t, ts)
	k2 := newKey()
	code, expires, err := newDev.RequestLink(bg, "alice", k2)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 8 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("link code %q is not 8 digits", code)
	}
	if d := time.Until(expires); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("link expires in %v, want 10m", d)
	}
	_, err = newDev.Authenticate(bg, k2)
	wantCode(t, "authenticate before approval", err, parleypb.ErrorCode_UNAUTHENTICATED)
	_, err = bob.conn.ApproveLink(bg, code)
	wantCode(t, "approval by another account", err, parleypb.ErrorCode_NOT_FOUND)
	dev, err := alice.conn.ApproveLink(bg, code)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dev.PublicKey, k2.Public().(ed25519.PublicKey)) {
		t.Fatal("approved device has the wrong key")
	}
	if ev := nextEvent(t, newDev, transport.EventLinkApproved); ev.DeviceID != dev.ID {
		t.Fatalf("link approved push names %q, want %q", ev.DeviceID, dev.ID)
	}
	_, err = alice.conn.ApproveLink(bg, code)
	wantCode(t, "approve twice", err, parleypb.ErrorCode_NOT_FOUND)
	s, err := newDev.Authenticate(bg, k2)
	if err != nil || s.DeviceID != dev.ID || s.Username != "alice" {
		t.Fatalf("authenticate after approval: %+v, %v", s, err)
	}
	devs, err := alice.conn.ListDevices(bg)
	if err != nil || len(devs) != 2 {
		t.Fatalf("ListDevices = %+v, %v", devs, err)
	}
	if devs, _ := bob.conn.ListDevices(bg); len(devs) != 1 {
		t.Fatalf("bob sees %d devices", len(devs))
	}

	// Removing the device closes its sessions and deletes its key packages.
	if _, err := newDev.UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r"), Data: []byte("kp")}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.conn.RemoveDevice(bg, dev.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-newDev.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("removed device's connection stays open")
	}
	_, err = dial(t, ts).Authenticate(bg, k2)
	wantCode(t, "removed device authenticates", err, parleypb.ErrorCode_UNAUTHENTICATED)
	kps, err := bob.conn.FetchKeyPackages(bg, "alice")
	if err != nil || len(kps) != 0 {
		t.Fatalf("removed device's key packages still served: %+v, %v", kps, err)
	}
}

// Link requests are limited per source address, not per target account:
// a limit per account let anyone lock a user out of linking a device
// (five requests for "carol" with random keys did).
func TestLinkRateLimits(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	alice := register(t, ts, "alice")
	register(t, ts, "carol")
	mallory := dialFrom(t, ts, "203.0.113.9")
	var err error
	for i := range 20 {
		_, _, err = mallory.RequestLink(bg, "carol", newKey())
		if err != nil {
			if i < 10 {
				t.Fatalf("link request %d refused: %v", i, err)
			}
			break
		}
	}
	wantCode(t, "many link requests from one address", err, parleypb.ErrorCode_RATE_LIMITED)
	// Carol, elsewhere, can still link her new device.
	if _, _, err := dialFrom(t, ts, "198.51.100.7").RequestLink(bg, "carol", newKey()); err != nil {
		t.Fatalf("carol's own link request while mallory is limited: %v", err)
	}
	// A username that does not exist gets the same answer as one that
	// does: a code and an expiry.
	code, expires, err := dialFrom(t, ts, "198.51.100.8").RequestLink(bg, "nobody", newKey())
	if err != nil || len(code) != wire.LinkCodeDigits || time.Until(expires) < 5*time.Minute {
		t.Fatalf("link request for a missing account: %q %v %v; want a code like any other", code, expires, err)
	}
	for range 10 {
		_, err = alice.conn.ApproveLink(bg, "00000000")
		if errors.Is(err, wire.ErrRateLimited) {
			break
		}
		wantCode(t, "wrong code", err, parleypb.ErrorCode_NOT_FOUND)
	}
	_, err = alice.conn.ApproveLink(bg, "00000001")
	wantCode(t, "guessing codes", err, parleypb.ErrorCode_RATE_LIMITED)
}

func TestKeyPackages(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	n, err := alice.conn.UploadKeyPackages(bg, []transport.KeyPackage{
		{Ref: []byte("r1"), Data: []byte("kp1")}, {Ref: []byte("r2"), Data: []byte("kp2")},
	}, &transport.KeyPackage{Ref: []byte("rl"), Data: []byte("last")})
	if err != nil || n != 2 {
		t.Fatalf("UploadKeyPackages = %d, %v", n, err)
	}
	for i, want := range []string{"kp1", "kp2", "last", "last"} {
		got, err := bob.conn.FetchKeyPackages(bg, "alice")
		if err != nil || len(got) != 1 {
			t.Fatalf("fetch %d: %+v, %v", i, got, err)
		}
		if string(got[0].KeyPackage.Data) != want || got[0].DeviceID != alice.id || got[0].LastResort != (want == "last") {
			t.Fatalf("fetch %d = %+v, want %s", i, got[0], want)
		}
		// The owner is told to replenish (threshold 10), once until it
		// uploads more.
		if i == 0 {
			ev := nextEvent(t, alice.conn, transport.EventKeyPackagesLow)
			if ev.KeyPackagesRemaining != 1 {
				t.Fatalf("replenish notice says %d left, want 1", ev.KeyPackagesRemaining)
			}
		}
	}
	if ev, ok := pendingEvent(alice.conn, transport.EventKeyPackagesLow); ok {
		t.Fatalf("a second replenish notice before any upload: %+v", ev)
	}
	if _, err := alice.conn.UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r3"), Data: []byte("kp3")}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.conn.FetchKeyPackages(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, alice.conn, transport.EventKeyPackagesLow); ev.KeyPackagesRemaining != 0 {
		t.Fatalf("notice after the upload says %d left, want 0", ev.KeyPackagesRemaining)
	}
	s, err := dial(t, ts).Authenticate(bg, alice.key)
	if err != nil || s.KeyPackagesRemaining != 0 || s.KeyPackageLowThreshold != 10 {
		t.Fatalf("session key package count: %+v, %v", s, err)
	}
	_, err = bob.conn.FetchKeyPackages(bg, "nobody")
	wantCode(t, "unknown user", err, parleypb.ErrorCode_NOT_FOUND)
	_, err = alice.conn.UploadKeyPackages(bg, []transport.KeyPackage{{Data: []byte("no ref")}}, nil)
	wantCode(t, "package without ref", err, parleypb.ErrorCode_BAD_REQUEST)
}

func TestConversationThreeDevices(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	carol := register(t, ts, "carol")
	conv := group(t, "g1", alice, bob, carol)

	// Welcomes land in the added devices' inboxes and are pushed.
	for _, d := range []*device{bob, carol} {
		ev := nextEvent(t, d.conn, transport.EventInbox)
		if string(ev.Message.Payload) != "welcome-g1" || ev.Message.Kind != transport.KindWelcome || ev.Message.Epoch != 1 {
			t.Fatalf("welcome push = %+v", ev.Message)
		}
		in, _, err := d.conn.FetchInbox(bg, 0)
		if err != nil || len(in) != 1 || !bytes.Equal(in[0].ConversationID, conv) {
			t.Fatalf("inbox = %+v, %v", in, err)
		}
		if err := d.conn.AckInbox(bg, in[0].Seq); err != nil {
			t.Fatal(err)
		}
		if in, _, _ := d.conn.FetchInbox(bg, 0); len(in) != 0 {
			t.Fatal("acked welcome still in inbox")
		}
	}

	// Alice sends; one message is retried with the same id.
	var sent []string
	retryID := transport.NewMessageID()
	for i := range 5 {
		id := transport.NewMessageID()
		if i == 2 {
			id = retryID
		}
		p := fmt.Sprintf("alice-%d", i)
		r, err := alice.conn.SendApplication(bg, id, conv, 1, []byte(p))
		if err != nil || r.Duplicate {
			t.Fatalf("send %d: %+v, %v", i, r, err)
		}
		sent = append(sent, p)
	}
	r, err := alice.conn.SendApplication(bg, retryID, conv, 1, []byte("alice-2"))
	if err != nil || !r.Duplicate || r.Seq != 4 {
		t.Fatalf("retry: %+v, %v", r, err)
	}
	// Online members are pushed each message once, in order.
	for _, d := range []*device{bob, carol} {
		var pushed []string
		for range 5 {
			pushed = append(pushed, string(nextEvent(t, d.conn, transport.EventMessage).Message.Payload))
		}
		if !slices.Equal(pushed, sent) {
			t.Fatalf("pushes %v, want %v", pushed, sent)
		}
	}

	// Carol goes offline; bob keeps talking.
	carol.conn.Close()
	for i := range 3 {
		p := fmt.Sprintf("bob-%d", i)
		if _, err := bob.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte(p)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, p)
	}
	carol.reconnect(t, ts)
	ms := fetchAll(t, carol, conv)
	if !slices.Equal(payloads(ms), sent) {
		t.Fatalf("carol caught up with %v, want %v", payloads(ms), sent)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Seq != ms[i-1].Seq+1 {
			t.Fatalf("sequence gap: %d after %d", ms[i].Seq, ms[i-1].Seq)
		}
	}
	if ms[0].Sender != alice.id || ms[5].Sender != bob.id || ms[0].Epoch != 1 || ms[0].Kind != transport.KindApplication {
		t.Fatalf("message metadata: %+v / %+v", ms[0], ms[5])
	}
	infos, err := carol.conn.ListConversations(bg)
	if err != nil || len(infos) != 1 || infos[0].HeadSeq != ms[len(ms)-1].Seq || infos[0].Cursor != 1 || len(infos[0].Members) != 3 {
		t.Fatalf("ListConversations = %+v, %v", infos, err)
	}

	// Paging.
	page, more, err := carol.conn.Fetch(bg, conv, 3)
	if err != nil || len(page) != 3 || !more {
		t.Fatalf("page: %d, %v, %v", len(page), more, err)
	}

	// Acks: once every member acknowledged, the messages are deleted.
	// The adding commit was trimmed already: every member was past it.
	if n := countRows(t, ts, "messages"); n != 8 {
		t.Fatalf("%d messages stored, want 8", n)
	}
	last := ms[len(ms)-1].Seq
	for _, d := range []*device{alice, bob, carol} {
		if err := d.conn.Ack(bg, conv, last); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRows(t, ts, "messages"); n != 0 {
		t.Fatalf("%d messages left after everyone acked", n)
	}
	if ms := fetchAll(t, carol, conv); len(ms) != 0 {
		t.Fatalf("fetch after ack: %v", payloads(ms))
	}
	err = carol.conn.Ack(bg, conv, last+10)
	wantCode(t, "ack beyond head", err, parleypb.ErrorCode_BAD_REQUEST)
}

// countRows reads the server's database directly.
func countRows(t *testing.T, ts *testServer, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.dir, "parley.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEpochConflict(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	conv := group(t, "g", alice, bob)

	// Both commit in epoch 1 at the same time: exactly one wins.
	type result struct {
		who string
		r   transport.SendResult
		err error
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	for _, d := range []*device{alice, bob} {
		wg.Go(func() {
			r, err := d.conn.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 1, Payload: []byte("commit by " + d.user)})
			results <- result{d.user, r, err}
		})
	}
	wg.Wait()
	close(results)
	var winner, loser result
	for r := range results {
		if r.err == nil {
			winner = r
		} else {
			loser = r
		}
	}
	if winner.who == "" || loser.who == "" {
		t.Fatalf("want one winner and one loser, got %+v / %+v", winner, loser)
	}
	if winner.r.Epoch != 2 {
		t.Fatalf("winner epoch %d", winner.r.Epoch)
	}
	var ce *transport.EpochConflictError
	if !errors.As(loser.err, &ce) || !errors.Is(loser.err, wire.ErrEpochConflict) {
		t.Fatalf("loser got %v, want EPOCH_CONFLICT", loser.err)
	}
	if string(ce.Winner.Payload) != "commit by "+winner.who || ce.Winner.Seq != winner.r.Seq || ce.Winner.Epoch != 1 || ce.Winner.Kind != transport.KindCommit {
		t.Fatalf("conflict carries %+v", ce.Winner)
	}
	// The loser rebases onto epoch 2 and wins that one.
	d := map[string]*device{"alice": alice, "bob": bob}[loser.who]
	r, err := d.conn.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 2, Payload: []byte("rebased")})
	if err != nil || r.Epoch != 3 {
		t.Fatalf("rebased commit: %+v, %v", r, err)
	}
	// Future epochs are refused.
	_, err = alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 9, []byte("x"))
	wantCode(t, "future epoch", err, parleypb.ErrorCode_WRONG_EPOCH)
	_, err = alice.conn.SendProposal(bg, transport.NewMessageID(), conv, 1, []byte("x"))
	wantCode(t, "stale proposal", err, parleypb.ErrorCode_WRONG_EPOCH)
}

func TestRemovedDeviceRefused(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	carol := register(t, ts, "carol")
	conv := group(t, "g", alice, bob, carol)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("before")); err != nil {
		t.Fatal(err)
	}
	commit := transport.NewMessageID()
	r, err := alice.conn.SendCommit(bg, transport.Commit{ID: commit, ConversationID: conv, Epoch: 1, Payload: []byte("remove carol"), Removed: []string{carol.id}})
	if err != nil {
		t.Fatal(err)
	}
	// Another account's removal waits for the other members' verdicts
	// (docs/protocol.md §14): until bob accepts, carol still posts.
	if _, err := carol.conn.SendApplication(bg, transport.NewMessageID(), conv, 2, []byte("not yet removed")); err != nil {
		t.Fatalf("carol posts before the verdicts: %v", err)
	}
	if err := bob.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: commit}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 2, []byte("after")); err != nil {
		t.Fatal(err)
	}
	_, err = carol.conn.SendApplication(bg, transport.NewMessageID(), conv, 2, []byte("still here?"))
	wantCode(t, "removed device sends", err, parleypb.ErrorCode_NOT_MEMBER)
	ms := fetchAll(t, carol, conv)
	if !slices.Equal(payloads(ms), []string{"before", "remove carol"}) {
		t.Fatalf("removed device reads %v", payloads(ms))
	}
	if err := carol.conn.Ack(bg, conv, r.Seq); err != nil {
		t.Fatal(err)
	}
	_, _, err = carol.conn.Fetch(bg, conv, 0)
	wantCode(t, "removed device fetches after its removal", err, parleypb.ErrorCode_NOT_MEMBER)
	if ms := fetchAll(t, bob, conv); !slices.Equal(payloads(ms), []string{"before", "remove carol", "not yet removed", "after"}) {
		t.Fatalf("bob reads %v", payloads(ms))
	}
}

// TestAckVerdictsBadInput: verdicts with a malformed commit id, or too
// many in one ack, are BAD_REQUEST and change nothing; verdicts on a
// commit nothing is pending for are ignored.
func TestAckVerdictsBadInput(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	carol := register(t, ts, "carol")
	conv := group(t, "g", alice, bob, carol)
	commit := transport.NewMessageID()
	if _, err := alice.conn.SendCommit(bg, transport.Commit{ID: commit, ConversationID: conv, Epoch: 1, Payload: []byte("remove carol"), Removed: []string{carol.id}}); err != nil {
		t.Fatal(err)
	}
	err := bob.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: []byte("short")})
	wantCode(t, "short commit id", err, parleypb.ErrorCode_BAD_REQUEST)
	many := make([]transport.Verdict, 1001)
	for i := range many {
		many[i] = transport.Verdict{CommitID: commit}
	}
	err = bob.conn.Ack(bg, conv, 0, many...)
	wantCode(t, "too many verdicts", err, parleypb.ErrorCode_BAD_REQUEST)
	// A valid verdict first, then a malformed one: the frame is refused
	// whole, so bob's acceptance was not counted.
	err = bob.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: commit}, transport.Verdict{CommitID: nil})
	wantCode(t, "one malformed verdict", err, parleypb.ErrorCode_BAD_REQUEST)
	if _, err := carol.conn.SendApplication(bg, transport.NewMessageID(), conv, 2, []byte("still a member")); err != nil {
		t.Fatalf("carol removed by a refused ack: %v", err)
	}
	// Verdicts on something with nothing pending: ignored.
	if err := bob.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: transport.NewMessageID()}); err != nil {
		t.Fatal(err)
	}
	if err := bob.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: commit}); err != nil {
		t.Fatal(err)
	}
	_, err = carol.conn.SendApplication(bg, transport.NewMessageID(), conv, 2, []byte("removed"))
	wantCode(t, "carol after bob accepted", err, parleypb.ErrorCode_NOT_MEMBER)
}

// TestRestartLosesNothingAcknowledged sends messages concurrently while
// the server shuts down, restarts it on the same data directory and
// checks every acknowledged message is there exactly once.
func TestRestartLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, nil)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	conv := group(t, "g", alice, bob)

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stopSending := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopSending:
					return
				default:
				}
				p := fmt.Sprintf("w%d-%d", w, i)
				if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte(p)); err != nil {
					return // the connection went away with the server
				}
				mu.Lock()
				acked[p] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	ts.stop()
	close(stopSending)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("nothing was sent before shutdown")
	}
	select {
	case <-alice.conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open after shutdown")
	}

	ts2 := startServer(t, dir, nil)
	bob.reconnect(t, ts2)
	got := map[string]int{}
	for {
		ms, more, err := bob.conn.Fetch(bg, conv, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			got[string(m.Payload)]++
		}
		if len(ms) > 0 {
			if err := bob.conn.Ack(bg, conv, ms[len(ms)-1].Seq); err != nil {
				t.Fatal(err)
			}
		}
		if !more {
			break
		}
	}
	for p := range acked {
		if got[p] != 1 {
			t.Fatalf("acknowledged message %q found %d times after restart", p, got[p])
		}
	}
	t.Logf("%d messages acknowledged before shutdown, %d stored", len(acked), len(got))
	// The conversation continues where it was.
	alice.reconnect(t, ts2)
	if _, err := alice.conn.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 1, Payload: []byte("c")}); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
}

func TestBlobs(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.MaxAttachment = 1 << 20 })
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	data := bytes.Repeat([]byte("encrypted attachment "), 40000)
	var progress int64
	id, err := alice.conn.UploadBlob(bg, bytes.NewReader(data), int64(len(data)), func(n int64) { progress = n })
	if err != nil {
		t.Fatal(err)
	}
	if progress != int64(len(data)) {
		t.Fatalf("progress reached %d of %d", progress, len(data))
	}
	var buf bytes.Buffer
	n, err := bob.conn.DownloadBlob(bg, id, &buf, nil)
	if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("download: %d, %v", n, err)
	}
	big := make([]byte, 1<<20+1)
	_, err = alice.conn.UploadBlob(bg, bytes.NewReader(big), int64(len(big)), nil)
	var he *transport.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized upload: %v", err)
	}
	_, err = bob.conn.DownloadBlob(bg, "00000000000000000000000000000000", io.Discard, nil)
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown blob: %v", err)
	}
	// Unauthenticated HTTP requests are refused.
	for _, mk := range []func() *http.Request{
		func() *http.Request { return mustRequest(t, "POST", ts.url+"/v1/blobs", "x") },
		func() *http.Request { return mustRequest(t, "GET", ts.url+"/v1/blobs/"+id, "") },
	} {
		for _, auth := range []string{"", "Bearer nope", "Basic " + alice.conn.Session().BlobToken} {
			req := mk()
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s with %q: %d", req.Method, req.URL, auth, resp.StatusCode)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(ts.dir, "blobs"))
	files := 0
	for _, e := range entries {
		if !e.IsDir() {
			files++
		}
	}
	if files != 1 {
		t.Fatalf("%d blob files, want 1 (refused uploads must leave nothing)", files)
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestPayloadStoredAsGiven: the server neither transforms nor inspects
// payloads; the bytes stored and served are exactly those sent.
func TestPayloadStoredAsGiven(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	payload := append([]byte("CANARY-7f3a9c opaque\x00\xff"), bytes.Repeat([]byte{0}, 100)...)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, payload); err != nil {
		t.Fatal(err)
	}
	ms := fetchAll(t, bob, conv)
	if len(ms) != 1 || !bytes.Equal(ms[0].Payload, payload) {
		t.Fatalf("payload changed in transit: %q", ms[0].Payload)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.dir, "parley.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stored []byte
	if err := db.QueryRow(`SELECT payload FROM messages WHERE kind = 3`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, payload) {
		t.Fatal("stored payload differs from what was sent")
	}
}

// Metrics are for operators: on the main listener only with the token.
func TestMetrics(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.MetricsToken = "s3cret" })
	register(t, ts, "alice")
	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret0"} {
		req, _ := http.NewRequest("GET", ts.url+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/metrics with %q: %s, want 401", auth, resp.Status)
		}
	}
	if resp, err := http.Get(newServer(t).url + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics without a token configured: %v %v, want 404", resp, err)
	}
	req, _ := http.NewRequest("GET", ts.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`parleyd_requests_total{code="OK",type="register"} 1`, "parleyd_websocket_connections 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestShutdownRefusesNewConnections(t *testing.T) {
	ts := newServer(t)
	ts.stop()
	if _, err := transport.Dial(context.Background(), ts.url, nil); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestRetentionSweeper(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Retention = 200 * time.Millisecond
		c.SweepInterval = 20 * time.Millisecond
	})
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("ephemeral")); err != nil {
		t.Fatal(err)
	}
	id, err := alice.conn.UploadBlob(bg, strings.NewReader("blob"), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ms := fetchAll(t, bob, conv); len(ms) != 1 {
		t.Fatalf("fresh message missing: %v", payloads(ms))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := fetchAll(t, bob, conv)
		in, _, _ := bob.conn.FetchInbox(bg, 0)
		_, blobErr := bob.conn.DownloadBlob(bg, id, io.Discard, nil)
		if len(ms) == 0 && len(in) == 0 && blobErr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not delete: %d messages, %d welcomes, blob err %v", len(ms), len(in), blobErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The conversation goes on with fresh sequence numbers.
	r, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("later"))
	if err != nil || r.Seq != 3 {
		t.Fatalf("send after retention: %+v, %v", r, err)
	}
}
