// Package blobstore implements store.Blobs on a directory: each blob is a
// file named by a random id, written to a temporary file, fsynced and
// renamed into place so a blob is either complete or absent. Who uploaded
// each blob, its size and when are kept in a small SQLite index
// (DIR/index/blobs.db), which also keeps each account's total, so quotas
// are checked in one indexed read and expiry does not scan the directory.
package blobstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"modernc.org/sqlite"

	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/store"
)

// Dir stores blobs under a directory.
type Dir struct {
	dir string
	idx Index
}

// Index records who uploaded each blob, its size and when, and each
// owner's total. Dir keeps it in SQLite (DIR/index/blobs.db) by default;
// store/blobpg keeps it in PostgreSQL, so that several server nodes
// sharing the directory (a network file system) share quotas too.
type Index interface {
	// Insert records a blob of n bytes; with quota > 0 it fails with
	// store.ErrQuotaExceeded, atomically with the insert, if owner would
	// then hold more than quota bytes.
	// A non-zero expires is when the blob disappears (the attachment of a
	// disappearing message): DeleteDisappeared removes it then.
	Insert(ctx context.Context, id, owner string, n, quota int64, created, expires time.Time) error
	// Owns reports whether owner uploaded blob id.
	Owns(ctx context.Context, owner, id string) (bool, error)
	// Lookup returns the size of blob id, and whether it is indexed.
	Lookup(ctx context.Context, id string) (size int64, found bool, err error)
	// Delete forgets blobs.
	Delete(ctx context.Context, ids []string) error
	// Owned returns up to limit blob ids of owner.
	Owned(ctx context.Context, owner string, limit int) ([]string, error)
	// Expired returns up to limit ids of blobs stored before t.
	Expired(ctx context.Context, before time.Time, limit int) ([]string, error)
	// Disappeared returns up to limit ids of blobs whose expiry is at or
	// before now.
	Disappeared(ctx context.Context, now time.Time, limit int) ([]string, error)
	// NextExpiry returns the earliest expiry of any blob, or the zero
	// time if none has one.
	NextExpiry(ctx context.Context) (time.Time, error)
	// Usage returns what owner holds.
	Usage(ctx context.Context, owner string) (store.BlobUsage, error)
	Close() error
}

var _ store.Blobs = (*Dir)(nil)

// IndexDir is the subdirectory of the blob directory holding the index.
const IndexDir = "index"

var migrations = []string{
	// owner is the uploading account's username, or '' for blobs stored
	// before owners were recorded (nobody can delete those; they expire).
	// usage is kept by the triggers, so it is always the sum of blobs.
	`CREATE TABLE blobs (
		id      TEXT PRIMARY KEY,
		owner   TEXT NOT NULL,
		size    INTEGER NOT NULL,
		created INTEGER NOT NULL -- unix seconds
	) WITHOUT ROWID;
	CREATE INDEX blobs_owner ON blobs(owner);
	CREATE INDEX blobs_created ON blobs(created);
	CREATE TABLE usage (
		owner TEXT PRIMARY KEY,
		bytes INTEGER NOT NULL,
		blobs INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TRIGGER blobs_insert AFTER INSERT ON blobs BEGIN
		INSERT INTO usage (owner, bytes, blobs) VALUES (NEW.owner, NEW.size, 1)
		ON CONFLICT (owner) DO UPDATE SET bytes = bytes + NEW.size, blobs = blobs + 1;
	END;
	CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN
		UPDATE usage SET bytes = bytes - OLD.size, blobs = blobs - 1 WHERE owner = OLD.owner;
		DELETE FROM usage WHERE owner = OLD.owner AND blobs <= 0;
	END;
	CREATE TABLE state (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;`,
	// 2: the attachments of disappearing messages (PutLimits.Expires),
	// in unix seconds; 0 for none.
	`ALTER TABLE blobs ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX blobs_expires ON blobs(expires) WHERE expires > 0;`,
}

