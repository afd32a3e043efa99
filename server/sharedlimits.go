package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitCounter is the part of store.Store that counts the shared windows
// (store.Store.CountLimit).
type limitCounter interface {
	CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (total int, ends time.Time, err error)
	DeleteEndedLimits(ctx context.Context, now time.Time) error
}

// sharedLimiter enforces the per-account limits across every node sharing
// the store (docs/abuse.md, "Across nodes"). A node does not ask the
// store for every event: it leases a slice of the account's budget from
// the shared counter and counts against that in memory.
//
// For a limit of N per window, the lease is N/leaseDivisor events. A node
// accepts its first lease of each window without asking (an account
// sending a few messages a second never costs a database round trip);
// when that is used up it adds what it used and a new lease to the shared
// counter in one call, and is granted what the counter had left of N (the
// whole lease, part of it, or nothing). Grants never add up to more than
// N, so an account spread over k nodes gets at most N + k × lease events
// in a window, not k × N; with one node it gets exactly N. A limit under
// leaseDivisor has no lease: every event is counted in the store, exact
// across nodes (link codes, reports). Once the counter is used up the node
// refuses without asking until the window ends, so a flood of refused
// requests costs the database nothing. Unused leases are not returned, so
// an account may be refused up to k × lease events early: the price of not
// counting each one in the database.
//
// If the store cannot be reached, a node falls back to counting the limit
// on its own (as a single node would) until the window ends: a database
// outage must not refuse every request, and sends fail then anyway.
type sharedLimiter struct {
	counter limitCounter
	now     func() time.Time
	log     *slog.Logger
	ctx     context.Context // ends at shutdown

	mu        sync.Mutex
	m         map[string]*lease
	lastSweep time.Time
}

// leaseDivisor: a node leases 1/16 of a limit at a time.
const leaseDivisor = 16

// limitStoreTimeout bounds one call to the shared counter.
const limitStoreTimeout = 2 * time.Second

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

func newSharedLimiter(ctx context.Context, c limitCounter, now func() time.Time, log *slog.Logger) *sharedLimiter {
	if now == nil {
		now = time.Now
	}
	return &sharedLimiter{counter: c, now: now, log: log, ctx: ctx, m: make(map[string]*lease), lastSweep: now()}
}

func leaseSize(l Limit) int { return l.N / leaseDivisor }

// get returns key's lease, reset if its window has ended, locked.
func (s *sharedLimiter) get(key string, l Limit, now time.Time) *lease {
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
			e.ends, e.allowed, e.used, e.claimed = now.Add(l.Per), leaseSize(l), 0, 0
			e.spent, e.local = false, false
		}
		return e
	}
}

// sweepLocked drops the leases whose windows ended (s.mu held).
func (s *sharedLimiter) sweepLocked(now time.Time) {
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

// allowN counts n events for key and reports whether they fit the limit
// across the nodes; if not, retryAfter is when the window ends. A refused
// batch (n > 1) is not counted; a refused single event is (blocked
// relies on it, as ratelimit.Limiter's callers do).
func (s *sharedLimiter) allowN(key string, n int, l Limit) (ok bool, retryAfter time.Duration) {
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
func (s *sharedLimiter) take(e *lease, key string, n int, l Limit, now time.Time) {
	want := max(leaseSize(l), n)
	// Refused single events count too, so that the counter shows
	// what blocked reads: they are part of used beyond allowed.
	unreported := max(e.allowed, e.used) - e.claimed
	ctx, cancel := context.WithTimeout(s.ctx, limitStoreTimeout)
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

// blocked reports whether key's shared window already has l.N events,
// without counting one.
func (s *sharedLimiter) blocked(key string, l Limit) (bool, time.Duration) {
	now := s.now()
	e := s.get(key, l, now)
	defer e.mu.Unlock()
	if e.spent || e.local { // allowed is all this node may have
		if e.used >= e.allowed {
			return true, e.ends.Sub(now)
		}
		return false, 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, limitStoreTimeout)
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

// expire drops leases whose windows have ended, here and in the store.
func (s *sharedLimiter) expire(ctx context.Context, now time.Time) {
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
	if err := s.counter.DeleteEndedLimits(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("shared rate limits: deleting ended windows", "err", err)
	}
}

// leaseSweepEvery is how often get drops leases whose windows ended.
const leaseSweepEvery = time.Minute
