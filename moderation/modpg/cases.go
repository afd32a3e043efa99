package modpg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/pgdb"
	"github.com/parleychat/parley/moderation"
)

// FileReport implements moderation.Store. Reports against one account
// are serialised by a transaction advisory lock on its name, so two nodes
// filing reports of the same messages at once put them in one case.
func (s *Store) FileReport(ctx context.Context, r moderation.CaseReport, reported string, msgs []moderation.CaseMessage) (int64, error) {
	if reported == "" || len(msgs) == 0 {
		return 0, errors.New("modpg: a report names a reported account and messages")
	}
	var id int64
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		id = 0
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('parley case ' || $1::text))`, reported); err != nil {
			return err
		}
		// An open case holding one of these messages takes the report.
		for _, m := range msgs {
			err := tx.QueryRow(ctx, `SELECT c.id FROM case_messages m JOIN cases c ON c.id = m.case_id
				WHERE m.tag = $1 AND c.state = $2 AND c.reported = $3 ORDER BY c.id LIMIT 1`, m.Tag, moderation.CaseOpen, reported).Scan(&id)
			if err == nil {
				break
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if id == 0 {
			if err := tx.QueryRow(ctx, `INSERT INTO cases (opened, reported, state) VALUES ($1, $2, $3) RETURNING id`,
				r.Received.UnixMilli(), reported, moderation.CaseOpen).Scan(&id); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO case_reports (case_id, reporter, reason, note, received) VALUES ($1, $2, $3, $4, $5)`,
			id, r.Reporter, r.Reason, r.Note, r.Received.UnixMilli())
		for _, m := range msgs {
			b.Queue(`INSERT INTO case_messages (case_id, tag, conversation, sender_user, sender_device, accepted, content, salt, frank)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
				id, nonNil(m.Tag), nonNil(m.Conversation), m.SenderUser, m.SenderDevice, m.Accepted.UnixMilli(), nonNil(m.Content), nonNil(m.Salt), nonNil(m.Frank))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("modpg: file report: %w", err)
	}
	return id, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func loadCase(ctx context.Context, q querier, id int64, full bool) (moderation.Case, error) {
	c := moderation.Case{ID: id}
	var opened int64
	var hold string
	err := q.QueryRow(ctx, `SELECT opened, reported, state, kind, hold FROM cases WHERE id = $1`, id).Scan(&opened, &c.Reported, &c.State, &c.Kind, &hold)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("modpg: case %d: %w", id, moderation.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	c.Opened = time.UnixMilli(opened).UTC()
	if hold != "" {
		c.Hold = new(moderation.Hold)
		if err := json.Unmarshal([]byte(hold), c.Hold); err != nil {
			return c, fmt.Errorf("modpg: case %d: its hold: %w", id, err)
		}
	}
	rows, err := q.Query(ctx, `SELECT reporter, reason, note, received FROM case_reports WHERE case_id = $1 ORDER BY received, id`, id)
	if err != nil {
		return c, err
	}
	c.Reports, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (moderation.CaseReport, error) {
		var r moderation.CaseReport
		var t int64
		err := row.Scan(&r.Reporter, &r.Reason, &r.Note, &t)
		r.Received = time.UnixMilli(t).UTC()
		return r, err
	})
	if err != nil {
		return c, err
	}
	rows, err = q.Query(ctx, `SELECT time, action, moderator, reason, until FROM case_events WHERE case_id = $1 ORDER BY id`, id)
	if err != nil {
		return c, err
	}
	c.Events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (moderation.CaseEvent, error) {
		var e moderation.CaseEvent
		var t, until int64
		err := row.Scan(&t, &e.Action, &e.Moderator, &e.Reason, &until)
		e.Time = time.UnixMilli(t).UTC()
		if until != 0 {
			e.Until = time.UnixMilli(until).UTC()
		}
		return e, err
	})
	if err != nil {
		return c, err
	}
	if len(c.Events) == 0 {
		c.Events = nil
	}
	if !full {
		return c, nil
	}
	rows, err = q.Query(ctx, `SELECT tag, conversation, sender_user, sender_device, accepted, content, salt, frank FROM case_messages WHERE case_id = $1 ORDER BY accepted, tag`, id)
	if err != nil {
		return c, err
	}
	c.Messages, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (moderation.CaseMessage, error) {
		var m moderation.CaseMessage
		var t int64
		err := row.Scan(&m.Tag, &m.Conversation, &m.SenderUser, &m.SenderDevice, &t, &m.Content, &m.Salt, &m.Frank)
		m.Accepted = time.UnixMilli(t).UTC()
		return m, err
	})
	return c, err
}

// Case implements moderation.Store.
func (s *Store) Case(ctx context.Context, id int64) (moderation.Case, error) {
	return loadCase(ctx, s.pool, id, true)
}

// Cases implements moderation.Store.
func (s *Store) Cases(ctx context.Context, state string, limit int) ([]moderation.Case, error) {
	limit = moderation.PageLimit(limit, 100)
	var rows pgx.Rows
	var err error
	if state == "" {
		rows, err = s.pool.Query(ctx, `SELECT id FROM cases ORDER BY id DESC LIMIT $1`, limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT id FROM cases WHERE state = $1 ORDER BY id DESC LIMIT $2`, state, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modpg: cases: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("modpg: cases: %w", err)
	}
	out := make([]moderation.Case, 0, len(ids))
	for _, id := range ids {
		c, err := loadCase(ctx, s.pool, id, false)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ActOnCase implements moderation.Store. The case's row is locked for
// the transaction, so two moderators deciding at once on two nodes get
// one decision and one ErrCaseState.
func (s *Store) ActOnCase(ctx context.Context, id int64, e moderation.CaseEvent) (moderation.Case, error) {
	e, err := moderation.CheckCaseEvent(e)
	if err != nil {
		return moderation.Case{}, err
	}
	var c moderation.Case
	err = s.pool.InTx(ctx, func(tx pgx.Tx) error {
		var state, kind string
		err := tx.QueryRow(ctx, `SELECT state, kind FROM cases WHERE id = $1 FOR UPDATE`, id).Scan(&state, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
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
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO case_events (case_id, time, action, moderator, reason, until) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, e.Time.UnixMilli(), e.Action, e.Moderator, e.Reason, until)
		b.Queue(`UPDATE cases SET state = $1 WHERE id = $2`, next, id)
		b.Queue(`INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note) VALUES ($1, $2, '', '', '', 0, $3, $4, $5)`,
			e.Time.UnixMilli(), "case:"+e.Action, "case:"+strconv.FormatInt(id, 10), e.Moderator, e.Reason)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		c, err = loadCase(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return moderation.Case{}, fmt.Errorf("modpg: act on case: %w", err)
	}
	return c, nil
}

// Sanction implements moderation.Store: the latest decision of each of
// the account's decided, appealed or closed cases counts (a pending
// appeal leaves the decision in force), folded by moderation.Sanction.With.
func (s *Store) Sanction(ctx context.Context, account string, now time.Time) (moderation.Sanction, error) {
	m, err := s.Sanctions(ctx, []string{account}, now)
	return m[account], err
}

// Sanctions implements moderation.Store.
func (s *Store) Sanctions(ctx context.Context, accounts []string, now time.Time) (map[string]moderation.Sanction, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.reported, c.id, e.action, e.until, e.reason FROM cases c
		JOIN case_events e ON e.case_id = c.id
		WHERE c.reported = ANY($1) AND c.kind = 'report' AND c.state IN ($2, $3, $4)
		  AND e.id = (SELECT MAX(id) FROM case_events WHERE case_id = c.id AND action <> 'appeal')`,
		accounts, moderation.CaseDecided, moderation.CaseAppealed, moderation.CaseClosed)
	if err != nil {
		return nil, fmt.Errorf("modpg: sanctions: %w", err)
	}
	defer rows.Close()
	out := make(map[string]moderation.Sanction)
	for rows.Next() {
		var id, until int64
		var account, action, reason string
		if err := rows.Scan(&account, &id, &action, &until, &reason); err != nil {
			return nil, fmt.Errorf("modpg: sanctions: %w", err)
		}
		if sn := out[account].With(id, action, until, reason, now); sn.Active() {
			out[account] = sn
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("modpg: sanctions: %w", err)
	}
	return out, nil
}

// AddModerator implements moderation.Store.
func (s *Store) AddModerator(ctx context.Context, m moderation.Moderator) error {
	if m.Name == "" || m.PasswordHash == "" || len(m.TOTPSecret) == 0 {
		return errors.New("modpg: a moderator has a name, a password hash and a TOTP secret")
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO moderators (name, lead, password, totp_secret, created) VALUES ($1, $2, $3, $4, $5)`,
		m.Name, m.Lead, m.PasswordHash, m.TOTPSecret, m.Created.UnixMilli())
	if pgdb.UniqueViolation(err) {
		return fmt.Errorf("modpg: moderator %q: %w", m.Name, moderation.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("modpg: add moderator: %w", err)
	}
	return nil
}

func scanModerator(sc interface{ Scan(...any) error }) (moderation.Moderator, error) {
	var m moderation.Moderator
	var created, removed int64
	if err := sc.Scan(&m.Name, &m.Lead, &m.PasswordHash, &m.TOTPSecret, &created, &removed); err != nil {
		return m, err
	}
	m.Created = time.UnixMilli(created).UTC()
	if removed != 0 {
		m.Removed = time.UnixMilli(removed).UTC()
	}
	return m, nil
}

// Moderator implements moderation.Store.
func (s *Store) Moderator(ctx context.Context, name string) (moderation.Moderator, error) {
	m, err := scanModerator(s.pool.QueryRow(ctx, `SELECT name, lead, password, totp_secret, created, removed FROM moderators WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("modpg: moderator %q: %w", name, moderation.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("modpg: moderator: %w", err)
	}
	return m, nil
}

// Moderators implements moderation.Store.
func (s *Store) Moderators(ctx context.Context) ([]moderation.Moderator, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, lead, password, totp_secret, created, removed FROM moderators ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("modpg: moderators: %w", err)
	}
	defer rows.Close()
	var out []moderation.Moderator
	for rows.Next() {
		m, err := scanModerator(rows)
		if err != nil {
			return nil, fmt.Errorf("modpg: moderators: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// caseIDs collects a query's case ids and loads the cases without their
// messages.
func (s *Store) casesOf(ctx context.Context, rows pgx.Rows, err error) ([]moderation.Case, error) {
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make([]moderation.Case, 0, len(ids))
	for _, id := range ids {
		c, err := loadCase(ctx, s.pool, id, false)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// CasesAbout implements moderation.Store.
func (s *Store) CasesAbout(ctx context.Context, account string, limit int) ([]moderation.Case, error) {
	limit = moderation.PageLimit(limit, 100)
	rows, err := s.pool.Query(ctx, `SELECT id FROM cases WHERE reported = $1 AND kind = $2 ORDER BY id DESC LIMIT $3`, account, moderation.KindReport, limit)
	out, err := s.casesOf(ctx, rows, err)
	if err != nil {
		return nil, fmt.Errorf("modpg: cases about %s: %w", account, err)
	}
	return out, nil
}

// FileHold implements moderation.Store. Holds of one post are serialised
// by an advisory lock, so two nodes holding it at once open one case.
func (s *Store) FileHold(ctx context.Context, h moderation.Hold, opened time.Time) (int64, error) {
	if h.Post <= 0 || h.Channel == "" || h.Author == "" {
		return 0, errors.New("modpg: a hold names a post, its channel and its author")
	}
	b, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.pool.InTx(ctx, func(tx pgx.Tx) error {
		id = 0
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('parley hold ' || $1::text))`, strconv.FormatInt(h.Post, 10)); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT id FROM cases WHERE hold_post = $1 AND state = $2 ORDER BY id LIMIT 1`, h.Post, moderation.CaseOpen).Scan(&id)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO cases (opened, reported, state, kind, hold, hold_post) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			opened.UnixMilli(), h.Author, moderation.CaseOpen, moderation.KindHold, string(b), h.Post).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("modpg: file hold of post %d: %w", h.Post, err)
	}
	return id, nil
}

// OpenHold implements moderation.Store.
func (s *Store) OpenHold(ctx context.Context, post int64) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM cases WHERE hold_post = $1 AND state = $2 ORDER BY id LIMIT 1`, post, moderation.CaseOpen).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("modpg: no open hold case for post %d: %w", post, moderation.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("modpg: open hold: %w", err)
	}
	return id, nil
}

// PurgeCases implements moderation.Store.
func (s *Store) PurgeCases(ctx context.Context, before, now time.Time) (int, error) {
	n := 0
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT c.id,
			COALESCE((SELECT action FROM case_events WHERE case_id = c.id AND action <> 'appeal' ORDER BY id DESC LIMIT 1), ''),
			COALESCE((SELECT until FROM case_events WHERE case_id = c.id AND action <> 'appeal' ORDER BY id DESC LIMIT 1), 0),
			c.hold <> '' OR EXISTS (SELECT 1 FROM case_messages WHERE case_id = c.id) OR EXISTS (SELECT 1 FROM case_reports WHERE case_id = c.id AND note <> '')
			FROM cases c
			WHERE c.state IN ($1, $2) AND (SELECT MAX(time) FROM case_events WHERE case_id = c.id) < $3
			FOR UPDATE OF c`,
			moderation.CaseDecided, moderation.CaseClosed, before.UnixMilli())
		if err != nil {
			return err
		}
		type victim struct {
			id      int64
			inForce bool
			content bool
		}
		vs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (victim, error) {
			var v victim
			var action string
			var until int64
			err := row.Scan(&v.id, &action, &until, &v.content)
			v.inForce = action == moderation.ActionBan || action == moderation.ActionSuspend && until > now.UnixMilli()
			return v, err
		})
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.inForce && !v.content {
				continue
			}
			stmts := []string{`DELETE FROM case_messages WHERE case_id = $1`, `UPDATE case_reports SET note = '' WHERE case_id = $1`, `UPDATE cases SET hold = '' WHERE id = $1`}
			if !v.inForce {
				stmts = []string{`DELETE FROM case_messages WHERE case_id = $1`, `DELETE FROM case_reports WHERE case_id = $1`,
					`DELETE FROM case_events WHERE case_id = $1`, `DELETE FROM cases WHERE id = $1`}
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q, v.id); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("modpg: purge cases: %w", err)
	}
	return n, nil
}

// RemoveModerator implements moderation.Store.
func (s *Store) RemoveModerator(ctx context.Context, name, by string, at time.Time) error {
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		// One removal at a time, so that two leads cannot remove each
		// other and leave none.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('parley moderators'))`); err != nil {
			return err
		}
		var lead bool
		err := tx.QueryRow(ctx, `SELECT lead FROM moderators WHERE name = $1 AND removed = 0`, name).Scan(&lead)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("no active moderator %q: %w", name, moderation.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if lead {
			var leads int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM moderators WHERE lead AND removed = 0`).Scan(&leads); err != nil {
				return err
			}
			if leads <= 1 {
				return moderation.ErrLastLead
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE moderators SET removed = $1 WHERE name = $2`, at.UnixMilli(), name); err != nil {
			return err
		}
		// Deactivation ends the account's console sessions on every node.
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE moderator = $1`, name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note) VALUES ($1, 'moderator:remove', '', '', '', 0, $2, $3, '')`,
			at.UnixMilli(), "moderator:"+name, by)
		return err
	})
	if err != nil {
		return fmt.Errorf("modpg: remove moderator: %w", err)
	}
	return nil
}

// UseTOTPStep implements moderation.Store: one UPDATE whose WHERE clause
// is the check; PostgreSQL's row lock makes a racing UPDATE re-read the
// row after the first commits (READ COMMITTED's re-check of the WHERE
// clause), so of two nodes with the same step exactly one matches.
func (s *Store) UseTOTPStep(ctx context.Context, name string, step uint64) error {
	if step == 0 || step > math.MaxInt64 {
		return errors.New("modpg: a TOTP step is between 1 and 2^63-1")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE moderators SET totp_step = $1 WHERE name = $2 AND removed = 0 AND totp_step < $1`, int64(step), name)
	if err != nil {
		return fmt.Errorf("modpg: use TOTP step: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing changed: say why (the answer to the UPDATE is already given).
	if m, err := s.Moderator(ctx, name); err != nil {
		return fmt.Errorf("modpg: use TOTP step: %w", err)
	} else if !m.Active() {
		return fmt.Errorf("modpg: use TOTP step: moderator %q was removed: %w", name, moderation.ErrNotFound)
	}
	return fmt.Errorf("modpg: use TOTP step: %w", moderation.ErrTOTPUsed)
}

// AddLoginFailure implements moderation.Store: an upsert that opens a new
// window or adds one to the open one; PostgreSQL's row lock serialises
// nodes adding to one subject.
func (s *Store) AddLoginFailure(ctx context.Context, subject string, at time.Time, window time.Duration) (int, error) {
	if subject == "" || window <= 0 {
		return 0, errors.New("modpg: a login failure has a subject and a window")
	}
	closed := at.Add(-window).UnixMilli() // windows that started then or before are closed
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_login_failures WHERE window_start <= $1 AND subject <> $2`, closed, subject); err != nil {
		return 0, fmt.Errorf("modpg: add login failure: %w", err)
	}
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO console_login_failures AS f (subject, window_start, count) VALUES ($1, $2, 1)
		ON CONFLICT (subject) DO UPDATE SET
			count = CASE WHEN f.window_start <= $3 THEN 1 ELSE f.count + 1 END,
			window_start = CASE WHEN f.window_start <= $3 THEN $2 ELSE f.window_start END
		RETURNING count`, subject, at.UnixMilli(), closed).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("modpg: add login failure: %w", err)
	}
	return n, nil
}

// LoginFailures implements moderation.Store.
func (s *Store) LoginFailures(ctx context.Context, subject string, now time.Time, window time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count FROM console_login_failures WHERE subject = $1 AND window_start > $2`, subject, now.Add(-window).UnixMilli()).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("modpg: login failures: %w", err)
	}
	return n, nil
}

