package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Two databases from DB are separate, and each works.
func TestDBIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := ca.QueryRow(ctx, `SELECT x FROM t`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("read back %d, %v", x, err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 't'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table of one test database seen in another: %d, %v", n, err)
	}
	if os.Getenv(EnvDSN) == "" && os.Geteuid() == 0 {
		// The server started for the test runs as an unprivileged user.
		var super bool
		var user string
		if err := ca.QueryRow(ctx, `SELECT rolsuper, current_user FROM pg_roles WHERE rolname = current_user`).Scan(&super, &user); err != nil || !super || user != "postgres" {
			t.Fatalf("connected as %q (superuser %v): %v", user, super, err)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5/postgres?sslmode=disable", "postgres://u:p@h:5/x?sslmode=disable"},
		{"postgresql://u@/postgres?host=%2Ftmp%2Fd", "postgresql://u@/x?host=%2Ftmp%2Fd"},
		{"host=/tmp/d user=u dbname=postgres", "host=/tmp/d user=u dbname=postgres dbname=x"},
	} {
		got, err := withDatabase(tc.in, "x")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "x" {
			t.Errorf("%q parses to database %q, %v", got, cfg.Database, err)
		}
	}
}
