package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

// Append stores a and returns once it has committed. Appends to one
// conversation are serialised by the database, whichever node runs them:
// each holds the conversation's row lock (SELECT ... FOR UPDATE) from its
// first statement to its commit, so the first commit for an epoch wins
// and every later one gets *store.EpochConflictError with the winner.
//
// An application message or proposal is one statement
// (parley_append_message), group committed with others (groupcommit.go);
// a commit, which changes membership, is a transaction of its own
// (appendTx).
func (s *Store) Append(ctx context.Context, a store.Append) (store.AppendResult, error) {
	wait, err := s.StartAppend(ctx, a)
	if err != nil {
		return store.AppendResult{}, err
	}
	return wait()
}

var _ store.AppendStarter = (*Store)(nil)

// StartAppend queues a for the group commit and returns at once; wait
// blocks until it has committed (or failed). Appends to one conversation
// through one Store are applied in the order StartAppend was called (each
// conversation has one queue); the server uses this to pipeline a
// connection's sends.
func (s *Store) StartAppend(ctx context.Context, a store.Append) (wait func() (store.AppendResult, error), err error) {
	if err := checkAppend(a); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	r := &msgReq{a: a, payload: nonNil(a.Payload), done: make(chan msgResp, 1)}
	if !a.Expires.IsZero() {
		e := a.Expires.Unix()
		r.expires = &e
	}
	if err := s.enqueue(r); err != nil {
		return nil, err
	}
	return func() (store.AppendResult, error) {
		// Once queued, the append runs to its end even if ctx ends: the
		// caller must not report failure for a message that was
		// committed (a retry with the same id is idempotent anyway).
		return r.result(<-r.done)
	}, nil
}

// appendCommit runs a commit in a transaction of its own.
func (s *Store) appendCommit(ctx context.Context, a store.Append) (store.AppendResult, error) {
	var res store.AppendResult
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = appendTx(ctx, tx, a)
		return err
	})
	if err != nil {
		return store.AppendResult{}, err
	}
	return res, nil
}

// appendStatus is what parley_append_message (migration 3) reports.
type appendStatus int16

const (
	appendStored appendStatus = iota
	appendNoConversation
	appendNotMember
	appendDuplicate
	appendEpochAhead
	appendPastProposal
)

// result turns what the writer answered into Append's result. A
// message's row is what parley_append_message returned: it took the
// conversation's row lock, checked membership, idempotency and the epoch,
// and wrote, all as appendTx does for the general case.
func (r *msgReq) result(resp msgResp) (store.AppendResult, error) {
	a := r.a
	if a.Kind == store.KindCommit {
		return resp.res, resp.err
	}
	if resp.err != nil {
		return store.AppendResult{}, fmt.Errorf("append: %w", resp.err)
	}
	row := resp.row
	var convEpoch int64
	if row.epoch != nil {
		convEpoch = *row.epoch
	}
	switch appendStatus(row.status) {
	case appendStored:
		m := store.Message{
			ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(*row.seq), Epoch: a.Epoch, Kind: a.Kind,
			Sender: a.Sender, Payload: r.payload, Stored: fromMilli(resp.now),
		}
		return store.AppendResult{Message: m, Epoch: uint64(convEpoch), Recipients: row.recipients}, nil
	case appendNoConversation:
		return store.AppendResult{}, fmt.Errorf("append: conversation: %w", store.ErrNotFound)
	case appendNotMember:
		return store.AppendResult{}, fmt.Errorf("append: sender: %w", store.ErrNotMember)
	case appendDuplicate:
		if *row.dupSender != a.Sender {
			return store.AppendResult{}, fmt.Errorf("append: message id used by another device: %w", store.ErrExists)
		}
		dup := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(*row.seq), Epoch: uint64(*row.dupEpoch),
			Kind: store.Kind(*row.dupKind), Sender: *row.dupSender, Payload: a.Payload, Stored: fromMilli(*row.dupStored)}
		return store.AppendResult{Message: dup, Duplicate: true, Epoch: uint64(convEpoch)}, nil
	case appendEpochAhead:
		return store.AppendResult{}, fmt.Errorf("append: epoch %d is ahead of the conversation's %d: %w", a.Epoch, convEpoch, store.ErrWrongEpoch)
	case appendPastProposal:
		return store.AppendResult{}, fmt.Errorf("append: proposal for past epoch %d (now %d): %w", a.Epoch, convEpoch, store.ErrWrongEpoch)
	}
	return store.AppendResult{}, fmt.Errorf("append: unknown status %d from the database", row.status)
}

