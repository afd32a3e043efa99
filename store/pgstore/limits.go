package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/parleychat/parley/store"
)

// CountLimit is one statement, committed on its own: the row's lock
// serialises the nodes counting one key, and a window that has ended is
// restarted by whichever node counts first after it.
func (s *Store) CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (int, time.Time, error) {
	if n < 0 || per <= 0 {
		return 0, time.Time{}, fmt.Errorf("count limit: n %d, per %v: %w", n, per, store.ErrBadRequest)
	}
	var total, ends int64
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, `
INSERT INTO limit_windows AS w (key, ends, used) VALUES ($1, $2::BIGINT + $3::BIGINT, $4)
ON CONFLICT (key) DO UPDATE SET
	used = CASE WHEN w.ends > $2 THEN w.used + EXCLUDED.used ELSE EXCLUDED.used END,
	ends = CASE WHEN w.ends > $2 THEN w.ends ELSE EXCLUDED.ends END
RETURNING used, ends`, key, now.UnixMilli(), per.Milliseconds(), n).Scan(&total, &ends)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count limit: %w", err)
	}
	return int(total), time.UnixMilli(ends), nil
}

func (s *Store) DeleteEndedLimits(ctx context.Context, now time.Time) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM limit_windows WHERE ends <= $1`, now.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("delete ended limits: %w", err)
	}
	return nil
}
