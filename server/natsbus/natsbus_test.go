package natsbus

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/natstest"
)

func connect(t *testing.T, url string) (*Bus, chan string) {
	t.Helper()
	b, err := Connect(url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	got := make(chan string, 100)
	stop, err := b.Subscribe(func(p []byte) { got <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return b, got
}

func want(t *testing.T, got chan string, msg string) {
	t.Helper()
	select {
	case m := <-got:
		if m != msg {
			t.Fatalf("got %q, want %q", m, msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q never arrived", msg)
	}
}

func none(t *testing.T, got chan string) {
	t.Helper()
	select {
	case m := <-got:
		t.Fatalf("got %q, want nothing", m)
	case <-time.After(200 * time.Millisecond):
	}
}

// A device's notices reach only the nodes that watch it, for as long as
// any of their connections does; broadcasts reach every node.
func TestDeviceNoticesReachWatchers(t *testing.T) {
	url := natstest.Start(t)
	a, gotA := connect(t, url)
	b, gotB := connect(t, url)

	un1, err := b.Watch("d1")
	if err != nil {
		t.Fatal(err)
	}
	un2, err := b.Watch("d1") // a second connection of d1 on node b
	if err != nil {
		t.Fatal(err)
	}
	// Watch returned: a notice published now is delivered, every time.
	for range 50 {
		if err := a.PublishTo("d1", []byte("for d1")); err != nil {
			t.Fatal(err)
		}
		want(t, gotB, "for d1")
	}
	if err := a.PublishTo("d2", []byte("for d2")); err != nil {
		t.Fatal(err)
	}
	none(t, gotB)
	none(t, gotA)

	un1()
	un1() // twice is once
	if err := a.PublishTo("d1", []byte("still watched")); err != nil {
		t.Fatal(err)
	}
	want(t, gotB, "still watched")
	un2()
	if n := b.Watched(); n != 0 {
		t.Fatalf("%d device subjects still subscribed", n)
	}
	if err := a.PublishTo("d1", []byte("gone")); err != nil {
		t.Fatal(err)
	}
	none(t, gotB)

	if err := a.Publish([]byte("everyone")); err != nil {
		t.Fatal(err)
	}
	want(t, gotB, "everyone")
	none(t, gotA) // a node's own notices do not come back to it
}

// A node that watches a device (connected to it and to another node)
// does not get back the notices it publishes to that device: it has
// pushed to its own connections already, and decoding its own echo would
// be work for nothing. The other node still gets them.
func TestOwnNoticesNotEchoed(t *testing.T) {
	url := natstest.Start(t)
	a, gotA := connect(t, url)
	b, gotB := connect(t, url)
	for _, n := range []*Bus{a, b} {
		unwatch, err := n.Watch("d1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(unwatch)
	}
	if err := a.PublishTo("d1", []byte("from a")); err != nil {
		t.Fatal(err)
	}
	want(t, gotB, "from a")
	none(t, gotA)
}

// A device id that is not one subject token is refused: it could
// otherwise subscribe to a wildcard (every device's notices) or publish
// to another subject.
func TestDeviceIDMustBeAToken(t *testing.T) {
	url := natstest.Start(t)
	a, _ := connect(t, url)
	for _, id := range []string{"", "*", ">", "a.b", "a b", string(make([]byte, 65))} {
		if _, err := a.Watch(id); err == nil {
			t.Errorf("Watch(%q) accepted", id)
		}
		if err := a.PublishTo(id, []byte("x")); err == nil {
			t.Errorf("PublishTo(%q) accepted", id)
		}
	}
}

// With NATS away, Watch returns at once (a sign-in is not held up), and
// the device's notices arrive once NATS is back.
func TestWatchWhileNATSIsAway(t *testing.T) {
	ns := natstest.StartServer(t)
	a, _ := connect(t, ns.ClientURL())
	b, gotB := connect(t, ns.ClientURL())
	ns.Shutdown()
	for b.nc.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := b.Watch("d1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > flushTimeout/2 {
		t.Fatalf("Watch with NATS away took %v", d)
	}
	ns.Restart()
	for !a.nc.IsConnected() || !b.nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := a.PublishTo("d1", []byte("after the outage")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-gotB:
			if m != "after the outage" {
				t.Fatalf("got %q", m)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the device's notices never arrived after NATS came back")
		}
	}
}