func checkAppend(a store.Append) error {
	if len(a.ID) != 16 {
		return fmt.Errorf("message id must be 16 bytes: %w", store.ErrBadRequest)
	}
	if err := checkConversationID(a.ConversationID); err != nil {
		return err
	}
	if a.Sender == "" {
		return fmt.Errorf("no sender: %w", store.ErrBadRequest)
	}
	if a.Epoch > 1<<62 {
		return fmt.Errorf("epoch %d out of range: %w", a.Epoch, store.ErrBadRequest)
	}
	switch a.Kind {
	case store.KindCommit:
		if len(a.Welcome) > 0 && len(a.Added) == 0 {
			return fmt.Errorf("welcome without added devices: %w", store.ErrBadRequest)
		}
		seen := make(map[string]bool)
		for _, d := range slices.Concat(a.Added, a.Removed) {
			if d == "" || seen[d] {
				return fmt.Errorf("empty or repeated device id %q in membership delta: %w", d, store.ErrBadRequest)
			}
			seen[d] = true
		}
	case store.KindProposal, store.KindApplication:
		if len(a.Added) > 0 || len(a.Removed) > 0 || len(a.Welcome) > 0 {
			return fmt.Errorf("membership delta on a %v: %w", a.Kind, store.ErrBadRequest)
		}
	default:
		return fmt.Errorf("cannot append a %v: %w", a.Kind, store.ErrBadRequest)
	}
	if !a.Expires.IsZero() && a.Kind != store.KindApplication {
		return fmt.Errorf("an expiry on a %v: %w", a.Kind, store.ErrBadRequest)
	}
	return nil
}

