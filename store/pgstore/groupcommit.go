package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

// Group commit: application messages and proposals from many connections
// go to a few writer goroutines, each of which sends what is waiting as
// one pgx batch of parley_append_message calls, in one round trip and one
// transaction (the statements of a pipeline up to its Sync form one
// implicit transaction), so one commit (one WAL flush) covers them all.
// No caller is answered before that commit: the rows are read first and
// handed out only once the batch has closed without error, and pgx reads
// up to ReadyForQuery, which PostgreSQL sends after the commit.
//
// Within a batch the calls are ordered by conversation id (stably, so
// one conversation's appends keep their order), so two batches take
// their conversations' row locks in the same order and cannot deadlock
// on each other. If any call fails, the whole transaction is rolled
// back and each request runs again on its own (appendOne), so that one
// bad request fails alone.

const (
	// groupWriters is how many batches may be in flight at once: with one,
	// every append would wait for the previous batch's commit; PostgreSQL
	// overlaps the flushes of several.
	groupWriters = 4
	// maxGroup bounds a batch.
	maxGroup = 128
)

// msgReq is an application message or proposal waiting for a writer.
type msgReq struct {
	a       store.Append
	payload []byte
	expires *int64
	done    chan msgResp
}

// appendRow is what parley_append_message returns.
type appendRow struct {
	status                          int16
	seq, epoch, dupEpoch, dupStored *int64
	dupKind                         *int16
	dupSender                       *string
	recipients                      []string
}

type msgResp struct {
	row appendRow
	now int64
	err error
}

const appendMessageSQL = `SELECT r_status, r_seq, r_epoch, r_dup_epoch, r_dup_kind, r_dup_sender, r_dup_stored, r_recipients
	FROM parley_append_message($1, $2, $3, $4, $5, $6, $7, $8)`

func (r *msgReq) args(now int64) []any {
	return []any{r.a.ConversationID, r.a.ID, r.a.Sender, int64(r.a.Epoch), int16(r.a.Kind), r.payload, now, r.expires}
}

func (row *appendRow) dest() []any {
	return []any{&row.status, &row.seq, &row.epoch, &row.dupEpoch, &row.dupKind, &row.dupSender, &row.dupStored, &row.recipients}
}

// startWriters starts the group-commit writers; Close stops them.
func (s *Store) startWriters() {
	s.msgs = make(chan *msgReq, maxGroup)
	s.stopWriters = make(chan struct{})
	for range groupWriters {
		s.writers.Go(s.writer)
	}
}

// enqueue hands r to a writer, or fails if the store is closed.
func (s *Store) enqueue(r *msgReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.msgs <- r // writers run until Close, which waits for this read lock
	return nil
}

func (s *Store) writer() {
	for {
		var first *msgReq
		select {
		case first = <-s.msgs:
		case <-s.stopWriters:
			// Close has marked the store closed: nothing more is queued.
			for {
				select {
				case r := <-s.msgs:
					s.runGroup([]*msgReq{r})
				default:
					return
				}
			}
		}
		group := []*msgReq{first}
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-s.msgs:
				group = append(group, r)
			default:
				break fill
			}
		}
		s.runGroup(group)
	}
}

// runGroup appends group in one transaction and answers every request.
func (s *Store) runGroup(group []*msgReq) {
	if s.onGroup != nil {
		s.onGroup(len(group))
	}
	ctx := context.Background() // the batch is no one caller's
	if len(group) == 1 {
		r := group[0]
		row, now, err := s.appendOne(ctx, r)
		r.done <- msgResp{row, now, err}
		return
	}
	slices.SortStableFunc(group, func(x, y *msgReq) int { return bytes.Compare(x.a.ConversationID, y.a.ConversationID) })
	now := nowMilli()
	rows := make([]appendRow, len(group))
	err := s.retry(ctx, func() error {
		var b pgx.Batch
		for _, r := range group {
			b.Queue(appendMessageSQL, r.args(now)...)
		}
		br := s.pool.SendBatch(ctx, &b)
		var err error
		for i := range group {
			rows[i] = appendRow{}
			if err = br.QueryRow().Scan(rows[i].dest()...); err != nil {
				break
			}
		}
		// Close reads to the end of the pipeline: the commit.
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		// Rolled back: run each on its own, so that only a request that
		// fails by itself fails.
		for _, r := range group {
			row, now, err := s.appendOne(ctx, r)
			r.done <- msgResp{row, now, err}
		}
		return
	}
	for i, r := range group {
		r.done <- msgResp{rows[i], now, nil}
	}
}

// appendOne runs one request as a statement of its own.
func (s *Store) appendOne(ctx context.Context, r *msgReq) (appendRow, int64, error) {
	var row appendRow
	var now int64
	err := s.retry(ctx, func() error {
		now = nowMilli()
		row = appendRow{}
		return s.pool.QueryRow(ctx, appendMessageSQL, r.args(now)...).Scan(row.dest()...)
	})
	if err != nil {
		return row, now, fmt.Errorf("append: %w", err)
	}
	return row, now, nil
}
