package modsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	var created int64
	if err := sc.Scan(&m.Name, &m.Lead, &m.PasswordHash, &m.TOTPSecret, &created); err != nil {
		return m, err
	}
	m.Created = time.UnixMilli(created).UTC()
	return m, nil
}

// Moderator implements moderation.Store.
func (s *Store) Moderator(ctx context.Context, name string) (moderation.Moderator, error) {
	m, err := scanModerator(s.db.QueryRowContext(ctx, `SELECT name, lead, password, totp_secret, created FROM moderators WHERE name = ?`, name))
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
	rows, err := s.db.QueryContext(ctx, `SELECT name, lead, password, totp_secret, created FROM moderators ORDER BY name`)
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
