package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

func (s *Store) CreateConversation(ctx context.Context, id []byte, creator string) error {
	if err := store.CheckConversationID(id); err != nil {
		return fmt.Errorf("create conversation: %w", err)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		// The creator's row is locked (FOR SHARE) so that it cannot be
		// deleted before its membership is stored.
		t, err := tx.Exec(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR SHARE`, creator)
		if err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("create conversation: creator: %w", store.ErrUnknownDevice)
		}
		t, err = tx.Exec(ctx, `INSERT INTO conversations (id, epoch, head_seq, created) VALUES ($1, 0, 0, $2) ON CONFLICT (id) DO NOTHING`, id, nowMilli())
		if err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("create conversation: %w", store.ErrExists)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO members (conversation_id, device_id, cursor) VALUES ($1, $2, 0)`, id, creator); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		return nil
	})
}

func loadConversation(ctx context.Context, q querier, id []byte) (store.Conversation, error) {
	c := store.Conversation{ID: id}
	var epoch, head int64
	err := q.QueryRow(ctx, `SELECT epoch, head_seq FROM conversations WHERE id = $1`, id).Scan(&epoch, &head)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("conversation: %w", store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("conversation: %w", err)
	}
	c.Epoch, c.HeadSeq = uint64(epoch), uint64(head)
	rows, err := q.Query(ctx, `SELECT device_id FROM members WHERE conversation_id = $1 AND until_seq IS NULL ORDER BY device_id`, id)
	if err != nil {
		return c, fmt.Errorf("conversation: %w", err)
	}
	if c.Members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return c, fmt.Errorf("conversation: %w", err)
	}
	return c, nil
}

// readTx runs fn in a read-only REPEATABLE READ transaction: one snapshot
// for reads that take several statements.
func (s *Store) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrNotMember) {
		err = s.read(err)
	}
	return err
}

func (s *Store) Conversation(ctx context.Context, id []byte) (store.Conversation, error) {
	var c store.Conversation
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = loadConversation(ctx, tx, id)
		return err
	})
	return c, err
}

func (s *Store) Memberships(ctx context.Context, deviceID string) ([]store.Membership, error) {
	var out []store.Membership
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT conversation_id, cursor, until_seq FROM members WHERE device_id = $1 ORDER BY conversation_id`, deviceID)
		if err != nil {
			return fmt.Errorf("memberships: %w", err)
		}
		for rows.Next() {
			var m store.Membership
			var cursor int64
			var until *int64
			if err := rows.Scan(&m.ID, &cursor, &until); err != nil {
				rows.Close()
				return fmt.Errorf("memberships: %w", err)
			}
			m.Cursor = uint64(cursor)
			if until != nil {
				m.RemovedAt = uint64(*until)
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("memberships: %w", err)
		}
		for i := range out {
			c, err := loadConversation(ctx, tx, out[i].ID)
			if err != nil {
				return fmt.Errorf("memberships: %w", err)
			}
			out[i].Conversation = c
		}
		return nil
	})
	return out, err
}

func scanMessages(rows pgx.Rows, conv []byte) ([]store.Message, error) {
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		m := store.Message{ConversationID: conv}
		var seq, epoch, stored int64
		var kind int16
		dest := []any{&seq, &m.ID, &epoch, &kind, &m.Sender, &m.Payload, &stored}
		if conv == nil {
			dest = append(dest, &m.ConversationID)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		m.Seq, m.Epoch, m.Kind, m.Stored = uint64(seq), uint64(epoch), store.Kind(kind), fromMilli(stored)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Store) Fetch(ctx context.Context, deviceID string, conv []byte, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("fetch: limit must be positive: %w", store.ErrBadRequest)
	}
	var cursor int64
	var until *int64
	err := s.pool.QueryRow(ctx, `SELECT cursor, until_seq FROM members WHERE conversation_id = $1 AND device_id = $2`, conv, deviceID).Scan(&cursor, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("fetch: %w", store.ErrNotMember)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", s.read(err))
	}
	maxSeq := int64(1<<62 - 1)
	if until != nil {
		maxSeq = *until
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, id, epoch, kind, sender, payload, stored FROM messages
		WHERE conversation_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`, conv, cursor, maxSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", s.read(err))
	}
	out, err := scanMessages(rows, conv)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) Ack(ctx context.Context, deviceID string, conv []byte, seq uint64) error {
	if seq > 1<<62 {
		return fmt.Errorf("ack: seq %d: %w", seq, store.ErrBadRequest)
	}
	// parley_ack (migration 3) locks the member's row, reads the head,
	// moves the cursor and trims, in one statement, group committed with
	// the conversation's other writes (groupcommit.go).
	r := &msgReq{a: store.Append{ConversationID: conv}, ack: &ackArgs{device: deviceID, seq: int64(seq)}, done: make(chan msgResp, 1)}
	if err := s.enqueue(r); err != nil {
		return err
	}
	resp := <-r.done // answered after the commit, even if ctx ends
	if resp.err != nil {
		return fmt.Errorf("ack: %w", resp.err)
	}
	switch resp.row.status {
	case ackDone:
		return nil
	case ackNotMember:
		return fmt.Errorf("ack: %w", store.ErrNotMember)
	case ackBeyondHead:
		return fmt.Errorf("ack: seq %d beyond head %d: %w", seq, *resp.row.head, store.ErrBadRequest)
	}
	return fmt.Errorf("ack: unknown status %d from the database", resp.row.status)
}

