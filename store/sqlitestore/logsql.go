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
	for _, r := range log.writerRows(conv, 0, upTo) {
		if err := deleteLogRow(ctx, tx, conv, r); err != nil {
			return err
		}
	}
	log.trimmed(conv, upTo)
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
