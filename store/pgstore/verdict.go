package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

// Verdict records a device's verdict on a commit's pending membership
// changes and decides what it settles (store.Store.Verdict).
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
		// verdicts and commits of one conversation are serialised.
		if err := lockConversation(ctx, tx, conv); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = store.ErrNotMember
			}
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
		err := tx.QueryRow(ctx, `SELECT seq FROM pending_changes WHERE conversation_id = $1 AND commit_id = $2 LIMIT 1`, conv, commitID).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // decided already, or nothing was pending
		}
		if err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		// As a voter, and as a changed device (whose own verdict counts
		// only if the commit has no voters): the first verdict sticks.
		counted := false
		for _, q := range []string{
			`UPDATE pending_voters SET refuse = $1 WHERE conversation_id = $2 AND seq = $3 AND device_id = $4 AND refuse IS NULL`,
			`UPDATE pending_changes SET refuse = $1 WHERE conversation_id = $2 AND seq = $3 AND device_id = $4 AND refuse IS NULL`,
		} {
			t, err := tx.Exec(ctx, q, refuse, conv, seq, deviceID)
			if err != nil {
				return fmt.Errorf("verdict: %w", err)
			}
			if t.RowsAffected() > 0 {
				counted = true
			}
		}
		if !counted {
			return nil
		}
		out = store.VerdictCounted
		decided, err := settle(ctx, tx, conv, seq)
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

func lockConversation(ctx context.Context, tx pgx.Tx, conv []byte) error {
	var epoch int64
	err := tx.QueryRow(ctx, `SELECT epoch FROM conversations WHERE id = $1 FOR UPDATE`, conv).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// settle decides what the verdicts given allow of the conversation's
// pending changes, again until nothing moves (a device that leaves stops
// being a voter, which may decide other commits). It reports whether a
// change of the commit at seq was decided.
func settle(ctx context.Context, tx pgx.Tx, conv []byte, seq int64) (bool, error) {
	decidedSeq := false
	for {
		rows, err := tx.Query(ctx, `SELECT p.seq, p.device_id, p.removed, p.refuse,
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq),
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = false),
			(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = true)
			FROM pending_changes p WHERE p.conversation_id = $1 ORDER BY p.seq, p.device_id`, conv)
		if err != nil {
			return false, err
		}
		type row struct {
			seq    int64
			device string
			store.PendingChange
		}
		var ps []row
		for rows.Next() {
			var p row
			var own *bool
			var voters, accepted, refused int64
			if err := rows.Scan(&p.seq, &p.device, &p.Removed, &own, &voters, &accepted, &refused); err != nil {
				rows.Close()
				return false, err
			}
			p.Voters, p.Accepted, p.Refused = int(voters), int(accepted), int(refused)
			if own != nil {
				p.Own = 1
				if *own {
					p.Own = 2
				}
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
					_, err = tx.Exec(ctx, `UPDATE members SET until_seq = $1 WHERE conversation_id = $2 AND device_id = $3 AND until_seq IS NULL`, p.seq, conv, p.device)
				} else {
					// Never a member of the group the members kept.
					_, err = tx.Exec(ctx, `DELETE FROM members WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL`, conv, p.device)
				}
				if err != nil {
					return false, err
				}
				// Out of the group, it has no say on any commit.
				if _, err := tx.Exec(ctx, `DELETE FROM pending_voters WHERE conversation_id = $1 AND device_id = $2`, conv, p.device); err != nil {
					return false, err
				}
				moved = true
			}
			if _, err := tx.Exec(ctx, `DELETE FROM pending_changes WHERE conversation_id = $1 AND seq = $2 AND device_id = $3`, conv, p.seq, p.device); err != nil {
				return false, err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pending_voters WHERE conversation_id = $1 AND NOT EXISTS (
			SELECT 1 FROM pending_changes p WHERE p.conversation_id = $1 AND p.seq = pending_voters.seq)`, conv); err != nil {
			return false, err
		}
		if !moved {
			break
		}
	}
	// A removed device already past its removal leaves for good.
	if _, err := tx.Exec(ctx, `DELETE FROM members WHERE conversation_id = $1 AND until_seq IS NOT NULL AND cursor >= until_seq`, conv); err != nil {
		return false, err
	}
	return decidedSeq, trimLog(ctx, tx, conv)
}

// pendingConversations lists the conversations in which one of devices
// is a voter or has a pending change: before the devices are deleted, so
// that settleAll can decide them again after.
func pendingConversations(ctx context.Context, tx pgx.Tx, devices []string) ([][]byte, error) {
	rows, err := tx.Query(ctx, `SELECT conversation_id FROM pending_voters WHERE device_id = ANY($1)
		UNION SELECT conversation_id FROM pending_changes WHERE device_id = ANY($1) ORDER BY 1`, devices)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]byte])
}

// lockPendingConversations locks the rows of the conversations in which
// one of devices has a say or a pending change (in id order, as appends
// take them one at a time: no deadlock), before the devices are deleted.
func lockPendingConversations(ctx context.Context, tx pgx.Tx, devices []string) ([][]byte, error) {
	convs, err := pendingConversations(ctx, tx, devices)
	if err != nil {
		return nil, err
	}
	for _, c := range convs {
		if err := lockConversation(ctx, tx, c); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return convs, nil
}

// settleAll settles the conversations (locked by lockPendingConversations)
// after devices that had a say in them were deleted.
func settleAll(ctx context.Context, tx pgx.Tx, convs [][]byte) error {
	for _, c := range convs {
		if _, err := settle(ctx, tx, c, 0); err != nil {
			return fmt.Errorf("settle pending membership changes: %w", err)
		}
	}
	return nil
}
