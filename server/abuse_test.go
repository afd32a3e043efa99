package server_test

// Attacks by one ordinary account on others, mounted through a real server
// on loopback. Mallory speaks the protocol frame by frame (rawConn) where
// the client library would refuse to send what she sends. Each test fails
// when the defence it names is switched off; docs/abuse.md lists them.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// authRaw opens a raw connection authenticated as d.
func authRaw(t *testing.T, ts *testServer, d *device) *rawConn {
	t.Helper()
	rc := dialRaw(t, ts)
	h := rc.hello(t)
	if f := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(d, h)}); f.GetSession() == nil {
		t.Fatalf("authenticate %s: %v", d.user, f)
	}
	return rc
}

// errCode is the error code of a response frame (0 for success).
func errCode(f *parleypb.ServerFrame) parleypb.ErrorCode { return f.GetError().GetCode() }

// invite has from create conversation conv and commit adding the devices
// with a Welcome of n bytes; it returns the commit's response.
func invite(t *testing.T, from *rawConn, conv []byte, n int, added ...string) *parleypb.ServerFrame {
	t.Helper()
	if f := from.call(t, &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: conv}}); errCode(f) != 0 {
		t.Fatalf("create conversation: %v", f.GetError())
	}
	return from.call(t, &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{
		MessageId: transport.NewMessageID(), ConversationId: conv, Epoch: 0, Kind: parleypb.Kind_COMMIT,
		Payload: []byte("commit"), AddedDeviceIds: added, Welcome: bytes.Repeat([]byte("w"), n)}})
}

// Inbox poisoning: ten commits adding alice with a 900 KiB Welcome each
// made her inbox ~9 MiB; FetchInbox answered it in one response, over the
// connection's 8 MiB outbound limit, so the server closed every sync of
// hers. With the inbox byte budget she fetches it in parts. (Fails with
// the budget removed from handleFetchInbox: the connection is closed.)
func TestHostileInboxPoisoningBudget(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.MaxWelcome = 1 << 20                                      // the attack as reported
		c.InboxLimits.PerSender, c.InboxLimits.Total = 1<<40, 1<<40 // caps off: the budget alone
		c.Limits.RequestsPerAccount = server.Unlimited              // 9 MiB from mallory at once
	})
	alice, mallory := register(t, ts, "alice"), register(t, ts, "mallory")
	m := authRaw(t, ts, mallory)
	for i := range 10 {
		if f := invite(t, m, fmt.Appendf(nil, "poison-%d", i), 900<<10, alice.id); errCode(f) != 0 {
			t.Fatalf("poison %d: %v", i, f.GetError())
		}
	}
	a := authRaw(t, ts, alice)
	var got int
	for round := 0; got < 10; round++ {
		if round > 10 {
			t.Fatalf("inbox not read after %d fetches (%d of 10)", round, got)
		}
		f := a.call(t, &parleypb.ClientFrame_FetchInbox{FetchInbox: &parleypb.FetchInboxRequest{Limit: 100}})
		if errCode(f) != 0 {
			t.Fatalf("fetch inbox: %v", f.GetError())
		}
		ms := f.GetFetchInbox().GetMessages()
		var size int
		for _, m := range ms {
			size += len(m.Payload)
		}
		if size > 4<<20+900<<10 {
			t.Fatalf("one inbox response carried %d bytes", size)
		}
		got += len(ms)
		if len(ms) == 0 {
			t.Fatalf("empty inbox response with %d of 10 read", got)
		}
		if f := a.call(t, &parleypb.ClientFrame_AckInbox{AckInbox: &parleypb.AckInboxRequest{Seq: ms[len(ms)-1].Seq}}); errCode(f) != 0 {
			t.Fatalf("ack inbox: %v", f.GetError())
		}
	}
}

