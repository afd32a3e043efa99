//go:build !js

package profile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DBName is the database file inside a profile directory.
const DBName = "profile.db"

// lockName is the advisory lock file inside a profile directory.
const lockName = "lock"

// Exists reports whether dir holds a profile database.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, DBName))
	return err == nil
}

// Create makes a new profile in dir (created 0700 if missing) protected by
// passphrase. It fails with ErrExist if dir already has one.
func Create(dir string, passphrase []byte, kdf KDFParams) (*Store, error) {
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("profile: empty passphrase")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("profile: create directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	path := filepath.Join(dir, DBName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, ErrExist
	}
	if err != nil {
		return nil, fmt.Errorf("profile: create database: %w", err)
	}
	f.Close()
	b, err := openSQLite(dir)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	s, err := func() (*Store, error) {
		if _, err := b.db.Exec(schema); err != nil {
			return nil, fmt.Errorf("profile: create schema: %w", err)
		}
		s, err := CreateOn(b, dir, passphrase, kdf)
		if err != nil {
			return nil, err
		}
		return s, fixModes(dir)
	}()
	if err != nil {
		b.Close()
		removeDB(path)
		return nil, err
	}
	return s, nil
}

// Open opens the profile in dir. A wrong passphrase gives
// ErrWrongPassphrase; a directory without a profile ErrNotExist.
func Open(dir string, passphrase []byte) (*Store, error) {
	path := filepath.Join(dir, DBName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotExist
		}
		return nil, fmt.Errorf("profile: %w", err)
	}
	b, err := openSQLite(dir)
	if err != nil {
		return nil, err
	}
	s, err := OpenOn(b, dir, passphrase)
	if errors.Is(err, ErrNotExist) {
		err = fmt.Errorf("%w: no header", ErrCorrupt)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	if err := fixModes(dir); err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

// Remove deletes the profile in dir (its database and lock files, and
// dir itself if that leaves it empty).
func Remove(dir string) {
	removeDB(filepath.Join(dir, DBName))
	os.Remove(filepath.Join(dir, lockName))
	os.Remove(dir) // only if now empty
}

// sqliteBackend keeps the sealed rows in one SQLite database.
type sqliteBackend struct {
	dir string
	db  *sql.DB
}

const dsnPragmas = "_pragma=busy_timeout(15000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)&_txlock=immediate"

func openSQLite(dir string) (*sqliteBackend, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DBName)+"?"+dsnPragmas)
	if err != nil {
		return nil, fmt.Errorf("profile: open database: %w", err)
	}
	// One connection: SQLite serialises writers anyway, and a single
	// connection makes Update's transaction the only one in flight.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("profile: open database: %w", err)
	}
	return &sqliteBackend{dir: dir, db: db}, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS items (
	bucket BLOB NOT NULL,    -- HMAC of the bucket name
	id     BLOB NOT NULL,    -- HMAC of the bucket name and row key
	seq    INTEGER NOT NULL, -- insertion order within the bucket
	value  BLOB NOT NULL,    -- nonce || XChaCha20-Poly1305(key, value)
	PRIMARY KEY (bucket, id)
) STRICT;
CREATE INDEX IF NOT EXISTS items_order ON items(bucket, seq);
`

func (b *sqliteBackend) Close() error { return b.db.Close() }

// Compact checkpoints the WAL into the database and truncates it (see
// Store.Compact).
func (b *sqliteBackend) Compact(ctx context.Context) error {
	var busy, frames, done int
	if err := b.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("profile: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("profile: checkpoint: the database is busy; deleted data stays in the WAL until the next sweep")
	}
	return nil
}

// AllRows calls fn with every row (see Store.Values).
func (b *sqliteBackend) AllRows(fn func(bucket []byte, r RawRow) error) error {
	rows, err := b.db.Query(`SELECT bucket, id, value FROM items`)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var bucket []byte
		var r RawRow
		if err := rows.Scan(&bucket, &r.ID, &r.Sealed); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		if err := fn(bucket, r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (b *sqliteBackend) Update(ctx context.Context, fn func(RawTx) error) error {
	sqlTx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("profile: begin: %w", err)
	}
	if err := fn(sqliteTx{sqlTx}); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("profile: commit: %w", err)
	}
	return nil
}

// Lock takes an flock on the profile's lock file, so that separate
// parley processes sharing a profile take turns.
func (b *sqliteBackend) Lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(b.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("profile: lock: %w", err)
	}
	delay := 5 * time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("profile: lock: %w", err)
		}
		if ok {
			return func() { unlockFile(f); f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ErrLocked
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

type sqliteTx struct{ tx *sql.Tx }

func (t sqliteTx) Meta(name string) ([]byte, error) {
	var v []byte
	err := t.tx.QueryRow(`SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("profile: read %s: %w", name, err)
	}
	return v, nil
}

func (t sqliteTx) PutMeta(name string, value []byte) error {
	if _, err := t.tx.Exec(`INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return fmt.Errorf("profile: write %s: %w", name, err)
	}
	return nil
}

func (t sqliteTx) Get(bucket, id []byte) ([]byte, error) {
	var sealed []byte
	err := t.tx.QueryRow(`SELECT value FROM items WHERE bucket = ? AND id = ?`, bucket, id).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("profile: get: %w", err)
	}
	return sealed, nil
}

func (t sqliteTx) Put(bucket, id, sealed []byte) error {
	_, err := t.tx.Exec(`INSERT INTO items(bucket, id, seq, value)
		VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM items WHERE bucket = ?1), ?3)
		ON CONFLICT(bucket, id) DO UPDATE SET value = excluded.value`, bucket, id, sealed)
	if err != nil {
		return fmt.Errorf("profile: put: %w", err)
	}
	return nil
}

func (t sqliteTx) Delete(bucket, id []byte) error {
	if _, err := t.tx.Exec(`DELETE FROM items WHERE bucket = ? AND id = ?`, bucket, id); err != nil {
		return fmt.Errorf("profile: delete: %w", err)
	}
	return nil
}

func (t sqliteTx) DeleteBucket(bucket []byte) error {
	if _, err := t.tx.Exec(`DELETE FROM items WHERE bucket = ?`, bucket); err != nil {
		return fmt.Errorf("profile: delete bucket: %w", err)
	}
	return nil
}

func (t sqliteTx) List(bucket []byte) ([]RawRow, error) {
	rows, err := t.tx.Query(`SELECT id, value FROM items WHERE bucket = ? ORDER BY seq`, bucket)
	if err != nil {
		return nil, fmt.Errorf("profile: list: %w", err)
	}
	defer rows.Close()
	var out []RawRow
	for rows.Next() {
		var r RawRow
		if err := rows.Scan(&r.ID, &r.Sealed); err != nil {
			return nil, fmt.Errorf("profile: list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("profile: list: %w", err)
	}
	return out, nil
}

func (t sqliteTx) Count(bucket []byte) (int, error) {
	var n int
	if err := t.tx.QueryRow(`SELECT COUNT(*) FROM items WHERE bucket = ?`, bucket).Scan(&n); err != nil {
		return 0, fmt.Errorf("profile: count: %w", err)
	}
	return n, nil
}

// fixModes makes sure the directory is 0700 and every file in it 0600,
// including SQLite's -wal and -shm files.
func fixModes(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("profile: %w", err)
			}
		}
	}
	return nil
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}
