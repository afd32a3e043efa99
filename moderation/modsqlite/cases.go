package modsqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/moderation"
)

// FileReport implements moderation.Store.
func (s *Store) FileReport(ctx context.Context, r moderation.CaseReport, reported string, msgs []moderation.CaseMessage) (int64, error) {
	if reported == "" || len(msgs) == 0 {
		return 0, errors.New("modsqlite: a report names a reported account and messages")
	}
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// An open case holding one of these messages takes the report.
		for _, m := range msgs {
			err := tx.QueryRowContext(ctx, `SELECT c.id FROM case_messages m JOIN cases c ON c.id = m.case_id
				WHERE m.tag = ? AND c.state = ? AND c.reported = ? ORDER BY c.id LIMIT 1`, m.Tag, moderation.CaseOpen, reported).Scan(&id)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if id == 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO cases (opened, reported, state) VALUES (?, ?, ?)`, r.Received.UnixMilli(), reported, moderation.CaseOpen)
			if err != nil {
				return err
			}
			if id, err = res.LastInsertId(); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO case_reports (case_id, reporter, reason, note, received) VALUES (?, ?, ?, ?, ?)`,
			id, r.Reporter, r.Reason, r.Note, r.Received.UnixMilli()); err != nil {
			return err
		}
		for _, m := range msgs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO case_messages (case_id, tag, conversation, sender_user, sender_device, accepted, content, salt, frank)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				id, m.Tag, m.Conversation, m.SenderUser, m.SenderDevice, m.Accepted.UnixMilli(), m.Content, m.Salt, m.Frank); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("modsqlite: file report: %w", err)
	}
	return id, nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func loadCase(ctx context.Context, q queryer, id int64, full bool) (moderation.Case, error) {
	c := moderation.Case{ID: id}
	var opened int64
	var hold string
	err := q.QueryRowContext(ctx, `SELECT opened, reported, state, kind, hold FROM cases WHERE id = ?`, id).Scan(&opened, &c.Reported, &c.State, &c.Kind, &hold)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("modsqlite: case %d: %w", id, moderation.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	c.Opened = time.UnixMilli(opened).UTC()
	if hold != "" {
		c.Hold = new(moderation.Hold)
		if err := json.Unmarshal([]byte(hold), c.Hold); err != nil {
			return c, fmt.Errorf("modsqlite: case %d: its hold: %w", id, err)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT reporter, reason, note, received FROM case_reports WHERE case_id = ? ORDER BY received`, id)
	if err != nil {
		return c, err
	}
	for rows.Next() {
		var r moderation.CaseReport
		var t int64
		if err := rows.Scan(&r.Reporter, &r.Reason, &r.Note, &t); err != nil {
			rows.Close()
			return c, err
		}
		r.Received = time.UnixMilli(t).UTC()
		c.Reports = append(c.Reports, r)
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, `SELECT time, action, moderator, reason, until FROM case_events WHERE case_id = ? ORDER BY rowid`, id)
	if err != nil {
		return c, err
	}
	for rows.Next() {
		var e moderation.CaseEvent
		var t, until int64
		if err := rows.Scan(&t, &e.Action, &e.Moderator, &e.Reason, &until); err != nil {
			rows.Close()
			return c, err
		}
		e.Time = time.UnixMilli(t).UTC()
		if until != 0 {
			e.Until = time.UnixMilli(until).UTC()
		}
		c.Events = append(c.Events, e)
	}
	rows.Close()
	if !full {
		return c, nil
	}
	rows, err = q.QueryContext(ctx, `SELECT tag, conversation, sender_user, sender_device, accepted, content, salt, frank FROM case_messages WHERE case_id = ? ORDER BY accepted, tag`, id)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var m moderation.CaseMessage
		var t int64
		if err := rows.Scan(&m.Tag, &m.Conversation, &m.SenderUser, &m.SenderDevice, &t, &m.Content, &m.Salt, &m.Frank); err != nil {
			return c, err
		}
		m.Accepted = time.UnixMilli(t).UTC()
		c.Messages = append(c.Messages, m)
	}
	return c, rows.Err()
}

// Case implements moderation.Store.
func (s *Store) Case(ctx context.Context, id int64) (moderation.Case, error) {
	return loadCase(ctx, s.db, id, true)
}

// Cases implements moderation.Store.
func (s *Store) Cases(ctx context.Context, state string, limit int) ([]moderation.Case, error) {
	limit = moderation.PageLimit(limit, 100)
	var rows *sql.Rows
	var err error
	if state == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT id FROM cases ORDER BY id DESC LIMIT ?`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT id FROM cases WHERE state = ? ORDER BY id DESC LIMIT ?`, state, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modsqlite: cases: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]moderation.Case, 0, len(ids))
	for _, id := range ids {
		c, err := loadCase(ctx, s.db, id, false)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ActOnCase implements moderation.Store.
func (s *Store) ActOnCase(ctx context.Context, id int64, e moderation.CaseEvent) (moderation.Case, error) {
	e, err := moderation.CheckCaseEvent(e)
	if err != nil {
		return moderation.Case{}, err
	}
	var c moderation.Case
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var state, kind string
		err := tx.QueryRowContext(ctx, `SELECT state, kind FROM cases WHERE id = ?`, id).Scan(&state, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("case %d: %w", id, moderation.ErrNotFound)
		}
		if err != nil {
			return err
		}
		next, err := moderation.NextCaseState(kind, state, e.Action)
		if err != nil {
			return err
		}
		var until int64
		if !e.Until.IsZero() {
			until = e.Until.UnixMilli()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO case_events (case_id, time, action, moderator, reason, until) VALUES (?, ?, ?, ?, ?, ?)`,
			id, e.Time.UnixMilli(), e.Action, e.Moderator, e.Reason, until); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cases SET state = ? WHERE id = ?`, next, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note) VALUES (?, ?, '', '', '', 0, ?, ?, ?)`,
			e.Time.UnixMilli(), "case:"+e.Action, "case:"+strconv.FormatInt(id, 10), e.Moderator, e.Reason); err != nil {
			return err
		}
		c, err = loadCase(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return moderation.Case{}, fmt.Errorf("modsqlite: act on case: %w", err)
	}
	return c, nil
}

// CasesAbout implements moderation.Store.
func (s *Store) CasesAbout(ctx context.Context, account string, limit int) ([]moderation.Case, error) {
	limit = moderation.PageLimit(limit, 100)
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM cases WHERE reported = ? AND kind = ? ORDER BY id DESC LIMIT ?`, account, moderation.KindReport, limit)
	if err != nil {
		return nil, fmt.Errorf("modsqlite: cases about %s: %w", account, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]moderation.Case, 0, len(ids))
	for _, id := range ids {
		c, err := loadCase(ctx, s.db, id, false)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// PurgeCases implements moderation.Store.
func (s *Store) PurgeCases(ctx context.Context, before, now time.Time) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT c.id,
			(SELECT action FROM case_events WHERE case_id = c.id AND action != 'appeal' ORDER BY rowid DESC LIMIT 1),
			(SELECT until FROM case_events WHERE case_id = c.id AND action != 'appeal' ORDER BY rowid DESC LIMIT 1),
			c.hold != '' OR EXISTS (SELECT 1 FROM case_messages WHERE case_id = c.id) OR EXISTS (SELECT 1 FROM case_reports WHERE case_id = c.id AND note != '')
			FROM cases c
			WHERE c.state IN (?, ?) AND (SELECT MAX(time) FROM case_events WHERE case_id = c.id) < ?`,
			moderation.CaseDecided, moderation.CaseClosed, before.UnixMilli())
		if err != nil {
			return err
		}
		type victim struct {
			id      int64
			inForce bool
			content bool
		}
		var vs []victim
		for rows.Next() {
			var v victim
			var action string
			var until int64
			if err := rows.Scan(&v.id, &action, &until, &v.content); err != nil {
				rows.Close()
				return err
			}
			v.inForce = action == moderation.ActionBan || action == moderation.ActionSuspend && until > now.UnixMilli()
			vs = append(vs, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, v := range vs {
			if v.inForce && !v.content {
				continue // purged before; its decision stays while in force
			}
			stmts := []string{`DELETE FROM case_messages WHERE case_id = ?`, `UPDATE case_reports SET note = '' WHERE case_id = ?`, `UPDATE cases SET hold = '' WHERE id = ?`}
			if !v.inForce {
				stmts = []string{`DELETE FROM case_messages WHERE case_id = ?`, `DELETE FROM case_reports WHERE case_id = ?`,
					`DELETE FROM case_events WHERE case_id = ?`, `DELETE FROM cases WHERE id = ?`}
			}
			for _, q := range stmts {
				if _, err := tx.ExecContext(ctx, q, v.id); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("modsqlite: purge cases: %w", err)
	}
	return n, nil
}

// FileHold implements moderation.Store.
func (s *Store) FileHold(ctx context.Context, h moderation.Hold, opened time.Time) (int64, error) {
	if h.Post <= 0 || h.Channel == "" || h.Author == "" {
		return 0, errors.New("modsqlite: a hold names a post, its channel and its author")
	}
	b, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM cases WHERE hold_post = ? AND state = ? ORDER BY id LIMIT 1`, h.Post, moderation.CaseOpen).Scan(&id)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO cases (opened, reported, state, kind, hold, hold_post) VALUES (?, ?, ?, ?, ?, ?)`,
			opened.UnixMilli(), h.Author, moderation.CaseOpen, moderation.KindHold, string(b), h.Post)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("modsqlite: file hold of post %d: %w", h.Post, err)
	}
	return id, nil
}

// OpenHold implements moderation.Store.
func (s *Store) OpenHold(ctx context.Context, post int64) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM cases WHERE hold_post = ? AND state = ? ORDER BY id LIMIT 1`, post, moderation.CaseOpen).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("modsqlite: no open hold case for post %d: %w", post, moderation.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("modsqlite: open hold: %w", err)
	}
	return id, nil
}

// Sanction implements moderation.Store: the latest decision of each of
// the account's decided, appealed or closed cases counts (a pending
// appeal leaves the decision in force), folded by moderation.Sanction.With.
func (s *Store) Sanction(ctx context.Context, account string, now time.Time) (moderation.Sanction, error) {
	m, err := s.Sanctions(ctx, []string{account}, now)
	return m[account], err
}

// sanctionsChunk bounds the accounts of one query.
const sanctionsChunk = 500

// Sanctions implements moderation.Store.
func (s *Store) Sanctions(ctx context.Context, accounts []string, now time.Time) (map[string]moderation.Sanction, error) {
	out := make(map[string]moderation.Sanction)
	for chunk := range slices.Chunk(accounts, sanctionsChunk) {
		args := []any{moderation.CaseDecided, moderation.CaseAppealed, moderation.CaseClosed}
		for _, a := range chunk {
			args = append(args, a)
		}
		rows, err := s.db.QueryContext(ctx, `SELECT c.reported, c.id, e.action, e.until, e.reason FROM cases c
			JOIN case_events e ON e.case_id = c.id
			WHERE c.kind = 'report' AND c.state IN (?, ?, ?) AND c.reported IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)
			  AND e.rowid = (SELECT MAX(rowid) FROM case_events WHERE case_id = c.id AND action != 'appeal')`, args...)
		if err != nil {
			return nil, fmt.Errorf("modsqlite: sanctions: %w", err)
		}
		for rows.Next() {
			var id, until int64
			var account, action, reason string
			if err := rows.Scan(&account, &id, &action, &until, &reason); err != nil {
				rows.Close()
				return nil, fmt.Errorf("modsqlite: sanctions: %w", err)
			}
			if sn := out[account].With(id, action, until, reason, now); sn.Active() {
				out[account] = sn
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("modsqlite: sanctions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("modsqlite: sanctions: %w", err)
		}
	}
	return out, nil
}