// The same attack meets the caps: a Welcome over MaxWelcome is refused,
// and one account may keep at most InboxLimits.PerSender bytes in another
// device's inbox until it is read, while others can still invite her.
// (Fails without the checks in checkSend and Append.)
func TestHostileInboxPoisoningCaps(t *testing.T) {
	ts := startServer(t, t.TempDir(), nil) // defaults: 512 KiB Welcome, 2 MiB per sender
	alice, mallory, carol := register(t, ts, "alice"), register(t, ts, "mallory"), register(t, ts, "carol")
	m := authRaw(t, ts, mallory)
	if f := invite(t, m, []byte("huge"), 900<<10, alice.id); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("900 KiB Welcome: %v, want BAD_REQUEST", f.GetError())
	}
	var accepted int
	for i := range 10 {
		f := invite(t, m, fmt.Appendf(nil, "poison-%d", i), 400<<10, alice.id)
		if errCode(f) == parleypb.ErrorCode_INBOX_FULL {
			break
		}
		if errCode(f) != 0 {
			t.Fatalf("poison %d: %v", i, f.GetError())
		}
		accepted++
	}
	if accepted != 5 { // 5 × 400 KiB fit in 2 MiB, the 6th does not
		t.Fatalf("%d invitations of 400 KiB accepted before INBOX_FULL, want 5", accepted)
	}
	c := authRaw(t, ts, carol)
	if f := invite(t, c, []byte("carol-group"), 1000, alice.id); errCode(f) != 0 {
		t.Fatalf("carol's invitation while mallory is capped: %v", f.GetError())
	}
	// Once alice has read her inbox, mallory may invite again.
	ms, _, err := alice.conn.FetchInbox(bg, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.conn.AckInbox(bg, ms[len(ms)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if f := invite(t, m, []byte("after-read"), 400<<10, alice.id); errCode(f) != 0 {
		t.Fatalf("invitation after alice read her inbox: %v", f.GetError())
	}
}

// A blocked account can add none of the blocker's devices to anything; an
// account that takes group invitations only from contacts can be added to
// groups only by accounts it has a direct conversation with. A refused
// commit stores nothing, and the answer does not say which rule applied.
// (Fails without checkInvitations.)
func TestHostileBlockedInvitations(t *testing.T) {
	ts := newServer(t)
	alice, mallory, carol := register(t, ts, "alice"), register(t, ts, "mallory"), register(t, ts, "carol")
	if _, err := alice.conn.UpdatePrivacy(bg, []string{"mallory"}, nil, transport.GroupInvitesUnchanged); err != nil {
		t.Fatal(err)
	}
	m := authRaw(t, ts, mallory)
	blocked := invite(t, m, []byte("mallory-group"), 100, alice.id)
	if errCode(blocked) != parleypb.ErrorCode_PERMISSION_DENIED {
		t.Fatalf("blocked account's group invitation: %v, want PERMISSION_DENIED", blocked.GetError())
	}
	direct := wire.DirectConversationID("mallory", "alice")
	if f := m.call(t, &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: direct, DirectPeer: "alice"}}); errCode(f) != 0 {
		t.Fatal(f.GetError())
	}
	f := m.call(t, &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: transport.NewMessageID(), ConversationId: direct,
		Kind: parleypb.Kind_COMMIT, Payload: []byte("c"), AddedDeviceIds: []string{alice.id}, Welcome: []byte("w")}})
	if errCode(f) != parleypb.ErrorCode_PERMISSION_DENIED {
		t.Fatalf("blocked account's direct invitation: %v, want PERMISSION_DENIED", f.GetError())
	}
	if ms, _, err := alice.conn.FetchInbox(bg, 10); err != nil || len(ms) != 0 {
		t.Fatalf("alice's inbox after refused invitations: %d entries, %v", len(ms), err)
	}

	// Contacts only: carol, a stranger, cannot add alice to a group, but
	// can start a direct conversation; then she can.
	p, err := alice.conn.UpdatePrivacy(bg, nil, nil, transport.GroupInvitesContacts)
	if err != nil || !slices.Equal(p.Blocked, []string{"mallory"}) || p.GroupInvites != transport.GroupInvitesContacts {
		t.Fatalf("privacy = %+v, %v", p, err)
	}
	c := authRaw(t, ts, carol)
	stranger := invite(t, c, []byte("carol-group"), 100, alice.id)
	if errCode(stranger) != parleypb.ErrorCode_PERMISSION_DENIED {
		t.Fatalf("stranger's group invitation under contacts-only: %v", stranger.GetError())
	}
	if blocked.GetError().GetMessage() != stranger.GetError().GetMessage() {
		t.Fatalf("a block and contacts-only answer differently: %q vs %q", blocked.GetError().GetMessage(), stranger.GetError().GetMessage())
	}
	cdirect := wire.DirectConversationID("carol", "alice")
	if f := c.call(t, &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: cdirect, DirectPeer: "alice"}}); errCode(f) != 0 {
		t.Fatal(f.GetError())
	}
	if f := c.call(t, &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: transport.NewMessageID(), ConversationId: cdirect,
		Kind: parleypb.Kind_COMMIT, Payload: []byte("c"), AddedDeviceIds: []string{alice.id}, Welcome: []byte("w")}}); errCode(f) != 0 {
		t.Fatalf("stranger's direct conversation under contacts-only: %v", f.GetError())
	}
	if f := invite(t, c, []byte("carol-group-2"), 100, alice.id); errCode(f) != 0 {
		t.Fatalf("contact's group invitation: %v", f.GetError())
	}
	// Unblocked, mallory is a stranger like any other.
	if _, err := alice.conn.UpdatePrivacy(bg, nil, []string{"mallory"}, transport.GroupInvitesEveryone); err != nil {
		t.Fatal(err)
	}
	if f := invite(t, m, []byte("mallory-group-2"), 100, alice.id); errCode(f) != 0 {
		t.Fatalf("invitation after unblocking: %v", f.GetError())
	}
}

