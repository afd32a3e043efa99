package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// A cached statement is bound to a batch's transaction once and reused
// for every execution in it; the next transaction binds its own, and
// rows written through the bound statement commit with the transaction.
func TestCachedTxBindsOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.wmu.Lock() // keep the group-commit writer off the connection
	defer s.wmu.Unlock()
	const q = `INSERT INTO stmt_probe (n) VALUES (?)`
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE stmt_probe (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(s.w)
	defer c.close()

	run := func() (first, second *sql.Stmt) {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		ct := newCachedTx(tx, c)
		a, b := ct.stmt(ctx, q), ct.stmt(ctx, q)
		for i := range 3 {
			if _, err := ct.ExecContext(ctx, q, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	// The first transaction misses (the statement is not prepared yet)
	// and runs it unprepared.
	if a, _ := run(); a != nil {
		t.Fatalf("a statement never prepared came from the cache")
	}
	c.prepareMissed(ctx)
	a1, b1 := run()
	if a1 == nil || a1 != b1 {
		t.Fatalf("bound twice in one transaction: %p, %p", a1, b1)
	}
	a2, _ := run()
	if a2 == a1 {
		t.Fatal("a statement bound to a finished transaction was reused")
	}
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM stmt_probe`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Fatalf("%d rows committed, want 9", n)
	}
}
