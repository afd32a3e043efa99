package sqlitestore

import (
	"context"
	"database/sql"
)

// txQuerier is what the append path needs from a transaction: *sql.Tx or a
// cachedTx.
type txQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtCache keeps the group-commit writer's statements prepared on the
// single writer connection. Parsing SQL was half of the append path's
// CPU time; a batch of appends runs the same dozen statements over and
// over. Only the batcher goroutine uses it.
//
// A statement cannot be prepared on the connection while a transaction
// holds it (there is only one), so misses run unprepared and are
// prepared after the batch commits.
type stmtCache struct {
	db     *sql.DB
	stmts  map[string]*sql.Stmt
	missed map[string]bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt), missed: make(map[string]bool)}
}

// prepareMissed prepares the statements that missed; call it with no
// transaction open.
func (c *stmtCache) prepareMissed(ctx context.Context) {
	for q := range c.missed {
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.stmts[q] = st
		}
		delete(c.missed, q)
	}
}

func (c *stmtCache) close() {
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}

// cachedTx runs statements in tx, prepared when the cache has them.
type cachedTx struct {
	tx *sql.Tx
	c  *stmtCache
	// inTx holds the cache's statements bound to tx (Tx.StmtContext),
	// each bound once per transaction rather than once per execution: a
	// batch runs the same few statements hundreds of times, and binding
	// allocates a statement and takes database/sql's locks every time.
	// database/sql closes them when tx ends.
	inTx map[string]*sql.Stmt
}

func newCachedTx(tx *sql.Tx, c *stmtCache) cachedTx {
	return cachedTx{tx: tx, c: c, inTx: make(map[string]*sql.Stmt, len(c.stmts))}
}

func (t cachedTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := t.inTx[q]; st != nil {
		return st
	}
	if st := t.c.stmts[q]; st != nil {
		st = t.tx.StmtContext(ctx, st)
		t.inTx[q] = st
		return st
	}
	t.c.missed[q] = true
	return nil
}

func (t cachedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}
