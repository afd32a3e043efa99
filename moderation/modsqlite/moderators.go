package modsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parleychat/parley/moderation"
)

// AddModerator implements moderation.Store.
func (s *Store) AddModerator(ctx context.Context, m moderation.Moderator) error {
	if m.Name == "" || m.PasswordHash == "" || len(m.TOTPSecret) == 0 {
		return errors.New("modsqlite: a moderator has a name, a password hash and a TOTP secret")
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO moderators (name, lead, password, totp_secret, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, m.Name, m.Lead, m.PasswordHash, m.TOTPSecret, m.Created.UnixMilli())
	if err != nil {
		return fmt.Errorf("modsqlite: add moderator: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("modsqlite: add moderator: %w", err)
	} else if n == 0 {
		return fmt.Errorf("modsqlite: moderator %q: %w", m.Name, moderation.ErrExists)
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
	m, err := scanModerator(s.db.QueryRowContext(ctx, `SELECT name, lead, password, totp_secret, created, removed FROM moderators WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("modsqlite: moderator %q: %w", name, moderation.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("modsqlite: moderator: %w", err)
	}
	return m, nil
}

// Moderators implements moderation.Store.
func (s *Store) Moderators(ctx context.Context) ([]moderation.Moderator, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, lead, password, totp_secret, created, removed FROM moderators ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("modsqlite: moderators: %w", err)
	}
	defer rows.Close()
	var out []moderation.Moderator
	for rows.Next() {
		m, err := scanModerator(rows)
		if err != nil {
			return nil, fmt.Errorf("modsqlite: moderators: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RemoveModerator implements moderation.Store.
func (s *Store) RemoveModerator(ctx context.Context, name, by string, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var lead bool
		err := tx.QueryRowContext(ctx, `SELECT lead FROM moderators WHERE name = ? AND removed = 0`, name).Scan(&lead)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no active moderator %q: %w", name, moderation.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if lead {
			var leads int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM moderators WHERE lead = 1 AND removed = 0`).Scan(&leads); err != nil {
				return err
			}
			if leads <= 1 {
				return moderation.ErrLastLead
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE moderators SET removed = ? WHERE name = ?`, at.UnixMilli(), name); err != nil {
			return err
		}
		// Deactivation ends the account's console sessions on every node.
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE moderator = ?`, name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note) VALUES (?, 'moderator:remove', '', '', '', 0, ?, ?, '')`,
			at.UnixMilli(), "moderator:"+name, by)
		return err
	})
	if err != nil {
		return fmt.Errorf("modsqlite: remove moderator: %w", err)
	}
	return nil
}

// UseTOTPStep implements moderation.Store: one UPDATE whose WHERE clause
// is the check, so SQLite's write lock serialises racing sign-ins.
func (s *Store) UseTOTPStep(ctx context.Context, name string, step uint64) error {
	if step == 0 || step > math.MaxInt64 {
		return errors.New("modsqlite: a TOTP step is between 1 and 2^63-1")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE moderators SET totp_step = ? WHERE name = ? AND removed = 0 AND totp_step < ?`, int64(step), name, int64(step))
	if err != nil {
		return fmt.Errorf("modsqlite: use TOTP step: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("modsqlite: use TOTP step: %w", err)
	} else if n == 1 {
		return nil
	}
	// Nothing changed: say why (the answer to the UPDATE is already given).
	if m, err := s.Moderator(ctx, name); err != nil {
		return fmt.Errorf("modsqlite: use TOTP step: %w", err)
	} else if !m.Active() {
		return fmt.Errorf("modsqlite: use TOTP step: moderator %q was removed: %w", name, moderation.ErrNotFound)
	}
	return fmt.Errorf("modsqlite: use TOTP step: %w", moderation.ErrTOTPUsed)
}

// AddLoginFailure implements moderation.Store: an upsert that opens a new
// window or adds one to the open one, under SQLite's write lock.
func (s *Store) AddLoginFailure(ctx context.Context, subject string, at time.Time, window time.Duration) (int, error) {
	if subject == "" || window <= 0 {
		return 0, errors.New("modsqlite: a login failure has a subject and a window")
	}
	closed := at.Add(-window).UnixMilli() // windows that started then or before are closed
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_login_failures WHERE window_start <= ? AND subject != ?`, closed, subject); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO console_login_failures (subject, window_start, count) VALUES (?1, ?2, 1)
			ON CONFLICT (subject) DO UPDATE SET
				count = CASE WHEN window_start <= ?3 THEN 1 ELSE count + 1 END,
				window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END
			RETURNING count`, subject, at.UnixMilli(), closed).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("modsqlite: add login failure: %w", err)
	}
	return n, nil
}

// LoginFailures implements moderation.Store.
func (s *Store) LoginFailures(ctx context.Context, subject string, now time.Time, window time.Duration) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count FROM console_login_failures WHERE subject = ? AND window_start > ?`, subject, now.Add(-window).UnixMilli()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("modsqlite: login failures: %w", err)
	}
	return n, nil
}

// AddConsoleSession implements moderation.Store.
func (s *Store) AddConsoleSession(ctx context.Context, cs moderation.ConsoleSession) error {
	if len(cs.TokenHash) != 32 || cs.Moderator == "" || !cs.Expires.After(cs.Created) {
		return errors.New("modsqlite: a console session has a 32-byte token hash, a moderator and an expiry after its creation")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires <= ?`, cs.Created.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_sessions (token_hash, moderator, created, expires) VALUES (?, ?, ?, ?)`,
			cs.TokenHash, cs.Moderator, cs.Created.UnixMilli(), cs.Expires.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("modsqlite: add console session: %w", err)
	}
	return nil
}

// ConsoleSession implements moderation.Store.
func (s *Store) ConsoleSession(ctx context.Context, tokenHash []byte, now time.Time) (moderation.ConsoleSession, error) {
	cs := moderation.ConsoleSession{TokenHash: tokenHash}
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT s.moderator, s.created, s.expires FROM console_sessions s JOIN moderators m ON m.name = s.moderator
		WHERE s.token_hash = ? AND s.expires > ? AND m.removed = 0`, tokenHash, now.UnixMilli()).Scan(&cs.Moderator, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return moderation.ConsoleSession{}, fmt.Errorf("modsqlite: console session: %w", moderation.ErrNotFound)
	}
	if err != nil {
		return moderation.ConsoleSession{}, fmt.Errorf("modsqlite: console session: %w", err)
	}
	cs.Created, cs.Expires = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	return cs, nil
}

// EndConsoleSession implements moderation.Store.
func (s *Store) EndConsoleSession(ctx context.Context, tokenHash []byte) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("modsqlite: end console session: %w", err)
	}
	return nil
}
