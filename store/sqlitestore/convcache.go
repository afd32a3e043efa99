package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/store"
)

// The group-commit writer keeps the rows that every append and ack reads
// and writes — a conversation's epoch and head, its members' cursors — in
// memory, so that the common requests (an application message, a
// proposal, an ack) cost one or two INSERTs and no lookups, and a
// conversation's head and cursors are written once per batch instead of
// once per message. Commits, rarer and more complex, still run the plain
// SQL path (appendTx) in a savepoint, after the cached changes are
// written out, and the conversation is reloaded after them.
//
// The cache is the batcher's alone, except that Store.write (every other
// write) takes the same lock and empties it, so it never holds a row that
// changed behind its back. A batch whose transaction fails in any way
// empties it too, and is run again on the savepoint path.

// maxCachedMembers bounds the cache; past it, it is emptied after a batch.
const maxCachedMembers = 1 << 19

type convCache struct {
	log     *logIndex // the message log's index, changed with the rows
	convs   map[string]*convState
	members int          // member rows held, for the bound
	touched []*convState // changed in this batch, in first-change order
}

// convState mirrors one conversations row and its members rows.
type convState struct {
	id      []byte
	epoch   uint64
	head    uint64
	members map[string]*memberState
	active  []string // sorted ids of members not removed: a message's recipients

	trimmed uint64 // messages up to here are known deleted
	trimTo  uint64 // delete messages up to here at flush

	// The oldest cursor and how many members are at it, so that acks in
	// a large group do not each scan every member: the scan happens once
	// the last member at the oldest cursor moves on.
	low      uint64
	atLow    int
	lowValid bool

	touched      bool // in convCache.touched
	headDirty    bool
	dirtyMembers []string
}

type memberState struct {
	cursor uint64
	until  uint64 // the removing commit's seq; 0 while a member
	dirty  bool
}

func newConvCache(log *logIndex) *convCache {
	return &convCache{log: log, convs: make(map[string]*convState)}
}

func (cc *convCache) reset() {
	clear(cc.convs)
	cc.members = 0
	cc.touched = cc.touched[:0]
}

func (cc *convCache) invalidate(conv []byte) {
	if st, ok := cc.convs[string(conv)]; ok {
		cc.members -= len(st.members)
		delete(cc.convs, string(conv))
	}
}

