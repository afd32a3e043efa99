// Package sharedlimit holds per-account limits across every parleyd node
// sharing one store (docs/abuse.md, "Across nodes"): rate limits leased
// in slices from a shared counter (Limiter, over store.Store.CountLimit)
// and caps on what an account holds at once, counted per node under a
// lease the node renews (Slots, over store.Store.AcquireSlot). The
// delivery server (package server) and the public channel API (package
// channels) both count through it, so that an account spreading its
// requests over k nodes gets each limit about once, not k times. It
// depends on nothing of the project but internal/ratelimit's Limit: the
// store is passed in as the interfaces below, which store.Store
// satisfies.
package sharedlimit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/ratelimit"
)

// Limit allows N events per window Per.
type Limit = ratelimit.Limit

// Counter is the part of store.Store that counts the shared windows
// (store.Store.CountLimit).
type Counter interface {
	CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (total int, ends time.Time, err error)
	DeleteEndedLimits(ctx context.Context, now time.Time) error
}

// Limiter enforces the per-account limits across every node sharing
// the store (docs/abuse.md, "Across nodes"). A node does not ask the
// store for every event: it leases a slice of the account's budget from
// the shared counter and counts against that in memory.
//
// For a limit of N per window, the lease is N/LeaseDivisor events. A node
// accepts its first lease of each window without asking (an account
// sending a few messages a second never costs a database round trip);
// when that is used up it adds what it used and a new lease to the shared
// counter in one call, and is granted what the counter had left of N (the
// whole lease, part of it, or nothing). Grants never add up to more than
// N, so an account spread over k nodes gets at most N + k × lease events
// in a window, not k × N; with one node it gets exactly N. A limit under
// LeaseDivisor has no lease: every event is counted in the store, exact
// across nodes (link codes, reports). Once the counter is used up the node
// refuses without asking until the window ends, so a flood of refused
// requests costs the database nothing. Unused leases are not returned, so
// an account may be refused up to k × lease events early: the price of not
// counting each one in the database.
//
// If the store cannot be reached, a node falls back to counting the limit
// on its own (as a single node would) until the window ends: a database
// outage must not refuse every request, and sends fail then anyway.
type Limiter struct {
	counter Counter
	now     func() time.Time
	log     *slog.Logger
	ctx     context.Context // ends at shutdown

	mu        sync.Mutex
	m         map[string]*lease
	lastSweep time.Time
}

// LeaseDivisor: a node leases 1/LeaseDivisor of a limit at a time.
const LeaseDivisor = 16

// StoreTimeout bounds one call to the shared store.
const StoreTimeout = 2 * time.Second

// lease is a node's share of one key's current window.
type lease struct {
	mu      sync.Mutex
	ends    time.Time
	allowed int  // events this node may accept in the window
	used    int  // events it accepted (and refused single events)
	claimed int  // of allowed, what the shared counter knows about
	spent   bool // the shared counter had nothing left: refuse until ends
	local   bool // the store failed: counting alone until ends
	dropped bool // swept from the map: get looks again
}

// New returns a Limiter counting through c. ctx ends the store calls in
// flight (at shutdown); now nil reads the system clock.
func New(ctx context.Context, c Counter, now func() time.Time, log *slog.Logger) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{counter: c, now: now, log: log, ctx: ctx, m: make(map[string]*lease), lastSweep: now()}
}

// LeaseSize is how many events of l a node takes from the shared counter
// at a time (none under LeaseDivisor: each is counted in the store).
func LeaseSize(l Limit) int { return l.N / LeaseDivisor }

