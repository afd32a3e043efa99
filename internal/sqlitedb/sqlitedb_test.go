package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// testMigrations build a schema whose later steps depend on the earlier ones,
// and logs each step so a test can see what ran and in what order.
var testMigrations = []string{
	`CREATE TABLE log (step INTEGER NOT NULL) STRICT;
	 INSERT INTO log VALUES (1);`,
	`CREATE TABLE parent (id INTEGER PRIMARY KEY) STRICT;
	 CREATE TABLE child (parent INTEGER NOT NULL REFERENCES parent(id)) STRICT;
	 INSERT INTO log VALUES (2);`,
	`INSERT INTO log VALUES (3);`,
}

func open(t *testing.T, path string, opts Options) *sql.DB {
	t.Helper()
	db, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func steps(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query("SELECT step FROM log ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var s int
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	v, err := SchemaVersion(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrationsAppliedOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")

	db := open(t, path, Options{Migrations: testMigrations[:2]})
	if got, want := steps(t, db), []int{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("first open ran %v, want %v", got, want)
	}
	if v := version(t, db); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	db.Close()

	// Reopening with one more migration runs only that one.
	db = open(t, path, Options{Migrations: testMigrations})
	if got, want := steps(t, db), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("second open ran %v, want %v", got, want)
	}
	db.Close()

	// Reopening with the same list changes nothing.
	db = open(t, path, Options{Migrations: testMigrations})
	if got, want := steps(t, db), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("third open ran %v, want %v", got, want)
	}
	if v := version(t, db); v != 3 {
		t.Fatalf("version %d, want 3", v)
	}
}

func TestFailingMigrationChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	db := open(t, path, Options{Migrations: testMigrations[:1]})
	db.Close()

	bad := append(slices.Clone(testMigrations[:1]),
		`INSERT INTO log VALUES (2); CREATE TABLE log (x INTEGER);`) // second statement fails
	_, err := Open(context.Background(), path, Options{Migrations: bad})
	if err == nil || !strings.Contains(err.Error(), "migration 2") {
		t.Fatalf("Open with a failing migration: %v, want an error naming migration 2", err)
	}

	db = open(t, path, Options{Migrations: testMigrations[:1]})
	if v := version(t, db); v != 1 {
		t.Fatalf("version after failed migration %d, want 1", v)
	}
	if got, want := steps(t, db), []int{1}; !slices.Equal(got, want) {
		t.Fatalf("failed migration left rows: %v, want %v", got, want)
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	db := open(t, path, Options{Migrations: testMigrations})
	db.Close()
	_, err := Open(context.Background(), path, Options{Migrations: testMigrations[:2]})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open with fewer migrations than applied: %v, want ErrNewerSchema", err)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix file modes")
	}
	path := filepath.Join(t.TempDir(), "test.db")
	db := open(t, path, Options{Migrations: testMigrations})
	// A write, so that the -wal and -shm files exist.
	if _, err := db.Exec("INSERT INTO log VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(name), m)
		}
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing", "test.db"), Options{})
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func TestPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	db := open(t, path, Options{
		Migrations:  testMigrations,
		BusyTimeout: 1500 * time.Millisecond,
		Pragmas:     []string{"secure_delete(1)"},
	})
	for _, c := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "1500"},
		{"secure_delete", "1"},
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	// foreign_keys(1) is in force, not just reported.
	if _, err := db.Exec("INSERT INTO child VALUES (42)"); err == nil {
		t.Error("insert violating a foreign key succeeded")
	}
}

func TestDefaultBusyTimeout(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "test.db"), Options{})
	var ms int64
	if err := db.QueryRow("PRAGMA busy_timeout").Scan(&ms); err != nil {
		t.Fatal(err)
	}
	if ms != DefaultBusyTimeout.Milliseconds() {
		t.Fatalf("busy_timeout %d ms, want %d", ms, DefaultBusyTimeout.Milliseconds())
	}
}

func TestWithTx(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "test.db"), Options{Migrations: testMigrations[:1]})

	errBoom := errors.New("boom")
	err := WithTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO log VALUES (10)"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx returned %v, want fn's error", err)
	}
	if got, want := steps(t, db), []int{1}; !slices.Equal(got, want) {
		t.Fatalf("rolled back transaction left %v, want %v", got, want)
	}

	if err := WithTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO log VALUES (11)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := steps(t, db), []int{1, 11}; !slices.Equal(got, want) {
		t.Fatalf("committed transaction: %v, want %v", got, want)
	}
}

func TestMaxOpenConns(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "test.db"), Options{})
	if n := db.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("default MaxOpenConnections %d, want 1", n)
	}
	db = open(t, filepath.Join(t.TempDir(), "test2.db"), Options{MaxOpenConns: 3})
	if n := db.Stats().MaxOpenConnections; n != 3 {
		t.Fatalf("MaxOpenConnections %d, want 3", n)
	}
}

func TestOddFileNames(t *testing.T) {
	for _, name := range []string{"a?b.db", "a#b.db", "100%.db", "a b.db", "a%3Fb.db", "a&_pragma=x.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			db := open(t, path, Options{Migrations: testMigrations})
			db.Close()
			// The database is the file named, not one at a truncated or
			// decoded name beside it.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Contains(names, name) || slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, name) }) {
				t.Fatalf("files %q, want only %q and its -wal/-shm", names, name)
			}
			db = open(t, path, Options{Migrations: testMigrations})
			if v := version(t, db); v != len(testMigrations) {
				t.Fatalf("reopened version %d, want %d", v, len(testMigrations))
			}
		})
	}
}

// NoCreate opens an existing database (and applies later migrations) but
// never makes one: not for a missing file, and not a schema in an empty
// file.
func TestNoCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	_, err := Open(ctx, missing, Options{Migrations: testMigrations, NoCreate: true})
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v, want ErrNoDatabase naming the path", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("NoCreate left %v behind", names)
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, Options{Migrations: testMigrations, NoCreate: true}); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("empty file: %v, want ErrNoDatabase", err)
	}

	existing := filepath.Join(dir, "existing.db")
	open(t, existing, Options{Migrations: testMigrations[:1]}).Close()
	db := open(t, existing, Options{Migrations: testMigrations, NoCreate: true})
	if got := steps(t, db); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("later migrations on an existing database: steps %v", got)
	}
}