// Key-package draining: one FetchKeyPackages naming the victim's device
// 500 times took 29 packages and counted as one request. Now repeated
// and excessive ids are refused before anything is consumed, each
// package handed out counts against the limits, and the victim is told
// its packages run low once until it uploads more. (Each part fails with
// its check removed from handleFetchKeyPackages.)
func TestHostileKeyPackageDuplicates(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.KeyPackageFetchPerDev = server.Limit{N: 40, Per: time.Minute}
	})
	bob := register(t, ts, "bob")
	var kps []transport.KeyPackage
	for i := range 30 {
		kps = append(kps, transport.KeyPackage{Ref: fmt.Appendf(nil, "r%d", i), Data: fmt.Appendf(nil, "k%d", i)})
	}
	if _, err := bob.conn.UploadKeyPackages(bg, kps, &transport.KeyPackage{Ref: []byte("last"), Data: []byte("last")}); err != nil {
		t.Fatal(err)
	}
	mallory := register(t, ts, "mallory")
	m := authRaw(t, ts, mallory)
	remaining := func() int {
		s, err := dial(t, ts).Authenticate(bg, bob.key)
		if err != nil {
			t.Fatal(err)
		}
		return s.KeyPackagesRemaining
	}
	fetch := func(ids []string) *parleypb.ServerFrame {
		return m.call(t, &parleypb.ClientFrame_FetchKeyPackages{FetchKeyPackages: &parleypb.FetchKeyPackagesRequest{Username: "bob", DeviceIds: ids}})
	}
	if f := fetch(slices.Repeat([]string{bob.id}, 500)); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("500 copies of one device id: %v, want BAD_REQUEST", f)
	}
	many := []string{bob.id}
	for i := range 100 {
		many = append(many, fmt.Sprintf("dev%d", i))
	}
	if f := fetch(many); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("101 device ids: %v, want BAD_REQUEST", f.GetError())
	}
	if n := remaining(); n != 30 {
		t.Fatalf("refused requests consumed key packages: %d of 30 left", n)
	}
	// 25 fetches: bob hears once that he runs low (below 10 left).
	for i := range 25 {
		if f := fetch(nil); errCode(f) != 0 {
			t.Fatalf("fetch %d: %v", i, f.GetError())
		}
	}
	lows := 0
	for {
		ev, ok := pendingEvent(bob.conn, transport.EventKeyPackagesLow)
		if !ok {
			break
		}
		if ev.KeyPackagesRemaining != 9 {
			t.Fatalf("low notice says %d left, want 9 (the first time below 10)", ev.KeyPackagesRemaining)
		}
		lows++
	}
	if lows != 1 {
		t.Fatalf("bob got %d low notices for 16 fetches below the threshold, want 1", lows)
	}
}

// Each key package handed out counts against the fetcher's limit: a
// request for all of an account's devices costs one per device.
// (Fails if the limit counts requests.)
func TestHostileKeyPackageFetchCountsPackages(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.KeyPackageFetchPerDev = server.Limit{N: 8, Per: time.Hour}
	})
	bob := register(t, ts, "bob")
	for range 3 {
		code, _, err := dial(t, ts).RequestLink(bg, "bob", newKey())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.conn.ApproveLink(bg, code); err != nil {
			t.Fatal(err)
		}
	}
	mallory := register(t, ts, "mallory")
	for i := range 2 { // 2 × 4 devices = 8 packages
		if _, err := mallory.conn.FetchKeyPackages(bg, "bob"); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	_, err := mallory.conn.FetchKeyPackages(bg, "bob")
	wantCode(t, "third fetch of 4 packages with a limit of 8", err, parleypb.ErrorCode_RATE_LIMITED)
}