// AddConsoleSession implements moderation.Store.
func (s *Store) AddConsoleSession(ctx context.Context, cs moderation.ConsoleSession) error {
	if len(cs.TokenHash) != 32 || cs.Moderator == "" || !cs.Expires.After(cs.Created) {
		return errors.New("modpg: a console session has a 32-byte token hash, a moderator and an expiry after its creation")
	}
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires <= $1`, cs.Created.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (token_hash, moderator, created, expires) VALUES ($1, $2, $3, $4)`,
			cs.TokenHash, cs.Moderator, cs.Created.UnixMilli(), cs.Expires.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("modpg: add console session: %w", err)
	}
	return nil
}

// ConsoleSession implements moderation.Store.
func (s *Store) ConsoleSession(ctx context.Context, tokenHash []byte, now time.Time) (moderation.ConsoleSession, error) {
	cs := moderation.ConsoleSession{TokenHash: tokenHash}
	var created, expires int64
	err := s.pool.QueryRow(ctx, `SELECT s.moderator, s.created, s.expires FROM console_sessions s JOIN moderators m ON m.name = s.moderator
		WHERE s.token_hash = $1 AND s.expires > $2 AND m.removed = 0`, tokenHash, now.UnixMilli()).Scan(&cs.Moderator, &created, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return moderation.ConsoleSession{}, fmt.Errorf("modpg: console session: %w", moderation.ErrNotFound)
	}
	if err != nil {
		return moderation.ConsoleSession{}, fmt.Errorf("modpg: console session: %w", err)
	}
	cs.Created, cs.Expires = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	return cs, nil
}

// EndConsoleSession implements moderation.Store.
func (s *Store) EndConsoleSession(ctx context.Context, tokenHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, tokenHash); err != nil {
		return fmt.Errorf("modpg: end console session: %w", err)
	}
	return nil
}
