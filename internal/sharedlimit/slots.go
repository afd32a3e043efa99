package sharedlimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"
)

// SlotStore is the part of store.Store that counts what accounts hold at
// once across the nodes (store.Store.AcquireSlot).
type SlotStore interface {
	AcquireSlot(ctx context.Context, key, node string, max int, leaseEnds, now time.Time) (bool, error)
	ReleaseSlot(ctx context.Context, key, node string) error
	RenewSlots(ctx context.Context, node string, leaseEnds, now time.Time) error
}

// Store is everything a node counts through: store.Store satisfies it.
type Store interface {
	Counter
	SlotStore
}

// SlotLease is how long the places a node counted in the store keep
// counting on other nodes without Run renewing them (it does every third
// of it): how long a node killed with SIGKILL keeps its accounts' places
// counted.
const SlotLease = 90 * time.Second

// Slots caps what an account holds at once (connections, uploads in
// progress) across every node sharing the store. Each node keeps its own
// count per key in the store under a lease (SlotLease) that Run renews,
// so that the count of a node that died, having released nothing, stops
// counting when its lease ends. One store round trip per Acquire and per
// Release, none while the place is held.
//
// Slots does not count on the node itself: callers keep their own count
// (exact on one node, and what decides when the store fails) and ask
// Slots only for the places their own count allows.
type Slots struct {
	store SlotStore
	node  string
	log   *slog.Logger
	what  string // for logs: "connections per account"
}

// NewSlots returns the slots of one node, node naming it in the store (a
// new one at each start: NewNodeID). what names the places in log lines.
func NewSlots(st SlotStore, node, what string, log *slog.Logger) *Slots {
	return &Slots{store: st, node: node, log: log, what: what}
}

// NewNodeID returns a random id for a node's counts in the store.
func NewNodeID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Acquire takes one of key's max places across the nodes. It reports
// whether there was room, and whether the place was counted in the store
// (then Release gives it back). If the store fails, the caller's own
// count on this node decides: ok, not counted.
func (s *Slots) Acquire(ctx context.Context, key string, max int) (ok, counted bool) {
	now := time.Now()
	ok, err := s.store.AcquireSlot(ctx, key, s.node, max, now.Add(SlotLease), now)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn(s.what+" across the nodes: the store failed; counting on this node only", "err", err)
		}
		return true, false
	}
	return ok, ok
}

// Release gives back a place Acquire counted.
func (s *Slots) Release(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), StoreTimeout)
	defer cancel()
	if err := s.store.ReleaseSlot(ctx, key, s.node); err != nil {
		// It stays counted until this node's lease ends (its next start).
		s.log.Warn(s.what+" across the nodes: releasing in the store failed", "err", err)
	}
}

// Run renews this node's leases every third of SlotLease until ctx ends.
func (s *Slots) Run(ctx context.Context) {
	t := time.NewTicker(SlotLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		rctx, cancel := context.WithTimeout(ctx, SlotLease/3)
		err := s.store.RenewSlots(rctx, s.node, now.Add(SlotLease), now)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn(s.what+": renewing this node's counts failed; other nodes stop counting them when the lease ends", "err", err)
		}
	}
}