// Who talks to whom: a send to a direct conversation answered NOT_MEMBER
// if it existed and NOT_FOUND if not, and direct conversation ids are
// computable from two names. Both now get the same answer. (Fails without
// sendError.)
func TestHostileDirectConversationProbe(t *testing.T) {
	ts := newServer(t)
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	register(t, ts, "carol")
	if err := alice.conn.CreateDirectConversation(bg, wire.DirectConversationID("alice", "bob"), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.conn.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: wire.DirectConversationID("alice", "bob"),
		Payload: []byte("c"), Added: []string{bob.id}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	m := authRaw(t, ts, register(t, ts, "mallory"))
	probe := func(a, b string) *parleypb.Error {
		return m.call(t, &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: transport.NewMessageID(),
			ConversationId: wire.DirectConversationID(a, b), Epoch: 1, Kind: parleypb.Kind_APPLICATION, Payload: []byte("x")}}).GetError()
	}
	exists, absent := probe("alice", "bob"), probe("alice", "carol")
	if exists.GetCode() != absent.GetCode() || exists.GetMessage() != absent.GetMessage() {
		t.Fatalf("existing direct conversation answers %v, absent one %v", exists, absent)
	}
	if exists.GetCode() != parleypb.ErrorCode_NOT_MEMBER {
		t.Fatalf("probe answered %v, want NOT_MEMBER", exists)
	}
}

// Small-order Ed25519 keys verify signatures anyone can make (the
// all-zero key with the all-zero signature verifies): registering one
// would let anyone authenticate as the account. (Fails without the check
// in verify.)
func TestHostileSmallOrderKeys(t *testing.T) {
	ts := newServer(t)
	zero := make([]byte, ed25519.PublicKeySize)
	for _, body := range []parleypb.ClientFrameBody{
		&parleypb.ClientFrame_Register{Register: &parleypb.RegisterRequest{Username: "victim", PublicKey: zero, Signature: make([]byte, 64)}},
		&parleypb.ClientFrame_RequestLink{RequestLink: &parleypb.RequestLinkRequest{Username: "victim", PublicKey: zero, Signature: make([]byte, 64)}},
	} {
		rc := dialRaw(t, ts)
		rc.hello(t)
		if f := rc.call(t, body); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
			t.Fatalf("%T with the all-zero key: %v, want BAD_REQUEST", body, f)
		}
	}
}

// Look-alike names: a1ice, al1ce, alice., alice_ and alice.. all
// registered next to alice. (Fails without CheckNewUsername and the
// store's skeleton check.)
func TestHostileLookalikeNames(t *testing.T) {
	ts := newServer(t)
	register(t, ts, "alice")
	for _, name := range []string{"a1ice", "al1ce", "alice.", "alice_", "alice..", "al.ice", "aiice"} {
		_, err := dial(t, ts).Register(bg, name, newKey(), "")
		if err == nil {
			t.Errorf("%s registered next to alice", name)
		}
	}
	if _, err := dial(t, ts).Register(bg, "alicia", newKey(), ""); err != nil {
		t.Fatalf("alicia refused: %v", err)
	}
	// Trailing and doubled punctuation is refused for new names even with
	// nothing alike registered yet: the look-alike could come second.
	for _, name := range []string{"zed.", "ze__d"} {
		_, err := dial(t, ts).Register(bg, name, newKey(), "")
		wantCode(t, name, err, parleypb.ErrorCode_BAD_REQUEST)
	}
}

// One account's connections are capped, so that one account cannot hold
// the server's sockets; others are unaffected. (Fails without
// acquireAccountConn.)
func TestHostileConnectionsPerAccount(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.MaxConnsPerAccount = 3 })
	mallory := register(t, ts, "mallory") // 1
	var conns []*transport.Conn
	for range 2 {
		c := dial(t, ts)
		if _, err := c.Authenticate(bg, mallory.key); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	_, err := dial(t, ts).Authenticate(bg, mallory.key)
	wantCode(t, "4th connection of one account", err, parleypb.ErrorCode_RATE_LIMITED)
	register(t, ts, "alice")
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := dial(t, ts).Authenticate(bg, mallory.key)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's slot was not freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// X-Forwarded-For is believed only from a trusted proxy: a client that
// sends it itself is still counted by its own address. (Fails if
// clientAddr trusts every peer.)
func TestHostileForgedForwardedFor(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.LinkRequestPerAddr = server.Limit{N: 3, Per: time.Hour}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")} // not loopback
	})
	register(t, ts, "carol")
	var err error
	for i := range 4 {
		_, _, err = dialFrom(t, ts, fmt.Sprintf("198.51.100.%d", i)).RequestLink(bg, "carol", newKey())
	}
	wantCode(t, "4th link request behind forged X-Forwarded-For", err, parleypb.ErrorCode_RATE_LIMITED)
}

