package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store/pgstore"
)

// startNode runs "parleyd serve --db dsn" on its own data directory until
// the test ends, and returns its address.
func startNode(t *testing.T, dsn, registration string) (addr, data string) {
	return startNodeNATS(t, dsn, registration, "")
}

func startNodeNATS(t *testing.T, dsn, registration, natsURL string) (addr, data string) {
	return startNode2(t, dsn, registration, natsURL, "", false)
}

// startNodeKT starts a node with fast key transparency epochs.
func startNodeKT(t *testing.T, dsn, natsURL string, follow bool) (addr, data string) {
	return startNode2(t, dsn, "open", natsURL, "", follow)
}

// startNodeKTFrom starts a node with the directory keys of the data
// directory from (as an operator copies them to every node).
func startNodeKTFrom(t *testing.T, dsn, from string, follow bool) (addr, data string) {
	return startNode2(t, dsn, "open", "", from, follow)
}

func startNode2(t *testing.T, dsn, registration, natsURL, keysFrom string, follow bool) (addr, data string) {
	t.Helper()
	f := serveFlags{db: dsn, registration: registration, nats: natsURL,
		kt: ktFlags{interval: 50 * time.Millisecond, heartbeat: 200 * time.Millisecond, follow: follow}}
	if keysFrom != "" {
		f.data = filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(f.data, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{ktNoteKeyFile, ktVRFKeyFile, frankingKeyFile, blobTokenKeyFile} {
			b, err := os.ReadFile(filepath.Join(keysFrom, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.data, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return startNode3(t, f)
}

// startNode3 runs "parleyd serve" with f (a fresh data directory,
// loopback and test sizes unless set) until the test ends.
func startNode3(t *testing.T, f serveFlags) (addr, data string) {
	t.Helper()
	if f.data == "" {
		f.data = filepath.Join(t.TempDir(), "data")
	}
	data = f.data
	f.listen, f.retention, f.shutdownTimeout = "127.0.0.1:0", time.Hour, 10*time.Second
	f.maxAttachment, f.maxFrame = 1<<20, 1<<20
	if f.kt.interval == 0 {
		f.kt = ktFlags{interval: 50 * time.Millisecond, heartbeat: 200 * time.Millisecond}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve --db: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve --db returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
	})
	return addr, data
}

func dial(t *testing.T, addr, user, invite string) (*transport.Conn, *transport.Session) {
	t.Helper()
	c, err := transport.Dial(context.Background(), "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sess, err := c.Register(context.Background(), user, newKey(t), invite)
	if err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return c, sess
}

// TestServePostgres: "parleyd serve --db postgres://..." keeps the
// delivery store in PostgreSQL (no SQLite file in the data directory),
// and "parleyd admin invite --db" writes to the same database.
func TestServePostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	addr, data := startNode(t, dsn, "invite")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"admin", "invite", "--data", data, "--db", dsn}, &out, &errb); code != 0 {
		t.Fatalf("admin invite --db: %d %s", code, errb.String())
	}
	dial(t, addr, "alice", strings.TrimSpace(out.String()))
	if _, err := os.Stat(filepath.Join(data, deliveryDB)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve --db made %s in the data directory: %v", deliveryDB, err)
	}
	st, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if devs, err := st.Devices(ctx, "alice"); err != nil || len(devs) != 1 {
		t.Fatalf("alice in PostgreSQL: %v, %v", devs, err)
	}
	// Only PostgreSQL URLs are taken, and a password is never echoed.
	_, err = openStore(ctx, data, "mysql://u:secret@h/db", true, nil, nil)
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("--db mysql://...: %v", err)
	}
	_, err = openStore(ctx, data, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", true, nil, nil)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("--db to nowhere: %v", err)
	}
}

// TestTwoNodesOnePostgres runs two parleyd nodes on one database, a
// client on each: what one node stores the other serves, and two commits
// for the same epoch sent through both nodes at once are decided by the
// database: one wins, the other gets the winner back.
func TestTwoNodesOnePostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	addrA, _ := startNode(t, dsn, "open")
	addrB, _ := startNode(t, dsn, "open")
	alice, _ := dial(t, addrA, "alice", "")
	bob, bs := dial(t, addrB, "bob", "")

	conv := transport.NewMessageID()
	if err := alice.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("add bob"), Added: []string{bs.DeviceID}, Welcome: []byte("welcome")}); err != nil {
		t.Fatalf("add bob through node A: %v", err)
	}
	// Bob's Welcome, stored through A, is in his inbox on B.
	inbox, _, err := bob.FetchInbox(ctx, 10)
	if err != nil || len(inbox) != 1 || string(inbox[0].Payload) != "welcome" {
		t.Fatalf("bob's inbox on node B: %+v, %v", inbox, err)
	}
	hi := transport.NewMessageID()
	sent, err := alice.SendApplication(ctx, hi, conv, 1, []byte("hi bob"))
	if err != nil {
		t.Fatal(err)
	}
	// Bob reads from the commit that added him on: "hi bob".
	msgs, _, err := bob.Fetch(ctx, conv, 10)
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].ID, hi) || msgs[0].Seq != sent.Seq || string(msgs[0].Payload) != "hi bob" {
		t.Fatalf("bob fetched through node B: %+v, %v; want \"hi bob\" (seq %d)", msgs, err, sent.Seq)
	}
	if err := bob.Ack(ctx, conv, msgs[0].Seq); err != nil {
		t.Fatal(err)
	}

	// Competing commits, round after round, one through each node.
	for epoch := uint64(1); epoch <= 5; epoch++ {
		ids := [][]byte{transport.NewMessageID(), transport.NewMessageID()}
		conns := []*transport.Conn{alice, bob}
		results := make([]transport.SendResult, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				<-start
				results[i], errs[i] = conns[i].SendCommit(ctx, transport.Commit{ID: ids[i], ConversationID: conv, Epoch: epoch, Payload: []byte{byte(i)}})
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for i, err := range errs {
			if err == nil {
				if won >= 0 {
					t.Fatalf("epoch %d: both nodes accepted a commit", epoch)
				}
				won = i
			}
		}
		if won < 0 {
			t.Fatalf("epoch %d: no commit accepted: %v / %v", epoch, errs[0], errs[1])
		}
		lost := 1 - won
		var ce *transport.EpochConflictError
		if !errors.As(errs[lost], &ce) || !bytes.Equal(ce.Winner.ID, ids[won]) || ce.Winner.Seq != results[won].Seq {
			t.Fatalf("epoch %d: the losing node answered %v, want the conflict with commit %x (seq %d)", epoch, errs[lost], ids[won], results[won].Seq)
		}
		if results[won].Epoch != epoch+1 {
			t.Fatalf("epoch %d: the winner left the conversation at epoch %d", epoch, results[won].Epoch)
		}
	}
	// Both nodes see the same conversation: epoch 6, the five winners
	// after "hi bob", both members.
	for name, c := range map[string]*transport.Conn{"alice on A": alice, "bob on B": bob} {
		convs, err := c.ListConversations(ctx)
		if err != nil || len(convs) != 1 || convs[0].Epoch != 6 || convs[0].HeadSeq != sent.Seq+5 || len(convs[0].Members) != 2 {
			t.Fatalf("%s: conversations %+v, %v; want epoch 6, head %d", name, convs, err, sent.Seq+5)
		}
	}
}
