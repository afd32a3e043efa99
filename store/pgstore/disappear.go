package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeleteDisappeared deletes the messages whose expiry is at or before
// now, with their idempotency records, in one statement, then VACUUMs
// the two tables so that the dead rows' space is reclaimed at once
// rather than whenever autovacuum comes. PostgreSQL does not zero the
// space it reclaims: docs/protocol.md says what that means for a
// PostgreSQL deployment.
func (s *Store) DeleteDisappeared(ctx context.Context, now time.Time) (int, time.Time, error) {
	var n int
	var next *int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `WITH due AS (
				DELETE FROM disappearing WHERE expires <= $1 RETURNING conversation_id, seq, id, first_sent
			), gone AS (
				DELETE FROM messages m USING due WHERE m.conversation_id = due.conversation_id AND m.seq = due.seq RETURNING 1
			), ids AS (
				DELETE FROM message_ids mi USING due WHERE mi.first_sent = due.first_sent AND mi.id = due.id
					AND mi.conversation_id = due.conversation_id RETURNING 1
			)
			SELECT count(*) FROM due`, now.Unix()).Scan(&n)
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT MIN(expires) FROM disappearing WHERE expires > $1`, now.Unix()).Scan(&next)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("delete disappeared messages: %w", err)
	}
	if n > 0 {
		if _, err := s.pool.Exec(ctx, `VACUUM messages, message_ids, disappearing`); err != nil {
			return n, time.Time{}, fmt.Errorf("delete disappeared messages: vacuum: %w", unavailable(err))
		}
	}
	if next == nil {
		return n, time.Time{}, nil
	}
	return n, time.Unix(*next, 0), nil
}