// Open uses dir (created with mode 0700 if missing) for blobs, with the
// SQLite index in it. Leftover temporary files from an interrupted upload
// are removed. Blob files that an earlier version stored without an index
// are indexed once, owned by nobody, with their file time as upload time.
func Open(dir string) (*Dir, error) {
	if err := prepareDir(dir, true); err != nil {
		return nil, err
	}
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, IndexDir, "blobs.db"), sqlitedb.Options{Migrations: migrations})
	if err != nil {
		return nil, fmt.Errorf("blobstore: index: %w", err)
	}
	d := &Dir{dir: dir, idx: sqliteIndex{db}}
	if err := d.importFiles(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// OpenWithIndex uses dir for blob files and idx for their index. Several
// Dirs (server nodes) may share dir and the index's database: temporary
// files are left alone, since another node may be writing them (an
// interrupted upload's file stays in DIR/tmp until an operator removes
// it).
func OpenWithIndex(dir string, idx Index) (*Dir, error) {
	if err := prepareDir(dir, false); err != nil {
		return nil, err
	}
	return &Dir{dir: dir, idx: idx}, nil
}

func prepareDir(dir string, cleanTmp bool) error {
	for _, sub := range []string{"tmp", IndexDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("blobstore: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if cleanTmp {
		tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		for _, e := range tmps {
			os.Remove(filepath.Join(dir, "tmp", e.Name()))
		}
	}
	return nil
}

// Close closes the index.
func (d *Dir) Close() error { return d.idx.Close() }

// OpenSQLiteIndex opens (creating it if missing, mode 0600 in a 0700
// directory) the SQLite index at path, for a blob store whose bodies are
// elsewhere (store/blobs3 on a single node).
func OpenSQLiteIndex(path string) (Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: index: %w", err)
	}
	db, err := sqlitedb.Open(context.Background(), path, sqlitedb.Options{Migrations: migrations})
	if err != nil {
		return nil, fmt.Errorf("blobstore: index: %w", err)
	}
	return sqliteIndex{db}, nil
}

// Unavailable marks errors of a full, read-only or failing disk (the
// index's SQLite database included) with store.ErrUnavailable, for
// backends that share this package's index.
func Unavailable(err error) error { return unavailable(err) }

// importFiles indexes blob files stored before the index existed, once.
func (d *Dir) importFiles(ctx context.Context, db *sql.DB) error {
	var done int
	err := db.QueryRowContext(ctx, `SELECT value FROM state WHERE name = 'files_imported'`).Scan(&done)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("blobstore: index: %w", err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	err = sqlitedb.WithTx(ctx, db, func(tx *sql.Tx) error {
		for _, e := range entries {
			if e.IsDir() || !ValidID(e.Name()) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO blobs (id, owner, size, created) VALUES (?, '', ?, ?)`,
				e.Name(), fi.Size(), fi.ModTime().Unix()); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO state (name, value) VALUES ('files_imported', 1)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: index existing blobs: %w", unavailable(err))
	}
	return nil
}

// ValidID reports whether id has the form of a blob id (32 hex digits), so
// ids from requests can never name paths outside the directory.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (d *Dir) Put(ctx context.Context, owner string, r io.Reader, lim store.PutLimits) (string, int64, error) {
	if owner == "" {
		return "", 0, fmt.Errorf("blobstore: a blob needs an owner: %w", store.ErrBadRequest)
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(filepath.Join(d.dir, "tmp", id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(tmp)
		return "", 0, err
	}
	max := lim.Max
	if lim.Quota > 0 {
		// Stop reading as soon as the quota is certainly exceeded, rather
		// than at the end of a large body. The check below is the exact
		// one; this is an early way out.
		u, err := d.Usage(ctx, owner)
		if err != nil {
			return fail(err)
		}
		if left := lim.Quota - u.Bytes; left < max {
			max = left
		}
	}
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, max+1))
	if err != nil {
		return fail(fmt.Errorf("blobstore: write: %w", err))
	}
	if n > lim.Max {
		return fail(fmt.Errorf("blobstore: more than %d bytes: %w", lim.Max, store.ErrTooLarge))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("blobstore: sync: %w", err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	// The row is committed before the file is renamed into place: a crash
	// in between leaves a row without a file (a 404, counted until it
	// expires), never a file no index entry will ever expire.
	if err := d.idx.Insert(ctx, id, owner, n, lim.Quota, time.Now(), lim.Expires); err != nil {
		os.Remove(tmp)
		if errors.Is(err, store.ErrQuotaExceeded) {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("blobstore: index: %w", unavailable(err))
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, id)); err != nil {
		os.Remove(tmp)
		d.idx.Delete(context.WithoutCancel(ctx), []string{id})
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	if err := syncDir(d.dir); err != nil {
		return "", 0, err
	}
	return id, n, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blobstore: sync dir: %w", err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *Dir) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !ValidID(id) {
		return nil, 0, fmt.Errorf("blobstore: bad id: %w", store.ErrNotFound)
	}
	f, err := os.Open(filepath.Join(d.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("blobstore: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	return f, fi.Size(), nil
}

func (d *Dir) Delete(ctx context.Context, owner, id string) error {
	if owner == "" || !ValidID(id) {
		return fmt.Errorf("blobstore: %w", store.ErrNotFound)
	}
	owns, err := d.idx.Owns(ctx, owner, id)
	if err != nil {
		return fmt.Errorf("blobstore: index: %w", unavailable(err))
	}
	if !owns {
		return fmt.Errorf("blobstore: %w", store.ErrNotFound)
	}
	return d.remove(ctx, []string{id})
}

// remove deletes blob files, then their rows. The file goes first: a crash
// in between leaves a row without a file (harmless, and swept when it
// expires) rather than a file that nothing indexes.
func (d *Dir) remove(ctx context.Context, ids []string) error {
	gone := ids[:0:0]
	var errs []error
	for _, id := range ids {
		err := os.Remove(filepath.Join(d.dir, id))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("blobstore: %w", err))
			continue
		}
		gone = append(gone, id)
	}
	if err := d.idx.Delete(ctx, gone); err != nil {
		errs = append(errs, fmt.Errorf("blobstore: index: %w", unavailable(err)))
	}
	return errors.Join(errs...)
}

func (d *Dir) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, nil
	}
	return d.removeWhere(ctx, func() ([]string, error) { return d.idx.Owned(ctx, owner, 1000) })
}

func (d *Dir) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	return d.removeWhere(ctx, func() ([]string, error) { return d.idx.Expired(ctx, before, 1000) })
}

// DeleteDisappeared removes the blobs whose expiry passed. Their files
// are overwritten with zeros before they are unlinked, so that the
// ciphertext does not stay in the file system's free blocks (on file
// systems that write in place).
func (d *Dir) DeleteDisappeared(ctx context.Context, now time.Time) (int, time.Time, error) {
	total := 0
	for {
		ids, err := d.idx.Disappeared(ctx, now, 1000)
		if err != nil {
			return total, time.Time{}, fmt.Errorf("blobstore: index: %w", unavailable(err))
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			if err := zeroFile(filepath.Join(d.dir, id)); err != nil {
				return total, time.Time{}, err
			}
		}
		if err := d.remove(ctx, ids); err != nil {
			return total, time.Time{}, err
		}
		total += len(ids)
	}
	next, err := d.idx.NextExpiry(ctx)
	if err != nil {
		return total, time.Time{}, fmt.Errorf("blobstore: index: %w", unavailable(err))
	}
	return total, next, nil
}

// zeroFile overwrites a file's contents with zeros and syncs it.
func zeroFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	zeros := make([]byte, 64<<10)
	for left := fi.Size(); left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := f.Write(zeros[:n]); err != nil {
			return fmt.Errorf("blobstore: overwrite: %w", unavailable(err))
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blobstore: overwrite: %w", unavailable(err))
	}
	return nil
}

// removeWhere removes, in batches, the blobs whose ids next selects.
func (d *Dir) removeWhere(ctx context.Context, next func() ([]string, error)) (int, error) {
	total := 0
	for {
		ids, err := next()
		if err != nil {
			return total, fmt.Errorf("blobstore: index: %w", unavailable(err))
		}
		if len(ids) == 0 {
			return total, nil
		}
		if err := d.remove(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
	}
}

func (d *Dir) Usage(ctx context.Context, owner string) (store.BlobUsage, error) {
	u, err := d.idx.Usage(ctx, owner)
	if err != nil {
		return u, fmt.Errorf("blobstore: usage: %w", unavailable(err))
	}
	return u, nil
}

// sqliteIndex is the Index in DIR/index/blobs.db.
type sqliteIndex struct{ db *sql.DB }

func (x sqliteIndex) Close() error { return x.db.Close() }

func (x sqliteIndex) Insert(ctx context.Context, id, owner string, n, quota int64, created, expires time.Time) error {
	return sqlitedb.WithTx(ctx, x.db, func(tx *sql.Tx) error {
		if quota > 0 {
			var used int64
			err := tx.QueryRowContext(ctx, `SELECT bytes FROM usage WHERE owner = ?`, owner).Scan(&used)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if used+n > quota {
				return fmt.Errorf("blobstore: %s holds %d bytes, %d more is over the quota of %d: %w", owner, used, n, quota, store.ErrQuotaExceeded)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO blobs (id, owner, size, created, expires) VALUES (?, ?, ?, ?, ?)`, id, owner, n, created.Unix(), expiresColumn(expires))
		return err
	})
}

// expiresColumn is the stored form of an expiry: unix seconds, at least 1,
// or 0 for none.
func expiresColumn(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.Unix(), 1)
}

func (x sqliteIndex) Disappeared(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE expires > 0 AND expires <= ? LIMIT ?`, now.Unix(), limit)
}

func (x sqliteIndex) NextExpiry(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	if err := x.db.QueryRowContext(ctx, `SELECT MIN(expires) FROM blobs WHERE expires > 0`).Scan(&next); err != nil || !next.Valid {
		return time.Time{}, err
	}
	return time.Unix(next.Int64, 0), nil
}

func (x sqliteIndex) Owns(ctx context.Context, owner, id string) (bool, error) {
	var n int
	err := x.db.QueryRowContext(ctx, `SELECT count(*) FROM blobs WHERE id = ? AND owner = ?`, id, owner).Scan(&n)
	return n > 0, err
}

func (x sqliteIndex) Lookup(ctx context.Context, id string) (int64, bool, error) {
	var n int64
	err := x.db.QueryRowContext(ctx, `SELECT size FROM blobs WHERE id = ?`, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return n, err == nil, err
}

func (x sqliteIndex) Delete(ctx context.Context, ids []string) error {
	return sqlitedb.WithTx(ctx, x.db, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (x sqliteIndex) Owned(ctx context.Context, owner string, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE owner = ? LIMIT ?`, owner, limit)
}

func (x sqliteIndex) Expired(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return x.ids(ctx, `SELECT id FROM blobs WHERE created < ? LIMIT ?`, before.Unix(), limit)
}

func (x sqliteIndex) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := x.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (x sqliteIndex) Usage(ctx context.Context, owner string) (store.BlobUsage, error) {
	var u store.BlobUsage
	err := x.db.QueryRowContext(ctx, `SELECT bytes, blobs FROM usage WHERE owner = ?`, owner).Scan(&u.Bytes, &u.Blobs)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return u, err
}

// unavailable marks errors of a full, read-only or failing disk with
// store.ErrUnavailable, so that the server answers 507 with a retry-after
// rather than 500. SQLite reports them as its own codes, whose messages
// name the condition; the syscall errors cover the file writes.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) || sqliteStorageError(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// sqliteStorageError reports whether err is one of SQLite's primary result
// codes for a failing disk (https://sqlite.org/rescode.html): READONLY,
// IOERR, FULL, CANTOPEN.
func sqliteStorageError(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case 8, 10, 13, 14:
		return true
	}
	return false
}