// Key packages are kept until fetched: a device uploading in a loop
// would fill the server's disk. At most wire.MaxKeyPackagesHeld are held
// per device, each at most wire.MaxKeyPackageSize. (Fails without the
// checks in handleUploadKeyPackages.)
func TestHostileKeyPackageHoarding(t *testing.T) {
	ts := newServer(t)
	mallory := register(t, ts, "mallory")
	batch := func(n, size int) []transport.KeyPackage {
		var kps []transport.KeyPackage
		for range n {
			kps = append(kps, transport.KeyPackage{Ref: transport.NewMessageID(), Data: make([]byte, size)})
		}
		return kps
	}
	held := 0
	for held+wire.MaxKeyPackagesBatch <= wire.MaxKeyPackagesHeld {
		n, err := mallory.conn.UploadKeyPackages(bg, batch(wire.MaxKeyPackagesBatch, 100), nil)
		if err != nil {
			t.Fatal(err)
		}
		held = n
	}
	_, err := mallory.conn.UploadKeyPackages(bg, batch(wire.MaxKeyPackagesBatch, 100), nil)
	wantCode(t, "upload over the per-device cap", err, parleypb.ErrorCode_BAD_REQUEST)
	_, err = mallory.conn.UploadKeyPackages(bg, nil, &transport.KeyPackage{Ref: []byte("x"), Data: make([]byte, wire.MaxKeyPackageSize+1)})
	wantCode(t, "oversized key package", err, parleypb.ErrorCode_BAD_REQUEST)
	s, err := dial(t, ts).Authenticate(bg, mallory.key)
	if err != nil || s.KeyPackagesRemaining != held {
		t.Fatalf("refused uploads changed the count: %d, want %d (%v)", s.KeyPackagesRemaining, held, err)
	}
}

// Writes that are not messages (creating conversations, uploading key
// packages, acknowledging the inbox, privacy changes) each cost an fsync;
// one account looping them is limited, others are not. (Fails without
// checkWrite in dispatch.)
func TestHostileWriteFlood(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.WritesPerAccount = server.Limit{N: 20, Per: time.Hour}
	})
	mallory, alice := register(t, ts, "mallory"), register(t, ts, "alice")
	var err error
	for i := range 25 {
		if err = mallory.conn.CreateConversation(bg, fmt.Appendf(nil, "flood-%d", i)); err != nil {
			break
		}
	}
	wantCode(t, "conversation flood", err, parleypb.ErrorCode_RATE_LIMITED)
	if err := alice.conn.CreateConversation(bg, []byte("alice-group")); err != nil {
		t.Fatalf("another account's write during the flood: %v", err)
	}
}

// A client that keeps asking after RATE_LIMITED instead of waiting is
// disconnected: refused requests are cheap, but not free. (Fails without
// the count in respond.)
func TestHostileIgnoresRetryAfter(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.KeyPackageFetchPerDev = server.Limit{N: 1, Per: time.Hour}
	})
	register(t, ts, "bob")
	m := authRaw(t, ts, register(t, ts, "mallory"))
	refused := 0
	for range 1000 {
		f, err := m.callErr(&parleypb.ClientFrame_FetchKeyPackages{FetchKeyPackages: &parleypb.FetchKeyPackagesRequest{Username: "bob"}})
		if err != nil {
			break // disconnected
		}
		if errCode(f) == parleypb.ErrorCode_RATE_LIMITED {
			refused++
		}
	}
	if refused >= 1000-1 || refused < 100 {
		t.Fatalf("%d refused requests answered before the connection closed", refused)
	}
	// The same for requests refused as bad (here: a device id named 500
	// times), which cost more to decode than a rate-limited one.
	m = authRaw(t, ts, register(t, ts, "mallory2"))
	bad := 0
	for range 1000 {
		f, err := m.callErr(&parleypb.ClientFrame_FetchKeyPackages{FetchKeyPackages: &parleypb.FetchKeyPackagesRequest{
			Username: "bob", DeviceIds: slices.Repeat([]string{"d"}, 500)}})
		if err != nil {
			break
		}
		if errCode(f) == parleypb.ErrorCode_BAD_REQUEST {
			bad++
		}
	}
	if bad >= 1000-1 || bad < 100 {
		t.Fatalf("%d bad requests answered before the connection closed", bad)
	}
}