func appendTx(ctx context.Context, tx pgx.Tx, a store.Append) (store.AppendResult, error) {
	var res store.AppendResult
	// The lock is taken by a statement of its own: in READ COMMITTED each
	// later statement sees everything committed before the lock was
	// granted (a statement that joined other tables to the locked row
	// would see them as they were before it waited).
	var b pgx.Batch
	b.Queue(`SELECT epoch, head_seq FROM conversations WHERE id = $1 FOR UPDATE`, a.ConversationID)
	b.Queue(`SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL),
		mi.seq, mi.epoch, mi.kind, mi.sender, mi.stored
		FROM (SELECT 1) one LEFT JOIN message_ids mi ON mi.conversation_id = $1 AND mi.id = $3`, a.ConversationID, a.Sender, a.ID)
	br := tx.SendBatch(ctx, &b)
	var epoch, head int64
	errConv := br.QueryRow().Scan(&epoch, &head)
	var active bool
	var dupSeq, dupEpoch, dupStored *int64
	var dupKind *int16
	var dupSender *string
	errMember := br.QueryRow().Scan(&active, &dupSeq, &dupEpoch, &dupKind, &dupSender, &dupStored)
	if err := br.Close(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return res, fmt.Errorf("append: %w", err)
	}
	if errors.Is(errConv, pgx.ErrNoRows) {
		return res, fmt.Errorf("append: conversation: %w", store.ErrNotFound)
	}
	if err := errors.Join(errConv, errMember); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if !active {
		return res, fmt.Errorf("append: sender: %w", store.ErrNotMember)
	}

	// Idempotency: a message id already stored is not stored again.
	if dupSeq != nil {
		if *dupSender != a.Sender {
			return res, fmt.Errorf("append: message id used by another device: %w", store.ErrExists)
		}
		dup := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(*dupSeq), Epoch: uint64(*dupEpoch),
			Kind: store.Kind(*dupKind), Sender: *dupSender, Payload: a.Payload, Stored: fromMilli(*dupStored)}
		return store.AppendResult{Message: dup, Duplicate: true, Epoch: uint64(epoch)}, nil
	}

	// Handshake ordering (RFC 9750 §5.2): the first commit for the current
	// epoch wins; later commits for that epoch get the winner back.
	ae := int64(a.Epoch)
	switch {
	case ae > epoch:
		return res, fmt.Errorf("append: epoch %d is ahead of the conversation's %d: %w", a.Epoch, epoch, store.ErrWrongEpoch)
	case ae < epoch && a.Kind == store.KindCommit:
		w := store.Message{ConversationID: a.ConversationID, Epoch: a.Epoch, Kind: store.KindCommit}
		var seq, stored int64
		err := tx.QueryRow(ctx, `SELECT seq, id, sender, payload, stored FROM epoch_commits WHERE conversation_id = $1 AND epoch = $2`,
			a.ConversationID, ae).Scan(&seq, &w.ID, &w.Sender, &w.Payload, &stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return res, fmt.Errorf("append: epoch %d is over and its commit expired: %w", a.Epoch, store.ErrWrongEpoch)
		}
		if err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		w.Seq, w.Stored = uint64(seq), fromMilli(stored)
		return res, &store.EpochConflictError{Winner: w}
	case ae < epoch && a.Kind == store.KindProposal:
		return res, fmt.Errorf("append: proposal for past epoch %d (now %d): %w", a.Epoch, epoch, store.ErrWrongEpoch)
	}

	seq := head + 1
	now := nowMilli()
	m := store.Message{
		ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(seq), Epoch: a.Epoch, Kind: a.Kind,
		Sender: a.Sender, Payload: nonNil(a.Payload), Stored: fromMilli(now),
	}
	newEpoch := epoch
	if a.Kind == store.KindCommit {
		newEpoch = epoch + 1
		if err := applyDelta(ctx, tx, a, seq); err != nil {
			return res, err
		}
		// The epoch is the key: a second commit for it cannot be stored.
		if _, err := tx.Exec(ctx, `INSERT INTO epoch_commits (conversation_id, epoch, seq, id, sender, payload, stored) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ConversationID, ae, seq, a.ID, a.Sender, m.Payload, now); err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		if len(a.Welcome) > 0 {
			if err := checkInboxRoom(ctx, tx, a); err != nil {
				return res, err
			}
			for _, d := range a.Added {
				var iseq int64
				if err := tx.QueryRow(ctx, `UPDATE devices SET inbox_head = inbox_head + 1 WHERE id = $1 RETURNING inbox_head`, d).Scan(&iseq); err != nil {
					return res, fmt.Errorf("append: welcome: %w", err)
				}
				w := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(iseq), Epoch: uint64(newEpoch),
					Kind: store.KindWelcome, Sender: a.Sender, Payload: a.Welcome, Stored: m.Stored}
				if _, err := tx.Exec(ctx, `INSERT INTO inbox (device_id, seq, id, conversation_id, epoch, kind, sender, payload, stored)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, d, iseq, w.ID, w.ConversationID, newEpoch, int16(w.Kind), w.Sender, w.Payload, now); err != nil {
					return res, fmt.Errorf("append: welcome: %w", err)
				}
				res.Welcomes = append(res.Welcomes, store.InboxEntry{DeviceID: d, Message: w})
			}
		}
	}

	// The writes, in one round trip.
	b = pgx.Batch{}
	b.Queue(`INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.ConversationID, seq, m.ID, ae, int16(m.Kind), m.Sender, m.Payload, now)
	b.Queue(`INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		m.ConversationID, m.ID, seq, ae, int16(m.Kind), m.Sender, now)
	if !a.Expires.IsZero() {
		b.Queue(`INSERT INTO disappearing (conversation_id, seq, id, expires) VALUES ($1, $2, $3, $4)`,
			m.ConversationID, seq, m.ID, a.Expires.Unix())
	}
	// Conditional on what was read under the lock: were the lock ever
	// not held, this would change nothing and the append would fail
	// rather than fork the log.
	b.Queue(`UPDATE conversations SET epoch = $1, head_seq = $2 WHERE id = $3 AND epoch = $4 AND head_seq = $5`,
		newEpoch, seq, a.ConversationID, epoch, head)
	// The sender has its own message: if it was caught up, it stays so.
	b.Queue(`UPDATE members SET cursor = $1 WHERE conversation_id = $2 AND device_id = $3 AND cursor = $4`,
		seq, a.ConversationID, a.Sender, seq-1)
	if a.Kind == store.KindCommit {
		// A device that removed itself is now caught up with its removal
		// and leaves. Only a commit changes membership.
		b.Queue(`DELETE FROM members WHERE conversation_id = $1 AND until_seq IS NOT NULL AND cursor >= until_seq`, a.ConversationID)
	}
	b.Queue(`SELECT device_id FROM members WHERE conversation_id = $1 AND (until_seq IS NULL OR until_seq = $2) ORDER BY device_id`,
		a.ConversationID, seq)
	br = tx.SendBatch(ctx, &b)
	var senderMoved bool
	err := func() error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		t, err := br.Exec()
		if err != nil {
			return err
		}
		if t.RowsAffected() != 1 {
			return fmt.Errorf("conversation changed while its row was locked (epoch %d, head %d)", epoch, head)
		}
		if t, err = br.Exec(); err != nil {
			return err
		}
		senderMoved = t.RowsAffected() > 0
		if a.Kind == store.KindCommit {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		res.Recipients, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	// Only a membership change, or the sender reading its own message
	// when it is the only member, can move the oldest cursor here (Ack
	// trims as cursors advance).
	if a.Kind == store.KindCommit || (senderMoved && len(res.Recipients) == 1) {
		if err := trimLog(ctx, tx, a.ConversationID); err != nil {
			return res, err
		}
	}
	res.Message = m
	res.Epoch = uint64(newEpoch)
	return res, nil
}

