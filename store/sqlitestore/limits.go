package sqlitestore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley/store"
)

// limitWindows are the rate-limit counters (store.Store.CountLimit). One
// process owns a SQLite file, so they are kept in memory: nothing else
// could share them, and a restart resetting them is what limits meant to
// stop floods want.
type limitWindows struct {
	mu sync.Mutex
	m  map[string]limitWindow
}

type limitWindow struct {
	ends time.Time
	used int
}

func (s *Store) CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (int, time.Time, error) {
	if n < 0 || per <= 0 {
		return 0, time.Time{}, fmt.Errorf("count limit: n %d, per %v: %w", n, per, store.ErrBadRequest)
	}
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]limitWindow)
	}
	w, ok := l.m[key]
	// Milliseconds, as the PostgreSQL store keeps them.
	now = time.UnixMilli(now.UnixMilli())
	if !ok || !w.ends.After(now) {
		w = limitWindow{ends: now.Add(per.Truncate(time.Millisecond))}
	}
	w.used += n
	l.m[key] = w
	return w.used, w.ends, nil
}

func (s *Store) DeleteEndedLimits(ctx context.Context, now time.Time) error {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.m {
		if !w.ends.After(now) {
			delete(l.m, k)
		}
	}
	return nil
}

// slots are store.Store.AcquireSlot's counts, in memory as the limit
// windows are: key -> node -> count and lease.
type slots struct {
	mu sync.Mutex
	m  map[string]map[string]slot
}

type slot struct {
	n         int
	leaseEnds time.Time
}

func (s *Store) AcquireSlot(ctx context.Context, key, node string, max int, leaseEnds, now time.Time) (bool, error) {
	sl := &s.slots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	held := 0
	for n, c := range sl.m[key] {
		if n == node || c.leaseEnds.After(now) {
			held += c.n
		}
	}
	if held+1 > max {
		return false, nil
	}
	if sl.m == nil {
		sl.m = make(map[string]map[string]slot)
	}
	if sl.m[key] == nil {
		sl.m[key] = make(map[string]slot)
	}
	c := sl.m[key][node]
	sl.m[key][node] = slot{n: c.n + 1, leaseEnds: leaseEnds}
	return true, nil
}

func (s *Store) ReleaseSlot(ctx context.Context, key, node string) error {
	sl := &s.slots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	c, ok := sl.m[key][node]
	if !ok {
		return nil
	}
	if c.n--; c.n <= 0 {
		delete(sl.m[key], node)
		if len(sl.m[key]) == 0 {
			delete(sl.m, key)
		}
		return nil
	}
	sl.m[key][node] = c
	return nil
}

func (s *Store) RenewSlots(ctx context.Context, node string, leaseEnds, now time.Time) error {
	sl := &s.slots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for key, nodes := range sl.m {
		for n, c := range nodes {
			switch {
			case n == node:
				c.leaseEnds = leaseEnds
				nodes[n] = c
			case !c.leaseEnds.After(now):
				delete(nodes, n)
			}
		}
		if len(nodes) == 0 {
			delete(sl.m, key)
		}
	}
	return nil
}
