// Package ratelimit is the in-memory, fixed-window rate limiter that
// parleyd's request handlers share (the WebSocket protocol and the channel
// API). Counters are never stored: a restart resets them, which is the
// right trade for limits meant to stop floods, not to meter use.
package ratelimit

import (
	"sync"
	"time"
)

// Limit allows N events per window Per.
type Limit struct {
	N   int
	Per time.Duration
}

// Limiter counts events per key in fixed windows.
type Limiter struct {
	mu        sync.Mutex
	m         map[string]*window
	lastSweep time.Time
	now       func() time.Time
}

type window struct {
	start time.Time
	len   time.Duration
	n     int
}

// sweepEvery is how often Allow drops windows that have ended, so that
// keys seen once do not stay in memory.
const sweepEvery = time.Minute

// New returns an empty Limiter.
func New() *Limiter { return NewWithClock(time.Now) }

// NewWithClock returns an empty Limiter that reads the time from now
// (tests move a clock of their own instead of sleeping through windows).
func NewWithClock(now func() time.Time) *Limiter {
	return &Limiter{m: make(map[string]*window), lastSweep: now(), now: now}
}

// Allow counts one event for key and reports whether at most l.N events
// happened in the current window; if not, retryAfter is when the window
// ends.
func (lim *Limiter) Allow(key string, l Limit) (ok bool, retryAfter time.Duration) {
	return lim.AllowN(key, 1, l)
}

// AllowN counts n events for key at once (a request that hands out n
// things costs n) and reports whether at most l.N events happened in the
// current window. A refused batch (n > 1) is not counted, so that it
// does not use up room a smaller request could have.
func (lim *Limiter) AllowN(key string, n int, l Limit) (ok bool, retryAfter time.Duration) {
	now := lim.now()
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if now.Sub(lim.lastSweep) >= sweepEvery {
		lim.expireLocked(now)
	}
	w := lim.m[key]
	if w == nil || now.Sub(w.start) >= w.len {
		w = &window{start: now, len: l.Per}
		lim.m[key] = w
	}
	if w.n+n <= l.N {
		w.n += n
		return true, 0
	}
	if n == 1 {
		w.n++ // a refused single event still counts: Blocked relies on it
	}
	return false, w.start.Add(w.len).Sub(now)
}

// Blocked reports whether key already used up max events in its current
// window, without counting one.
func (lim *Limiter) Blocked(key string, max int) (bool, time.Duration) {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	w := lim.m[key]
	now := lim.now()
	if w != nil && now.Sub(w.start) < w.len && w.n >= max {
		return true, w.start.Add(w.len).Sub(now)
	}
	return false, 0
}

// Expire drops the windows that ended before now.
func (lim *Limiter) Expire(now time.Time) {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	lim.expireLocked(now)
}

func (lim *Limiter) expireLocked(now time.Time) {
	for k, w := range lim.m {
		if now.Sub(w.start) >= w.len {
			delete(lim.m, k)
		}
	}
	lim.lastSweep = now
}

// Len reports how many keys have a window (for tests and metrics).
func (lim *Limiter) Len() int {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	return len(lim.m)
}
