// Package sqlitedb opens the SQLite files Parley keeps its state in, with the
// modernc.org/sqlite driver, the same way everywhere: a file only its owner
// can read, write-ahead logging with full fsync, a busy timeout so two
// processes (parleyd and "parleyd admin ...") can share a file, foreign keys
// enforced, write transactions that take the write lock up front, and schema
// migrations applied in order, each in its own transaction.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNewerSchema is returned by Open when the database has more migrations
// applied than the program knows: an older binary must not write to it.
var ErrNewerSchema = errors.New("sqlitedb: database schema is newer than this program")

// ErrNoDatabase is returned by Open with Options.NoCreate when there is no
// database at the path: no file, or one no migration was ever applied to.
var ErrNoDatabase = errors.New("no database")

// DefaultBusyTimeout is how long a statement waits for another connection's
// lock before failing with SQLITE_BUSY, when Options.BusyTimeout is zero.
const DefaultBusyTimeout = 10 * time.Second

// Options says how to open a database.
type Options struct {
	// Migrations are SQL scripts applied in order; the number applied is
	// kept in PRAGMA user_version. Each runs in one transaction with the
	// version bump, so a failing script changes nothing. Never edit a
	// migration that has shipped: append a new one.
	Migrations []string

	// BusyTimeout is how long to wait for a lock held by another
	// connection; zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// Pragmas are extra per-connection pragmas in the driver's name(value)
	// form, for example "secure_delete(1)". They are program constants,
	// put into the data source name as they are.
	Pragmas []string

	// MaxOpenConns caps the pool; zero means 1. SQLite has one writer at a
	// time anyway, and one connection keeps transactions simple.
	MaxOpenConns int

	// NoCreate opens only a database that exists and has its first
	// migration applied: it never creates the file, and never builds a
	// schema from nothing (later migrations are still applied). Open
	// fails with ErrNoDatabase otherwise. Programs that work on a
	// database another program creates ("parleyd admin ...") use it, so
	// that pointed at the wrong place they fail instead of writing to a
	// new, empty database no one reads.
	NoCreate bool
}

// Open opens the database at path, creating it with mode 0600 if it does
// not exist (unless opts.NoCreate), and applies the migrations not yet
// applied. The directory must exist: the caller owns it and its mode (0700
// for Parley's data directories).
func Open(ctx context.Context, path string, opts Options) (*sql.DB, error) {
	if opts.NoCreate {
		// The dsn's mode=rw also makes SQLite refuse to create the file,
		// should it vanish between this check and the open.
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoDatabase, path)
		} else if err != nil {
			return nil, fmt.Errorf("sqlitedb: %w", err)
		}
	} else {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sqlitedb: create database: %w", err)
		}
		f.Close()
	}
	db, err := sql.Open("sqlite", dsn(path, opts))
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	if opts.MaxOpenConns > 0 {
		db.SetMaxOpenConns(opts.MaxOpenConns)
	} else {
		db.SetMaxOpenConns(1)
	}
	if opts.NoCreate {
		v, err := SchemaVersion(ctx, db)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
		}
		if v == 0 && len(opts.Migrations) > 0 {
			db.Close()
			return nil, fmt.Errorf("%w at %s: the file has no schema", ErrNoDatabase, path)
		}
	}
	if err := migrate(ctx, db, opts.Migrations); err != nil {
		db.Close()
		return nil, err
	}
	// SQLite gives the -wal and -shm files the database's mode, but make
	// sure: they hold the same data.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			db.Close()
			return nil, fmt.Errorf("sqlitedb: %w", err)
		}
	}
	return db, nil
}

// dsn returns the driver's data source name: a file: URI (RFC 8089, as
// SQLite reads it) whose path is percent-escaped, so that a '?', '#' or '%'
// in path stays part of the file name.
func dsn(path string, opts Options) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + dsnQuery(opts)
}

func dsnQuery(opts Options) string {
	timeout := opts.BusyTimeout
	if timeout <= 0 {
		timeout = DefaultBusyTimeout
	}
	pragmas := append([]string{
		fmt.Sprintf("busy_timeout(%d)", timeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(1)",
	}, opts.Pragmas...)
	var b strings.Builder
	for _, p := range pragmas {
		b.WriteString("_pragma=")
		b.WriteString(p)
		b.WriteString("&")
	}
	if opts.NoCreate {
		b.WriteString("mode=rw&")
	}
	// BEGIN IMMEDIATE: a write transaction waits (busy_timeout) for the
	// write lock when it starts, instead of failing with SQLITE_BUSY when
	// it first writes after reading.
	b.WriteString("_txlock=immediate")
	return b.String()
}

// SchemaVersion returns how many migrations have been applied to db.
func SchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlitedb: schema version: %w", err)
	}
	return v, nil
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	v, err := SchemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: version %d, program knows %d", ErrNewerSchema, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := WithTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			// user_version lives in the database header, which is written
			// in the same transaction as the migration.
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlitedb: migration %d: %w", i+1, err)
		}
	}
	return nil
}

// WithTx runs fn in a transaction on db, committing if fn returns nil and
// rolling back otherwise. fn's error is returned as is.
func WithTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitedb: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitedb: commit: %w", err)
	}
	return nil
}
