package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// AcquireSlot holds a transaction advisory lock on the key (its hash, in
// the two-integer form beside lockSlots), so two nodes acquiring at once
// see each other's counts and max holds exactly.
func (s *Store) AcquireSlot(ctx context.Context, key, node string, max int, leaseEnds, now time.Time) (bool, error) {
	var ok bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		ok = false
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockSlots), key); err != nil {
			return fmt.Errorf("lock slot: %w", err)
		}
		var held int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(n), 0) FROM slots WHERE key = $1 AND (lease_ends > $2 OR node = $3)`,
			key, now.UnixMilli(), node).Scan(&held); err != nil {
			return fmt.Errorf("count slots: %w", err)
		}
		if held+1 > int64(max) {
			return nil
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO slots AS s (key, node, n, lease_ends) VALUES ($1, $2, 1, $3)
ON CONFLICT (key, node) DO UPDATE SET n = s.n + 1, lease_ends = EXCLUDED.lease_ends`, key, node, leaseEnds.UnixMilli()); err != nil {
			return fmt.Errorf("take slot: %w", err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("acquire slot: %w", err)
	}
	return ok, nil
}

func (s *Store) ReleaseSlot(ctx context.Context, key, node string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE slots SET n = n - 1 WHERE key = $1 AND node = $2`, key, node); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM slots WHERE key = $1 AND node = $2 AND n <= 0`, key, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("release slot: %w", err)
	}
	return nil
}

func (s *Store) RenewSlots(ctx context.Context, node string, leaseEnds, now time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE slots SET lease_ends = $2 WHERE node = $1`, node, leaseEnds.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM slots WHERE lease_ends <= $1 AND node <> $2`, now.UnixMilli(), node)
		return err
	})
	if err != nil {
		return fmt.Errorf("renew slots: %w", err)
	}
	return nil
}
