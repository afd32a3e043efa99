package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/store"
)

func (s *Store) AccountCreated(ctx context.Context, username string) (time.Time, error) {
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT created FROM accounts WHERE username = ?`, username).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("account %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("account created: %w", err)
	}
	return fromMilli(created), nil
}

func (s *Store) SeenDevice(ctx context.Context, deviceID string, day time.Time) error {
	d := day.UTC().Truncate(24 * time.Hour).UnixMilli()
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen = ? WHERE id = ? AND last_seen < ?`, d, deviceID, d); err != nil {
			return fmt.Errorf("seen device: %w", err)
		}
		return nil
	})
}

func (s *Store) LegalPut(ctx context.Context, r store.LegalRequest, record []byte) (int64, error) {
	if r.ID == "" || len(r.Data) == 0 {
		return 0, fmt.Errorf("legal put: %w", store.ErrBadRequest)
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var until int64
		if !r.PreservedUntil.IsZero() {
			until = r.PreservedUntil.UnixMilli()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO legal_requests (id, recorded, data, preserved_until) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET data = excluded.data, preserved_until = excluded.preserved_until`,
			r.ID, r.Recorded.UnixMilli(), r.Data, until); err != nil {
			return fmt.Errorf("legal put: %w", err)
		}
		if record == nil {
			n = -1
			return nil
		}
		var err error
		n, err = appendLegal(ctx, tx, record)
		return err
	})
	return n, err
}

func appendLegal(ctx context.Context, tx *sql.Tx, record []byte) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(n) + 1, 0) FROM legal_log`).Scan(&n); err != nil {
		return 0, fmt.Errorf("legal log: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO legal_log (n, record) VALUES (?, ?)`, n, record); err != nil {
		return 0, fmt.Errorf("legal log: %w", err)
	}
	return n, nil
}

func (s *Store) LegalAppend(ctx context.Context, record []byte) (int64, error) {
	if len(record) == 0 {
		return 0, fmt.Errorf("legal append: %w", store.ErrBadRequest)
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = appendLegal(ctx, tx, record)
		return err
	})
	return n, err
}

func scanLegal(row interface{ Scan(...any) error }) (store.LegalRequest, error) {
	var r store.LegalRequest
	var recorded, until int64
	if err := row.Scan(&r.ID, &recorded, &r.Data, &until); err != nil {
		return r, err
	}
	r.Recorded = fromMilli(recorded)
	if until != 0 {
		r.PreservedUntil = fromMilli(until)
	}
	return r, nil
}

func (s *Store) LegalGet(ctx context.Context, id string) (store.LegalRequest, error) {
	r, err := scanLegal(s.r.QueryRowContext(ctx, `SELECT id, recorded, data, preserved_until FROM legal_requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("legal request %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("legal request: %w", err)
	}
	return r, nil
}

func (s *Store) LegalList(ctx context.Context) ([]store.LegalRequest, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, recorded, data, preserved_until FROM legal_requests ORDER BY recorded, id`)
	if err != nil {
		return nil, fmt.Errorf("legal requests: %w", err)
	}
	defer rows.Close()
	var out []store.LegalRequest
	for rows.Next() {
		r, err := scanLegal(rows)
		if err != nil {
			return nil, fmt.Errorf("legal requests: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) LegalLog(ctx context.Context) ([][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT n, record FROM legal_log ORDER BY n`)
	if err != nil {
		return nil, fmt.Errorf("legal log: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var n int64
		var rec []byte
		if err := rows.Scan(&n, &rec); err != nil {
			return nil, fmt.Errorf("legal log: %w", err)
		}
		if n != int64(len(out)) {
			return nil, fmt.Errorf("legal log: record %d after %d records", n, len(out))
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}
