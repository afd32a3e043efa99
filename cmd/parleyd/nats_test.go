package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/channels"
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

// Public channels across two nodes on one PostgreSQL with NATS: a channel
// created through node A is served by node B; a follower long-polling
// B's feed gets a post made through A as soon as it is stored (only a
// notice over NATS can wake B: its feed polls the store once an hour
// here); a hash list imported with "parleyd
// admin lists import --db" is in force on both nodes; and an attachment
// uploaded through A downloads through B, counted once in the quota.
func TestTwoNodesChannelsAndBlobs(t *testing.T) {
	ctx := context.Background()
	ns, natsURL, err := startNATS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	dsn := pgtest.DB(t)
	blobs := filepath.Join(t.TempDir(), "shared-blobs")
	addrA, dataA := startNodeBlobs(t, dsn, natsURL, blobs)
	addrB, _ := startNodeBlobs(t, dsn, natsURL, blobs)
	alice, as := dial(t, addrA, "alice", "")
	bob, bs := dial(t, addrB, "bob", "")
	apiA := channelClient{t: t, url: "http://" + addrA, token: as.BlobToken}
	apiB := channelClient{t: t, url: "http://" + addrB, token: bs.BlobToken}
	if code, b := apiA.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news","title":"News"}`)); code != http.StatusCreated {
		t.Fatalf("create channel on A: HTTP %d: %s", code, b)
	}
	if code, b := apiB.do("GET", "/v1/channels/news", "", nil); code != http.StatusOK {
		t.Fatalf("the channel on B: HTTP %d: %s", code, b)
	}
	if code, b := apiB.do("PUT", "/v1/channels/news/follow", "", nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("follow on B: HTTP %d: %s", code, b)
	}
	type pollResult struct {
		evs     channels.EventsResponse
		code    int
		elapsed time.Duration
	}
	polled := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		code, b := apiB.do("GET", "/v1/channels/news/events?since=0&wait=30", "", nil)
		var r pollResult
		r.code, r.elapsed = code, time.Since(start)
		json.Unmarshal(b, &r.evs)
		polled <- r
	}()
	img, imgHash := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	// The poll waits up to 30 s (the server's most), longer than hashing
	// the image takes even under the race detector on a loaded machine.
	code, b := apiA.post("news", "from node A", img)
	var pr channels.PostResponse
	if code != http.StatusCreated || json.Unmarshal(b, &pr) != nil {
		t.Fatalf("post on A: HTTP %d: %s", code, b)
	}
	r := <-polled
	t.Logf("B's long-poll answered after %v", r.elapsed)
	if r.code != http.StatusOK || len(r.evs.Events) != 1 || r.evs.Events[0].PostID != pr.Post.ID {
		t.Fatalf("B's long-poll answered HTTP %d after %v with %+v; want post %d", r.code, r.elapsed, r.evs.Events, pr.Post.ID)
	}

	// A list imported into the shared database is in force on B at once.
	list := filepath.Join(t.TempDir(), "list.txt")
	other, otherHash := sharedImage(t, "reg-test-input", "pen-and-coaster.png")
	if err := os.WriteFile(list, []byte("pdq "+imgHash+"\npdq "+otherHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"admin", "lists", "import", "--data", dataA, "--db", dsn, "--name", "gifct", list}, &out, &errb); code != 0 {
		t.Fatalf("admin lists import --db: exit %d: %s%s", code, out.String(), errb.String())
	}
	if code, b := apiA.do("PUT", "/v1/channels/news/admins/bob", "", nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("make bob an admin: HTTP %d: %s", code, b)
	}
	if code, b := apiB.post("news", "listed, through B", other); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("a listed image posted through B: HTTP %d: %s", code, b)
	}
	out.Reset()
	if code := run(ctx, []string{"admin", "takedowns", "--data", dataA, "--db", dsn, "--json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "block") {
		t.Fatalf("admin takedowns --db: exit %d: %s%s", code, out.String(), errb.String())
	}

	// An attachment uploaded through A downloads through B.
	data := bytes.Repeat([]byte("ciphertext"), 500)
	id, err := alice.UploadBlob(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := bob.DownloadBlob(ctx, id, &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("download through B of a blob uploaded through A: %d bytes, %v", got.Len(), err)
	}
}

// startNodeBlobs starts a node on dsn and NATS with attachment files in
// the shared directory blobs, whose channel feeds only NATS notices wake.
func startNodeBlobs(t *testing.T, dsn, natsURL, blobs string) (addr, data string) {
	return startNode3(t, serveFlags{db: dsn, nats: natsURL, blobs: blobs, registration: "open", feedPoll: time.Hour})
}
