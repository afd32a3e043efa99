package server_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/natstest"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/natsbus"
)

// countingBus is a node's NATS bus that counts the notices the node
// receives.
type countingBus struct {
	*natsbus.Bus
	received atomic.Int64
}

func (c *countingBus) Subscribe(fn func([]byte)) (func(), error) {
	return c.Bus.Subscribe(func(b []byte) { c.received.Add(1); fn(b) })
}

// natsNodes starts an embedded NATS server and n nodes on one new
// database, each with its own counting bus.
func natsNodes(t *testing.T, n int) ([]*pgNode, []*countingBus) {
	t.Helper()
	natsURL := natstest.Start(t)
	dsn := pgtest.DB(t)
	blobDir := filepath.Join(t.TempDir(), "blobs")
	var nodes []*pgNode
	var buses []*countingBus
	for range n {
		nb, err := natsbus.Connect(natsURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nb.Close() })
		bus := &countingBus{Bus: nb}
		buses = append(buses, bus)
		nodes = append(nodes, startPGNode(t, dsn, blobDir, func(cfg *server.Config) { cfg.Bus = bus }))
	}
	return nodes, buses
}

// signUp registers user on the node at url and returns the connection
// and the device's id.
func signUp(t *testing.T, url, user string) (*transport.Conn, string) {
	t.Helper()
	c := dialURL(t, url)
	s, err := c.Register(bg, user, newKey(), "")
	if err != nil {
		t.Fatalf("Register(%s): %v", user, err)
	}
	return c, s.DeviceID
}

// waitPush waits for a pushed message with payload p on c.
func waitPush(t *testing.T, c *transport.Conn, typ transport.EventType, p []byte) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed waiting for %q: %v", p, c.Err())
			}
			if ev.Type == typ && bytes.Equal(ev.Message.Payload, p) {
				return
			}
		case <-deadline:
			t.Fatalf("%q was not pushed", p)
		}
	}
}

// Three nodes on NATS: alice on node a writes to bob on node b. Every
// message and the Welcome are pushed to bob across nodes, and node c,
// where neither is connected, receives no notice at all: NATS routes
// each to the node that watches the recipient's device. (With every
// notice sent to every node, as before, node c received one per
// message.)
func TestNoticesGoOnlyWhereRecipientsAre(t *testing.T) {
	nodes, buses := natsNodes(t, 3)
	alice, _ := signUp(t, nodes[0].url, "alice")
	bob, bobID := signUp(t, nodes[1].url, "bob")
	signUp(t, nodes[2].url, "carol") // connected to node c, in no conversation with them
	conv := transport.NewMessageID()
	if err := alice.CreateConversation(bg, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("add bob"), Added: []string{bobID}, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	waitPush(t, bob, transport.EventInbox, []byte("welcome"))
	const n = 20
	for i := range n {
		p := []byte(fmt.Sprintf("hi bob %d", i))
		if _, err := alice.SendApplication(bg, transport.NewMessageID(), conv, 1, p); err != nil {
			t.Fatal(err)
		}
		waitPush(t, bob, transport.EventMessage, p)
	}
	if got := buses[1].received.Load(); got < n+1 {
		t.Errorf("node b received %d notices, want at least %d", got, n+1)
	}
	if got := buses[2].received.Load(); got != 0 {
		t.Errorf("node c, with no recipient, received %d notices", got)
	}
}

// A group with more recipient devices than are announced one by one
// (large groups) is announced once to every node, and still reaches
// every member across nodes.
func TestLargeGroupNoticesReachEveryNode(t *testing.T) {
	nodes, buses := natsNodes(t, 2)
	alice, _ := signUp(t, nodes[0].url, "alice")
	var members []*transport.Conn
	var ids []string
	for i := range 20 {
		c := dialURL(t, nodes[1].url)
		s, err := c.Register(bg, fmt.Sprintf("member%02d", i), newKey(), "")
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, c)
		ids = append(ids, s.DeviceID)
	}
	conv := transport.NewMessageID()
	if err := alice.CreateConversation(bg, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("add all"), Added: ids, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		waitPush(t, m, transport.EventInbox, []byte("welcome"))
	}
	before := buses[1].received.Load()
	if _, err := alice.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("hello all")); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		waitPush(t, m, transport.EventMessage, []byte("hello all"))
	}
	// One notice to the node for all 20, not one per device.
	if got := buses[1].received.Load() - before; got != 1 {
		t.Fatalf("node b received %d notices for one message to 20 of its devices, want 1", got)
	}
}

