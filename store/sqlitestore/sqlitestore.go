// Package sqlitestore implements store.Store on SQLite, using the pure-Go
// modernc.org/sqlite driver.
//
// The database runs in WAL mode with synchronous=FULL, so a write that
// returned is on disk: the server only acknowledges a message after
// Append returns. All writes go through one connection; message appends
// and acks are additionally group-committed (many share one transaction
// and one fsync). The group-commit writer keeps conversation heads and
// member cursors in memory (convcache.go), so an application message
// costs two INSERTs; one bad request never fails its neighbours.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
)

// Options tunes a Store. The zero value is fine.
type Options struct {
	// OnBatch, if set, is called with the size of every group commit.
	OnBatch func(appends int)
	// MaxBatch bounds how many appends share a transaction (default 1024).
	MaxBatch int
	// NoCreate opens only an existing database with its schema: Open
	// fails with an error wrapping sqlitedb.ErrNoDatabase rather than
	// create the file or build a schema in an empty one. "parleyd admin"
	// uses it, so that run against the wrong directory it fails instead
	// of writing to a new database the server never reads.
	NoCreate bool
	// OneServer makes Open fail with ErrServerRunning while another
	// store opened with it holds the database: "parleyd serve" sets it.
	// The admin commands, which work beside a running server and write
	// no messages, do not.
	OneServer bool
}

// ErrServerRunning means another server has the database open
// (Options.OneServer).
var ErrServerRunning = errors.New("another parleyd serve is using this database")

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	w *sql.DB // one connection; every write
	r *sql.DB // read-only pool

	opts Options

	// wmu is held by the group-commit writer for a batch and by write for
	// its transaction; it guards cache, which write empties.
	wmu   sync.Mutex
	cache *convCache
	// log is the message log's index (logindex.go): published for
	// readers, its open transaction's view for the writer (wmu).
	log *logIndex
	// serverLock is held for the store's life with Options.OneServer.
	serverLock *os.File

	mu      sync.RWMutex // guards closed and sends on appends
	closed  bool
	appends chan appendReq
	resps   []appendResp // runBatchCached's, reused
	done    chan struct{}

	limits limitWindows // rate-limit counters, in memory (limits.go)
	slots  slots        // AcquireSlot counts, in memory (limits.go)
}

var _ store.Store = (*Store)(nil)

const dsnPragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"

// writerPragmas tune the one writing connection. Its page cache is 32 MiB
// (SQLite's default is 2 MiB): the group commit touches the tail of every
// active conversation's log, and pages read back from the OS cost a
// syscall each. The WAL is checkpointed every 10 000 pages (~40 MiB)
// instead of 1 000, so a page written by many batches (a busy
// conversation's tail, an index's right edge) is copied back once per
// checkpoint rather than ten times.
//
// secure_delete makes SQLite overwrite what it deletes (rows, index
// entries, freed pages) with zeros: a message trimmed or disappeared is
// gone from the file, not left in free space (DeleteDisappeared then
// truncates the WAL, which holds the older copies of those pages).
const writerPragmas = "&_pragma=cache_size(-32768)&_pragma=wal_autocheckpoint(10000)&_pragma=secure_delete(1)"

// Open opens (creating if needed, unless opts.NoCreate) the database at
// path and applies any pending schema migrations. The file is created with
// mode 0600.
func Open(ctx context.Context, path string, opts *Options) (*Store, error) {
	var lock *os.File
	if opts != nil && opts.OneServer {
		var err error
		if lock, err = lockServer(path); err != nil {
			return nil, err
		}
	}
	s, err := open(ctx, path, opts)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	s.serverLock = lock
	return s, nil
}

func open(ctx context.Context, path string, opts *Options) (*Store, error) {
	noCreate := opts != nil && opts.NoCreate
	mode := ""
	if noCreate {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sqlitestore: %w at %s", sqlitedb.ErrNoDatabase, path)
		} else if err != nil {
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
		// SQLite itself then refuses to create the file, should it
		// vanish after the check.
		mode = "&mode=rw"
	} else {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: create database: %w", err)
		}
		f.Close()
	}

	w, err := sql.Open("sqlite", "file:"+path+"?"+dsnPragmas+writerPragmas+"&_txlock=immediate"+mode)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if noCreate {
		if err := checkSchema(ctx, w, path); err != nil {
			w.Close()
			return nil, err
		}
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+dsnPragmas+"&_pragma=query_only(1)"+mode)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	r.SetMaxOpenConns(4)
	// SQLite creates the -wal and -shm files with the database's mode, but
	// make sure: they hold the same data.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.Close()
			r.Close()
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
	}
	s := &Store{w: w, r: r, appends: make(chan appendReq, 1024), done: make(chan struct{}), log: newLogIndex()}
	s.cache = newConvCache(s.log)
	if err := s.log.load(ctx, w); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.MaxBatch <= 0 {
		s.opts.MaxBatch = 1024
	}
	go s.batcher()
	return s, nil
}

