package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
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
// a commit, which changes membership, is one statement too
// (parley_append_commit), committed on its own (appendCommit).
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
	if err := store.CheckAppend(a); err != nil {
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

// appendCommit runs a commit as one statement, parley_append_commit
// (a schema migration), committed on its own: one round trip where the
// transaction it replaced (BEGIN, the reads under the row lock, the
// membership change statement by statement, the Welcomes, the writes,
// COMMIT) took ten or more, with the conversation's row locked across
// them all. The function takes the same row lock first, so commits are
// still serialised in the database across nodes and the first commit for
// an epoch wins. It does not join the group commit's batches: it locks
// device rows besides the conversation's, which could deadlock two
// batches.
func (s *Store) appendCommit(ctx context.Context, a store.Append) (store.AppendResult, error) {
	var row commitRow
	var now int64
	l := a.InboxLimits
	err := s.retry(ctx, func() error {
		now = nowMilli()
		row = commitRow{}
		return s.pool.QueryRow(ctx, appendCommitSQL, a.ConversationID, a.ID, a.Sender, int64(a.Epoch), nonNil(a.Payload), now,
			nonNilStrings(a.Added), nonNilStrings(a.Removed), nonNil(a.Welcome),
			l.PerSender, l.Total, int64(l.PerSenderCount), int64(l.TotalCount), a.FirstSent,
		).Scan(&row.status, &row.seq, &row.epoch, &row.dupEpoch, &row.dupKind, &row.sender, &row.stored,
			&row.winID, &row.winPayload, &row.recipients, &row.welcomed, &row.inboxSeqs)
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			if sentinel, ok := commitErrors[pe.Code]; ok {
				return store.AppendResult{}, fmt.Errorf("append: %s: %w", pe.Message, sentinel)
			}
		}
		return store.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	return row.result(a, now)
}

const appendCommitSQL = `SELECT r_status, r_seq, r_epoch, r_dup_epoch, r_dup_kind, r_dup_sender, r_stored, r_win_id, r_win_payload,
	r_recipients, r_welcomed, r_inbox_seqs
	FROM parley_append_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

// commitErrors are the SQLSTATEs parley_append_commit raises for a
// commit refused after its first write (the statement is rolled back),
// and the errors they stand for.
var commitErrors = map[string]error{
	"PR001": store.ErrUnknownDevice, // an added device does not exist
	"PR002": store.ErrBadRequest,    // an added device is already a member
	"PR003": store.ErrNotMember,     // a removed device is not a member
	"PR004": store.ErrInboxFull,     // a Welcome over the inbox limits
}

// commitRow is what parley_append_commit returns.
type commitRow struct {
	status               int16
	seq, epoch, dupEpoch *int64
	dupKind              *int16
	sender               *string // the duplicate's or the winner's
	stored               *int64
	winID, winPayload    []byte
	recipients, welcomed []string
	inboxSeqs            []int64
}

// result turns the row into Append's result for commit a, stored at now.
func (r commitRow) result(a store.Append, now int64) (store.AppendResult, error) {
	var convEpoch int64
	if r.epoch != nil {
		convEpoch = *r.epoch
	}
	switch appendStatus(r.status) {
	case appendStored:
		m := store.Message{
			ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(*r.seq), Epoch: a.Epoch, Kind: store.KindCommit,
			Sender: a.Sender, Payload: nonNil(a.Payload), Stored: fromMilli(now),
		}
		res := store.AppendResult{Message: m, Epoch: uint64(convEpoch), Recipients: r.recipients}
		if len(r.welcomed) != len(r.inboxSeqs) {
			return store.AppendResult{}, fmt.Errorf("append: %d welcomed devices but %d inbox seqs from the database", len(r.welcomed), len(r.inboxSeqs))
		}
		for i, d := range r.welcomed {
			w := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(r.inboxSeqs[i]), Epoch: uint64(convEpoch),
				Kind: store.KindWelcome, Sender: a.Sender, Payload: a.Welcome, Stored: m.Stored}
			res.Welcomes = append(res.Welcomes, store.InboxEntry{DeviceID: d, Message: w})
		}
		return res, nil
	case appendNoConversation:
		return store.AppendResult{}, fmt.Errorf("append: conversation: %w", store.ErrNotFound)
	case appendNotMember:
		return store.AppendResult{}, fmt.Errorf("append: sender: %w", store.ErrNotMember)
	case appendDuplicate:
		if *r.sender != a.Sender {
			return store.AppendResult{}, fmt.Errorf("append: message id used by another device: %w", store.ErrExists)
		}
		dup := store.Message{ID: a.ID, ConversationID: a.ConversationID, Seq: uint64(*r.seq), Epoch: uint64(*r.dupEpoch),
			Kind: store.Kind(*r.dupKind), Sender: *r.sender, Payload: a.Payload, Stored: fromMilli(*r.stored)}
		return store.AppendResult{Message: dup, Duplicate: true, Epoch: uint64(convEpoch)}, nil
	case appendEpochAhead:
		return store.AppendResult{}, fmt.Errorf("append: epoch %d is ahead of the conversation's %d: %w", a.Epoch, convEpoch, store.ErrWrongEpoch)
	case appendEpochConflict:
		w := store.Message{ID: r.winID, ConversationID: a.ConversationID, Seq: uint64(*r.seq), Epoch: a.Epoch, Kind: store.KindCommit,
			Sender: *r.sender, Payload: r.winPayload, Stored: fromMilli(*r.stored)}
		return store.AppendResult{}, &store.EpochConflictError{Winner: w}
	case appendEpochExpired:
		return store.AppendResult{}, fmt.Errorf("append: epoch %d is over and its commit expired: %w", a.Epoch, store.ErrWrongEpoch)
	}
	return store.AppendResult{}, fmt.Errorf("append: unknown status %d from the database", r.status)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// appendStatus is what parley_append_message and parley_append_commit
// (migrations 3 and 5, with the first-send time since migration 8)
// report.
type appendStatus int16

const (
	appendStored appendStatus = iota
	appendNoConversation
	appendNotMember
	appendDuplicate
	appendEpochAhead
	appendPastProposal
	appendEpochConflict // parley_append_commit's: the winner's row
	appendEpochExpired  // parley_append_commit's
)

// result turns what the writer answered into Append's result. A
// message's row is what parley_append_message returned: it took the
// conversation's row lock, checked membership, idempotency and the epoch,
// and wrote, as parley_append_commit does for a commit.
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