// A device that has just signed in on node b gets the push of a message
// sent through node a right after: its node subscribed to the device's
// notices before answering the sign-in. Each round starts with no
// subscription for bob, so each makes a fresh one.
func TestPushRightAfterSignIn(t *testing.T) {
	nodes, buses := natsNodes(t, 2)
	alice, _ := signUp(t, nodes[0].url, "alice")
	bk := newKey()
	first := dialURL(t, nodes[1].url)
	bs, err := first.Register(bg, "bob", bk, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := transport.NewMessageID()
	if err := alice.CreateConversation(bg, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(bg, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("add bob"), Added: []string{bs.DeviceID}, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	first.Close()
	for i := range 10 {
		deadline := time.Now().Add(10 * time.Second)
		for buses[1].Watched() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("node b still subscribed to bob's notices after his connection closed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		c, err := transport.Dial(bg, nodes[1].url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(bg, bk); err != nil {
			t.Fatal(err)
		}
		p := []byte(fmt.Sprintf("right after sign-in %d", i))
		if _, err := alice.SendApplication(bg, transport.NewMessageID(), conv, 1, p); err != nil {
			t.Fatal(err)
		}
		waitPush(t, c, transport.EventMessage, p)
		c.Close()
	}
}

// Events that arise on one node reach devices connected to another:
// bob's key packages run low as carol fetches them through node a while
// bob is on node b; alice's laptop on node b learns that her phone on
// node a removed her tablet; a device waiting on node b for its link to
// be approved is told when the phone approves it through node a.
func TestEventsForwardedAcrossNodes(t *testing.T) {
	nodes, _ := natsNodes(t, 2)
	a, b := nodes[0], nodes[1]

	bob, _ := signUp(t, b.url, "bob")
	if _, err := bob.UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r1"), Data: []byte("kp1")}, {Ref: []byte("r2"), Data: []byte("kp2")}}, nil); err != nil {
		t.Fatal(err)
	}
	carol, _ := signUp(t, a.url, "carol")
	if _, err := carol.FetchKeyPackages(bg, "bob"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, bob, transport.EventKeyPackagesLow); ev.KeyPackagesRemaining != 1 {
		t.Fatalf("bob told %d left, want 1", ev.KeyPackagesRemaining)
	}

	phone, _ := signUp(t, a.url, "alice")
	link := func() (waiting *transport.Conn, id string) {
		k := newKey()
		waiting = dialURL(t, b.url)
		code, _, err := waiting.RequestLink(bg, "alice", k)
		if err != nil {
			t.Fatal(err)
		}
		d, err := phone.ApproveLink(bg, code)
		if err != nil {
			t.Fatal(err)
		}
		// The new device waits on node b; the phone approved on node a.
		if ev := nextEvent(t, waiting, transport.EventLinkApproved); ev.DeviceID != d.ID {
			t.Fatalf("link approved for %q, want %q", ev.DeviceID, d.ID)
		}
		if _, err := waiting.Authenticate(bg, k); err != nil {
			t.Fatal(err)
		}
		return waiting, d.ID
	}
	laptop, _ := link()
	_, tabletID := link()
	if err := phone.RemoveDevice(bg, tabletID); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, laptop, transport.EventDeviceRemoved); ev.DeviceID != tabletID {
		t.Fatalf("laptop told %q was removed, want the tablet %q", ev.DeviceID, tabletID)
	}
}