// Close waits for queued appends to commit, then closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.appends)
	s.mu.Unlock()
	<-s.done
	err1 := s.r.Close()
	err2 := s.w.Close()
	if s.serverLock != nil {
		s.serverLock.Close() // after the database: the next server may start
	}
	return errors.Join(err1, err2)
}

// migrations are applied in order; never edit one that has shipped, add a
// new one instead. Their index+1 is the schema version.
var migrations = []string{
	// 1: initial schema. Times are Unix milliseconds.
	`
CREATE TABLE accounts (
	username TEXT PRIMARY KEY,
	created  INTEGER NOT NULL
) STRICT;
CREATE TABLE devices (
	id         TEXT PRIMARY KEY,
	username   TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
	public_key BLOB NOT NULL UNIQUE,
	created    INTEGER NOT NULL,
	inbox_head INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX devices_username ON devices(username);
CREATE TABLE invites (
	code    TEXT PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;
CREATE TABLE links (
	username   TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
	code       TEXT NOT NULL,
	public_key BLOB NOT NULL,
	expires    INTEGER NOT NULL,
	PRIMARY KEY (username, code)
) STRICT;
CREATE TABLE key_packages (
	id          INTEGER PRIMARY KEY,
	device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	ref         BLOB NOT NULL,
	data        BLOB NOT NULL,
	last_resort INTEGER NOT NULL
) STRICT;
CREATE INDEX key_packages_device ON key_packages(device_id, last_resort, id);
CREATE TABLE conversations (
	id       BLOB PRIMARY KEY,
	epoch    INTEGER NOT NULL,
	head_seq INTEGER NOT NULL,
	created  INTEGER NOT NULL
) STRICT;
CREATE TABLE members (
	conversation_id BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
	device_id       TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	cursor          INTEGER NOT NULL,
	until_seq       INTEGER,
	PRIMARY KEY (conversation_id, device_id)
) STRICT;
CREATE INDEX members_device ON members(device_id);
CREATE TABLE messages (
	conversation_id BLOB NOT NULL,
	seq             INTEGER NOT NULL,
	id              BLOB NOT NULL,
	epoch           INTEGER NOT NULL,
	kind            INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	payload         BLOB NOT NULL,
	stored          INTEGER NOT NULL,
	PRIMARY KEY (conversation_id, seq)
) STRICT;
CREATE INDEX messages_stored ON messages(stored);
CREATE TABLE message_ids (
	conversation_id BLOB NOT NULL,
	id              BLOB NOT NULL,
	seq             INTEGER NOT NULL,
	epoch           INTEGER NOT NULL,
	kind            INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	stored          INTEGER NOT NULL,
	PRIMARY KEY (conversation_id, id)
) STRICT;
CREATE INDEX message_ids_stored ON message_ids(stored);
CREATE TABLE epoch_commits (
	conversation_id BLOB NOT NULL,
	epoch           INTEGER NOT NULL,
	seq             INTEGER NOT NULL,
	id              BLOB NOT NULL,
	sender          TEXT NOT NULL,
	payload         BLOB NOT NULL,
	stored          INTEGER NOT NULL,
	PRIMARY KEY (conversation_id, epoch)
) STRICT;
CREATE INDEX epoch_commits_stored ON epoch_commits(stored);
CREATE TABLE inbox (
	device_id       TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	seq             INTEGER NOT NULL,
	id              BLOB NOT NULL,
	conversation_id BLOB NOT NULL,
	epoch           INTEGER NOT NULL,
	kind            INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	payload         BLOB NOT NULL,
	stored          INTEGER NOT NULL,
	PRIMARY KEY (device_id, seq)
) STRICT;
CREATE INDEX inbox_stored ON inbox(stored);
`,
	// 2: look-alike usernames and who may add an account to
	// conversations. skeleton is wire.UsernameSkeleton(username), filled
	// in by Go after this migration for accounts made before it.
	`
ALTER TABLE accounts ADD COLUMN skeleton TEXT;
CREATE INDEX accounts_skeleton ON accounts(skeleton);
CREATE TABLE blocks (
	username TEXT NOT NULL REFERENCES accounts(username),
	blocked  TEXT NOT NULL REFERENCES accounts(username),
	PRIMARY KEY (username, blocked)
) STRICT, WITHOUT ROWID;
CREATE TABLE privacy (
	username      TEXT PRIMARY KEY REFERENCES accounts(username),
	group_invites INTEGER NOT NULL
) STRICT;
`,
	// 3: account-signed device lists and end-to-end device linking.
	`
ALTER TABLE accounts ADD COLUMN account_key BLOB;
ALTER TABLE accounts ADD COLUMN device_list BLOB;
ALTER TABLE accounts ADD COLUMN device_list_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN mls_key BLOB;
ALTER TABLE links ADD COLUMN link_mac BLOB;
ALTER TABLE devices ADD COLUMN link_confirmation BLOB;
`,
	// 4: key packages carry their MLS cipher suite (every package stored
	// before was suite 1); a device has one last-resort package per suite.
	`
ALTER TABLE key_packages ADD COLUMN suite INTEGER NOT NULL DEFAULT 1;
DROP INDEX key_packages_device;
CREATE INDEX key_packages_device ON key_packages(device_id, suite, last_resort, id);
`,
	// 5: the key transparency directory. accounts.kt_version is the
	// version of the account's list in the directory (0: not in it); the
	// partial index finds the accounts whose list the next epoch takes.
	`
ALTER TABLE accounts ADD COLUMN kt_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX accounts_kt_pending ON accounts(username)
	WHERE kt_version != CASE WHEN device_list IS NULL THEN 0 ELSE device_list_version END;
CREATE TABLE kt_epochs (
	epoch   INTEGER PRIMARY KEY,
	record  BLOB NOT NULL,
	changes BLOB NOT NULL
) STRICT;
CREATE TABLE kt_labels (
	label     TEXT PRIMARY KEY,
	idx       BLOB NOT NULL,
	vrf_proof BLOB NOT NULL,
	leaf      BLOB NOT NULL,
	epoch     INTEGER NOT NULL,
	version   INTEGER NOT NULL
) STRICT;
CREATE TABLE kt_versions (
	label   TEXT NOT NULL,
	epoch   INTEGER NOT NULL,
	version INTEGER NOT NULL,
	prev    BLOB NOT NULL,
	opening BLOB NOT NULL,
	value   BLOB NOT NULL,
	PRIMARY KEY (label, epoch)
) STRICT;
CREATE TABLE kt_published (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	note BLOB NOT NULL
) STRICT;
`,
	// 6: the day each device last authenticated (docs/lawful-requests.md:
	// what the server can produce), and lawful requests with their
	// tamper-evident log.
	`
ALTER TABLE devices ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
CREATE TABLE legal_requests (
	id              TEXT PRIMARY KEY,
	recorded        INTEGER NOT NULL,
	data            BLOB NOT NULL,
	preserved_until INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE legal_log (
	n      INTEGER PRIMARY KEY,
	record BLOB NOT NULL
) STRICT;
`,
	// 7: disappearing messages (store.Append.Expires): only the messages
	// that have an expiry get a row, so the append of any other costs
	// nothing more.
	`
CREATE TABLE disappearing (
	conversation_id BLOB NOT NULL,
	seq             INTEGER NOT NULL,
	id              BLOB NOT NULL,
	expires         INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (conversation_id, seq)
) STRICT;
CREATE INDEX disappearing_expires ON disappearing(expires);
`,
	// 8: membership changes waiting for the members' verdicts
	// (store.Store.Verdict): a commit's additions and removals of another
	// account's devices, and the devices whose verdict decides them.
	`
CREATE TABLE pending_changes (
	conversation_id BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
	seq             INTEGER NOT NULL, -- the commit's
	commit_id       BLOB NOT NULL,
	device_id       TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	removed         INTEGER NOT NULL, -- 1: a removal, 0: an addition
	refuse          INTEGER,          -- the device's own verdict: 0 accept, 1 refuse
	stored          INTEGER NOT NULL,
	PRIMARY KEY (conversation_id, seq, device_id)
) STRICT;
CREATE INDEX pending_changes_commit ON pending_changes(conversation_id, commit_id);
CREATE INDEX pending_changes_device ON pending_changes(device_id);
CREATE INDEX pending_changes_stored ON pending_changes(stored);
CREATE TABLE pending_voters (
	conversation_id BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
	seq             INTEGER NOT NULL,
	device_id       TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	refuse          INTEGER, -- NULL until the verdict is given; 0 accept, 1 refuse
	PRIMARY KEY (conversation_id, seq, device_id)
) STRICT;
CREATE INDEX pending_voters_device ON pending_voters(device_id);
`,
	// 9: idempotency records keyed by (first_sent, id, conversation_id)
	// (store.Append.FirstSent), in a table without rowid. Keyed by
	// (conversation_id, id), every new record went to a random leaf of
	// an index as large as the retention: a page read and a page written
	// per message. The clients' first-send times are about now, so new
	// records are written side by side at the end of the index. Records
	// from before have first_sent 0, which is also what a client that
	// does not say sends.
	`
CREATE TABLE message_ids_by_time (
	first_sent      INTEGER NOT NULL, -- ms since 1970; 0: not given
	id              BLOB NOT NULL,
	conversation_id BLOB NOT NULL,
	seq             INTEGER NOT NULL,
	epoch           INTEGER NOT NULL,
	kind            INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	stored          INTEGER NOT NULL,
	PRIMARY KEY (first_sent, id, conversation_id)
) STRICT, WITHOUT ROWID;
INSERT INTO message_ids_by_time (first_sent, id, conversation_id, seq, epoch, kind, sender, stored)
	SELECT 0, id, conversation_id, seq, epoch, kind, sender, stored FROM message_ids;
DROP TABLE message_ids;
ALTER TABLE message_ids_by_time RENAME TO message_ids;
CREATE INDEX message_ids_stored ON message_ids(stored);
ALTER TABLE disappearing ADD COLUMN first_sent INTEGER NOT NULL DEFAULT 0;
`,
	// 10: the message log without its on-disk index by (conversation,
	// seq), which the store keeps in memory instead (logindex.go): every
	// active conversation's newest entry was a page of its own in that
	// index, a WAL page written per message. Rows are copied in
	// (conversation, seq) order, so each conversation's are in seq order.
	`
CREATE TABLE messages_log (
	conversation_id BLOB NOT NULL,
	seq             INTEGER NOT NULL,
	id              BLOB NOT NULL,
	epoch           INTEGER NOT NULL,
	kind            INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	payload         BLOB NOT NULL,
	stored          INTEGER NOT NULL
) STRICT;
INSERT INTO messages_log (conversation_id, seq, id, epoch, kind, sender, payload, stored)
	SELECT conversation_id, seq, id, epoch, kind, sender, payload, stored FROM messages ORDER BY conversation_id, seq;
DROP TABLE messages;
ALTER TABLE messages_log RENAME TO messages;
CREATE INDEX messages_stored ON messages(stored);
`,
}

