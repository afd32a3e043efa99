// Package pgtest gives tests a PostgreSQL database of their own.
//
// A test binary that uses it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and each test calls DB, which creates a new database (CREATE DATABASE)
// and returns its connection string; the database is dropped when the test
// ends.
//
// Where the server comes from:
//
//   - PARLEY_TEST_POSTGRES, if set, is the connection string of a server
//     to use (its user must be allowed to create databases), e.g.
//     postgres://postgres@127.0.0.1:5432/postgres.
//   - Otherwise the package starts a private server for the test binary:
//     it finds initdb and postgres (on PATH, in /usr/lib/postgresql/*/bin,
//     or in /usr/local/bin), runs initdb into a new temporary directory
//     and starts postgres listening only on a Unix socket in that
//     directory (no TCP port, so nothing to collide with), with trust
//     authentication for the one local user. Main stops it and deletes the
//     directory once the tests are done. The server runs with fsync=off:
//     test data need not survive a power cut, and the tests run faster.
//
// PostgreSQL refuses to run as root. When the tests run as root (CI does),
// the server's processes run as an unprivileged user instead — "nobody",
// or PARLEY_TEST_POSTGRES_USER — which owns the temporary directory: the
// test binary sets the child's uid and gid itself (SysProcAttr.Credential,
// no su, sudo or PAM needed) and the child dies with the test binary
// (Pdeathsig) should the binary be killed.
//
// If no server can be found or started, DB fails the test saying why:
// tests needing PostgreSQL are never skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable holding the connection string of an existing
// server to use instead of starting one.
const EnvDSN = "PARLEY_TEST_POSTGRES"

// EnvUser names the variable naming the unprivileged user a server
// started as root runs as (default "nobody").
const EnvUser = "PARLEY_TEST_POSTGRES_USER"

var (
	mu         sync.Mutex
	mainCalled bool
	started    bool
	adminDSN   string // a database to connect to for CREATE DATABASE
	startErr   error
	local      *server // the server this binary started, if any
)

// Main runs the tests and then stops the server started for them, if
// any. Call it from TestMain.
func Main(m *testing.M) int {
	mu.Lock()
	mainCalled = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if local != nil {
		if err := local.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		local = nil
	}
	return code
}

// ensure starts the server (or reads EnvDSN) once.
func ensure() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if !mainCalled {
		return "", errors.New("pgtest: call pgtest.Main from the package's TestMain (it stops the server the tests start)")
	}
	if started {
		return adminDSN, startErr
	}
	started = true
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		if _, err := pgx.ParseConfig(dsn); err != nil {
			startErr = fmt.Errorf("pgtest: %s: %w", EnvDSN, err)
			return "", startErr
		}
		adminDSN = dsn
		return adminDSN, nil
	}
	srv, err := start()
	if err != nil {
		startErr = fmt.Errorf("pgtest: cannot start PostgreSQL (install it: apt-get install postgresql, or set %s to a server's connection string): %w", EnvDSN, err)
		return "", startErr
	}
	local = srv
	adminDSN = srv.dsn("postgres")
	return adminDSN, nil
}

// DB creates a new, empty database for t and returns its connection
// string (a postgres:// URL); the database is dropped when t ends.
func DB(t testing.TB) string {
	t.Helper()
	admin, err := ensure()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "parley_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := execSQL(ctx, admin, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections a failed test left open.
		if err := execSQL(ctx, admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database replaced by name. A URL gets
// a new path; a keyword/value string gets dbname appended (the last one
// wins).
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}
