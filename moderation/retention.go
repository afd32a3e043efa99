package moderation

import (
	"context"
	"log/slog"
	"time"
)

// DefaultCaseRetention is how long a decided case keeps what reporters
// sent after its last event ("parleyd serve --case-retention").
const DefaultCaseRetention = 180 * 24 * time.Hour

// CaseRetention purges decided cases once their retention period has
// passed (Store.PurgeCases says what goes and what stays).
type CaseRetention struct {
	Store  Store
	Period time.Duration // how long after its last event a decided case is kept
	// Interval is how often Run purges (default 1h).
	Interval time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Once purges the cases whose retention ended, returning how many.
func (r CaseRetention) Once(ctx context.Context) (int, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	return r.Store.PurgeCases(ctx, t.Add(-r.Period), t)
}

// Run purges every Interval until ctx is done.
func (r CaseRetention) Run(ctx context.Context) {
	if r.Period <= 0 {
		return
	}
	every := r.Interval
	if every <= 0 {
		every = time.Hour
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			log.Error("moderation: case retention", "err", err)
		} else if n > 0 {
			log.Info("moderation: case retention purged cases", "cases", n, "older_than", r.Period)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
