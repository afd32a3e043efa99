package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// The message log and its index.
//
// The messages table is a log in insertion order (a rowid table with no
// other key): a batch of appends writes its rows side by side at the
// table's end. Which row holds a conversation's message seq is kept in
// memory, here, not in a B-tree on disk: an index keyed by conversation
// puts every active conversation's newest entry on a page of its own, so
// a batch of appends to 100 conversations wrote ~100 index pages to the
// WAL, a page per message, and that was the largest part of the writer's
// work (docs/benchmarks.md, "The message log's index in memory").
//
// The index is rebuilt from the table when the store opens (one scan of
// the rows, which are only the messages some device has not yet
// acknowledged, as the log is trimmed as devices acknowledge). This
// process must be the database's only writer of messages, as it already
// is of the conversations' heads and cursors (convCache): "parleyd serve"
// opens with Options.OneServer, so a second server on the same database
// refuses to start (the table no longer has a key that would refuse a
// seq given out twice).
//
// Changes follow the transactions: the writer (under Store.wmu) records
// what it inserts and deletes in a view of the conversations it changed,
// which becomes the index readers see only once the transaction has
// committed (publish), and is dropped if it rolls back (discard), or
// partly at a savepoint's rollback (mark, rollbackTo). So a reader never
// sees an entry for a row that is not committed, and a conversation's
// entries are published in seq order: a row Fetch's read snapshot does
// not show is either deleted (trimmed, expired, disappeared) or among the
// conversation's newest, and skipping it leaves no gap.
type logIndex struct {
	mu      sync.RWMutex
	convs   map[string]convLog // published: committed rows only
	entries int                // rows indexed in convs (live ones and holes)

	// The open write transaction's changes (Store.wmu held).
	view map[string]*convView
}

// convLog is one conversation's rows: rowids[i] holds seq first+i, 0 if
// that message was deleted out of order (a disappearing message). A
// convLog is never changed in place once published: the writer copies
// before it sets a hole, and it appends only beyond a published length,
// which no reader reads.
type convLog struct {
	first  uint64
	rowids []int64
}

type convView struct {
	log   convLog
	owned bool // log.rowids is this transaction's copy (holes may be set)
}

// logRow is one message's place in the log.
type logRow struct {
	seq   uint64
	rowid int64
}

func newLogIndex() *logIndex {
	return &logIndex{convs: make(map[string]convLog), view: make(map[string]*convView)}
}