// checkSchema fails with sqlitedb.ErrNoDatabase if no migration was ever
// applied to db: the file exists but holds no Parley database.
func checkSchema(ctx context.Context, db *sql.DB, path string) error {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if n == 1 {
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
		if err != nil {
			return fmt.Errorf("sqlitestore: open %s: %w", path, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("sqlitestore: %w at %s: the file has no schema", sqlitedb.ErrNoDatabase, path)
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlitestore: create migrations table: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("sqlitestore: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("sqlitestore: database schema version %d is newer than this binary (%d)", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlitestore: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlitestore: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, v, nowMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlitestore: migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlitestore: migration %d: %w", v, err)
		}
	}
	return fillSkeletons(ctx, db)
}

// fillSkeletons computes the look-alike skeleton of accounts that have
// none (made before migration 2): SQL cannot compute it.
func fillSkeletons(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT username FROM accounts WHERE skeleton IS NULL`)
	if err != nil {
		return fmt.Errorf("sqlitestore: username skeletons: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("sqlitestore: username skeletons: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: username skeletons: %w", err)
	}
	for _, n := range names {
		if _, err := db.ExecContext(ctx, `UPDATE accounts SET skeleton = ? WHERE username = ?`, wire.UsernameSkeleton(n), n); err != nil {
			return fmt.Errorf("sqlitestore: username skeletons: %w", err)
		}
	}
	return nil
}

// SchemaVersion reports the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// write runs fn in a transaction of its own. It must not change
// conversations or members rows: use writeMembership for that.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, false, fn)
}

// writeMembership is write for changes to conversations or members rows,
// which the group-commit writer caches: it empties that cache.
func (s *Store) writeMembership(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, true, fn)
}

func (s *Store) writeTx(ctx context.Context, membership bool, fn func(tx *sql.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if membership {
		defer s.cache.reset()
	}
	s.log.discard() // nothing of an earlier transaction may be published with this one
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(fmt.Errorf("sqlitestore: begin: %w", err))
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		s.log.discard()
		return unavailable(err)
	}
	if err := tx.Commit(); err != nil {
		s.log.discard()
		return unavailable(fmt.Errorf("sqlitestore: commit: %w", err))
	}
	s.log.publish()
	return nil
}
