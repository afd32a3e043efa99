package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleychat/parley/store"
)

// Verdict decides a commit's pending membership changes by the first
// verdict of a device that has a say (store.Store.Verdict).
func (s *Store) Verdict(ctx context.Context, deviceID string, conv, commitID []byte, refuse bool) (store.VerdictOutcome, error) {
	if len(commitID) != 16 {
		return store.VerdictIgnored, fmt.Errorf("verdict: commit id must be 16 bytes: %w", store.ErrBadRequest)
	}
	if err := checkConversationID(conv); err != nil {
		return store.VerdictIgnored, fmt.Errorf("verdict: %w", err)
	}
	var out store.VerdictOutcome
	err := s.writeMembership(ctx, func(tx *sql.Tx) error {
		out = store.VerdictIgnored
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE conversation_id = ? AND device_id = ?`, conv, deviceID).Scan(&n); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("verdict: %w", store.ErrNotMember)
		}
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM pending_changes WHERE conversation_id = ? AND commit_id = ? LIMIT 1`, conv, commitID).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // decided already, or nothing was pending
		}
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		var voters, voter int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(device_id = ?), 0) FROM pending_voters WHERE conversation_id = ? AND seq = ?`,
			deviceID, conv, seq).Scan(&voters, &voter); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if voters == 0 {
			// No one else has a say: the changed devices decide.
			err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pending_changes WHERE conversation_id = ? AND seq = ? AND device_id = ?`,
				conv, seq, deviceID).Scan(&voter)
			if err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		if voter == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT device_id, removed FROM pending_changes WHERE conversation_id = ? AND seq = ? ORDER BY device_id`, conv, seq)
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		type change struct {
			device  string
			removed bool
		}
		var changes []change
		for rows.Next() {
			var c change
			if err := rows.Scan(&c.device, &c.removed); err != nil {
				rows.Close()
				return fmt.Errorf("verdict: %w", err)
			}
			changes = append(changes, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		for _, c := range changes {
			var q string
			switch {
			case c.removed && !refuse:
				// As Append would have: it may read up to the commit.
				q = `UPDATE members SET until_seq = ?3 WHERE conversation_id = ?1 AND device_id = ?2 AND until_seq IS NULL`
			case !c.removed && refuse:
				// Never a member in the group the members kept.
				q = `DELETE FROM members WHERE conversation_id = ?1 AND device_id = ?2 AND until_seq IS NULL`
			default:
				continue
			}
			if _, err := tx.ExecContext(ctx, q, conv, c.device, seq); err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
			// Out of the group, it has no say on other commits either.
			if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE conversation_id = ? AND device_id = ?`, conv, c.device); err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		for _, q := range []string{
			`DELETE FROM pending_changes WHERE conversation_id = ? AND seq = ?`,
			`DELETE FROM pending_voters WHERE conversation_id = ? AND seq = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, conv, seq); err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		// A removed device already past the commit leaves for good.
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND until_seq IS NOT NULL AND cursor >= until_seq`, conv); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if err := trimLog(ctx, tx, conv); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		out = store.VerdictAccepted
		if refuse {
			out = store.VerdictRefused
		}
		return nil
	})
	return out, err
}