// load rebuilds the index from the table. Rows of one conversation come
// in seq order by construction (appended in order); the scan sorts those
// of a conversation that do not rather than rely on it.
func (x *logIndex) load(ctx context.Context, q txQuerier) error {
	rows, err := q.QueryContext(ctx, `SELECT rowid, conversation_id, seq FROM messages`)
	if err != nil {
		return fmt.Errorf("sqlitestore: load the message log's index: %w", err)
	}
	defer rows.Close()
	byConv := make(map[string]*[]logRow)
	var conv sql.RawBytes // the conversation id is only a map key: not copied per row
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&r.rowid, &conv, &r.seq); err != nil {
			return fmt.Errorf("sqlitestore: load the message log's index: %w", err)
		}
		rs, ok := byConv[string(conv)]
		if !ok {
			rs = new([]logRow)
			byConv[string(conv)] = rs
		}
		*rs = append(*rs, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: load the message log's index: %w", err)
	}
	convs := make(map[string]convLog, len(byConv))
	entries := 0
	for conv, rsp := range byConv {
		rs := *rsp
		bySeq := func(a, b logRow) int { return cmpUint(a.seq, b.seq) }
		if !slices.IsSortedFunc(rs, bySeq) {
			slices.SortFunc(rs, bySeq)
		}
		// A hole is 8 bytes of memory: a database whose seqs leave more
		// holes than any log could (a seq changed by hand, a corrupt
		// page) is refused rather than allocated.
		// (Fewer seqs than rows is a seq twice, which the loop below tells.)
		if span := rs[len(rs)-1].seq - rs[0].seq + 1; span > uint64(len(rs)) && span-uint64(len(rs)) > maxLogHoles {
			return fmt.Errorf("sqlitestore: the message log of conversation %x jumps from seq %d to %d over %d rows: %w",
				conv, rs[0].seq, rs[len(rs)-1].seq, len(rs), errCorruptLog)
		}
		l := convLog{first: rs[0].seq, rowids: make([]int64, 0, int(rs[len(rs)-1].seq-rs[0].seq)+1)}
		for _, r := range rs {
			next := l.first + uint64(len(l.rowids))
			if r.seq < next {
				return fmt.Errorf("sqlitestore: the message log holds seq %d of conversation %x twice: %w", r.seq, conv, errCorruptLog)
			}
			for ; next < r.seq; next++ {
				l.rowids = append(l.rowids, 0)
			}
			l.rowids = append(l.rowids, r.rowid)
		}
		convs[conv] = l
		entries += len(l.rowids)
	}
	x.mu.Lock()
	x.convs, x.entries = convs, entries
	clear(x.view)
	x.mu.Unlock()
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxLogHoles bounds the holes (messages deleted out of order, such as
// disappeared ones, while an older one is still unread) the index takes
// in one conversation when it is loaded: 512 MiB of them. A running log
// only makes a hole per message stored, so no retention comes near it.
const maxLogHoles = 1 << 26

// errCorruptLog means the table holds what the log's rules forbid.
var errCorruptLog = errors.New("the message log is inconsistent")

// LogIndexEntries is how many entries the message log's index holds in
// memory: about one per message some device has not yet acknowledged (8
// bytes each, and a map entry per conversation with any), for operators
// to watch (parleyd_sqlite_log_index_entries).
func (s *Store) LogIndexEntries() int { return s.log.size() }

// size is the number of entries the published index holds.
func (x *logIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.entries
}

// read returns the published rows of conv with seq in (after, upTo], at
// most limit, in seq order (holes skipped). Readers only.
func (x *logIndex) read(conv []byte, after, upTo uint64, limit int) []logRow {
	x.mu.RLock()
	l, ok := x.convs[string(conv)]
	x.mu.RUnlock()
	if !ok {
		return nil
	}
	return l.rows(after+1, upTo, limit)
}

// rows returns the rows with seq in [from, to], at most limit (<= 0: no
// limit), skipping holes.
func (l convLog) rows(from, to uint64, limit int) []logRow {
	if from < l.first {
		from = l.first
	}
	end := l.first + uint64(len(l.rowids)) // one past the last
	if to >= end {
		to = end - 1
	}
	var out []logRow
	for seq := from; seq <= to && seq < end; seq++ {
		if id := l.rowids[seq-l.first]; id != 0 {
			out = append(out, logRow{seq: seq, rowid: id})
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out
}

// The writer's side: Store.wmu held.

// current is the writer's view of conv: its changes in this transaction
// over the published index.
func (x *logIndex) current(conv []byte) *convView {
	if v, ok := x.view[string(conv)]; ok {
		return v
	}
	x.mu.RLock()
	l := x.convs[string(conv)]
	x.mu.RUnlock()
	v := &convView{log: l}
	x.view[string(conv)] = v
	return v
}

// writerRows is rows of conv's current view with seq in [from, to].
func (x *logIndex) writerRows(conv []byte, from, to uint64) []logRow {
	return x.current(conv).log.rows(from, to, 0)
}

// added records the row the transaction inserted for conv's seq. Seqs
// come in order (a conversation's head + 1); a seq at or below the last
// one indexed is a bug that would lose a message, and is refused.
func (x *logIndex) added(conv []byte, seq uint64, rowid int64) error {
	v := x.current(conv)
	l := &v.log
	if len(l.rowids) == 0 {
		l.first, l.rowids = seq, nil
		v.owned = true
	}
	next := l.first + uint64(len(l.rowids))
	if seq < next {
		return fmt.Errorf("sqlitestore: seq %d appended after %d: %w", seq, next-1, errCorruptLog)
	}
	for ; next < seq; next++ {
		l.rowids = append(l.rowids, 0)
	}
	l.rowids = append(l.rowids, rowid)
	return nil
}

// trimmed records that the rows of conv up to seq upTo were deleted.
func (x *logIndex) trimmed(conv []byte, upTo uint64) {
	v := x.current(conv)
	l := &v.log
	if len(l.rowids) == 0 || upTo < l.first {
		return
	}
	n := upTo - l.first + 1
	if n >= uint64(len(l.rowids)) {
		l.first, l.rowids = upTo+1, nil
		v.owned = true
		return
	}
	l.first, l.rowids = upTo+1, l.rowids[n:]
	l.dropHoles()
}

// removed records that the row of conv's seq was deleted.
func (x *logIndex) removed(conv []byte, seq uint64) {
	v := x.current(conv)
	l := &v.log
	if len(l.rowids) == 0 || seq < l.first || seq >= l.first+uint64(len(l.rowids)) {
		return
	}
	if seq == l.first {
		l.first, l.rowids = l.first+1, l.rowids[1:]
		l.dropHoles()
		return
	}
	if !v.owned {
		l.rowids = slices.Clone(l.rowids)
		v.owned = true
	}
	l.rowids[seq-l.first] = 0
}

// dropHoles removes leading holes, so that an empty log is empty.
func (l *convLog) dropHoles() {
	for len(l.rowids) > 0 && l.rowids[0] == 0 {
		l.first, l.rowids = l.first+1, l.rowids[1:]
	}
}

// publish makes the committed transaction's changes what readers see.
func (x *logIndex) publish() {
	if len(x.view) == 0 {
		return
	}
	x.mu.Lock()
	for conv, v := range x.view {
		x.entries -= len(x.convs[conv].rowids)
		if len(v.log.rowids) == 0 {
			delete(x.convs, conv)
			continue
		}
		x.convs[conv] = v.log
		x.entries += len(v.log.rowids)
	}
	x.mu.Unlock()
	clear(x.view)
}

// discard drops a rolled-back transaction's changes.
func (x *logIndex) discard() { clear(x.view) }

// logMark is the writer's view at a savepoint.
type logMark map[string]convView

// mark saves the view, for rollbackTo at a savepoint's rollback. The
// copy is shallow: appends write beyond the marked length, and no view
// owns its rows after a mark, so a hole set after it is set in a copy.
func (x *logIndex) mark() logMark {
	m := make(logMark, len(x.view))
	for conv, v := range x.view {
		v.owned = false
		m[conv] = *v
	}
	return m
}

func (x *logIndex) rollbackTo(m logMark) {
	clear(x.view)
	for conv, v := range m {
		v := v
		x.view[conv] = &v
	}
}
