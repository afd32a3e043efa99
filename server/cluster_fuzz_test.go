package server_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// loopBus is an in-process server.Bus: deliver hands bytes to the
// subscribed server as if another node had published them.
type loopBus struct {
	mu sync.Mutex
	fn func([]byte)
}

func (b *loopBus) Publish([]byte) error { return nil }

func (b *loopBus) Subscribe(fn func([]byte)) (func(), error) {
	b.mu.Lock()
	b.fn = fn
	b.mu.Unlock()
	return func() {}, nil
}

func (b *loopBus) deliver(p []byte) {
	b.mu.Lock()
	fn := b.fn
	b.mu.Unlock()
	fn(p)
}

// FuzzClusterNotice feeds arbitrary bytes to a node as notices from the
// bus. Property: a notice that is not a well-formed ClusterNotice with a
// message for one of the node's connected devices pushes nothing; one that
// is pushes exactly one event to that device; the connection keeps working
// either way (a session recheck looks the device up, and the store says
// it is still alice's).
func FuzzClusterNotice(f *testing.F) {
	bus := &loopBus{}
	ts := startServer(f, f.TempDir(), func(c *server.Config) { c.Bus = bus })
	alice := register(f, ts, "alice")
	msg := &parleypb.Message{Id: make([]byte, 16), ConversationId: []byte("g"), Seq: 1, Kind: parleypb.Kind_APPLICATION, Payload: []byte("p")}
	for _, n := range []*parleypb.ClusterNotice{
		{Node: "other", Recipients: []string{alice.id}, Message: msg},
		{Node: "other", Recipients: []string{alice.id}, Message: msg, Inbox: true},
		{Node: "other", Recipients: []string{"nobody"}, Message: msg},
		{Node: "other", Recipients: []string{alice.id, alice.id}, Message: msg},
		{Node: "other", Recipients: []string{alice.id}},
		// Forwarded pushes: hints only.
		{Node: "other", Recipients: []string{alice.id}, Push: &parleypb.Push{Event: &parleypb.Push_KeyPackagesLow{KeyPackagesLow: &parleypb.KeyPackagesLow{Remaining: 2}}}},
		{Node: "other", Recipients: []string{alice.id}, Push: &parleypb.Push{Event: &parleypb.Push_DeviceRemoved{DeviceRemoved: &parleypb.DeviceRemoved{DeviceId: alice.id}}}},
		{Node: "other", Recipients: []string{alice.id}, Push: &parleypb.Push{Event: &parleypb.Push_DeviceRemoved{DeviceRemoved: &parleypb.DeviceRemoved{DeviceId: "tablet"}}}},
		{Node: "other", Link: "alice/123", Push: &parleypb.Push{Event: &parleypb.Push_LinkApproved{LinkApproved: &parleypb.LinkApproved{DeviceId: "x"}}}},
		{Node: "other", Recipients: []string{alice.id}, Message: msg, Push: &parleypb.Push{}},
		// A recheck of a device that is still alice's ends nothing.
		{Node: "other", Recipients: []string{alice.id, "nobody", alice.id}, Recheck: true},
		{Node: "other", Recipients: []string{alice.id}, Message: msg, Recheck: true},
	} {
		b, _ := proto.Marshal(n)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		rc := dialRaw(t, ts)
		h := rc.hello(t)
		if r := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(alice, h)}); r.GetSession() == nil {
			t.Fatalf("authenticate: %v", r)
		}
		want := 0
		var n parleypb.ClusterNotice
		if proto.Unmarshal(data, &n) == nil {
			forAlice := slices.Contains(n.Recipients, alice.id)
			switch e := n.Push.GetEvent().(type) {
			case nil:
				// A recheck is only a recheck: it pushes nothing.
				if n.Push == nil && !n.Recheck && n.Message != nil && forAlice {
					want = 1
				}
			case *parleypb.Push_KeyPackagesLow:
				if forAlice {
					want = 1
				}
			case *parleypb.Push_DeviceRemoved:
				// Never her own removal: that is the store's to say.
				if forAlice && e.DeviceRemoved != nil && e.DeviceRemoved.DeviceId != alice.id {
					want = 1
				}
			}
		}
		bus.deliver(data)
		// The push, if any, is queued before the ping's answer.
		rc.id++
		ping, err := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}})
		if err != nil {
			t.Fatal(err)
		}
		rc.writeRaw(t, websocket.MessageBinary, ping)
		pushes := 0
		for {
			fr, err := rc.read(t)
			if err != nil {
				t.Fatalf("connection broken after notice: %v", err)
			}
			if fr.GetPush() != nil {
				pushes++
				continue
			}
			if fr.GetEmpty() == nil {
				t.Fatalf("ping answered with %v", fr)
			}
			break
		}
		if pushes != want {
			t.Fatalf("notice %x pushed %d events, want %d", data, pushes, want)
		}
	})
}

// BenchmarkForeignNotice is what a node spends on a notice for devices
// it does not hold: with every notice sent to every node, each node paid
// it for every message of the deployment; with notices routed to the
// recipients' nodes (natsbus), no node receives one.
func BenchmarkForeignNotice(b *testing.B) {
	bus := &loopBus{}
	ts := startServer(b, b.TempDir(), func(c *server.Config) { c.Bus = bus })
	register(b, ts, "alice") // Serve subscribed before it accepted her
	n, err := proto.Marshal(&parleypb.ClusterNotice{Node: "other", Recipients: []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"},
		Message: &parleypb.Message{Id: make([]byte, 16), ConversationId: make([]byte, 32), Seq: 12345, Epoch: 3, Kind: parleypb.Kind_APPLICATION,
			SenderDeviceId: "0123456789abcdef0123456789abcdef", Payload: make([]byte, 160), AcceptedUnixMs: 1_765_000_000_000}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		bus.deliver(n)
	}
}
