package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleychat/parley/store"
)

func (s *Store) Privacy(ctx context.Context, username string) (store.Privacy, error) {
	p, err := loadPrivacy(ctx, s.r, username)
	if err != nil {
		return p, fmt.Errorf("privacy of %q: %w", username, err)
	}
	return p, nil
}

func loadPrivacy(ctx context.Context, q querier, username string) (store.Privacy, error) {
	p := store.Privacy{GroupInvites: store.GroupInvitesEveryone}
	var invites sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT p.group_invites FROM accounts a LEFT JOIN privacy p ON p.username = a.username
		WHERE a.username = ?`, username).Scan(&invites)
	if errors.Is(err, sql.ErrNoRows) {
		return p, store.ErrNotFound
	}
	if err != nil {
		return p, err
	}
	if invites.Valid {
		p.GroupInvites = store.GroupInvites(invites.Int64)
	}
	rows, err := q.QueryContext(ctx, `SELECT blocked FROM blocks WHERE username = ? ORDER BY blocked`, username)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return p, err
		}
		p.Blocked = append(p.Blocked, b)
	}
	return p, rows.Err()
}

func (s *Store) UpdatePrivacy(ctx context.Context, username string, block, unblock []string, invites store.GroupInvites) (store.Privacy, error) {
	switch invites {
	case 0, store.GroupInvitesEveryone, store.GroupInvitesContacts:
	default:
		return store.Privacy{}, fmt.Errorf("update privacy: group invites %d: %w", invites, store.ErrBadRequest)
	}
	var p store.Privacy
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username = ?`, username).Scan(&n); err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("update privacy: account %q: %w", username, store.ErrNotFound)
		}
		for _, b := range block {
			if b == username {
				return fmt.Errorf("update privacy: cannot block yourself: %w", store.ErrBadRequest)
			}
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username = ?`, b).Scan(&n); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("update privacy: no account %q to block: %w", b, store.ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO blocks (username, blocked) VALUES (?, ?)`, username, b); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		for _, b := range unblock {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE username = ? AND blocked = ?`, username, b); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blocks WHERE username = ?`, username).Scan(&n); err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		if n > store.MaxBlocked {
			return fmt.Errorf("update privacy: at most %d blocked accounts: %w", store.MaxBlocked, store.ErrBadRequest)
		}
		if invites != 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO privacy (username, group_invites) VALUES (?, ?)
				ON CONFLICT (username) DO UPDATE SET group_invites = excluded.group_invites`, username, int(invites)); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		var err error
		p, err = loadPrivacy(ctx, tx, username)
		if err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		return nil
	})
	return p, err
}
