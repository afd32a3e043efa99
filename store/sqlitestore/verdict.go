package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleychat/parley/store"
)

// Verdict records a device's verdict on a commit's pending membership
// changes and decides what it settles (store.Store.Verdict).
func (s *Store) Verdict(ctx context.Context, deviceID string, conv, commitID []byte, refuse bool) (store.VerdictOutcome, error) {
	if len(commitID) != 16 {
		return store.VerdictIgnored, fmt.Errorf("verdict: commit id must be 16 bytes: %w", store.ErrBadRequest)
	}
	if err := store.CheckConversationID(conv); err != nil {
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
		// As a voter, and as a changed device (whose own verdict counts
		// only if the commit has no voters): the first verdict sticks.
		counted := false
		for _, q := range []string{
			`UPDATE pending_voters SET refuse = ? WHERE conversation_id = ? AND seq = ? AND device_id = ? AND refuse IS NULL`,
			`UPDATE pending_changes SET refuse = ? WHERE conversation_id = ? AND seq = ? AND device_id = ? AND refuse IS NULL`,
		} {
			r, err := tx.ExecContext(ctx, q, refuse, conv, seq, deviceID)
			if err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
			if k, _ := r.RowsAffected(); k > 0 {
				counted = true
			}
		}
		if !counted {
			return nil
		}
		out = store.VerdictCounted
		decided, err := settle(ctx, tx, s.log, conv, seq)
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if decided {
			out = store.VerdictDecided
		}
		return nil
	})
	return out, err
}

// settle decides what the verdicts given allow of the conversation's
// pending changes, again until nothing moves (a device that leaves stops
// being a voter, which may decide other commits). It reports whether a
// change of the commit at seq was decided.
func settle(ctx context.Context, tx txQuerier, log *logIndex, conv []byte, seq int64) (bool, error) {
	decidedSeq := false
	for {
		rows, err := tx.QueryContext(ctx, `SELECT p.seq, p.device_id, p.commit_id, p.removed, p.refuse,
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq),
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = 0),
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = 1)
			FROM pending_changes p WHERE p.conversation_id = ? ORDER BY p.seq, p.device_id`, conv)
		if err != nil {
			return false, err
		}
		type row struct {
			seq    int64
			device string
			commit []byte
			store.PendingChange
		}
		var ps []row
		for rows.Next() {
			var p row
			var own sql.NullInt64
			if err := rows.Scan(&p.seq, &p.device, &p.commit, &p.Removed, &own, &p.Voters, &p.Accepted, &p.Refused); err != nil {
				rows.Close()
				return false, err
			}
			if own.Valid {
				p.Own = 1 + uint8(own.Int64)
			}
			ps = append(ps, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		moved := false
		for _, p := range ps {
			d := p.Decide()
			if d == store.KeepPending {
				continue
			}
			if p.seq == seq {
				decidedSeq = true
			}
			if d == store.ApplyRemoval || d == store.UndoAddition {
				var err error
				if d == store.ApplyRemoval {
					// As Append would have: it may read up to the commit.
					_, err = tx.ExecContext(ctx, `UPDATE members SET until_seq = ? WHERE conversation_id = ? AND device_id = ? AND until_seq IS NULL`, p.seq, conv, p.device)
				} else {
					// Never a member of the group the members kept.
					_, err = tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND device_id = ? AND until_seq IS NULL`, conv, p.device)
				}
				if err == nil && d == store.UndoAddition && p.Own != 2 {
					err = noticeRefused(ctx, tx, conv, p.commit, p.device)
				}
				if err != nil {
					return false, err
				}
				// Out of the group, it has no say on any commit.
				if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE conversation_id = ? AND device_id = ?`, conv, p.device); err != nil {
					return false, err
				}
				moved = true
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM pending_changes WHERE conversation_id = ? AND seq = ? AND device_id = ?`, conv, p.seq, p.device); err != nil {
				return false, err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE conversation_id = ?1 AND NOT EXISTS (
			SELECT 1 FROM pending_changes p WHERE p.conversation_id = ?1 AND p.seq = pending_voters.seq)`, conv); err != nil {
			return false, err
		}
		if !moved {
			break
		}
	}
	// A removed device already past its removal leaves for good.
	if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND until_seq IS NOT NULL AND cursor >= until_seq`, conv); err != nil {
		return false, err
	}
	return decidedSeq, trimLog(ctx, tx, log, conv)
}

// pendingConversations lists the conversations in which one of devices
// is a voter or has a pending change: before the devices are deleted, so
// that settle can decide them again after.
func pendingConversations(ctx context.Context, tx txQuerier, devices []string) ([][]byte, error) {
	var out [][]byte
	seen := map[string]bool{}
	for _, d := range devices {
		rows, err := tx.QueryContext(ctx, `SELECT conversation_id FROM pending_voters WHERE device_id = ?1
			UNION SELECT conversation_id FROM pending_changes WHERE device_id = ?1`, d)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c []byte
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, err
			}
			if !seen[string(c)] {
				seen[string(c)] = true
				out = append(out, c)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// settleAll settles the conversations (after devices that had a say in
// them were deleted).
func settleAll(ctx context.Context, tx txQuerier, log *logIndex, convs [][]byte) error {
	for _, c := range convs {
		if _, err := settle(ctx, tx, log, c, 0); err != nil {
			return fmt.Errorf("settle pending membership changes: %w", err)
		}
	}
	return nil
}

// capPendingRemovals settles the conversation's oldest pending removals
// past store.MaxPendingRemovals as store.PendingChange.Expire says (a
// removal is dropped: the device stays), with the verdicts that waited
// on them, so that a member minting removals costs bounded storage.
func capPendingRemovals(ctx context.Context, tx txQuerier, conv []byte) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pending_changes WHERE conversation_id = ? AND removed = 1`, conv).Scan(&n); err != nil {
		return fmt.Errorf("cap pending removals: %w", err)
	}
	over := store.RemovalsOverCap(n)
	if over == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_changes WHERE rowid IN (
		SELECT rowid FROM pending_changes WHERE conversation_id = ? AND removed = 1 ORDER BY seq, device_id LIMIT ?)`, conv, over); err != nil {
		return fmt.Errorf("cap pending removals: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE conversation_id = ?1 AND NOT EXISTS (
		SELECT 1 FROM pending_changes p WHERE p.conversation_id = ?1 AND p.seq = pending_voters.seq)`, conv); err != nil {
		return fmt.Errorf("cap pending removals: %w", err)
	}
	return nil
}

// noticeRefused puts a store.KindRefused entry in the inbox of the device
// whose addition by the commit the verdicts undid, so that its client
// learns it is no member of the group the others kept (docs/protocol.md
// §14). A device that refused the Welcome itself knows, and gets none.
// The entries are bounded by the Welcomes: one per undone addition.
func noticeRefused(ctx context.Context, tx txQuerier, conv, commitID []byte, device string) error {
	var iseq uint64
	if err := tx.QueryRowContext(ctx, `UPDATE devices SET inbox_head = inbox_head + 1 WHERE id = ? RETURNING inbox_head`, device).Scan(&iseq); err != nil {
		return fmt.Errorf("refused notice: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO inbox (device_id, seq, id, conversation_id, epoch, kind, sender, payload, stored)
		VALUES (?, ?, ?, ?, 0, ?, '', x'', ?)`, device, iseq, commitID, conv, store.KindRefused, nowMilli()); err != nil {
		return fmt.Errorf("refused notice: %w", err)
	}
	return nil
}
