package sharedlimit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/store/sqlitestore"
)

// countingCounter wraps the store's counter, counting the calls (the
// database round trips a node would make) and failing them on demand.
type countingCounter struct {
	Counter
	calls atomic.Int64
	fail  atomic.Bool
}

func (c *countingCounter) CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (int, time.Time, error) {
	c.calls.Add(1)
	if c.fail.Load() {
		return 0, time.Time{}, errors.New("database unreachable")
	}
	return c.Counter.CountLimit(ctx, key, n, per, now)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// sharedNodes returns k limiters ("nodes") counting through one store.
func sharedNodes(t *testing.T, k int) ([]*Limiter, *countingCounter, *fakeClock) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &countingCounter{Counter: st}
	clock := &fakeClock{time.Unix(1_800_000_000, 0)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*Limiter
	for range k {
		nodes = append(nodes, New(context.Background(), c, clock.now, log))
	}
	return nodes, c, clock
}

// An account spreading its sends over two nodes is refused near the
// limit, not at twice it: within N + 2 × lease, and it got at least
// N - 2 × lease (leases unused on one node are the most it loses).
// With the counter not shared (each node its own store, as before),
// the account gets 2N and the test fails.
func TestSharedLimiterTwoNodes(t *testing.T) {
	nodes, _, clock := sharedNodes(t, 2)
	l := Limit{N: 1000, Per: time.Second}
	accepted, refused := 0, 0
	for i := 0; refused < 20; i++ {
		if ok, after := nodes[i%2].AllowN("send-acct:mallory", 1, l); ok {
			accepted++
		} else {
			refused++
			if after <= 0 || after > l.Per {
				t.Fatalf("retry after %v, want within the window", after)
			}
		}
		if i > 4*l.N {
			t.Fatal("never refused")
		}
	}
	lease := LeaseSize(l)
	if accepted > l.N+2*lease || accepted < l.N-2*lease {
		t.Fatalf("two nodes accepted %d of a limit of %d (lease %d)", accepted, l.N, lease)
	}
	// Another account is untouched, and the window's end lets it send again.
	if ok, _ := nodes[0].AllowN("send-acct:alice", 1, l); !ok {
		t.Fatal("another account was refused")
	}
	clock.t = clock.t.Add(l.Per)
	if ok, _ := nodes[1].AllowN("send-acct:mallory", 1, l); !ok {
		t.Fatal("refused after the window ended")
	}
}

// One node alone gets exactly N, as the in-memory limiter gave.
func TestSharedLimiterOneNodeExact(t *testing.T) {
	nodes, _, _ := sharedNodes(t, 1)
	l := Limit{N: 300, Per: time.Minute}
	accepted := 0
	for range 2 * l.N {
		if ok, _ := nodes[0].AllowN("write-acct:bob", 1, l); ok {
			accepted++
		}
	}
	if accepted != l.N {
		t.Fatalf("one node accepted %d of %d", accepted, l.N)
	}
	// A batch bigger than what is left is refused whole and not counted.
	nodes2, _, _ := sharedNodes(t, 1)
	if ok, _ := nodes2[0].AllowN("kp", 290, l); !ok {
		t.Fatal("a batch within the limit was refused")
	}
	if ok, _ := nodes2[0].AllowN("kp", 20, l); ok {
		t.Fatal("a batch over the limit was accepted")
	}
	if ok, _ := nodes2[0].AllowN("kp", 10, l); !ok {
		t.Fatal("the refused batch used up room")
	}
}

// The hot path does not ask the database per event: an account under a
// lease per window never does, and one at the limit asks about once per
// lease. A flood of refused events costs nothing more.
func TestSharedLimiterRoundTrips(t *testing.T) {
	nodes, c, clock := sharedNodes(t, 1)
	l := Limit{N: 1000, Per: time.Second}
	for range 10 { // ten windows of 50 sends
		for range 50 {
			if ok, _ := nodes[0].AllowN("send-acct:carol", 1, l); !ok {
				t.Fatal("refused under the limit")
			}
		}
		clock.t = clock.t.Add(l.Per)
	}
	if n := c.calls.Load(); n != 0 {
		t.Fatalf("500 sends under a lease made %d store calls", n)
	}
	for range 10 * l.N {
		nodes[0].AllowN("send-acct:carol", 1, l)
	}
	if n, most := c.calls.Load(), int64(l.N/LeaseSize(l)+2); n > most {
		t.Fatalf("a window's flood made %d store calls, want at most %d", n, most)
	}
}

// Link-code guesses (a limit of 10, under LeaseDivisor: no lease) are
// counted exactly across nodes: the 11th wrong guess is blocked on
// whichever node it reaches, and blocked counts nothing itself.
func TestSharedLimiterExactSmallLimit(t *testing.T) {
	nodes, _, _ := sharedNodes(t, 2)
	l := Limit{N: 10, Per: 10 * time.Minute}
	for i := range l.N {
		if b, _ := nodes[i%2].Blocked("approve:dave", l); b {
			t.Fatalf("blocked after %d wrong guesses", i)
		}
		nodes[i%2].AllowN("approve:dave", 1, l)
	}
	for i, n := range nodes {
		if b, after := n.Blocked("approve:dave", l); !b || after <= 0 {
			t.Fatalf("node %d: not blocked after %d wrong guesses on two nodes", i, l.N)
		}
	}
}

// With the store down a node counts the limit alone (as one node did
// before), so an outage of the database does not refuse everything.
func TestSharedLimiterStoreDown(t *testing.T) {
	nodes, c, _ := sharedNodes(t, 1)
	c.fail.Store(true)
	l := Limit{N: 100, Per: time.Minute}
	accepted := 0
	for range 2 * l.N {
		if ok, _ := nodes[0].AllowN("send-acct:erin", 1, l); ok {
			accepted++
		}
	}
	if accepted != l.N {
		t.Fatalf("with the store down one node accepted %d of %d", accepted, l.N)
	}
}

// failingSlots is a SlotStore whose every call fails (the database down).
type failingSlots struct{}

func (failingSlots) AcquireSlot(context.Context, string, string, int, time.Time, time.Time) (bool, error) {
	return false, errors.New("database unreachable")
}
func (failingSlots) ReleaseSlot(context.Context, string, string) error {
	return errors.New("database unreachable")
}
func (failingSlots) RenewSlots(context.Context, string, time.Time, time.Time) error {
	return errors.New("database unreachable")
}

// Two nodes' Slots on one store hold a cap across both: with a cap of
// one, a place taken on A leaves none on B until A gives it back. With
// the store down, a node lets its own count decide (ok, not counted).
func TestSlotsTwoNodes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := NewSlots(st, NewNodeID(), "test places", log)
	b := NewSlots(st, NewNodeID(), "test places", log)
	if ok, counted := a.Acquire(ctx, "k", 1); !ok || !counted {
		t.Fatalf("A's first place: ok %v counted %v", ok, counted)
	}
	if ok, _ := b.Acquire(ctx, "k", 1); ok {
		t.Fatal("B took a second place under a cap of one")
	}
	if ok, _ := b.Acquire(ctx, "other", 1); !ok {
		t.Fatal("another key was refused")
	}
	a.Release("k")
	if ok, counted := b.Acquire(ctx, "k", 1); !ok || !counted {
		t.Fatalf("B after A released: ok %v counted %v", ok, counted)
	}
	down := NewSlots(failingSlots{}, NewNodeID(), "test places", log)
	if ok, counted := down.Acquire(ctx, "k", 1); !ok || counted {
		t.Fatalf("store down: ok %v counted %v, want the caller's count to decide", ok, counted)
	}
}