// get returns key's lease, reset if its window has ended, locked.
func (s *Limiter) get(key string, l Limit, now time.Time) *lease {
	for {
		s.mu.Lock()
		if now.Sub(s.lastSweep) >= leaseSweepEvery {
			s.sweepLocked(now)
		}
		e := s.m[key]
		if e == nil {
			e = &lease{}
			s.m[key] = e
		}
		s.mu.Unlock()
		e.mu.Lock()
		if e.dropped { // swept between the two locks
			e.mu.Unlock()
			continue
		}
		if !now.Before(e.ends) {
			// A new window (field by field: e.mu is held).
			e.ends, e.allowed, e.used, e.claimed = now.Add(l.Per), LeaseSize(l), 0, 0
			e.spent, e.local = false, false
		}
		return e
	}
}

// sweepLocked drops the leases whose windows ended (s.mu held).
func (s *Limiter) sweepLocked(now time.Time) {
	for k, e := range s.m {
		if e.mu.TryLock() {
			if !now.Before(e.ends) {
				e.dropped = true
				delete(s.m, k)
			}
			e.mu.Unlock()
		}
	}
	s.lastSweep = now
}

// AllowN counts n events for key and reports whether they fit the limit
// across the nodes; if not, retryAfter is when the window ends. A refused
// batch (n > 1) is not counted; a refused single event is (Blocked
// relies on it, as ratelimit.Limiter's callers do).
func (s *Limiter) AllowN(key string, n int, l Limit) (ok bool, retryAfter time.Duration) {
	now := s.now()
	e := s.get(key, l, now)
	defer e.mu.Unlock()
	if e.used+n <= e.allowed {
		e.used += n
		return true, 0
	}
	if !e.spent && !e.local {
		s.take(e, key, n, l, now)
		if e.used+n <= e.allowed {
			e.used += n
			return true, 0
		}
	}
	if n == 1 {
		e.used++
	}
	return false, e.ends.Sub(now)
}

// take reports what e accepted beyond its claims and asks the shared
// counter for a new lease, big enough for n.
func (s *Limiter) take(e *lease, key string, n int, l Limit, now time.Time) {
	want := max(LeaseSize(l), n)
	// Refused single events count too, so that the counter shows
	// what Blocked reads: they are part of used beyond allowed.
	unreported := max(e.allowed, e.used) - e.claimed
	ctx, cancel := context.WithTimeout(s.ctx, StoreTimeout)
	total, ends, err := s.counter.CountLimit(ctx, key, unreported+want, l.Per, now)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("shared rate limit: the store failed; this node counts the limit alone until the window ends", "err", err)
		}
		e.local, e.allowed = true, l.N
		return
	}
	e.claimed += unreported + want
	// The counter held total-want before this lease (what every node
	// claimed, this one's just reported uses included): grant what is
	// left of N, at most the lease.
	grant := min(max(l.N-(total-want), 0), want)
	e.allowed = max(e.allowed, e.used) + grant
	e.ends = ends
	if grant < want {
		e.spent = true
	}
}

// Blocked reports whether key's shared window already has l.N events,
// without counting one.
func (s *Limiter) Blocked(key string, l Limit) (bool, time.Duration) {
	now := s.now()
	e := s.get(key, l, now)
	defer e.mu.Unlock()
	if e.spent || e.local { // allowed is all this node may have
		if e.used >= e.allowed {
			return true, e.ends.Sub(now)
		}
		return false, 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, StoreTimeout)
	total, ends, err := s.counter.CountLimit(ctx, key, 0, l.Per, now)
	cancel()
	if err != nil {
		return e.used >= l.N, e.ends.Sub(now)
	}
	// Add what this node accepted and has not reported yet.
	if total+max(e.allowed, e.used)-e.claimed >= l.N {
		return true, ends.Sub(now)
	}
	return false, 0
}

// Expire drops leases whose windows have ended, here and in the store.
func (s *Limiter) Expire(ctx context.Context, now time.Time) {
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
	if err := s.counter.DeleteEndedLimits(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("shared rate limits: deleting ended windows", "err", err)
	}
}

// leaseSweepEvery is how often get drops leases whose windows ended.
const leaseSweepEvery = time.Minute
