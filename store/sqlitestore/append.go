package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/parleychat/parley/store"
)

// appendReq is one unit of work for the group-commit writer: an append,
// or, when ack is set, an Ack, which rides in the same transaction so
// that it shares the batch's fsync instead of paying its own.
type appendReq struct {
	ctx context.Context
	a   store.Append
	ack *ackReq
	res chan appendResp
}

type appendResp struct {
	r   store.AppendResult
	err error
}

// Append queues a for the group-commit writer and waits until the batch
// holding it is durable.
func (s *Store) Append(ctx context.Context, a store.Append) (store.AppendResult, error) {
	wait, err := s.StartAppend(ctx, a)
	if err != nil {
		return store.AppendResult{}, err
	}
	return wait()
}

var _ store.AppendStarter = (*Store)(nil)

// StartAppend queues a for the group-commit writer; appends are applied
// in the order StartAppend was called. wait blocks until the batch
// holding a is durable.
func (s *Store) StartAppend(ctx context.Context, a store.Append) (wait func() (store.AppendResult, error), err error) {
	if err := store.CheckAppend(a); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	req := appendReq{ctx: ctx, a: a, res: respChans.Get().(chan appendResp)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		respChans.Put(req.res) // nothing was sent on it
		return nil, store.ErrClosed
	}
	s.appends <- req
	s.mu.RUnlock()
	var resp appendResp
	answered := false
	return func() (store.AppendResult, error) {
		// Wait for the outcome even if ctx ends: the append may already be
		// in a transaction, and the caller must not report failure for a
		// message that was stored (a retry with the same id is idempotent
		// anyway).
		if !answered {
			resp, answered = <-req.res, true
			// The writer answers once: the channel is empty again. A second
			// call must not read it once another request has it.
			respChans.Put(req.res)
		}
		return resp.r, resp.err
	}, nil
}

// respChans holds the answer channels of finished requests. Every append
// needs one, and its one-element buffer holds a whole AppendResult:
// reused, they are not garbage per message. A channel goes back only
// once its one answer was received, so it is always empty there.
var respChans = sync.Pool{New: func() any { return make(chan appendResp, 1) }}

// batched queues req (an Ack) for the group-commit writer's next
// transaction and waits until that transaction is durable (or failed).
func (s *Store) batched(ctx context.Context, req appendReq) error {
	req.ctx, req.res = ctx, respChans.Get().(chan appendResp)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		respChans.Put(req.res)
		return store.ErrClosed
	}
	s.appends <- req
	s.mu.RUnlock()
	// As for appends, wait for the outcome even if ctx ends.
	resp := <-req.res
	respChans.Put(req.res)
	return resp.err
}

// batcher is the single group-commit writer: it takes every append that
// is waiting, runs them in one transaction (one fsync), and answers each.
func (s *Store) batcher() {
	defer close(s.done)
	stmts := newStmtCache(s.w)
	defer stmts.close()
	// One slice for every batch: a batch is done with its requests when
	// runBatch returns (each is answered on its own channel).
	var batch []appendReq
	for first := range s.appends {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r, ok := <-s.appends:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.runBatch(batch, stmts)
		clear(batch) // drop the payloads it holds until the next batch
		stmts.prepareMissed(context.Background())
	}
}

