// Package pgstore implements store.Store on PostgreSQL, with
// github.com/jackc/pgx/v5 and its connection pool.
//
// Several server processes ("nodes") may share one database. Everything
// that must be serialised is serialised in the database, never in one
// process: an append locks its conversation's row (SELECT ... FOR UPDATE)
// until it commits, so sequence numbers stay dense and the first
// commit for an epoch wins even when two nodes receive commits for the
// same epoch at once; the update of the conversation's epoch and head is
// also conditional on the values read, and epoch_commits has the epoch as
// its key, so a second winner could not be stored even by mistake.
// Uniqueness (usernames, look-alike skeletons, device keys, one
// last-resort key package per suite) is held by constraints, and the
// legal log's and the key transparency log's next index by a transaction
// advisory lock.
//
// Every write commits before its method returns; the server acknowledges
// a message only after Append returns. An application message or
// proposal is one statement (parley_append_message, a PL/pgSQL function
// holding the same row lock), and concurrent ones are group committed:
// sent as one pipelined batch, one transaction and one WAL flush
// (groupcommit.go); an Ack is one statement too (parley_ack), and so is
// a commit with its membership change, Welcomes and inbox limits
// (parley_append_commit, committed on its own). A Verdict is a
// transaction of a few pipelined batches. Sessions run with
// synchronous_commit on at least (a server configured with it off gets it
// turned on for Parley's sessions).
//
// Transactions that fail with a serialisation failure or a deadlock
// (two acks trimming the same log can deadlock) are retried.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/store"
)

// Options tunes a Store. The zero value is fine.
type Options struct {
	// MaxConns bounds the pool (default: pgxpool's, the larger of 4 and
	// the number of CPUs; a pool_max_conns in the DSN also works).
	MaxConns int32
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
	// OnGroup, if set, is told the size of every group of appends the
	// group commit runs (benchmarks and tests).
	OnGroup func(appends int)
	// Tracer, if set, traces every connection's queries (pgx's
	// ConnConfig.Tracer): benchmarks count round trips with it.
	Tracer pgx.QueryTracer
}

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// planModeSet: the DSN chose a plan_cache_mode (afterConnect).
	planModeSet bool

	mu     sync.RWMutex
	closed bool

	// The group commit (groupcommit.go).
	queues      [groupWriters]chan *msgReq
	stopWriters chan struct{}
	writers     sync.WaitGroup
	onGroup     func(int)
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn (a postgres:// URL or a key=value
// string) and applies any pending schema migrations.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{log: slog.Default()}
	if opts != nil {
		if opts.MaxConns > 0 {
			cfg.MaxConns = opts.MaxConns
		}
		if opts.Logger != nil {
			s.log = opts.Logger
		}
		s.onGroup = opts.OnGroup
		if opts.Tracer != nil {
			cfg.ConnConfig.Tracer = opts.Tracer
		}
	}
	cfg.AfterConnect = s.afterConnect
	_, s.planModeSet = cfg.ConnConfig.RuntimeParams["plan_cache_mode"]
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s.pool = pool
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s.startWriters()
	return s, nil
}

// afterConnect makes sure a commit is durable when it returns: a server
// (or database, or role) with synchronous_commit off would acknowledge
// messages a crash can lose.
//
// It also has the session plan statements generically, unless the DSN
// chose a plan_cache_mode: every message runs parley_append_message or
// parley_ack (through a statement pgx prepares), and each statement in
// them is a look-up or update by key, whose plan does not depend on the
// parameters' values; with the default (auto) PostgreSQL may plan each
// one anew for every call. Measured with parley-load at 2 000 msg/s,
// PostgreSQL's CPU per message: 330-352 µs against 340-447
// (docs/benchmarks.md, "Capacity corrected"). The setting came with
// PostgreSQL 12; older servers keep their default.
func (s *Store) afterConnect(ctx context.Context, c *pgx.Conn) error {
	var sc string
	var version int
	if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit'), current_setting('server_version_num')::int`).Scan(&sc, &version); err != nil {
		return fmt.Errorf("pgstore: read synchronous_commit: %w", err)
	}
	if sc == "off" {
		s.log.Warn("pgstore: synchronous_commit is off on this server; turning it on for Parley's sessions")
		if _, err := c.Exec(ctx, `SET synchronous_commit = on`); err != nil {
			return fmt.Errorf("pgstore: set synchronous_commit: %w", err)
		}
	}
	if !s.planModeSet && version >= 120000 {
		if _, err := c.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
			return fmt.Errorf("pgstore: set plan_cache_mode: %w", err)
		}
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stopWriters)
	s.writers.Wait()
	s.pool.Close()
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Pool is the store's connection pool (tests and tools).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// SchemaVersion reports the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// maxAttempts bounds the retries of a transaction that failed with a
// serialisation failure or deadlock.
const maxAttempts = 10

// write runs fn in a transaction, retrying it (from the start: fn must
// reset whatever it returns) on a serialisation failure or deadlock.
// Errors caused by the database being unreachable or out of resources are
// marked with store.ErrUnavailable.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.retry(ctx, func() error { return s.runTx(ctx, fn) })
}

// retry runs op (a transaction, or a statement committed on its own)
// until it succeeds, fails for good or has been tried maxAttempts times,
// as write describes.
func (s *Store) retry(ctx context.Context, op func() error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if retryable(err) && attempt < maxAttempts && ctx.Err() == nil {
			time.Sleep(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
			continue
		}
		if s.isClosed() {
			return fmt.Errorf("%w (%w)", store.ErrClosed, err)
		}
		return unavailable(err)
	}
}

// runTx runs fn in one transaction: committed if fn returns nil, rolled
// back otherwise.
func (s *Store) runTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// read marks errors of a read the way write does.
func (s *Store) read(err error) error {
	if err == nil {
		return nil
	}
	if s.isClosed() {
		return fmt.Errorf("%w (%w)", store.ErrClosed, err)
	}
	return unavailable(err)
}

// SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeReadOnlyTransaction  = "25006"
)

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}

// uniqueViolation reports whether err is a unique violation of the named
// constraint (any, if constraint is empty).
func uniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeUniqueViolation && (constraint == "" || pe.ConstraintName == constraint)
}

// unavailable marks errors meaning the database cannot serve writes now
// (unreachable, shutting down, out of disk or connections, read-only)
// with store.ErrUnavailable, as the SQLite store does for a full disk.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:2] == "58" || pe.Code[:3] == "57P"),
			pe.Code == codeReadOnlyTransaction:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	// A connection the database ended (a restart, an administrator's
	// pg_terminate_backend) fails on its next write or read: a broken
	// pipe, a reset, an end of file, whichever comes first. That is the
	// database going away too; the pool drops the connection.
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func nowMilli() int64 { return time.Now().UnixMilli() }

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms) }

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// suiteOrOne reads a zero cipher suite as suite 1, the suite of every key
// package from before suites were declared.
func suiteOrOne(s uint16) uint16 {
	if s == 0 {
		return 1
	}
	return s
}
