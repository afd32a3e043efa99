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
