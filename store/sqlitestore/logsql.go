package sqlitestore

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/store"
)

// The message log's writes: each keeps the log's index (logindex.go) in
// step with the table, in the writer's transaction.

// insertLogged appends m to the log.
func insertLogged(ctx context.Context, tx txQuerier, log *logIndex, m store.Message, stored int64) error {
	r, err := tx.ExecContext(ctx, `INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ConversationID, m.Seq, m.ID, m.Epoch, m.Kind, m.Sender, m.Payload, stored)
	if err != nil {
		return err
	}
	rowid, err := r.LastInsertId()
	if err != nil {
		return err
	}
	return log.added(m.ConversationID, m.Seq, rowid)
}

// trimLogged deletes conv's messages up to seq upTo.
func trimLogged(ctx context.Context, tx txQuerier, log *logIndex, conv []byte, upTo uint64) error {
	rows := log.writerRows(conv, 0, upTo)
	for len(rows) > 0 {
		n := min(len(rows), trimChunk)
		var err error
		if n == 1 {
			err = deleteLogRow(ctx, tx, conv, rows[0])
		} else {
			err = deleteLogRows(ctx, tx, conv, rows[:n])
		}
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	log.trimmed(conv, upTo)
	return nil
}

// trimChunk is how many rows one trim statement deletes. An Ack usually
// trims several messages (as many as the conversation received between
// two acks), scattered among other conversations' rows; deleting eight
// with one statement takes 0.41-0.54 times as long per row as with a
// statement each (BenchmarkTrimStatements, the commit included).
const trimChunk = 8

// deleteLogRows deletes 2 to trimChunk rows of conv, given in seq order,
// checking as deleteLogRow does that each is conv's and in their seq
// range. The statement always names trimChunk rowids (the last one
// repeated), so it is the same statement each time, prepared once.
func deleteLogRows(ctx context.Context, tx txQuerier, conv []byte, rows []logRow) error {
	var args [trimChunk + 3]any
	for i := range trimChunk {
		args[i] = rows[min(i, len(rows)-1)].rowid
	}
	first, last := rows[0].seq, rows[len(rows)-1].seq
	args[trimChunk], args[trimChunk+1], args[trimChunk+2] = conv, first, last
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE rowid IN (?, ?, ?, ?, ?, ?, ?, ?) AND conversation_id = ? AND seq BETWEEN ? AND ?`, args[:]...); err != nil {
		return fmt.Errorf("delete messages %d-%d: %w", first, last, err)
	}
	return nil
}

// deleteLogged deletes conv's message seq, if the log holds it.
func deleteLogged(ctx context.Context, tx txQuerier, log *logIndex, conv []byte, seq uint64) error {
	for _, r := range log.writerRows(conv, seq, seq) {
		if err := deleteLogRow(ctx, tx, conv, r); err != nil {
			return err
		}
	}
	log.removed(conv, seq)
	return nil
}

// deleteLogRow deletes one row by rowid, checking that it is the row the
// index says: a rowid can be used again once the table's last row is
// deleted, and deleting another conversation's message would lose it.
func deleteLogRow(ctx context.Context, tx txQuerier, conv []byte, r logRow) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE rowid = ? AND conversation_id = ? AND seq = ?`, r.rowid, conv, r.seq); err != nil {
		return fmt.Errorf("delete message %d: %w", r.seq, err)
	}
	return nil
}

// expireLogged deletes the messages stored before the time (ms) and
// returns how many.
func expireLogged(ctx context.Context, tx txQuerier, log *logIndex, before int64) (int, error) {
	rows, err := tx.QueryContext(ctx, `DELETE FROM messages WHERE stored < ? RETURNING conversation_id, seq`, before)
	if err != nil {
		return 0, err
	}
	type gone struct {
		conv []byte
		seq  uint64
	}
	var all []gone
	for rows.Next() {
		var g gone
		if err := rows.Scan(&g.conv, &g.seq); err != nil {
			rows.Close()
			return 0, err
		}
		all = append(all, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, g := range all {
		log.removed(g.conv, g.seq)
	}
	return len(all), nil
}

// dropCaughtUp deletes the membership of removed devices that have no
// message left to read up to their removal.
func dropCaughtUp(ctx context.Context, tx txQuerier, log *logIndex) error {
	rows, err := tx.QueryContext(ctx, `SELECT conversation_id, device_id, cursor, until_seq FROM members WHERE until_seq IS NOT NULL`)
	if err != nil {
		return err
	}
	type removed struct {
		conv          []byte
		device        string
		cursor, until uint64
	}
	var done []removed
	for rows.Next() {
		var m removed
		if err := rows.Scan(&m.conv, &m.device, &m.cursor, &m.until); err != nil {
			rows.Close()
			return err
		}
		if m.cursor >= m.until || len(log.writerRows(m.conv, m.cursor+1, m.until)) == 0 {
			done = append(done, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range done {
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND device_id = ?`, m.conv, m.device); err != nil {
			return err
		}
	}
	return nil
}