func (s *Store) runBatch(batch []appendReq, stmts *stmtCache) {
	if s.opts.OnBatch != nil {
		appends := 0
		for _, r := range batch {
			if r.ack == nil {
				appends++
			}
		}
		if appends > 0 {
			s.opts.OnBatch(appends)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.runBatchCached(batch, stmts) {
		s.cache.reset()
		s.runBatchSavepoints(batch, stmts)
	}
	if s.cache.members > maxCachedMembers {
		s.cache.reset()
	}
}

// runBatchCached runs the batch with the conversation cache: application
// messages, proposals and acks without savepoints, commits in their own. It reports false, having rolled back and
// answered no one, if a statement failed after the transaction was
// written to; the caller then runs the batch on the savepoint path,
// which isolates the failing request.
func (s *Store) runBatchCached(batch []appendReq, stmts *stmtCache) bool {
	ctx := context.Background() // the transaction is no one caller's
	s.log.discard()             // nothing of an earlier transaction may be published with this one
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		failAll(batch, fmt.Errorf("append: begin: %w", err))
		return true
	}
	q := newCachedTx(tx, stmts)
	cc := s.cache
	abort := func() bool {
		tx.Rollback()
		s.log.discard()
		return false
	}
	// The answers, in a slice kept from batch to batch (only the writer
	// runs batches) and emptied after each, so as not to hold results.
	resps := slices.Grow(s.resps[:0], len(batch))[:len(batch)]
	defer func() { clear(resps); s.resps = resps[:0] }()
	for i, r := range batch {
		if r.ctx.Err() != nil {
			resps[i].err = fmt.Errorf("append: %w", r.ctx.Err())
			continue
		}
		var res store.AppendResult
		var err error
		switch {
		case r.ack != nil:
			err = fastAck(ctx, q, cc, r.ack)
		case r.a.Kind != store.KindCommit:
			res, err = fastAppend(ctx, q, cc, r.a)
		default:
			// The plain SQL path reads the tables: write the cached
			// changes out first.
			if cc.flush(ctx, q) != nil {
				return abort()
			}
			var ok bool
			if res, ok, err = runInSavepoint(ctx, q, s.log, r); !ok {
				return abort()
			}
			cc.invalidate(r.a.ConversationID)
		}
		var ea errAbort
		if errors.As(err, &ea) {
			return abort()
		}
		resps[i] = appendResp{r: res, err: err}
	}
	if cc.flush(ctx, q) != nil {
		return abort()
	}
	if err := tx.Commit(); err != nil {
		cc.reset()
		s.log.discard()
		failAll(batch, fmt.Errorf("append: commit: %w", err))
		return true
	}
	s.log.publish() // before any answer: a Fetch after an Append sees it
	for i, r := range batch {
		r.res <- resps[i]
	}
	return true
}

// runInSavepoint runs one request on the plain SQL path in a savepoint,
// so that its failure undoes only its own writes. ok is false if the
// savepoint itself failed: the transaction is then unusable.
func runInSavepoint(ctx context.Context, q txQuerier, log *logIndex, r appendReq) (res store.AppendResult, ok bool, err error) {
	if _, err := q.ExecContext(ctx, `SAVEPOINT append`); err != nil {
		return res, false, fmt.Errorf("append: savepoint: %w", err)
	}
	mark := log.mark()
	switch {
	case r.ack != nil:
		err = ackTx(ctx, q, log, r.ack)
	default:
		res, err = appendTx(ctx, q, log, r.a)
	}
	if err != nil {
		if _, rerr := q.ExecContext(ctx, `ROLLBACK TO append`); rerr != nil {
			// SQLite rolls the whole transaction back by itself on some
			// errors (SQLITE_FULL, SQLITE_IOERR): nothing in this batch
			// was stored. Report the cause.
			return res, false, fmt.Errorf("append: %w (rollback to savepoint: %v)", err, rerr)
		}
		log.rollbackTo(mark)
	}
	if _, rerr := q.ExecContext(ctx, `RELEASE append`); rerr != nil {
		return res, false, fmt.Errorf("append: release savepoint: %w", rerr)
	}
	return res, true, unavailable(err)
}

func failAll(batch []appendReq, err error) {
	err = unavailable(err)
	for _, r := range batch {
		r.res <- appendResp{err: err}
	}
}

// runBatchSavepoints runs every request of the batch on the plain SQL
// path, each in its own savepoint: the slow path, for a batch in which
// something failed.
func (s *Store) runBatchSavepoints(batch []appendReq, stmts *stmtCache) {
	ctx := context.Background()
	s.log.discard()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		failAll(batch, fmt.Errorf("append: begin: %w", err))
		return
	}
	q := newCachedTx(tx, stmts)
	resps := make([]appendResp, len(batch))
	for i, r := range batch {
		if r.ctx.Err() != nil {
			resps[i].err = fmt.Errorf("append: %w", r.ctx.Err())
			continue
		}
		res, ok, err := runInSavepoint(ctx, q, s.log, r)
		if !ok {
			tx.Rollback()
			s.log.discard()
			failAll(batch, err)
			return
		}
		resps[i] = appendResp{r: res, err: err}
	}
	if err := tx.Commit(); err != nil {
		s.log.discard()
		failAll(batch, fmt.Errorf("append: commit: %w", err))
		return
	}
	s.log.publish()
	for i, r := range batch {
		r.res <- resps[i]
	}
}

