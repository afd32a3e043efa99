package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

func (s *Store) LegalPut(ctx context.Context, r store.LegalRequest, record []byte) (int64, error) {
	if r.ID == "" || len(r.Data) == 0 {
		return 0, fmt.Errorf("legal put: %w", store.ErrBadRequest)
	}
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var until int64
		if !r.PreservedUntil.IsZero() {
			until = r.PreservedUntil.UnixMilli()
		}
		if _, err := tx.Exec(ctx, `INSERT INTO legal_requests (id, recorded, data, preserved_until) VALUES ($1, $2, $3, $4)
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

// appendLegal appends to the legal log under an advisory lock, so that
// two nodes (or an admin command and a server) never race for an index.
func appendLegal(ctx context.Context, tx pgx.Tx, record []byte) (int64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockLegalLog)); err != nil {
		return 0, fmt.Errorf("legal log: %w", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(n) + 1, 0) FROM legal_log`).Scan(&n); err != nil {
		return 0, fmt.Errorf("legal log: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO legal_log (n, record) VALUES ($1, $2)`, n, record); err != nil {
		return 0, fmt.Errorf("legal log: %w", err)
	}
	return n, nil
}

func (s *Store) LegalAppend(ctx context.Context, record []byte) (int64, error) {
	if len(record) == 0 {
		return 0, fmt.Errorf("legal append: %w", store.ErrBadRequest)
	}
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = appendLegal(ctx, tx, record)
		return err
	})
	return n, err
}

func scanLegal(row pgx.Row) (store.LegalRequest, error) {
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
	r, err := scanLegal(s.pool.QueryRow(ctx, `SELECT id, recorded, data, preserved_until FROM legal_requests WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("legal request %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("legal request: %w", s.read(err))
	}
	return r, nil
}

func (s *Store) LegalList(ctx context.Context) ([]store.LegalRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, recorded, data, preserved_until FROM legal_requests ORDER BY recorded, id`)
	if err != nil {
		return nil, fmt.Errorf("legal requests: %w", s.read(err))
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("legal requests: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) LegalLog(ctx context.Context) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT n, record FROM legal_log ORDER BY n`)
	if err != nil {
		return nil, fmt.Errorf("legal log: %w", s.read(err))
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("legal log: %w", s.read(err))
	}
	return out, nil
}
