package pgdb

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two stores in one database, each in its schema, both with a table
// named t: each sees its own.
func TestSchemasKeepStoresApart(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	mig := []string{`CREATE TABLE t (v TEXT NOT NULL)`}
	a, err := Open(ctx, dsn, Options{Schema: "one", Migrations: mig})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn, Options{Schema: "two", Migrations: mig})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Exec(ctx, `INSERT INTO t VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema two sees %d rows of schema one's table, %v", n, err)
	}
	var sync string
	if err := a.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&sync); err != nil || sync == "off" {
		t.Fatalf("synchronous_commit %q, %v", sync, err)
	}
}

// A binary older than the schema refuses it; a bad schema name is
// refused before anything is sent.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	p, err := Open(ctx, dsn, Options{Schema: "s", Migrations: []string{`CREATE TABLE a (x INT)`, `CREATE TABLE b (x INT)`}})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := Open(ctx, dsn, Options{Schema: "s", Migrations: []string{`CREATE TABLE a (x INT)`}}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("an older binary: %v, want ErrNewerSchema", err)
	}
	if _, err := Open(ctx, dsn, Options{Schema: "x; DROP TABLE s.a"}); err == nil {
		t.Fatal("a schema name with SQL in it was taken")
	}
}

// A store's Open passes its caller's *Tuning through Tuned: nil keeps
// the defaults (and the pool Open makes), a value replaces them.
func TestTuned(t *testing.T) {
	base := Options{Schema: "s", Tuning: Tuning{MaxConns: 7}}
	if got := base.Tuned(nil); got.MaxConns != 7 || got.Schema != "s" {
		t.Fatalf("Tuned(nil) = %+v, want the options unchanged", got)
	}
	if got := base.Tuned(&Tuning{MaxConns: 2}); got.MaxConns != 2 || got.Schema != "s" {
		t.Fatalf("Tuned(MaxConns 2) = %+v", got)
	}
	ctx := context.Background()
	pool, err := Open(ctx, pgtest.DB(t), Options{Schema: "tuned"}.Tuned(&Tuning{MaxConns: 3}))
	if err != nil {
		t.Fatal(err)
	}
	db := DB{Pool: pool}
	defer db.Close()
	if n := db.Config().MaxConns; n != 3 {
		t.Fatalf("pool MaxConns = %d, want 3", n)
	}
}