func appendTx(ctx context.Context, tx txQuerier, log *logIndex, a store.Append) (store.AppendResult, error) {
	var res store.AppendResult
	var epoch, head uint64
	var n int
	// One statement for the conversation and the sender's membership: the
	// append path runs once per message inside the group commit.
	err := tx.QueryRowContext(ctx, `SELECT c.epoch, c.head_seq, EXISTS (SELECT 1 FROM members m
		WHERE m.conversation_id = c.id AND m.device_id = ? AND m.until_seq IS NULL) FROM conversations c WHERE c.id = ?`,
		a.Sender, a.ConversationID).Scan(&epoch, &head, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("append: conversation: %w", store.ErrNotFound)
	}
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if n == 0 {
		return res, fmt.Errorf("append: sender: %w", store.ErrNotMember)
	}

	// Idempotency: a message id already stored is not stored again.
	var dup store.Message
	var dupStored int64
	err = tx.QueryRowContext(ctx, `SELECT seq, epoch, kind, sender, stored FROM message_ids WHERE first_sent = ? AND id = ? AND conversation_id = ?`,
		a.FirstSent, a.ID, a.ConversationID).Scan(&dup.Seq, &dup.Epoch, &dup.Kind, &dup.Sender, &dupStored)
	switch {
	case err == nil:
		if dup.Sender != a.Sender {
			return res, fmt.Errorf("append: message id used by another device: %w", store.ErrExists)
		}
		dup.ID, dup.ConversationID, dup.Payload, dup.Stored = a.ID, a.ConversationID, a.Payload, fromMilli(dupStored)
		return store.AppendResult{Message: dup, Duplicate: true, Epoch: epoch}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return res, fmt.Errorf("append: %w", err)
	}

	// Handshake ordering (RFC 9750 §5.2): the first commit for the current
	// epoch wins; later commits for that epoch get the winner back.
	switch {
	case a.Epoch > epoch:
		return res, fmt.Errorf("append: epoch %d is ahead of the conversation's %d: %w", a.Epoch, epoch, store.ErrWrongEpoch)
	case a.Epoch < epoch && a.Kind == store.KindCommit:
		w := store.Message{ConversationID: a.ConversationID, Epoch: a.Epoch, Kind: store.KindCommit}
		var stored int64
		err := tx.QueryRowContext(ctx, `SELECT seq, id, sender, payload, stored FROM epoch_commits WHERE conversation_id = ? AND epoch = ?`,
			a.ConversationID, a.Epoch).Scan(&w.Seq, &w.ID, &w.Sender, &w.Payload, &stored)
		if errors.Is(err, sql.ErrNoRows) {
			return res, fmt.Errorf("append: epoch %d is over and its commit expired: %w", a.Epoch, store.ErrWrongEpoch)
		}
		if err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		w.Stored = fromMilli(stored)
		return res, &store.EpochConflictError{Winner: w}
	case a.Epoch < epoch && a.Kind == store.KindProposal:
		return res, fmt.Errorf("append: proposal for past epoch %d (now %d): %w", a.Epoch, epoch, store.ErrWrongEpoch)
	}

	seq := head + 1
	now := nowMilli()
	m := store.Message{
		ID: a.ID, ConversationID: a.ConversationID, Seq: seq, Epoch: a.Epoch, Kind: a.Kind,
		Sender: a.Sender, Payload: nonNil(a.Payload), Stored: fromMilli(now),
	}
	newEpoch := epoch
	if a.Kind == store.KindCommit {
		newEpoch = epoch + 1
		if err := applyDelta(ctx, tx, a, seq); err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO epoch_commits (conversation_id, epoch, seq, id, sender, payload, stored) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			a.ConversationID, a.Epoch, seq, a.ID, a.Sender, m.Payload, now); err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		if len(a.Welcome) > 0 {
			if err := checkInboxRoom(ctx, tx, a); err != nil {
				return res, err
			}
			for _, d := range a.Added {
				var iseq uint64
				if err := tx.QueryRowContext(ctx, `UPDATE devices SET inbox_head = inbox_head + 1 WHERE id = ? RETURNING inbox_head`, d).Scan(&iseq); err != nil {
					return res, fmt.Errorf("append: welcome: %w", err)
				}
				w := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: iseq, Epoch: newEpoch,
					Kind: store.KindWelcome, Sender: a.Sender, Payload: a.Welcome, Stored: m.Stored}
				if _, err := tx.ExecContext(ctx, `INSERT INTO inbox (device_id, seq, id, conversation_id, epoch, kind, sender, payload, stored)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d, iseq, w.ID, w.ConversationID, w.Epoch, w.Kind, w.Sender, w.Payload, now); err != nil {
					return res, fmt.Errorf("append: welcome: %w", err)
				}
				res.Welcomes = append(res.Welcomes, store.InboxEntry{DeviceID: d, Message: w})
			}
		}
	}
	if err := insertLogged(ctx, tx, log, m, now); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.FirstSent, m.ID, m.ConversationID, m.Seq, m.Epoch, m.Kind, m.Sender, now); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if err := noteExpiry(ctx, tx, a, seq); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE conversations SET epoch = ?, head_seq = ? WHERE id = ?`, newEpoch, seq, a.ConversationID); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	// The sender has its own message: if it was caught up, it stays so.
	moved, err := tx.ExecContext(ctx, `UPDATE members SET cursor = ? WHERE conversation_id = ? AND device_id = ? AND cursor = ?`,
		seq, a.ConversationID, a.Sender, seq-1)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	senderMoved, _ := moved.RowsAffected()
	// A device that removed itself is now caught up with its removal and
	// leaves. Only a commit changes membership: for other messages this
	// is a no-op, so it is skipped.
	if a.Kind == store.KindCommit {
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND until_seq IS NOT NULL AND cursor >= until_seq`, a.ConversationID); err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT device_id FROM members WHERE conversation_id = ? AND (until_seq IS NULL OR until_seq = ?) ORDER BY device_id`,
		a.ConversationID, seq)
	if err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return res, fmt.Errorf("append: %w", err)
		}
		res.Recipients = append(res.Recipients, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	// Only a membership change, or the sender reading its own message
	// when it is the only member, can move the oldest cursor here. The
	// sender's cursor moves only when it was at the old head, and no
	// cursor is beyond the head, so with another member the oldest cursor
	// stays where it was and trimming would find nothing (Ack trims as
	// cursors advance). The trim was a DELETE per message.
	if a.Kind == store.KindCommit || (senderMoved > 0 && len(res.Recipients) == 1) {
		if err := trimLog(ctx, tx, log, a.ConversationID); err != nil {
			return res, err
		}
	}
	res.Message = m
	res.Epoch = newEpoch
	return res, nil
}

// applyDelta applies a commit's declared membership change: added devices
// start reading after the commit; removed ones may read up to it. Changes
// to another account's devices are pending until the members' verdicts
// (Verdict): a removed device stays an active member until then.
func applyDelta(ctx context.Context, tx txQuerier, a store.Append, seq uint64) error {
	var sender string
	if err := tx.QueryRowContext(ctx, `SELECT username FROM devices WHERE id = ?`, a.Sender).Scan(&sender); err != nil {
		return fmt.Errorf("append: sender's account: %w", err)
	}
	owner := func(d string) (string, bool, error) {
		var u string
		err := tx.QueryRowContext(ctx, `SELECT username FROM devices WHERE id = ?`, d).Scan(&u)
		if errors.Is(err, sql.ErrNoRows) {
			return "", false, nil
		}
		return u, err == nil, err
	}
	pending := false
	for _, d := range slices.Concat(a.Added, a.Removed) {
		u, ok, err := owner(d)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if ok && u != sender {
			pending = true
		}
	}
	if pending {
		// The voters: the active members now, but the committer's
		// account and devices whose own addition is still pending.
		if _, err := tx.ExecContext(ctx, `INSERT INTO pending_voters (conversation_id, seq, device_id)
			SELECT m.conversation_id, ?, m.device_id FROM members m JOIN devices d ON d.id = m.device_id
			WHERE m.conversation_id = ? AND m.until_seq IS NULL AND d.username <> ?
			AND NOT EXISTS (SELECT 1 FROM pending_changes p WHERE p.conversation_id = m.conversation_id AND p.device_id = m.device_id AND p.removed = 0)`,
			seq, a.ConversationID, sender); err != nil {
			return fmt.Errorf("append: voters: %w", err)
		}
	}
	note := func(d string, removed bool) error {
		u, ok, err := owner(d)
		if err != nil || !ok || u == sender {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE conversation_id = ? AND seq = ? AND device_id = ?`, a.ConversationID, seq, d); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO pending_changes (conversation_id, seq, commit_id, device_id, removed, stored) VALUES (?, ?, ?, ?, ?, ?)`,
			a.ConversationID, seq, a.ID, d, removed, nowMilli())
		return err
	}
	for _, d := range a.Added {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, d).Scan(&n); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("append: added device %q: %w", d, store.ErrUnknownDevice)
		}
		var until sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT until_seq FROM members WHERE conversation_id = ? AND device_id = ?`, a.ConversationID, d).Scan(&until)
		switch {
		case err == nil && !until.Valid:
			// A device whose removal is pending, added again (an admin
			// who removed someone and adds them back before the members'
			// verdicts): it stays the member it is, cursor and all, and
			// its removal is dropped; its client joins from the new
			// Welcome (docs/protocol.md §14, "Verdicts").
			r, derr := tx.ExecContext(ctx, `DELETE FROM pending_changes WHERE conversation_id = ? AND device_id = ? AND removed = 1`, a.ConversationID, d)
			if derr != nil {
				return fmt.Errorf("append: %w", derr)
			}
			if k, _ := r.RowsAffected(); k > 0 {
				continue
			}
			// A device that refused the Welcome of its pending addition
			// reads nothing of the group: it may be added again (its
			// cursor starts anew), before the members' verdicts undo the
			// first addition.
			var refused int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pending_changes WHERE conversation_id = ? AND device_id = ? AND removed = 0 AND refuse = 1`,
				a.ConversationID, d).Scan(&refused); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			if refused == 0 {
				return fmt.Errorf("append: added device %q is already a member: %w", d, store.ErrBadRequest)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM pending_changes WHERE conversation_id = ? AND device_id = ? AND removed = 0`, a.ConversationID, d); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			_, err = tx.ExecContext(ctx, `UPDATE members SET cursor = ? WHERE conversation_id = ? AND device_id = ?`, seq, a.ConversationID, d)
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE members SET cursor = ?, until_seq = NULL WHERE conversation_id = ? AND device_id = ?`, seq, a.ConversationID, d)
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO members (conversation_id, device_id, cursor) VALUES (?, ?, ?)`, a.ConversationID, d, seq)
		}
		if err == nil {
			err = note(d, false)
		}
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	for _, d := range a.Removed {
		u, ok, err := owner(d)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if !ok {
			// A device deleted from its account already left every
			// conversation; the group catching up with that is fine.
			continue
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE conversation_id = ? AND device_id = ? AND until_seq IS NULL`,
			a.ConversationID, d).Scan(&n); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("append: removed device %q: %w", d, store.ErrNotMember)
		}
		if u != sender {
			if err := note(d, true); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			continue // until the verdicts
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET until_seq = ? WHERE conversation_id = ? AND device_id = ?`, seq, a.ConversationID, d); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if pending && len(a.Removed) > 0 {
		return capPendingRemovals(ctx, tx, a.ConversationID)
	}
	return nil
}

// checkInboxRoom refuses a Welcome that would take an added device's inbox
// over a.InboxLimits. Commits take this plain SQL path (never the cached
// application-message one), and an inbox is small: it is emptied by every
// sync, so summing it is cheap.
func checkInboxRoom(ctx context.Context, tx txQuerier, a store.Append) error {
	l := a.InboxLimits
	if l.PerSender <= 0 && l.Total <= 0 && l.PerSenderCount <= 0 && l.TotalCount <= 0 {
		return nil
	}
	w := int64(len(a.Welcome))
	for _, d := range a.Added {
		var total, fromSender int64
		var n, fromSenderN int
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(length(i.payload)), 0),
			COALESCE(SUM(CASE WHEN s.username = u.username THEN length(i.payload) ELSE 0 END), 0),
			COUNT(*), COALESCE(SUM(CASE WHEN s.username = u.username THEN 1 ELSE 0 END), 0)
			FROM inbox i LEFT JOIN devices s ON s.id = i.sender, (SELECT username FROM devices WHERE id = ?) u
			WHERE i.device_id = ?`, a.Sender, d).Scan(&total, &fromSender, &n, &fromSenderN)
		if err != nil {
			return fmt.Errorf("append: inbox of %s: %w", d, err)
		}
		if l.PerSenderCount > 0 && fromSenderN+1 > l.PerSenderCount {
			return fmt.Errorf("append: device %s already holds %d invitations from this account (limit %d): %w", d, fromSenderN, l.PerSenderCount, store.ErrInboxFull)
		}
		if l.TotalCount > 0 && n+1 > l.TotalCount {
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
