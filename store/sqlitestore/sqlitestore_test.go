package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: []byte("k")}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v", v, err)
	}
	if _, err := s.Device(ctx, "d1"); err != nil {
		t.Fatalf("device lost across reopen: %v", err)
	}
	for _, name := range []string{path, path + "-wal"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Append(context.Background(), store.Append{ID: make([]byte, 16), ConversationID: []byte("c"), Kind: store.KindApplication, Sender: "d"}); err != store.ErrClosed {
		t.Fatalf("Append after Close: %v", err)
	}
}

// A database made before migration 2 gets its accounts' look-alike
// skeletons on upgrade, so that a name registered before the upgrade is
// protected like one registered after it.
func TestMigrationFillsSkeletons(t *testing.T) {
	ctx := context.Background()
	s := openAtVersion(t, 1, `INSERT INTO accounts (username, created) VALUES ('alice', 0)`)
	err := s.CreateAccount(ctx, store.Device{ID: "d2", Username: "a1ice", PublicKey: make([]byte, 32)}, "")
	if !errors.Is(err, store.ErrLookalike) {
		t.Fatalf("a1ice next to a pre-upgrade alice: %v, want ErrLookalike", err)
	}
}

// Key packages stored before migration 4 (which has them declare their
// cipher suite) were all suite 1, and are handed out as such after it.
func TestMigrationKeyPackageSuite(t *testing.T) {
	ctx := context.Background()
	s := openAtVersion(t, 3,
		`INSERT INTO accounts (username, created, skeleton) VALUES ('alice', 0, 'alice')`,
		`INSERT INTO devices (id, username, public_key, created) VALUES ('a1', 'alice', x'01', 0)`,
		`INSERT INTO key_packages (device_id, ref, data, last_resort) VALUES ('a1', x'01', x'aa', 0), ('a1', x'02', x'bb', 1)`)
	if c, err := s.KeyPackageCounts(ctx, "a1"); err != nil || len(c) != 1 || c[1] != 1 {
		t.Fatalf("KeyPackageCounts after migration = %v, %v; want map[1:1]", c, err)
	}
	if got, err := s.ConsumeKeyPackages(ctx, "alice", nil, 0xF001); err != nil || len(got) != 0 {
		t.Fatalf("X-Wing packages after migration: %+v, %v; want none", got, err)
	}
	for _, want := range []string{"\xaa", "\xbb"} {
		got, err := s.ConsumeKeyPackages(ctx, "alice", nil, 1)
		if err != nil || len(got) != 1 || string(got[0].KeyPackage.Data) != want || got[0].KeyPackage.Suite != 1 {
			t.Fatalf("suite-1 package after migration: %+v, %v; want %q", got, err, want)
		}
	}
}

// NoCreate opens an existing database but makes none: not for a missing
// file, and no schema in an empty file.
func TestNoCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "parley.db")
	if _, err := Open(ctx, missing, &Options{NoCreate: true}); !errors.Is(err, sqlitedb.ErrNoDatabase) {
		t.Fatalf("missing file: %v, want ErrNoDatabase", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("NoCreate left %v behind", names)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, &Options{NoCreate: true}); !errors.Is(err, sqlitedb.ErrNoDatabase) {
		t.Fatalf("empty file: %v, want ErrNoDatabase", err)
	}
	s, err := Open(ctx, missing, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, missing, &Options{NoCreate: true})
	if err != nil {
		t.Fatalf("existing database: %v", err)
	}
	s.Close()
}

func TestHasAccount(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: []byte("k1")}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Device{ID: "d2", Username: "bob", PublicKey: []byte("k2")}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAccount(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"alice": true, "bob": false, "carol": false} {
		if got, err := store.HasAccount(ctx, s, name); err != nil || got != want {
			t.Errorf("HasAccount(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
}

// TestPendingBound: a member minting removals that the others refuse (or
// never answer) leaves a bounded number of pending rows
// (store.MaxPendingRemovals), and the device stays a member.
func TestPendingBound(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.PendingBound(t, s, func() int {
		var n int
		if err := s.r.QueryRow(`SELECT (SELECT COUNT(*) FROM pending_changes) + (SELECT COUNT(*) FROM pending_voters)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	})
}

// Idempotency records stored before migration 9 (keyed by conversation
// and id) are kept, with first_sent 0: a retry from a client that does
// not say when it first sent is still a duplicate, and a disappearing
// message's record still goes with it.
func TestMigrationIdempotencyByTime(t *testing.T) {
	ctx := context.Background()
	s := openAtVersion(t, 8,
		`INSERT INTO accounts (username, created, skeleton) VALUES ('alice', 0, 'alice')`,
		`INSERT INTO devices (id, username, public_key, created) VALUES ('a1', 'alice', x'01', 0)`,
		`INSERT INTO conversations (id, epoch, head_seq, created) VALUES (x'c0', 1, 2, 0)`,
		`INSERT INTO members (conversation_id, device_id, cursor) VALUES (x'c0', 'a1', 2)`,
		`INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
			VALUES (x'c0', x'00000000000000000000000000000001', 1, 1, 3, 'a1', 0),
			       (x'c0', x'00000000000000000000000000000002', 2, 1, 3, 'a1', 0)`,
		`INSERT INTO disappearing (conversation_id, seq, id, expires) VALUES (x'c0', 2, x'00000000000000000000000000000002', 100)`)
	old := func(n byte) store.Append {
		id := make([]byte, 16)
		id[15] = n
		return store.Append{ID: id, ConversationID: []byte{0xc0}, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("m")}
	}
	r, err := s.Append(ctx, old(1))
	if err != nil || !r.Duplicate || r.Message.Seq != 1 {
		t.Fatalf("retry of a message stored before the migration: %+v, %v; want a duplicate of seq 1", r, err)
	}
	if n, _, err := s.DeleteDisappeared(ctx, time.Unix(100, 0)); err != nil || n != 1 {
		t.Fatalf("DeleteDisappeared = %d, %v; want 1", n, err)
	}
	r, err = s.Append(ctx, old(2))
	if err != nil || r.Duplicate || r.Message.Seq != 3 {
		t.Fatalf("the id of a message disappeared after the migration: %+v, %v; want it stored anew at seq 3", r, err)
	}
}

// openAtVersion makes a database at path with the first version
// migrations applied and the rows of inserts added, as a binary of that
// time left it, then opens it with Open (which applies the rest).
func openAtVersion(t *testing.T, version int, inserts ...string) *Store {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	qs := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL) STRICT`}
	for i := range version {
		qs = append(qs, migrations[i], fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, 0)`, i+1))
	}
	for _, q := range append(qs, inserts...) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