// What parley_ack (migration 3) reports.
const (
	ackDone int16 = iota
	ackNotMember
	ackBeyondHead
)

// trimSQL deletes the messages every member of a conversation
// (including removed devices still catching up) has acknowledged.
const trimSQL = `DELETE FROM messages WHERE conversation_id = $1
	AND seq <= (SELECT MIN(cursor) FROM members WHERE conversation_id = $1)`

func (s *Store) FetchInbox(ctx context.Context, deviceID string, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("fetch inbox: limit must be positive: %w", store.ErrBadRequest)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, id, epoch, kind, sender, payload, stored, conversation_id FROM inbox
		WHERE device_id = $1 ORDER BY seq LIMIT $2`, deviceID, limit)
	if err != nil {
		return nil, fmt.Errorf("fetch inbox: %w", s.read(err))
	}
	out, err := scanMessages(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch inbox: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) AckInbox(ctx context.Context, deviceID string, seq uint64) error {
	if seq > 1<<62 {
		return fmt.Errorf("ack inbox: seq %d: %w", seq, store.ErrBadRequest)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var head int64
		err := tx.QueryRow(ctx, `SELECT inbox_head FROM devices WHERE id = $1`, deviceID).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("ack inbox: %w", store.ErrUnknownDevice)
		}
		if err != nil {
			return fmt.Errorf("ack inbox: %w", err)
		}
		if int64(seq) > head {
			return fmt.Errorf("ack inbox: seq %d beyond head %d: %w", seq, head, store.ErrBadRequest)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM inbox WHERE device_id = $1 AND seq <= $2`, deviceID, int64(seq)); err != nil {
			return fmt.Errorf("ack inbox: %w", err)
		}
		return nil
	})
}

func (s *Store) DeleteExpired(ctx context.Context, before, now time.Time) (int, error) {
	var total int
	err := s.write(ctx, func(tx pgx.Tx) error {
		total = 0
		b, n := before.UnixMilli(), now.UnixMilli()
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM messages WHERE stored < $1`, b},
			{`DELETE FROM message_ids WHERE stored < $1`, b},
			{`DELETE FROM epoch_commits WHERE stored < $1`, b},
			{`DELETE FROM inbox WHERE stored < $1`, b},
			{`DELETE FROM links WHERE expires <= $1`, n},
			{`DELETE FROM invites WHERE expires <= $1`, n},
		} {
			t, err := tx.Exec(ctx, q.sql, q.arg)
			if err != nil {
				return fmt.Errorf("delete expired: %w", err)
			}
			total += int(t.RowsAffected())
		}
		// A change no one gave a verdict on within the retention stays as
		// it is: the removed device a member, the added one too.
		if _, err := tx.Exec(ctx, `DELETE FROM pending_changes WHERE stored < $1`, b); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pending_voters WHERE NOT EXISTS (SELECT 1 FROM pending_changes p
			WHERE p.conversation_id = pending_voters.conversation_id AND p.seq = pending_voters.seq)`); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		// Removed devices with nothing left to read are gone for good.
		_, err := tx.Exec(ctx, `DELETE FROM members WHERE until_seq IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM messages m WHERE m.conversation_id = members.conversation_id
			AND m.seq > members.cursor AND m.seq <= members.until_seq)`)
		if err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		return nil
	})
	return total, err
}
