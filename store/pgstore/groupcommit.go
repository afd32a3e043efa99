package pgstore

import (
	"bytes"
	"context"
	"hash/fnv"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

// Group commit: appends from many connections go to a few writer
// goroutines, each conversation always to the same one (its queue keeps
// their order), and so do Acks. A writer runs a commit as a statement
// of its own (appendCommit), and
// sends the application messages and proposals waiting as
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

// msgReq is an append, or an Ack, waiting for a writer.
type msgReq struct {
	a       store.Append // a.ConversationID only, for an Ack
	payload []byte
	expires *int64
	ack     *ackArgs
	done    chan msgResp
}

// ackArgs are an Ack's (parley_ack's) arguments besides the conversation.
type ackArgs struct {
	device string
	seq    int64
}

// appendRow is what parley_append_message returns.
type appendRow struct {
	status                          int16
	seq, epoch, dupEpoch, dupStored *int64
	dupKind                         *int16
	dupSender                       *string
	recipients                      []string
	head                            *int64 // parley_ack's
}

type msgResp struct {
	row appendRow
	now int64
	res store.AppendResult // of a commit
	err error
}

const appendMessageSQL = `SELECT r_status, r_seq, r_epoch, r_dup_epoch, r_dup_kind, r_dup_sender, r_dup_stored, r_recipients
	FROM parley_append_message($1, $2, $3, $4, $5, $6, $7, $8, $9)`

const ackSQL = `SELECT r_status, r_head FROM parley_ack($1, $2, $3)`

// query is r's statement and its arguments.
func (r *msgReq) query(now int64) (string, []any) {
	if r.ack != nil {
		return ackSQL, []any{r.a.ConversationID, r.ack.device, r.ack.seq}
	}
	return appendMessageSQL, []any{r.a.ConversationID, r.a.ID, r.a.Sender, int64(r.a.Epoch), int16(r.a.Kind), r.payload, now, r.expires, r.a.FirstSent}
}

// dest is where r's result row is scanned.
func (r *msgReq) dest(row *appendRow) []any {
	if r.ack != nil {
		return []any{&row.status, &row.head}
	}
	return []any{&row.status, &row.seq, &row.epoch, &row.dupEpoch, &row.dupKind, &row.dupSender, &row.dupStored, &row.recipients}
}

// startWriters starts the group-commit writers; Close stops them.
func (s *Store) startWriters() {
	s.stopWriters = make(chan struct{})
	for i := range s.queues {
		q := make(chan *msgReq, maxGroup)
		s.queues[i] = q
		s.writers.Go(func() { s.writer(q) })
	}
}

// queue is conv's writer queue.
func (s *Store) queue(conv []byte) chan *msgReq {
	h := fnv.New32a()
	h.Write(conv)
	return s.queues[h.Sum32()%groupWriters]
}

// enqueue hands r to a writer, or fails if the store is closed.
func (s *Store) enqueue(r *msgReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.queue(r.a.ConversationID) <- r // writers run until Close, which waits for this read lock
	return nil
}

func (s *Store) writer(q chan *msgReq) {
	for {
		var first *msgReq
		select {
		case first = <-q:
		case <-s.stopWriters:
			// Close has marked the store closed: nothing more is queued.
			for {
				select {
				case r := <-q:
					s.runQueued([]*msgReq{r})
				default:
					return
				}
			}
		}
		group := []*msgReq{first}
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-q:
				group = append(group, r)
			default:
				break fill
			}
		}
		s.runQueued(group)
	}
}

// runQueued runs what a writer took from its queue, in order: each
// commit on its own, the messages between commits as groups.
func (s *Store) runQueued(queued []*msgReq) {
	for len(queued) > 0 {
		if r := queued[0]; r.a.Kind == store.KindCommit {
			res, err := s.appendCommit(context.Background(), r.a)
			r.done <- msgResp{res: res, err: err}
			queued = queued[1:]
			continue
		}
		n := 1
		for n < len(queued) && queued[n].a.Kind != store.KindCommit {
			n++
		}
		s.runGroup(queued[:n])
		queued = queued[n:]
	}
}

// runGroup runs group (application messages, proposals and Acks) in one
// transaction and answers every request. It sorts group.
func (s *Store) runGroup(group []*msgReq) {
	if s.onGroup != nil {
		s.onGroup(len(group))
	}
	ctx := context.Background() // the batch is no one caller's
	if len(group) == 1 {
		r := group[0]
		row, now, err := s.appendOne(ctx, r)
		r.done <- msgResp{row: row, now: now, err: err}
		return
	}
	slices.SortStableFunc(group, func(x, y *msgReq) int { return bytes.Compare(x.a.ConversationID, y.a.ConversationID) })
	now := nowMilli()
	rows := make([]appendRow, len(group))
	err := s.retry(ctx, func() error {
		var b pgx.Batch
		for _, r := range group {
			sql, args := r.query(now)
			b.Queue(sql, args...)
		}
		br := s.pool.SendBatch(ctx, &b)
		var err error
		for i := range group {
			rows[i] = appendRow{}
			if err = br.QueryRow().Scan(group[i].dest(&rows[i])...); err != nil {
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
			r.done <- msgResp{row: row, now: now, err: err}
		}
		return
	}
	for i, r := range group {
		r.done <- msgResp{row: rows[i], now: now}
	}
}

// appendOne runs one request as a statement of its own.
func (s *Store) appendOne(ctx context.Context, r *msgReq) (appendRow, int64, error) {
	var row appendRow
	var now int64
	err := s.retry(ctx, func() error {
		now = nowMilli()
		row = appendRow{}
		sql, args := r.query(now)
		return s.pool.QueryRow(ctx, sql, args...).Scan(r.dest(&row)...)
	})
	return row, now, err
}
