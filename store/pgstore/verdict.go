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
	if err := store.CheckConversationID(conv); err != nil {
		return store.VerdictIgnored, fmt.Errorf("verdict: %w", err)
	}
	var out store.VerdictOutcome
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = store.VerdictIgnored
		// One round trip: the conversation's row first, as a commit's
		// append takes it (verdicts and commits of one conversation are
		// serialised), then, each statement seeing what was committed
		// before the lock was granted, the checks, the verdict (as a
		// voter, and as a changed device, whose own verdict counts only
		// if the commit has no voters: the first verdict sticks) and the
		// pending changes settle decides from. The updates change nothing
		// unless the device is a member and the commit pending.
		var b pgx.Batch
		b.Queue(`SELECT epoch FROM conversations WHERE id = $1 FOR UPDATE`, conv)
		b.Queue(`SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND device_id = $2),
			(SELECT seq FROM pending_changes WHERE conversation_id = $1 AND commit_id = $3 LIMIT 1)`, conv, deviceID, commitID)
		for _, table := range []string{"pending_voters", "pending_changes"} {
			b.Queue(`UPDATE `+table+` SET refuse = $1 WHERE conversation_id = $2 AND device_id = $3 AND refuse IS NULL
				AND seq = (SELECT seq FROM pending_changes WHERE conversation_id = $2 AND commit_id = $4 LIMIT 1)
				AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $2 AND device_id = $3)`, refuse, conv, deviceID, commitID)
		}
		b.Queue(pendingSQL, conv)
		br := tx.SendBatch(ctx, &b)
		var epoch int64
		errConv := br.QueryRow().Scan(&epoch)
		var member bool
		var seq *int64
		errMember := br.QueryRow().Scan(&member, &seq)
		counted := false
		var errUpdate error
		for range 2 {
			t, err := br.Exec()
			if err != nil {
				errUpdate = err
				break
			}
			if t.RowsAffected() > 0 {
				counted = true
			}
		}
		var pending []pendingRow
		errPending := errUpdate
		if errPending == nil {
			rows, err := br.Query()
			if err == nil {
				pending, err = scanPending(rows)
			}
			errPending = err
		}
		if err := br.Close(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("verdict: %w", err)
		}
		if errors.Is(errConv, pgx.ErrNoRows) {
			return fmt.Errorf("verdict: %w", store.ErrNotMember)
		}
		if err := errors.Join(errConv, errMember, errPending); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
		if !member {
			return fmt.Errorf("verdict: %w", store.ErrNotMember)
		}
		if seq == nil || !counted {
			return nil // decided already, nothing was pending, or a verdict given before
		}
		out = store.VerdictCounted
		decided, err := settle(ctx, tx, conv, *seq, pending)
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

// pendingSQL lists a conversation's pending changes with their voters'
// verdicts, what settle decides from.
const pendingSQL = `SELECT p.seq, p.device_id, p.commit_id, p.removed, p.refuse,
	(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq),
	(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = false),
	(SELECT COUNT(*) FROM pending_voters v WHERE v.conversation_id = p.conversation_id AND v.seq = p.seq AND v.refuse = true)
	FROM pending_changes p WHERE p.conversation_id = $1 ORDER BY p.seq, p.device_id`

// pendingRow is a row of pendingSQL.
type pendingRow struct {
	seq    int64
	device string
	commit []byte
	store.PendingChange
}

func scanPending(rows pgx.Rows) ([]pendingRow, error) {
	defer rows.Close()
	var ps []pendingRow
	for rows.Next() {
		var p pendingRow
		var own *bool
		var voters, accepted, refused int64
		if err := rows.Scan(&p.seq, &p.device, &p.commit, &p.Removed, &own, &voters, &accepted, &refused); err != nil {
			return nil, err
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
	return ps, rows.Err()
}

// settle decides what the verdicts given allow of the conversation's
// pending changes, again until nothing moves (a device that leaves stops
// being a voter, which may decide other commits). ps, if not nil, are the
// pending changes as the transaction now sees them (pendingSQL). It
// reports whether a change of the commit at seq was decided.
//
// Each round's writes go in one pipelined batch with the next round's
// read (or, in the last round, the final clean-up): one round trip a
// round.
func settle(ctx context.Context, tx pgx.Tx, conv []byte, seq int64, ps []pendingRow) (bool, error) {
	if ps == nil {
		rows, err := tx.Query(ctx, pendingSQL, conv)
		if err != nil {
			return false, err
		}
		if ps, err = scanPending(rows); err != nil {
			return false, err
		}
	}
	decidedSeq := false
	for {
		var b pgx.Batch
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
				if d == store.ApplyRemoval {
					// As Append would have: it may read up to the commit.
					b.Queue(`UPDATE members SET until_seq = $1 WHERE conversation_id = $2 AND device_id = $3 AND until_seq IS NULL`, p.seq, conv, p.device)
				} else {
					// Never a member of the group the members kept.
					b.Queue(`DELETE FROM members WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL`, conv, p.device)
					if p.Own != 2 {
						queueRefusedNotice(&b, conv, p.commit, p.device)
					}
				}
				// Out of the group, it has no say on any commit.
				b.Queue(`DELETE FROM pending_voters WHERE conversation_id = $1 AND device_id = $2`, conv, p.device)
				moved = true
			}
			b.Queue(`DELETE FROM pending_changes WHERE conversation_id = $1 AND seq = $2 AND device_id = $3`, conv, p.seq, p.device)
		}
		b.Queue(`DELETE FROM pending_voters WHERE conversation_id = $1 AND NOT EXISTS (
			SELECT 1 FROM pending_changes p WHERE p.conversation_id = $1 AND p.seq = pending_voters.seq)`, conv)
		if moved {
			b.Queue(pendingSQL, conv)
		} else {
			// A removed device already past its removal leaves for good,
			// and the log is trimmed to the oldest cursor.
			b.Queue(`DELETE FROM members WHERE conversation_id = $1 AND until_seq IS NOT NULL AND cursor >= until_seq`, conv)
			b.Queue(trimSQL, conv)
		}
		br := tx.SendBatch(ctx, &b)
		var err error
		n := b.Len()
		if moved {
			n--
		}
		for range n {
			if _, err = br.Exec(); err != nil {
				break
			}
		}
		if err == nil && moved {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				ps, err = scanPending(rows)
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, err
		}
		if !moved {
			return decidedSeq, nil
		}
	}
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
		if _, err := settle(ctx, tx, c, 0, nil); err != nil {
			return fmt.Errorf("settle pending membership changes: %w", err)
		}
	}
	return nil
}

// queueRefusedNotice queues a store.KindRefused entry for the inbox of
// the device whose addition by the commit the verdicts undid, so that its
// client learns it is no member of the group the others kept
// (docs/protocol.md §14). A device that refused the Welcome itself knows,
// and gets none. The entries are bounded by the Welcomes: one per undone
// addition.
func queueRefusedNotice(b *pgx.Batch, conv, commitID []byte, device string) {
	b.Queue(`WITH h AS (UPDATE devices SET inbox_head = inbox_head + 1 WHERE id = $1 RETURNING inbox_head)
		INSERT INTO inbox (device_id, seq, id, conversation_id, epoch, kind, sender, payload, stored)
		SELECT $1, h.inbox_head, $2, $3, 0, $4, '', '\x'::bytea, $5 FROM h`, device, commitID, conv, int16(store.KindRefused), nowMilli())
}