// applyDelta applies a commit's declared membership change: added devices
// start reading after the commit; removed ones may read up to it. The
// added devices' rows are locked (in id order, so two commits cannot
// deadlock on them): their inbox room is checked next, and no other
// conversation's Welcome may slip in between. Changes to another
// account's devices are pending until the members' verdicts (Verdict): a
// removed device stays an active member until then.
func applyDelta(ctx context.Context, tx pgx.Tx, a store.Append, seq int64) error {
	exists := map[string]bool{}
	if len(a.Added) > 0 {
		rows, err := tx.Query(ctx, `SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`, a.Added)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		for _, id := range ids {
			exists[id] = true
		}
	}
	// The account of every device the commit names, and the sender's.
	owners := map[string]string{}
	rows, err := tx.Query(ctx, `SELECT id, username FROM devices WHERE id = ANY($1)`, slices.Concat(a.Added, a.Removed, []string{a.Sender}))
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	for rows.Next() {
		var id, u string
		if err := rows.Scan(&id, &u); err != nil {
			rows.Close()
			return fmt.Errorf("append: %w", err)
		}
		owners[id] = u
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	sender := owners[a.Sender]
	others := func(d string) bool { u, ok := owners[d]; return ok && u != sender }
	if slices.ContainsFunc(slices.Concat(a.Added, a.Removed), others) {
		// The voters: the active members now, but the committer's
		// account and devices whose own addition is still pending.
		if _, err := tx.Exec(ctx, `INSERT INTO pending_voters (conversation_id, seq, device_id)
			SELECT m.conversation_id, $1, m.device_id FROM members m JOIN devices d ON d.id = m.device_id
			WHERE m.conversation_id = $2 AND m.until_seq IS NULL AND d.username <> $3
			AND NOT EXISTS (SELECT 1 FROM pending_changes p WHERE p.conversation_id = m.conversation_id AND p.device_id = m.device_id AND NOT p.removed)`,
			seq, a.ConversationID, sender); err != nil {
			return fmt.Errorf("append: voters: %w", err)
		}
	}
	note := func(d string, removed bool) error {
		if !others(d) {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pending_voters WHERE conversation_id = $1 AND seq = $2 AND device_id = $3`, a.ConversationID, seq, d); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO pending_changes (conversation_id, seq, commit_id, device_id, removed, stored) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.ConversationID, seq, a.ID, d, removed, nowMilli())
		return err
	}
	for _, d := range a.Added {
		if !exists[d] {
			return fmt.Errorf("append: added device %q: %w", d, store.ErrUnknownDevice)
		}
		var until *int64
		err := tx.QueryRow(ctx, `SELECT until_seq FROM members WHERE conversation_id = $1 AND device_id = $2`, a.ConversationID, d).Scan(&until)
		switch {
		case err == nil && until == nil:
			// A device whose removal is pending, added again (an admin
			// who removed someone and adds them back before the members'
			// verdicts): it stays the member it is, cursor and all, and
			// its removal is dropped; its client joins from the new
			// Welcome (docs/protocol.md §14, "Verdicts").
			t, err := tx.Exec(ctx, `DELETE FROM pending_changes WHERE conversation_id = $1 AND device_id = $2 AND removed`, a.ConversationID, d)
			if err != nil {
				return fmt.Errorf("append: %w", err)
			}
			if t.RowsAffected() > 0 {
				continue
			}
			// A device that refused the Welcome of its pending addition
			// reads nothing of the group: it may be added again (its
			// cursor starts anew), before the members' verdicts undo the
			// first addition.
			t, err = tx.Exec(ctx, `DELETE FROM pending_changes WHERE conversation_id = $1 AND device_id = $2 AND NOT removed AND refuse`, a.ConversationID, d)
			if err != nil {
				return fmt.Errorf("append: %w", err)
			}
			if t.RowsAffected() == 0 {
				return fmt.Errorf("append: added device %q is already a member: %w", d, store.ErrBadRequest)
			}
			if _, err := tx.Exec(ctx, `UPDATE members SET cursor = $1 WHERE conversation_id = $2 AND device_id = $3`, seq, a.ConversationID, d); err != nil {
				return fmt.Errorf("append: %w", err)
			}
		case err == nil:
			_, err = tx.Exec(ctx, `UPDATE members SET cursor = $1, until_seq = NULL WHERE conversation_id = $2 AND device_id = $3`, seq, a.ConversationID, d)
		case errors.Is(err, pgx.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO members (conversation_id, device_id, cursor) VALUES ($1, $2, $3)`, a.ConversationID, d, seq)
		}
		if err == nil {
			err = note(d, false)
		}
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	for _, d := range a.Removed {
		if _, ok := owners[d]; !ok {
			// A device deleted from its account already left every
			// conversation; the group catching up with that is fine.
			continue
		}
		var active bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND device_id = $2 AND until_seq IS NULL)`,
			a.ConversationID, d).Scan(&active); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if !active {
			return fmt.Errorf("append: removed device %q: %w", d, store.ErrNotMember)
		}
		if others(d) {
			if err := note(d, true); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			continue // until the verdicts
		}
		if _, err := tx.Exec(ctx, `UPDATE members SET until_seq = $1 WHERE conversation_id = $2 AND device_id = $3`, seq, a.ConversationID, d); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	return nil
}

// checkInboxRoom refuses a Welcome that would take an added device's inbox
// over a.InboxLimits. The added devices' rows are locked (applyDelta), so
// two commits adding the same device from different conversations are
// counted one after the other.
func checkInboxRoom(ctx context.Context, tx pgx.Tx, a store.Append) error {
	l := a.InboxLimits
	if l.PerSender <= 0 && l.Total <= 0 && l.PerSenderCount <= 0 && l.TotalCount <= 0 {
		return nil
	}
	w := int64(len(a.Welcome))
	for _, d := range a.Added {
		var total, fromSender, n, fromSenderN int64
		err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(length(i.payload)), 0)::bigint,
			COALESCE(SUM(CASE WHEN s.username = u.username THEN length(i.payload) ELSE 0 END), 0)::bigint,
			COUNT(*), COALESCE(SUM(CASE WHEN s.username = u.username THEN 1 ELSE 0 END), 0)::bigint
			FROM inbox i LEFT JOIN devices s ON s.id = i.sender, (SELECT username FROM devices WHERE id = $1) u
			WHERE i.device_id = $2`, a.Sender, d).Scan(&total, &fromSender, &n, &fromSenderN)
		if err != nil {
			return fmt.Errorf("append: inbox of %s: %w", d, err)
		}
		if l.PerSenderCount > 0 && fromSenderN+1 > int64(l.PerSenderCount) {
			return fmt.Errorf("append: device %s already holds %d invitations from this account (limit %d): %w", d, fromSenderN, l.PerSenderCount, store.ErrInboxFull)
		}
		if l.TotalCount > 0 && n+1 > int64(l.TotalCount) {
			return fmt.Errorf("append: device %s has %d unread invitations (limit %d): %w", d, n, l.TotalCount, store.ErrInboxFull)
		}
		if l.PerSender > 0 && fromSender+w > l.PerSender {
			return fmt.Errorf("append: device %s already holds %d bytes of invitations from this account (limit %d): %w", d, fromSender, l.PerSender, store.ErrInboxFull)
		}
		if l.Total > 0 && total+w > l.Total {
			return fmt.Errorf("append: device %s has %d bytes of unread invitations (limit %d): %w", d, total, l.Total, store.ErrInboxFull)
		}
	}
	return nil
}