// load returns the conversation's state, reading it in tx on a miss.
// A conversation that does not exist gives store.ErrNotFound.
func (cc *convCache) load(ctx context.Context, tx txQuerier, conv []byte) (*convState, error) {
	if st, ok := cc.convs[string(conv)]; ok {
		return st, nil
	}
	st := &convState{id: bytesClone(conv), members: make(map[string]*memberState)}
	err := tx.QueryRowContext(ctx, `SELECT epoch, head_seq FROM conversations WHERE id = ?`, conv).Scan(&st.epoch, &st.head)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT device_id, cursor, until_seq FROM members WHERE conversation_id = ?`, conv)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d string
		var m memberState
		var until sql.NullInt64
		if err := rows.Scan(&d, &m.cursor, &until); err != nil {
			rows.Close()
			return nil, err
		}
		m.until = uint64(until.Int64)
		st.members[d] = &m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	st.rebuildActive()
	cc.convs[string(conv)] = st
	cc.members += len(st.members)
	return st, nil
}

func (st *convState) rebuildActive() {
	st.active = st.active[:0:0]
	for d, m := range st.members {
		if m.until == 0 {
			st.active = append(st.active, d)
		}
	}
	slices.Sort(st.active)
}

func (cc *convCache) touch(st *convState) {
	if !st.touched {
		st.touched = true
		cc.touched = append(cc.touched, st)
	}
}

func (cc *convCache) markMember(st *convState, device string, m *memberState) {
	cc.touch(st)
	if !m.dirty {
		m.dirty = true
		st.dirtyMembers = append(st.dirtyMembers, device)
	}
}

// minCursor is the oldest cursor of any member, removed devices still
// catching up included: every message up to it has been read by all.
func (st *convState) minCursor() (uint64, bool) {
	if len(st.members) == 0 {
		return 0, false
	}
	if !st.lowValid {
		first := true
		for _, m := range st.members {
			switch {
			case first || m.cursor < st.low:
				st.low, st.atLow, first = m.cursor, 1, false
			case m.cursor == st.low:
				st.atLow++
			}
		}
		st.lowValid = true
	}
	return st.low, true
}

// leaveCursor records that a member's cursor is no longer old (it moved
// or the member left).
func (st *convState) leaveCursor(old uint64) {
	if st.lowValid && old == st.low {
		st.atLow--
		if st.atLow <= 0 {
			st.lowValid = false
		}
	}
}

// advance moves a member's cursor forward.
func (st *convState) advance(m *memberState, to uint64) {
	st.leaveCursor(m.cursor)
	m.cursor = to
}

func (cc *convCache) scheduleTrim(st *convState) {
	if lo, ok := st.minCursor(); ok && lo > st.trimmed && lo > st.trimTo {
		st.trimTo = lo
		cc.touch(st)
	}
}

// flush writes the batch's changes to tx. On error the transaction must
// be abandoned (and the cache emptied).
func (cc *convCache) flush(ctx context.Context, tx txQuerier) error {
	for _, st := range cc.touched {
		if st.headDirty {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET epoch = ?, head_seq = ? WHERE id = ?`, st.epoch, st.head, st.id); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			st.headDirty = false
		}
		for _, d := range st.dirtyMembers {
			m := st.members[d]
			if m == nil || !m.dirty {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE members SET cursor = ? WHERE conversation_id = ? AND device_id = ?`, m.cursor, st.id, d); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			m.dirty = false
		}
		st.dirtyMembers = st.dirtyMembers[:0]
		if st.trimTo > st.trimmed {
			if err := trimLogged(ctx, tx, cc.log, st.id, st.trimTo); err != nil {
				return fmt.Errorf("trim log: %w", err)
			}
			st.trimmed = st.trimTo
		}
		st.touched = false
	}
	cc.touched = cc.touched[:0]
	return nil
}

// errAbort marks a failure after this batch's transaction was written
// to: the batch must be rolled back and run again on the savepoint path.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }
func (e errAbort) Unwrap() error { return e.err }

// fastAppend appends an application message or proposal using the
// cache. Errors are the request's own (nothing was written) unless they
// are errAbort.
func fastAppend(ctx context.Context, tx txQuerier, cc *convCache, a store.Append) (store.AppendResult, error) {
	var res store.AppendResult
	st, err := cc.load(ctx, tx, a.ConversationID)
	if errors.Is(err, store.ErrNotFound) {
		return res, fmt.Errorf("append: conversation: %w", store.ErrNotFound)
	}
	if err != nil {
		return res, errAbort{fmt.Errorf("append: %w", err)}
	}
	sender := st.members[a.Sender]
	if sender == nil || sender.until != 0 {
		return res, fmt.Errorf("append: sender: %w", store.ErrNotMember)
	}
	now := nowMilli()
	seq := st.head + 1
	var epochErr error
	switch {
	case a.Epoch > st.epoch:
		epochErr = fmt.Errorf("append: epoch %d is ahead of the conversation's %d: %w", a.Epoch, st.epoch, store.ErrWrongEpoch)
	case a.Epoch < st.epoch && a.Kind == store.KindProposal:
		epochErr = fmt.Errorf("append: proposal for past epoch %d (now %d): %w", a.Epoch, st.epoch, store.ErrWrongEpoch)
	}
	if epochErr == nil {
		// Idempotency: the id's row goes in first; if it was there, the
		// message was stored before.
		r, err := tx.ExecContext(ctx, `INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (first_sent, id, conversation_id) DO NOTHING`, a.FirstSent, a.ID, a.ConversationID, seq, a.Epoch, a.Kind, a.Sender, now)
		if err != nil {
			return res, errAbort{fmt.Errorf("append: %w", err)}
		}
		if n, err := r.RowsAffected(); err != nil {
			return res, errAbort{fmt.Errorf("append: %w", err)}
		} else if n == 1 {
			return appendNew(ctx, tx, cc, st, sender, a, seq, now)
		}
	}
	// A retry of a stored message is answered as a duplicate even if the
	// epoch has moved on since.
	dup, found, err := lookupID(ctx, tx, a)
	if err != nil {
		return res, errAbort{err}
	}
	if !found {
		return res, epochErr
	}
	if dup.Sender != a.Sender {
		return res, fmt.Errorf("append: message id used by another device: %w", store.ErrExists)
	}
	return store.AppendResult{Message: dup, Duplicate: true, Epoch: st.epoch}, nil
}

func appendNew(ctx context.Context, tx txQuerier, cc *convCache, st *convState, sender *memberState, a store.Append, seq uint64, now int64) (store.AppendResult, error) {
	m := store.Message{
		ID: a.ID, ConversationID: a.ConversationID, Seq: seq, Epoch: a.Epoch, Kind: a.Kind,
		Sender: a.Sender, Payload: nonNil(a.Payload), Stored: fromMilli(now),
	}
	if err := insertLogged(ctx, tx, cc.log, m, now); err != nil {
		return store.AppendResult{}, errAbort{fmt.Errorf("append: %w", err)}
	}
	if err := noteExpiry(ctx, tx, a, seq); err != nil {
		return store.AppendResult{}, errAbort{fmt.Errorf("append: %w", err)}
	}
	st.head = seq
	st.headDirty = true
	cc.touch(st)
	// The sender has its own message: if it was caught up, it stays so.
	if sender.cursor == seq-1 {
		st.advance(sender, seq)
		cc.markMember(st, a.Sender, sender)
		// Only when the sender reads alone can that move the oldest
		// cursor (no cursor is beyond the head); acks trim otherwise.
		if len(st.active) == 1 {
			cc.scheduleTrim(st)
		}
	}
	return store.AppendResult{Message: m, Epoch: st.epoch, Recipients: slices.Clone(st.active)}, nil
}

// lookupID finds a stored message id in a's conversation.
func lookupID(ctx context.Context, tx txQuerier, a store.Append) (store.Message, bool, error) {
	dup := store.Message{ID: a.ID, ConversationID: a.ConversationID, Payload: a.Payload}
	var stored int64
	err := tx.QueryRowContext(ctx, `SELECT seq, epoch, kind, sender, stored FROM message_ids WHERE first_sent = ? AND id = ? AND conversation_id = ?`,
		a.FirstSent, a.ID, a.ConversationID).Scan(&dup.Seq, &dup.Epoch, &dup.Kind, &dup.Sender, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return dup, false, nil
	}
	if err != nil {
		return dup, false, fmt.Errorf("append: %w", err)
	}
	dup.Stored = fromMilli(stored)
	return dup, true, nil
}

// ackReq is an Ack queued for the group commit.
type ackReq struct {
	device string
	conv   []byte
	seq    uint64
}

// fastAck moves a device's cursor using the cache. Errors are the
// request's own unless they are errAbort.
func fastAck(ctx context.Context, tx txQuerier, cc *convCache, r *ackReq) error {
	st, err := cc.load(ctx, tx, r.conv)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ack: %w", store.ErrNotMember)
	}
	if err != nil {
		return errAbort{fmt.Errorf("ack: %w", err)}
	}
	m := st.members[r.device]
	if m == nil {
		return fmt.Errorf("ack: %w", store.ErrNotMember)
	}
	if r.seq > st.head {
		return fmt.Errorf("ack: seq %d beyond head %d: %w", r.seq, st.head, store.ErrBadRequest)
	}
	switch {
	case m.until != 0 && r.seq >= m.until:
		// A removed device that caught up leaves for good.
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND device_id = ?`, r.conv, r.device); err != nil {
			return errAbort{fmt.Errorf("ack: %w", err)}
		}
		st.leaveCursor(m.cursor)
		delete(st.members, r.device)
		cc.members--
	case r.seq > m.cursor:
		st.advance(m, r.seq)
		cc.markMember(st, r.device, m)
	default:
		return nil
	}
	cc.scheduleTrim(st)
	return nil
}

func bytesClone(b []byte) []byte { return append([]byte(nil), b...) }
