package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = store.VerdictIgnored
		// The conversation's row first, as a commit's append takes it:
		// verdicts and commits on one conversation are serialised.
		var epoch int64
		err := tx.QueryRow(ctx, `SELECT epoch FROM conversations WHERE id = $1 FOR UPDATE`, conv).Scan(&epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("verdict: %w", store.ErrNotMember)
		}
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		var member bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND device_id = $2)`, conv, deviceID).Scan(&member); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if !member {
			return fmt.Errorf("verdict: %w", store.ErrNotMember)
		}
		var seq int64
		err = tx.QueryRow(ctx, `SELECT seq FROM pending_changes WHERE conversation_id = $1 AND commit_id = $2 LIMIT 1`, conv, commitID).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // decided already, or nothing was pending
		}
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		var voters int64
		var voter bool
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(BOOL_OR(device_id = $1), false) FROM pending_voters WHERE conversation_id = $2 AND seq = $3`,
			deviceID, conv, seq).Scan(&voters, &voter); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if voters == 0 {
			// No one else has a say: the changed devices decide.
			err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pending_changes WHERE conversation_id = $1 AND seq = $2 AND device_id = $3)`,
				conv, seq, deviceID).Scan(&voter)
			if err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		if !voter {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT device_id, removed FROM pending_changes WHERE conversation_id = $1 AND seq = $2 ORDER BY device_id`, conv, seq)
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
			var err error
			switch {
			case c.removed && !refuse:
				// As Append would have: it may read up to the commit.
				_, err = tx.Exec(ctx, `UPDATE members SET until_seq = $3 WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL`, conv, c.device, seq)
			case !c.removed && refuse:
				// Never a member in the group the members kept.
				_, err = tx.Exec(ctx, `DELETE FROM members WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL`, conv, c.device)
			default:
				continue
			}
			if err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
			// Out of the group, it has no say on other commits either.
			if _, err := tx.Exec(ctx, `DELETE FROM pending_voters WHERE conversation_id = $1 AND device_id = $2`, conv, c.device); err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		for _, q := range []string{
			`DELETE FROM pending_changes WHERE conversation_id = $1 AND seq = $2`,
			`DELETE FROM pending_voters WHERE conversation_id = $1 AND seq = $2`,
		} {
			if _, err := tx.Exec(ctx, q, conv, seq); err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
		}
		// A removed device already past the commit leaves for good.
		if _, err := tx.Exec(ctx, `DELETE FROM members WHERE conversation_id = $1 AND until_seq IS NOT NULL AND cursor >= until_seq`, conv); err != nil {
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
