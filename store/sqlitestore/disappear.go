package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/store"
)

// noteExpiry records a disappearing message's expiry (store.Append.Expires)
// in the same transaction as the message.
func noteExpiry(ctx context.Context, tx txQuerier, a store.Append, seq uint64) error {
	if a.Expires.IsZero() {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO disappearing (conversation_id, seq, id, first_sent, expires) VALUES (?, ?, ?, ?, ?)`,
		a.ConversationID, seq, a.ID, a.FirstSent, a.Expires.Unix())
	return err
}

// disappearBatch bounds the messages one DeleteDisappeared transaction
// removes, so that a backlog does not hold the writer for long.
const disappearBatch = 1000

// DeleteDisappeared deletes the messages whose expiry is at or before
// now, with their idempotency records, then truncates the WAL: with
// secure_delete on the writing connection the deleted rows are zeroed in
// the database file, and the truncation drops the older copies of their
// pages that the WAL still held.
func (s *Store) DeleteDisappeared(ctx context.Context, now time.Time) (int, time.Time, error) {
	total := 0
	for {
		n := 0
		err := s.write(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT conversation_id, seq, id, first_sent FROM disappearing WHERE expires <= ? ORDER BY expires LIMIT ?`,
				now.Unix(), disappearBatch)
			if err != nil {
				return err
			}
			type due struct {
				conv, id  []byte
				seq       uint64
				firstSent int64
			}
			var dues []due
			for rows.Next() {
				var d due
				if err := rows.Scan(&d.conv, &d.seq, &d.id, &d.firstSent); err != nil {
					rows.Close()
					return err
				}
				dues = append(dues, d)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, d := range dues {
				if err := deleteLogged(ctx, tx, s.log, d.conv, d.seq); err != nil {
					return err
				}
				for _, q := range []struct {
					sql  string
					args []any
				}{
					{`DELETE FROM message_ids WHERE first_sent = ? AND id = ? AND conversation_id = ?`, []any{d.firstSent, d.id, d.conv}},
					{`DELETE FROM disappearing WHERE conversation_id = ? AND seq = ?`, []any{d.conv, d.seq}},
				} {
					if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
						return err
					}
				}
			}
			n = len(dues)
			return nil
		})
		if err != nil {
			return total, time.Time{}, fmt.Errorf("delete disappeared messages: %w", err)
		}
		total += n
		if n < disappearBatch {
			break
		}
	}
	if total > 0 {
		if err := s.truncateWAL(ctx); err != nil {
			return total, time.Time{}, err
		}
	}
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MIN(expires) FROM disappearing`).Scan(&next); err != nil {
		return total, time.Time{}, fmt.Errorf("delete disappeared messages: %w", err)
	}
	if !next.Valid {
		return total, time.Time{}, nil
	}
	return total, time.Unix(next.Int64, 0), nil
}

// truncateWAL checkpoints the whole WAL into the database and truncates
// it to zero bytes. Readers in the middle of a transaction can keep it
// from completing; it is then tried again at the next sweep, and the WAL
// is overwritten from its start by the writes in between anyway.
func (s *Store) truncateWAL(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var busy, logFrames, done int
	err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitestore: checkpoint: %w", unavailable(err))
	}
	return nil
}
