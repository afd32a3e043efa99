package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/pgtest"
)

// Two nodes on one PostgreSQL, joined by NATS ("parleyd nats", embedded):
// a message stored through node A is pushed at once to bob, connected to
// node B, and so is a Welcome. With NATS down the message is still stored
// and fetched: nothing durable depends on the bus.
func TestTwoNodesPushOverNATS(t *testing.T) {
	ctx := context.Background()
	ns, natsURL, err := startNATS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	dsn := pgtest.DB(t)
	addrA, _ := startNodeNATS(t, dsn, "open", natsURL)
	addrB, _ := startNodeNATS(t, dsn, "open", natsURL)
	alice, _ := dial(t, addrA, "alice", "")
	bob, bs := dial(t, addrB, "bob", "")
	waitEvent := func(what string, kind transport.EventType, payload []byte) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-bob.Events():
				if ev.Type == kind && bytes.Equal(ev.Message.Payload, payload) {
					return
				}
			case <-deadline:
				t.Fatalf("bob on node B was not pushed %s", what)
			}
		}
	}
	conv := transport.NewMessageID()
	if err := alice.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("add bob"), Added: []string{bs.DeviceID}, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	waitEvent("the Welcome", transport.EventInbox, []byte("welcome"))
	if _, err := alice.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte("hi bob")); err != nil {
		t.Fatal(err)
	}
	waitEvent("the message", transport.EventMessage, []byte("hi bob"))

	// NATS goes away: sends still succeed, and the message is fetched.
	ns.Shutdown()
	ns.WaitForShutdown()
	if _, err := alice.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte("while NATS is down")); err != nil {
		t.Fatalf("a send with NATS down: %v", err)
	}
	msgs, _, err := bob.Fetch(ctx, conv, 10)
	if err != nil || len(msgs) == 0 || string(msgs[len(msgs)-1].Payload) != "while NATS is down" {
		t.Fatalf("bob's fetch with NATS down: %d messages, %v", len(msgs), err)
	}
}

// Key transparency across nodes: node A publishes the directory's
// epochs, node B (same keys, --kt-follow) serves them from the shared
// database. A client on B verifies a list published through A.
func TestTwoNodesOneDirectory(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	addrA, dataA := startNodeKT(t, dsn, "", false)
	addrB, _ := startNodeKTFrom(t, dsn, dataA, true)
	alice, _ := dial(t, addrA, "alice", "")
	_ = alice
	b, err := transport.Dial(ctx, "http://"+addrB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Register(ctx, "bob", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	kA, err := alice.KTKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kB, err := b.KTKeys(ctx)
	if err != nil || kB.NoteKey != kA.NoteKey || !bytes.Equal(kB.VrfKey, kA.VrfKey) {
		t.Fatalf("the nodes serve different directories: %v", err)
	}
	// An epoch published by A (the heartbeat, or a list) reaches B.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := b.FetchDeviceList(ctx, "alice", 0)
		if err == nil && resp.Kt != nil && len(resp.Kt.Checkpoint) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B never served the directory: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