// callErr is call that returns an error instead of failing the test when
// the connection is gone.
func (rc *rawConn) callErr(body parleypb.ClientFrameBody) (*parleypb.ServerFrame, error) {
	rc.id++
	b, err := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: body})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := rc.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		return nil, err
	}
	for {
		_, data, err := rc.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		f, err := wire.DecodeServerFrame(data)
		if err != nil {
			return nil, err
		}
		if f.RequestId == rc.id {
			return f, nil
		}
	}
}

// Putting a device in many conversations: ListConversations answered all
// of them at once, so whoever could add alice's device to enough
// (large) groups made her every sync overflow the connection's outbound
// limit. Answers are pages now, within the byte budget. (Fails without
// the budget in handleListConversations: one answer carries them all.)
func TestHostileManyConversations(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.MaxFrame = 16 << 10 // outbound limit 128 KiB, page budget 64 KiB
		c.Limits.LinkRequestPerAddr = server.Unlimited
		c.InboxLimits.PerSenderCount = 1000
	})
	alice, mallory := register(t, ts, "alice"), register(t, ts, "mallory")
	added := []string{alice.id}
	for range 28 { // large groups: mallory's own devices
		code, _, err := dial(t, ts).RequestLink(bg, "mallory", newKey())
		if err != nil {
			t.Fatal(err)
		}
		d, err := mallory.conn.ApproveLink(bg, code)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, d.ID)
	}
	m := authRaw(t, ts, mallory)
	const groups = 160 // ~1 KiB of member ids each: ~160 KiB in all
	for i := range groups {
		if f := invite(t, m, fmt.Appendf(nil, "crowd-%03d", i), 10, added...); errCode(f) != 0 {
			t.Fatalf("group %d: %v", i, f.GetError())
		}
	}
	a := authRaw(t, ts, alice)
	f := a.call(t, &parleypb.ClientFrame_ListConversations{ListConversations: &parleypb.ListConversationsRequest{Limit: 1000}})
	page := f.GetListConversations()
	if page == nil || !page.More || len(page.Conversations) == 0 || len(page.Conversations) >= groups {
		t.Fatalf("first page: %d conversations, more=%v (%v)", len(page.GetConversations()), page.GetMore(), f.GetError())
	}
	// The client library pages through all of them.
	all, err := alice.conn.ListConversations(bg)
	if err != nil || len(all) != groups {
		t.Fatalf("alice lists %d of %d conversations: %v", len(all), groups, err)
	}
}

// A commit that adds devices must carry their Welcome: without one, an add
// would bypass the inbox limits. (Fails without the check in checkSend.)
func TestHostileAddWithoutWelcome(t *testing.T) {
	ts := newServer(t)
	alice, mallory := register(t, ts, "alice"), register(t, ts, "mallory")
	m := authRaw(t, ts, mallory)
	if f := invite(t, m, []byte("no-welcome"), 0, alice.id); errCode(f) != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("add without a Welcome: %v, want BAD_REQUEST", f.GetError())
	}
}

// An account flooding requests is paced: the server stops reading its
// connections until its window ends, refusing nothing, while others are
// served. (Fails without pace in serveFrame: nothing is paced.)
func TestHostileRequestFloodIsPaced(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.RequestsPerAccount = server.Limit{N: 100, Per: time.Second}
		c.MetricsToken = "t"
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	m := authRaw(t, ts, register(t, ts, "mallory"))
	done := make(chan int)
	go func() {
		ok := 0
		for range 300 {
			f, err := m.callErr(&parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}})
			if err != nil {
				break
			}
			if errCode(f) == 0 {
				ok++
			}
		}
		done <- ok
	}()
	stillServes(t, alice, bob, conv)
	if ok := <-done; ok != 300 {
		t.Fatalf("%d of 300 paced pings answered; pacing must delay, not refuse", ok)
	}
	req, _ := http.NewRequest("GET", ts.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`parleyd_rate_limited_total\{limit="paced"\} [1-9]`).Match(body) {
		t.Fatalf("no request was paced:\n%s", body)
	}
}
