package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// clusterDevice is a test client that, when its node is gone, connects
// to the next node of the cluster.
type clusterDevice struct {
	name  string
	key   ed25519.PrivateKey
	id    string
	nodes []*crashServer
	node  int // index of the node it is on
	c     *transport.Conn
	moved int // times it went to another node
}

// do runs fn with a connected client, moving to the next node and
// retrying (fn must be idempotent: sends reuse their id) until it
// succeeds or ctx ends.
func (d *clusterDevice) do(ctx context.Context, fn func(c *transport.Conn) error) error {
	for {
		if d.c == nil {
			c, _, err := transport.Connect(ctx, d.nodes[d.node].url(), d.key, nil)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.node = (d.node + 1) % len(d.nodes)
				d.moved++
				continue
			}
			d.c = c
		}
		err := fn(d.c)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var we *wire.Error
		if errors.As(err, &we) && we.Code != parleypb.ErrorCode_SHUTTING_DOWN && we.Code != parleypb.ErrorCode_STORAGE_UNAVAILABLE {
			return err
		}
		d.c.Close()
		d.c = nil
	}
}

// TestClusterThreeNodes runs three parleyd processes on one PostgreSQL,
// joined by NATS, with six devices spread over them in three 1:1
// conversations and one group. While every device sends, one node is
// SIGKILLed (its devices reconnect to the others and resend what was not
// acknowledged, with the same ids), and later the NATS server is
// restarted. Then:
//
//   - the database holds every acknowledged message exactly once (counted
//     before any de-duplication), and nothing else;
//   - every recipient device fetches every acknowledged message sent to
//     it exactly once, through a node that survived;
//   - pushes cross nodes again after NATS came back: a message sent
//     through one node reaches a device on another without a fetch;
//   - two nodes receiving competing commits for one epoch accept exactly
//     one.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := pgtest.DB(t)
	ns, natsURL, err := startNATS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ns.Addr().String()
	defer func() { ns.Shutdown() }()

	env := []string{childDBEnv + "=" + dsn, childNATSEnv + "=" + natsURL}
	first := startCrashServerWith(t, t.TempDir(), env)
	nodes := []*crashServer{first}
	for range 2 {
		// The others get the first's directory and franking keys, as an
		// operator copies them, and follow its directory.
		data := t.TempDir()
		for _, f := range []string{ktNoteKeyFile, ktVRFKeyFile, frankingKeyFile, blobTokenKeyFile} {
			b, err := os.ReadFile(filepath.Join(first.data, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, startCrashServerWith(t, data, append(env, childFollowEnv+"=1")))
	}

	// Six devices, device i on node i%3: pairs (0,1), (2,3), (4,5) and a
	// group of all six.
	devs := make([]*clusterDevice, 6)
	for i := range devs {
		d := &clusterDevice{name: "user" + strconv.Itoa(i), key: newKey(t), nodes: nodes, node: i % 3}
		c, err := transport.Dial(ctx, nodes[d.node].url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Register(ctx, d.name, d.key, "")
		if err != nil {
			t.Fatal(err)
		}
		d.id, d.c = s.DeviceID, c
		devs[i] = d
		t.Cleanup(func() {
			if d.c != nil {
				d.c.Close()
			}
		})
	}
	type conversation struct {
		id      []byte
		members []int
	}
	var convs []conversation
	for k := range 3 {
		convs = append(convs, conversation{id: transport.NewMessageID(), members: []int{2 * k, 2*k + 1}})
	}
	convs = append(convs, conversation{id: transport.NewMessageID(), members: []int{0, 1, 2, 3, 4, 5}})
	for _, cv := range convs {
		creator := devs[cv.members[0]]
		if err := creator.c.CreateConversation(ctx, cv.id); err != nil {
			t.Fatal(err)
		}
		var added []string
		for _, m := range cv.members[1:] {
			added = append(added, devs[m].id)
		}
		if _, err := creator.c.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: cv.id, Epoch: 0,
			Payload: []byte("add"), Added: added, Welcome: []byte("welcome")}); err != nil {
			t.Fatal(err)
		}
	}

	// Every device sends perDevice messages, alternating between its 1:1
	// conversation and the group; node 2 dies after a third of them,
	// NATS restarts after two thirds.
	const perDevice = 60
	total := int64(perDevice * len(devs))
	var acked atomic.Int64
	killAt, natsAt := make(chan struct{}), make(chan struct{})
	var killOnce, natsOnce sync.Once
	type sent struct {
		conv int
		seq  uint64
	}
	ackedIDs := make([]map[string]sent, len(devs)) // per sender: id -> where it went
	var wg sync.WaitGroup
	for i, d := range devs {
		ackedIDs[i] = map[string]sent{}
		direct := i / 2
		wg.Go(func() {
			for k := range perDevice {
				cv := direct
				if k%2 == 1 {
					cv = 3
				}
				sum := sha256.Sum256(fmt.Appendf(nil, "%s %d", d.name, k))
				id := sum[:16]
				var res transport.SendResult
				err := d.do(ctx, func(c *transport.Conn) (err error) {
					res, err = c.SendApplication(ctx, id, convs[cv].id, 1, []byte(fmt.Sprintf("%s %d", d.name, k)))
					return err
				})
				if err != nil {
					t.Errorf("%s: send %d: %v", d.name, k, err)
					return
				}
				ackedIDs[i][string(id)] = sent{conv: cv, seq: res.Seq}
				n := acked.Add(1)
				if n >= total/3 {
					killOnce.Do(func() { close(killAt) })
				}
				if n >= 2*total/3 {
					natsOnce.Do(func() { close(natsAt) })
				}
			}
		})
	}
	var natsBack *natsRestart
	select {
	case <-killAt:
		nodes[2].kill()
	case <-ctx.Done():
		t.Fatal("the load never reached a third")
	}
	select {
	case <-natsAt:
		natsBack = restartNATS(t, ns, natsAddr)
		ns = natsBack.ns
	case <-ctx.Done():
		t.Fatal("the load never reached two thirds")
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	moved := 0
	for _, d := range devs {
		if d.node == 2 {
			t.Fatalf("%s is still on the killed node", d.name)
		}
		moved += d.moved
	}
	if moved == 0 {
		t.Fatal("no device had to move to another node: the kill came too late to test anything")
	}

	// The database: every acknowledged id once, nothing else.
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	stored := map[string]int{}
	rows, err := db.Query(ctx, `SELECT id FROM messages WHERE kind = $1`, int16(store.KindApplication))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[string(id)]++
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := 0
	for i := range devs {
		for id := range ackedIDs[i] {
			want++
			if stored[id] != 1 {
				t.Errorf("acknowledged message %q is stored %d times", id, stored[id])
			}
		}
	}
	if len(stored) != want {
		t.Errorf("the database holds %d application messages, %d were acknowledged", len(stored), want)
	}

	// Every recipient fetches, through a node that survived, every
	// message sent to it exactly once.
	for r, d := range devs {
		for ci, cv := range convs {
			member := false
			for _, m := range cv.members {
				member = member || m == r
			}
			if !member {
				continue
			}
			got := map[string]int{}
			for {
				var msgs []transport.Message
				var more bool
				if err := d.do(ctx, func(c *transport.Conn) (err error) {
					msgs, more, err = c.Fetch(ctx, cv.id, 50)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					if m.Kind == transport.KindApplication {
						got[string(m.ID)]++
					}
				}
				if len(msgs) > 0 {
					last := msgs[len(msgs)-1].Seq
					if err := d.do(ctx, func(c *transport.Conn) error { return c.Ack(ctx, cv.id, last) }); err != nil {
						t.Fatal(err)
					}
				}
				if !more {
					break
				}
			}
			for s := range devs {
				if s == r {
					continue
				}
				for id, at := range ackedIDs[s] {
					if at.conv == ci && got[id] != 1 {
						t.Errorf("%s fetched %q (from %s, conversation %d) %d times", d.name, id, devs[s].name, ci, got[id])
					}
				}
			}
		}
	}

	// After the NATS restart, pushes cross nodes again: user0 on node 0
	// sends, user1 on node 1 gets the push without fetching.
	sender, receiver := devs[0], devs[1]
	if sender.node == receiver.node {
		t.Fatalf("user0 and user1 are both on node %d", sender.node)
	}
	natsBack.waitReconnected(t, ctx)
	payload := []byte("after the NATS restart")
	deadline := time.After(20 * time.Second)
	for pushed := false; !pushed; {
		if _, err := sender.c.SendApplication(ctx, transport.NewMessageID(), convs[0].id, 1, payload); err != nil {
			t.Fatal(err)
		}
		// Until both nodes have resubscribed a notice can still be lost;
		// each try is a new message.
		retry := time.After(time.Second)
	wait:
		for {
			select {
			case ev := <-receiver.c.Events():
				if ev.Type == transport.EventMessage && bytes.Equal(ev.Message.Payload, payload) {
					pushed = true
					break wait
				}
			case <-retry:
				break wait
			case <-deadline:
				t.Fatal("no push crossed from node 0 to node 1 after NATS came back")
			}
		}
	}

	// Competing commits through two nodes: exactly one is accepted.
	a, b := devs[2], devs[3] // conversation 1; both moved or stayed
	if a.node == b.node {
		b.c.Close()
		b.c = nil
		b.node = (a.node + 1) % 2
	}
	for epoch := uint64(1); epoch <= 3; epoch++ {
		ids := [][]byte{transport.NewMessageID(), transport.NewMessageID()}
		errs := make([]error, 2)
		start := make(chan struct{})
		var cw sync.WaitGroup
		for i, d := range []*clusterDevice{a, b} {
			if d.c == nil {
				if err := d.do(ctx, func(*transport.Conn) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			c := d.c
			cw.Go(func() {
				<-start
				_, errs[i] = c.SendCommit(ctx, transport.Commit{ID: ids[i], ConversationID: convs[1].id, Epoch: epoch, Payload: []byte{byte(i)}})
			})
		}
		close(start)
		cw.Wait()
		wins := 0
		for _, err := range errs {
			var ce *transport.EpochConflictError
			switch {
			case err == nil:
				wins++
			case !errors.As(err, &ce):
				t.Fatalf("epoch %d: %v, want a win or an epoch conflict", epoch, err)
			}
		}
		if wins != 1 {
			t.Fatalf("epoch %d: %d commits accepted through nodes %d and %d, want exactly 1", epoch, wins, a.node, b.node)
		}
	}
}

// natsRestart is a NATS server restarted on the address of one that was
// shut down.
type natsRestart struct {
	ns    *natsserver.Server
	nodes int
}

// restartNATS shuts ns down and starts a new server on the same address,
// where the nodes' clients reconnect.
func restartNATS(t *testing.T, ns *natsserver.Server, addr string) *natsRestart {
	t.Helper()
	ns.Shutdown()
	// The nodes notice and start reconnecting; the port is free again.
	var err error
	for range 50 {
		var c net.Conn
		if c, err = net.Dial("tcp", addr); err != nil {
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	ns2, _, err := startNATS(addr)
	if err != nil {
		t.Fatalf("restart NATS on %s: %v", addr, err)
	}
	return &natsRestart{ns: ns2, nodes: 2}
}

// waitReconnected waits until the surviving nodes are connected to the
// restarted server.
func (r *natsRestart) waitReconnected(t *testing.T, ctx context.Context) {
	t.Helper()
	for r.ns.NumClients() < r.nodes {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d nodes reconnected to NATS", r.ns.NumClients())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
