package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleychat/parley/store"
)

// The key transparency directory's storage (store.Store's KT methods).

func (s *Store) KTLoad(ctx context.Context) (store.KTState, error) {
	var st store.KTState
	rows, err := s.r.QueryContext(ctx, `SELECT epoch, record FROM kt_epochs ORDER BY epoch`)
	if err != nil {
		return st, fmt.Errorf("kt load: %w", err)
	}
	for rows.Next() {
		var n int64
		var rec []byte
		if err := rows.Scan(&n, &rec); err != nil {
			rows.Close()
			return st, fmt.Errorf("kt load: %w", err)
		}
		if n != int64(len(st.Records)) {
			rows.Close()
			return st, fmt.Errorf("kt load: epoch %d stored after %d epochs", n, len(st.Records))
		}
		st.Records = append(st.Records, rec)
	}
	if err := rows.Close(); err != nil {
		return st, fmt.Errorf("kt load: %w", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT label, idx, vrf_proof, leaf, epoch, version FROM kt_labels`)
	if err != nil {
		return st, fmt.Errorf("kt load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l store.KTLabel
		if err := rows.Scan(&l.Label, &l.Index, &l.VRFProof, &l.Leaf, &l.Epoch, &l.Version); err != nil {
			return st, fmt.Errorf("kt load: %w", err)
		}
		st.Labels = append(st.Labels, l)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("kt load: %w", err)
	}
	err = s.r.QueryRowContext(ctx, `SELECT note FROM kt_published WHERE id = 1`).Scan(&st.Published)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("kt load: %w", err)
	}
	return st, nil
}

func (s *Store) KTPending(ctx context.Context, limit int) ([]store.DeviceList, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT username, account_key, device_list_version, device_list FROM accounts
		WHERE kt_version != CASE WHEN device_list IS NULL THEN 0 ELSE device_list_version END
		ORDER BY username LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("kt pending: %w", err)
	}
	defer rows.Close()
	var out []store.DeviceList
	for rows.Next() {
		var l store.DeviceList
		if err := rows.Scan(&l.Username, &l.AccountKey, &l.Version, &l.Signed); err != nil {
			return nil, fmt.Errorf("kt pending: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func (s *Store) KTCommitEpoch(ctx context.Context, e store.KTEpoch) error {
	if len(e.Record) == 0 || len(e.Changes) == 0 || len(e.Labels) != len(e.Versions) {
		return fmt.Errorf("kt commit epoch: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var next int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(epoch) + 1, 0) FROM kt_epochs`).Scan(&next); err != nil {
			return fmt.Errorf("kt commit epoch: %w", err)
		}
		switch {
		case int64(e.Epoch) < next:
			return fmt.Errorf("kt commit epoch %d: %w", e.Epoch, store.ErrExists)
		case int64(e.Epoch) > next:
			return fmt.Errorf("kt commit epoch %d, next is %d: %w", e.Epoch, next, store.ErrBadRequest)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO kt_epochs (epoch, record, changes) VALUES (?, ?, ?)`, e.Epoch, e.Record, e.Changes); err != nil {
			return fmt.Errorf("kt commit epoch: %w", err)
		}
		for i, l := range e.Labels {
			v := e.Versions[i]
			if v.Label != l.Label || v.Epoch != e.Epoch || l.Epoch != e.Epoch {
				return fmt.Errorf("kt commit epoch: label %q's state and version disagree: %w", l.Label, store.ErrBadRequest)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO kt_labels (label, idx, vrf_proof, leaf, epoch, version) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (label) DO UPDATE SET idx = excluded.idx, vrf_proof = excluded.vrf_proof, leaf = excluded.leaf, epoch = excluded.epoch, version = excluded.version`,
				l.Label, l.Index, l.VRFProof, l.Leaf, l.Epoch, l.Version); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO kt_versions (label, epoch, version, prev, opening, value) VALUES (?, ?, ?, ?, ?, ?)`,
				v.Label, v.Epoch, v.Version, v.Prev, v.Opening, v.Value); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET kt_version = ? WHERE username = ?`, l.Version, l.Label); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
		}
		for _, label := range e.Removed {
			for _, q := range []string{`DELETE FROM kt_labels WHERE label = ?`, `DELETE FROM kt_versions WHERE label = ?`, `UPDATE accounts SET kt_version = 0 WHERE username = ?`} {
				if _, err := tx.ExecContext(ctx, q, label); err != nil {
					return fmt.Errorf("kt commit epoch: %w", err)
				}
			}
		}
		return nil
	})
}

func (s *Store) KTSetPublished(ctx context.Context, note []byte) error {
	if len(note) == 0 {
		return fmt.Errorf("kt set published: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO kt_published (id, note) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET note = excluded.note`, note)
		if err != nil {
			return fmt.Errorf("kt set published: %w", err)
		}
		return nil
	})
}

func (s *Store) KTVersion(ctx context.Context, label string, epoch uint64) (store.KTVersion, error) {
	v := store.KTVersion{Label: label, Epoch: epoch}
	err := s.r.QueryRowContext(ctx, `SELECT version, prev, opening, value FROM kt_versions WHERE label = ? AND epoch = ?`, label, epoch).
		Scan(&v.Version, &v.Prev, &v.Opening, &v.Value)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("kt version of %q at epoch %d: %w", label, epoch, store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("kt version: %w", err)
	}
	return v, nil
}

func (s *Store) KTVersions(ctx context.Context, label string, after uint64, fromStart bool, limit int) ([]store.KTVersion, error) {
	q := `SELECT epoch, version, prev, opening, value FROM kt_versions WHERE label = ? AND epoch > ? ORDER BY epoch LIMIT ?`
	if fromStart {
		q = `SELECT epoch, version, prev, opening, value FROM kt_versions WHERE label = ? AND epoch >= ? ORDER BY epoch LIMIT ?`
		after = 0
	}
	rows, err := s.r.QueryContext(ctx, q, label, after, limit)
	if err != nil {
		return nil, fmt.Errorf("kt versions: %w", err)
	}
	defer rows.Close()
	var out []store.KTVersion
	for rows.Next() {
		v := store.KTVersion{Label: label}
		if err := rows.Scan(&v.Epoch, &v.Version, &v.Prev, &v.Opening, &v.Value); err != nil {
			return nil, fmt.Errorf("kt versions: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *Store) KTEpoch(ctx context.Context, epoch uint64) (record, changes []byte, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT record, changes FROM kt_epochs WHERE epoch = ?`, epoch).Scan(&record, &changes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("kt epoch %d: %w", epoch, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kt epoch %d: %w", epoch, err)
	}
	return record, changes, nil
}
