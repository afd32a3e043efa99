package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
)

// The key transparency directory's storage (store.Store's KT methods).

func (s *Store) KTLoad(ctx context.Context) (store.KTState, error) {
	var st store.KTState
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		st = store.KTState{}
		rows, err := tx.Query(ctx, `SELECT epoch, record FROM kt_epochs ORDER BY epoch`)
		if err != nil {
			return fmt.Errorf("kt load: %w", err)
		}
		for rows.Next() {
			var n int64
			var rec []byte
			if err := rows.Scan(&n, &rec); err != nil {
				rows.Close()
				return fmt.Errorf("kt load: %w", err)
			}
			if n != int64(len(st.Records)) {
				rows.Close()
				return fmt.Errorf("kt load: epoch %d stored after %d epochs", n, len(st.Records))
			}
			st.Records = append(st.Records, rec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("kt load: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT label, idx, vrf_proof, leaf, epoch, version FROM kt_labels`)
		if err != nil {
			return fmt.Errorf("kt load: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var l store.KTLabel
			var epoch, version int64
			if err := rows.Scan(&l.Label, &l.Index, &l.VRFProof, &l.Leaf, &epoch, &version); err != nil {
				return fmt.Errorf("kt load: %w", err)
			}
			l.Epoch, l.Version = uint64(epoch), uint32(version)
			st.Labels = append(st.Labels, l)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("kt load: %w", err)
		}
		err = tx.QueryRow(ctx, `SELECT note FROM kt_published WHERE id = 1`).Scan(&st.Published)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("kt load: %w", err)
		}
		return nil
	})
	return st, err
}

func (s *Store) KTPending(ctx context.Context, limit int) ([]store.DeviceList, error) {
	rows, err := s.pool.Query(ctx, `SELECT username, account_key, device_list_version, device_list FROM accounts
		WHERE kt_version <> CASE WHEN device_list IS NULL THEN 0 ELSE device_list_version END
		ORDER BY username LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("kt pending: %w", s.read(err))
	}
	defer rows.Close()
	var out []store.DeviceList
	for rows.Next() {
		var l store.DeviceList
		var version int64
		if err := rows.Scan(&l.Username, &l.AccountKey, &version, &l.Signed); err != nil {
			return nil, fmt.Errorf("kt pending: %w", err)
		}
		l.Version = uint64(version)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kt pending: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) KTCommitEpoch(ctx context.Context, e store.KTEpoch) error {
	if len(e.Record) == 0 || len(e.Changes) == 0 || len(e.Labels) != len(e.Versions) || e.Epoch > 1<<62 {
		return fmt.Errorf("kt commit epoch: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		// One epoch at a time, whichever node commits it.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKT)); err != nil {
			return fmt.Errorf("kt commit epoch: %w", err)
		}
		var next int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(epoch) + 1, 0) FROM kt_epochs`).Scan(&next); err != nil {
			return fmt.Errorf("kt commit epoch: %w", err)
		}
		switch {
		case int64(e.Epoch) < next:
			return fmt.Errorf("kt commit epoch %d: %w", e.Epoch, store.ErrExists)
		case int64(e.Epoch) > next:
			return fmt.Errorf("kt commit epoch %d, next is %d: %w", e.Epoch, next, store.ErrBadRequest)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kt_epochs (epoch, record, changes) VALUES ($1, $2, $3)`, int64(e.Epoch), e.Record, e.Changes); err != nil {
			return fmt.Errorf("kt commit epoch: %w", err)
		}
		for i, l := range e.Labels {
			v := e.Versions[i]
			if v.Label != l.Label || v.Epoch != e.Epoch || l.Epoch != e.Epoch {
				return fmt.Errorf("kt commit epoch: label %q's state and version disagree: %w", l.Label, store.ErrBadRequest)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kt_labels (label, idx, vrf_proof, leaf, epoch, version) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (label) DO UPDATE SET idx = excluded.idx, vrf_proof = excluded.vrf_proof, leaf = excluded.leaf, epoch = excluded.epoch, version = excluded.version`,
				l.Label, l.Index, l.VRFProof, l.Leaf, int64(l.Epoch), int64(l.Version)); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kt_versions (label, epoch, version, prev, opening, value) VALUES ($1, $2, $3, $4, $5, $6)`,
				v.Label, int64(v.Epoch), int64(v.Version), v.Prev, v.Opening, v.Value); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE accounts SET kt_version = $1 WHERE username = $2`, int64(l.Version), l.Label); err != nil {
				return fmt.Errorf("kt commit epoch: %w", err)
			}
		}
		for _, label := range e.Removed {
			for _, q := range []string{`DELETE FROM kt_labels WHERE label = $1`, `DELETE FROM kt_versions WHERE label = $1`, `UPDATE accounts SET kt_version = 0 WHERE username = $1`} {
				if _, err := tx.Exec(ctx, q, label); err != nil {
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
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kt_published (id, note) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET note = excluded.note`, note)
		if err != nil {
			return fmt.Errorf("kt set published: %w", err)
		}
		return nil
	})
}

func (s *Store) KTVersion(ctx context.Context, label string, epoch uint64) (store.KTVersion, error) {
	v := store.KTVersion{Label: label, Epoch: epoch}
	if epoch > 1<<62 {
		return v, fmt.Errorf("kt version of %q at epoch %d: %w", label, epoch, store.ErrNotFound)
	}
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT version, prev, opening, value FROM kt_versions WHERE label = $1 AND epoch = $2`, label, int64(epoch)).
		Scan(&version, &v.Prev, &v.Opening, &v.Value)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("kt version of %q at epoch %d: %w", label, epoch, store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("kt version: %w", s.read(err))
	}
	v.Version = uint32(version)
	return v, nil
}

func (s *Store) KTVersions(ctx context.Context, label string, after uint64, fromStart bool, limit int) ([]store.KTVersion, error) {
	if after > 1<<62 {
		return nil, nil
	}
	q := `SELECT epoch, version, prev, opening, value FROM kt_versions WHERE label = $1 AND epoch > $2 ORDER BY epoch LIMIT $3`
	if fromStart {
		q = `SELECT epoch, version, prev, opening, value FROM kt_versions WHERE label = $1 AND epoch >= $2 ORDER BY epoch LIMIT $3`
		after = 0
	}
	rows, err := s.pool.Query(ctx, q, label, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("kt versions: %w", s.read(err))
	}
	defer rows.Close()
	var out []store.KTVersion
	for rows.Next() {
		v := store.KTVersion{Label: label}
		var epoch, version int64
		if err := rows.Scan(&epoch, &version, &v.Prev, &v.Opening, &v.Value); err != nil {
			return nil, fmt.Errorf("kt versions: %w", err)
		}
		v.Epoch, v.Version = uint64(epoch), uint32(version)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kt versions: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) KTEpoch(ctx context.Context, epoch uint64) (record, changes []byte, err error) {
	if epoch > 1<<62 {
		return nil, nil, fmt.Errorf("kt epoch %d: %w", epoch, store.ErrNotFound)
	}
	err = s.pool.QueryRow(ctx, `SELECT record, changes FROM kt_epochs WHERE epoch = $1`, int64(epoch)).Scan(&record, &changes)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("kt epoch %d: %w", epoch, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kt epoch %d: %w", epoch, s.read(err))
	}
	return record, changes, nil
}
