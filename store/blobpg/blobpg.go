// Package blobpg keeps the attachment index of store/blobstore in
// PostgreSQL (schema "blobs", github.com/jackc/pgx/v5), for parleyd nodes
// that share one database ("parleyd serve --db"): who uploaded each blob,
// its size and when, and each account's total, so that quotas, deletion
// by the owner and expiry hold across nodes. The blob files stay in a
// directory, which the nodes must share (a network file system mounted
// at the same path on each: "parleyd serve --blobs DIR"); docs/scaling.md
// says why that is the stop-gap and S3-compatible storage the real
// answer.
//
// A quota is checked atomically with the insert across nodes: the
// owner's usage row is locked (SELECT ... FOR UPDATE) for the
// transaction.
package blobpg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/pgdb"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
)

// Schema is the PostgreSQL schema holding the index.
const Schema = "blobs"

var migrations = []string{`
CREATE TABLE blobs (
	id      TEXT COLLATE "C" PRIMARY KEY,
	owner   TEXT COLLATE "C" NOT NULL,
	size    BIGINT NOT NULL,
	created BIGINT NOT NULL -- unix seconds
);
CREATE INDEX blobs_owner ON blobs (owner);
CREATE INDEX blobs_created ON blobs (created);
CREATE TABLE usage (
	owner TEXT COLLATE "C" PRIMARY KEY,
	bytes BIGINT NOT NULL,
	blobs BIGINT NOT NULL
);
`,
	// 2: the attachments of disappearing messages, unix seconds; 0 for none.
	`ALTER TABLE blobs ADD COLUMN expires BIGINT NOT NULL DEFAULT 0;
CREATE INDEX blobs_expires ON blobs (expires) WHERE expires > 0;`,
}

// Index is a blobstore.Index in PostgreSQL.
type Index struct {
	pool pgdb.DB
}

var _ blobstore.Index = (*Index)(nil)

// OpenIndex connects to dsn and applies pending migrations.
func OpenIndex(ctx context.Context, dsn string) (*Index, error) {
	pool, err := pgdb.Open(ctx, dsn, pgdb.Options{Schema: Schema, Migrations: migrations})
	if err != nil {
		return nil, fmt.Errorf("blobpg: %w", err)
	}
	return &Index{pool: pgdb.DB{Pool: pool}}, nil
}

// Open returns a blob store with its files in dir and its index in dsn.
func Open(ctx context.Context, dir, dsn string) (*blobstore.Dir, error) {
	idx, err := OpenIndex(ctx, dsn)
	if err != nil {
		return nil, err
	}
	d, err := blobstore.OpenWithIndex(dir, idx)
	if err != nil {
		idx.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the pool.
func (x *Index) Close() error { return x.pool.Close() }

// Insert implements blobstore.Index.
func (x *Index) Insert(ctx context.Context, id, owner string, n, quota int64, created, expires time.Time) error {
	return x.pool.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO usage (owner, bytes, blobs) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING`, owner); err != nil {
			return err
		}
		var used int64
		if err := tx.QueryRow(ctx, `SELECT bytes FROM usage WHERE owner = $1 FOR UPDATE`, owner).Scan(&used); err != nil {
			return err
		}
		if quota > 0 && used+n > quota {
			return fmt.Errorf("blobpg: %s holds %d bytes, %d more is over the quota of %d: %w", owner, used, n, quota, store.ErrQuotaExceeded)
		}
		b := &pgx.Batch{}
		var exp int64
		if !expires.IsZero() {
			exp = max(expires.Unix(), 1)
		}
		b.Queue(`INSERT INTO blobs (id, owner, size, created, expires) VALUES ($1, $2, $3, $4, $5)`, id, owner, n, created.Unix(), exp)
		b.Queue(`UPDATE usage SET bytes = bytes + $2, blobs = blobs + 1 WHERE owner = $1`, owner, n)
		return tx.SendBatch(ctx, b).Close()
	})
}

// Owns implements blobstore.Index.
func (x *Index) Owns(ctx context.Context, owner, id string) (bool, error) {
	var ok bool
	err := x.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM blobs WHERE id = $1 AND owner = $2)`, id, owner).Scan(&ok)
	return ok, err
}

// Lookup implements blobstore.Index.
func (x *Index) Lookup(ctx context.Context, id string) (int64, bool, error) {
	var n int64
	err := x.pool.QueryRow(ctx, `SELECT size FROM blobs WHERE id = $1`, id).Scan(&n)
	if err == pgx.ErrNoRows {
		return 0, false, nil
	}
	return n, err == nil, err
}

// Delete implements blobstore.Index: the rows go and their owners'
// totals shrink in one statement.
func (x *Index) Delete(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return x.pool.InTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM blobs WHERE id = ANY($1) RETURNING owner, size),
			per AS (SELECT owner, sum(size) AS bytes, count(*) AS n FROM gone GROUP BY owner)
			UPDATE usage u SET bytes = u.bytes - per.bytes, blobs = u.blobs - per.n FROM per WHERE u.owner = per.owner`, ids)
		return err
	})
}

// Owned implements blobstore.Index.
func (x *Index) Owned(ctx context.Context, owner string, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE owner = $1 LIMIT $2`, owner, limit)
}

// Expired implements blobstore.Index.
func (x *Index) Expired(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE created < $1 LIMIT $2`, before.Unix(), limit)
}

// Disappeared implements blobstore.Index.
func (x *Index) Disappeared(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE expires > 0 AND expires <= $1 LIMIT $2`, now.Unix(), limit)
}

// NextExpiry implements blobstore.Index.
func (x *Index) NextExpiry(ctx context.Context) (time.Time, error) {
	var next *int64
	if err := x.pool.QueryRow(ctx, `SELECT MIN(expires) FROM blobs WHERE expires > 0`).Scan(&next); err != nil || next == nil {
		return time.Time{}, err
	}
	return time.Unix(*next, 0), nil
}

func (x *Index) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := x.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Usage implements blobstore.Index.
func (x *Index) Usage(ctx context.Context, owner string) (store.BlobUsage, error) {
	var u store.BlobUsage
	var n int64
	err := x.pool.QueryRow(ctx, `SELECT bytes, blobs FROM usage WHERE owner = $1`, owner).Scan(&u.Bytes, &n)
	if err == pgx.ErrNoRows {
		return store.BlobUsage{}, nil
	}
	u.Blobs = int(n)
	return u, err
}
