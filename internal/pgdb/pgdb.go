// Package pgdb opens the PostgreSQL databases of Parley's smaller stores
// (moderation/modpg, channels/chanpg) the same way everywhere, as
// internal/sqlitedb does for SQLite: a pgx connection pool whose sessions
// run in the store's own schema (so that several stores share one
// database without their table names colliding), with synchronous_commit
// on, schema migrations applied once across every node, and transactions
// retried on a serialisation failure or deadlock.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNewerSchema is returned by Open when the schema has more migrations
// applied than the program knows: an older binary must not write to it.
var ErrNewerSchema = errors.New("pgdb: database schema is newer than this program")

// Options says how to open a store's database.
type Options struct {
	// Schema is the PostgreSQL schema the store's tables live in
	// (created if missing); every session's search_path is set to it.
	Schema string
	// Migrations are SQL scripts applied in order, each in a transaction
	// with its row in the schema's schema_migrations table. Never edit
	// one that has shipped: append a new one.
	Migrations []string
	Tuning
}

// Tuning is the part of Options a store's caller chooses (chanpg.Options
// and modpg.Options are this type); the zero value is fine.
type Tuning struct {
	// MaxConns bounds the pool (default pgxpool's; pool_max_conns in the
	// DSN also works).
	MaxConns int32
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// Tuned returns o with t as its Tuning; a nil t leaves o's as it is.
func (o Options) Tuned(t *Tuning) Options {
	if t != nil {
		o.Tuning = *t
	}
	return o
}

// DB is a store's connection pool, with the Close and transaction helper
// every store on it needs.
type DB struct {
	*pgxpool.Pool
}

// Close closes the pool; it returns nil, for the stores' Close methods.
func (db DB) Close() error {
	db.Pool.Close()
	return nil
}

// InTx is WithTx on db's pool.
func (db DB) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return WithTx(ctx, db.Pool, fn)
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to dsn (a postgres:// URL) and applies pending migrations.
func Open(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	if !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("pgdb: bad schema name %q", opts.Schema)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgdb: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// The schema name is checked above: a plain identifier.
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// A commit must be durable when it returns: a server (or role)
		// with synchronous_commit off would lose acknowledged writes.
		var sc string
		if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&sc); err != nil {
			return fmt.Errorf("pgdb: read synchronous_commit: %w", err)
		}
		if sc == "off" {
			log.Warn("pgdb: synchronous_commit is off on this server; turning it on for Parley's sessions", "schema", opts.Schema)
			if _, err := c.Exec(ctx, `SET synchronous_commit = on`); err != nil {
				return fmt.Errorf("pgdb: set synchronous_commit: %w", err)
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgdb: %w", err)
	}
	if err := migrate(ctx, pool, opts.Schema, opts.Migrations); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// migrate applies pending migrations, each in a transaction holding an
// advisory lock named after the schema, so that nodes starting together
// apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations []string) error {
	for {
		done := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('parley migrate ' || $1::text))`, schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY,
				applied BIGINT NOT NULL
			)`); err != nil {
				return err
			}
			var current int
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if current > len(migrations) {
				return fmt.Errorf("%w (schema %s is at version %d, this program knows %d)", ErrNewerSchema, schema, current, len(migrations))
			}
			if current == len(migrations) {
				done = true
				return nil
			}
			v := current + 1
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, v, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("pgdb: migrate schema %s: %w", schema, err)
		}
		if done {
			return nil
		}
	}
}

// maxAttempts bounds the retries of a transaction that failed with a
// serialisation failure or deadlock.
const maxAttempts = 10

// WithTx runs fn in a transaction, committed if fn returns nil and rolled
// back otherwise. On a serialisation failure or deadlock it runs again
// from the start, so fn must reset whatever it returns.
func WithTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, pool, fn)
		if err == nil || !Retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
	}
}

// SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// Retryable reports whether err is a serialisation failure or deadlock:
// the transaction may succeed if run again.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}

// UniqueViolation reports whether err is a unique-constraint violation.
func UniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeUniqueViolation
}
