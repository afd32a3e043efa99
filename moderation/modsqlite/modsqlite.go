// Package modsqlite implements moderation.Store on SQLite with the pure-Go
// modernc.org/sqlite driver. The database (by convention DATA/moderation.db)
// runs in WAL mode, so a running server can read banks while
// "parleyd admin lists ..." changes them from another process.
package modsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/moderation"
)

// Store is a moderation.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var _ moderation.Store = (*Store)(nil)

// migrations are applied in order; never edit one that has shipped.
var migrations = []string{`
CREATE TABLE banks (
	name          TEXT PRIMARY KEY,
	source        TEXT NOT NULL,
	label         TEXT NOT NULL,
	tags          TEXT NOT NULL,
	action        TEXT NOT NULL,
	version       INTEGER NOT NULL,
	checkpoint    TEXT NOT NULL,
	publish_token BLOB,
	updated       INTEGER NOT NULL
) STRICT;
CREATE TABLE entries (
	bank  TEXT NOT NULL REFERENCES banks(name) ON DELETE CASCADE,
	type  TEXT NOT NULL,
	value TEXT NOT NULL,
	tags  TEXT NOT NULL,
	PRIMARY KEY (bank, type, value)
) STRICT, WITHOUT ROWID;
CREATE TABLE changes (
	seq   INTEGER PRIMARY KEY AUTOINCREMENT,
	bank  TEXT NOT NULL,
	op    TEXT NOT NULL,
	type  TEXT NOT NULL,
	value TEXT NOT NULL,
	tags  TEXT NOT NULL,
	time  INTEGER NOT NULL
) STRICT;
CREATE INDEX changes_bank ON changes (bank, seq);
CREATE TABLE decisions (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	time     INTEGER NOT NULL,
	kind     TEXT NOT NULL,
	bank     TEXT NOT NULL,
	type     TEXT NOT NULL,
	hash     TEXT NOT NULL,
	distance INTEGER NOT NULL,
	subject  TEXT NOT NULL,
	actor    TEXT NOT NULL,
	note     TEXT NOT NULL
) STRICT;
CREATE INDEX decisions_subject ON decisions (subject, id);
`, `
CREATE TABLE bank_meta (
	id      INTEGER PRIMARY KEY CHECK (id = 0),
	version INTEGER NOT NULL
) STRICT;
INSERT INTO bank_meta (id, version) VALUES (0, 0);
`, `
CREATE TABLE cases (
	id       INTEGER PRIMARY KEY,
	opened   INTEGER NOT NULL,
	reported TEXT NOT NULL,
	state    TEXT NOT NULL
) STRICT;
CREATE INDEX cases_state ON cases (state, id);
CREATE TABLE case_reports (
	case_id  INTEGER NOT NULL REFERENCES cases(id),
	reporter TEXT NOT NULL,
	reason   TEXT NOT NULL,
	note     TEXT NOT NULL,
	received INTEGER NOT NULL
) STRICT;
CREATE INDEX case_reports_case ON case_reports (case_id);
CREATE TABLE case_messages (
	case_id       INTEGER NOT NULL REFERENCES cases(id),
	tag           BLOB NOT NULL,
	conversation  BLOB NOT NULL,
	sender_user   TEXT NOT NULL,
	sender_device TEXT NOT NULL,
	accepted      INTEGER NOT NULL,
	content       BLOB NOT NULL,
	salt          BLOB NOT NULL,
	frank         BLOB NOT NULL,
	PRIMARY KEY (case_id, tag)
) STRICT;
CREATE INDEX case_messages_tag ON case_messages (tag);
CREATE TABLE case_events (
	case_id   INTEGER NOT NULL REFERENCES cases(id),
	time      INTEGER NOT NULL,
	action    TEXT NOT NULL,
	moderator TEXT NOT NULL,
	reason    TEXT NOT NULL,
	until     INTEGER NOT NULL
) STRICT;
CREATE INDEX case_events_case ON case_events (case_id);
`, `
CREATE TABLE moderators (
	name        TEXT PRIMARY KEY,
	lead        INTEGER NOT NULL,
	password    TEXT NOT NULL,
	totp_secret BLOB NOT NULL,
	created     INTEGER NOT NULL
) STRICT;
`, `
ALTER TABLE cases ADD COLUMN kind TEXT NOT NULL DEFAULT 'report';
ALTER TABLE cases ADD COLUMN hold TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN hold_post INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cases_hold_post ON cases (hold_post, state) WHERE hold_post != 0;
ALTER TABLE moderators ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cases_reported ON cases (reported, id);
`, `
CREATE TABLE console_sessions (
	token_hash BLOB PRIMARY KEY,
	moderator  TEXT NOT NULL,
	created    INTEGER NOT NULL,
	expires    INTEGER NOT NULL
) STRICT;
CREATE INDEX console_sessions_moderator ON console_sessions (moderator);
CREATE INDEX console_sessions_expires ON console_sessions (expires);
`, `
ALTER TABLE moderators ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;
CREATE TABLE console_login_failures (
	subject      TEXT PRIMARY KEY,
	window_start INTEGER NOT NULL,
	count        INTEGER NOT NULL
) STRICT;
CREATE INDEX console_login_failures_window ON console_login_failures (window_start);
`}

// pragmas: secure_delete overwrites what is deleted (reported messages
// whose case retention ended), rather than leaving it in free pages.
var pragmas = []string{"secure_delete(1)"}

// Open opens (creating with mode 0600 if needed) the database at path and
// applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Migrations: migrations, Pragmas: pragmas})
	if err != nil {
		return nil, fmt.Errorf("modsqlite: %w", err)
	}
	return &Store{db: db}, nil
}

// OpenExisting opens the database at path like Open, but only if it
// exists with its schema: it never creates one, and fails with an error
// wrapping sqlitedb.ErrNoDatabase instead. The admin commands use it.
func OpenExisting(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Migrations: migrations, NoCreate: true, Pragmas: pragmas})
	if err != nil {
		return nil, fmt.Errorf("modsqlite: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func joinTags(t []string) string { return strings.Join(t, " ") }

func splitTags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func validateMeta(meta moderation.Bank) error {
	b := hashlist.Bank{Name: meta.Name, Action: meta.Action, Tags: meta.Tags}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("%w: %v", moderation.ErrBadBank, err)
	}
	return nil
}

// upsertMeta writes the bank's metadata, creating it at version 0. Creating
// a bank or changing its label or action moves Position.Meta, which the
// server compares before every check.
func upsertMeta(ctx context.Context, tx *sql.Tx, meta moderation.Bank, now int64) error {
	var label, action string
	err := tx.QueryRowContext(ctx, `SELECT label, action FROM banks WHERE name = ?`, meta.Name).Scan(&label, &action)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("modsqlite: read bank %q: %w", meta.Name, err)
	}
	if err != nil || label != meta.Label || action != string(meta.Action) {
		if err := bumpMeta(ctx, tx); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO banks (name, source, label, tags, action, version, checkpoint, updated)
		VALUES (?, ?, ?, ?, ?, 0, '', ?)
		ON CONFLICT (name) DO UPDATE SET source = excluded.source, label = excluded.label,
			tags = excluded.tags, action = excluded.action, updated = excluded.updated`,
		meta.Name, meta.Source, meta.Label, joinTags(meta.Tags), string(meta.Action), now)
	if err != nil {
		return fmt.Errorf("modsqlite: write bank %q: %w", meta.Name, err)
	}
	return nil
}

func bumpMeta(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE bank_meta SET version = version + 1`); err != nil {
		return fmt.Errorf("modsqlite: bump bank metadata version: %w", err)
	}
	return nil
}

func readEntries(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, bank string) ([]hashlist.Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT type, value, tags FROM entries WHERE bank = ? ORDER BY type, value`, bank)
	if err != nil {
		return nil, fmt.Errorf("modsqlite: read entries: %w", err)
	}
	defer rows.Close()
	var out []hashlist.Entry
	for rows.Next() {
		var t, v, tags string
		if err := rows.Scan(&t, &v, &tags); err != nil {
			return nil, fmt.Errorf("modsqlite: read entries: %w", err)
		}
		out = append(out, hashlist.Entry{Type: hashlist.SignalType(t), Value: v, Tags: splitTags(tags)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("modsqlite: read entries: %w", err)
	}
	return out, nil
}

// applyDiff writes d to the entries table and the change log.
func applyDiff(ctx context.Context, tx *sql.Tx, bank string, d hashlist.Delta, now int64) error {
	up, err := tx.PrepareContext(ctx, `INSERT INTO entries (bank, type, value, tags) VALUES (?, ?, ?, ?)
		ON CONFLICT (bank, type, value) DO UPDATE SET tags = excluded.tags`)
	if err != nil {
		return fmt.Errorf("modsqlite: %w", err)
	}
	defer up.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM entries WHERE bank = ? AND type = ? AND value = ?`)
	if err != nil {
		return fmt.Errorf("modsqlite: %w", err)
	}
	defer del.Close()
	logc, err := tx.PrepareContext(ctx, `INSERT INTO changes (bank, op, type, value, tags, time) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("modsqlite: %w", err)
	}
	defer logc.Close()
	for _, e := range d.Removed {
		if _, err := del.ExecContext(ctx, bank, string(e.Type), e.Value); err != nil {
			return fmt.Errorf("modsqlite: delete entry: %w", err)
		}
		if _, err := logc.ExecContext(ctx, bank, string(moderation.OpDelete), string(e.Type), e.Value, "", now); err != nil {
			return fmt.Errorf("modsqlite: log change: %w", err)
		}
	}
	for _, list := range [][]hashlist.Entry{d.Added, d.Changed} {
		for _, e := range list {
			if _, err := up.ExecContext(ctx, bank, string(e.Type), e.Value, joinTags(e.Tags)); err != nil {
				return fmt.Errorf("modsqlite: write entry: %w", err)
			}
			if _, err := logc.ExecContext(ctx, bank, string(moderation.OpUpsert), string(e.Type), e.Value, joinTags(e.Tags), now); err != nil {
				return fmt.Errorf("modsqlite: log change: %w", err)
			}
		}
	}
	if !d.Empty() {
		if _, err := tx.ExecContext(ctx, `UPDATE banks SET version = version + 1, updated = ? WHERE name = ?`, now, bank); err != nil {
			return fmt.Errorf("modsqlite: bump version: %w", err)
		}
	}
	return nil
}

// ImportBank implements moderation.Store.
func (s *Store) ImportBank(ctx context.Context, meta moderation.Bank, entries []hashlist.Entry) (moderation.Bank, hashlist.Delta, error) {
	if err := validateMeta(meta); err != nil {
		return moderation.Bank{}, hashlist.Delta{}, err
	}
	full := hashlist.Bank{Name: meta.Name, Action: meta.Action, Entries: entries}
	if err := full.Validate(); err != nil {
		return moderation.Bank{}, hashlist.Delta{}, fmt.Errorf("%w: %v", moderation.ErrBadBank, err)
	}
	var d hashlist.Delta
	now := time.Now().UnixMilli()
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := upsertMeta(ctx, tx, meta, now); err != nil {
			return err
		}
		old, err := readEntries(ctx, tx, meta.Name)
		if err != nil {
			return err
		}
		d = hashlist.Diff(old, entries)
		return applyDiff(ctx, tx, meta.Name, d, now)
	})
	if err != nil {
		return moderation.Bank{}, hashlist.Delta{}, err
	}
	b, err := s.Bank(ctx, meta.Name)
	return b, d, err
}

// ApplyDelta implements moderation.Store.
func (s *Store) ApplyDelta(ctx context.Context, meta moderation.Bank, d hashlist.Delta, checkpoint string) (moderation.Bank, error) {
	if err := validateMeta(meta); err != nil {
		return moderation.Bank{}, err
	}
	for _, list := range [][]hashlist.Entry{d.Added, d.Changed, d.Removed} {
		for i, e := range list {
			n, err := hashlist.NewEntry(e.Type, e.Value, e.Tags)
			if err != nil || n.Value != e.Value {
				return moderation.Bank{}, fmt.Errorf("%w: entry %d: %v", moderation.ErrBadBank, i+1, err)
			}
		}
	}
	now := time.Now().UnixMilli()
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := upsertMeta(ctx, tx, meta, now); err != nil {
			return err
		}
		// Normalise d against what is stored, so that re-applying a page
		// (a retried sync) logs nothing and does not bump the version.
		old, err := readEntries(ctx, tx, meta.Name)
		if err != nil {
			return err
		}
		real := hashlist.Diff(old, hashlist.Apply(old, d))
		if err := applyDiff(ctx, tx, meta.Name, real, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE banks SET checkpoint = ? WHERE name = ?`, checkpoint, meta.Name); err != nil {
			return fmt.Errorf("modsqlite: checkpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return moderation.Bank{}, err
	}
	return s.Bank(ctx, meta.Name)
}

// RemoveBank implements moderation.Store.
func (s *Store) RemoveBank(ctx context.Context, name string) error {
	now := time.Now().UnixMilli()
	return sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		old, err := readEntries(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := applyDiff(ctx, tx, name, hashlist.Delta{Removed: old}, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM banks WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("modsqlite: remove bank: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("bank %q: %w", name, moderation.ErrNotFound)
		}
		return bumpMeta(ctx, tx)
	})
}

const bankCols = `b.name, b.source, b.label, b.tags, b.action, b.version, b.checkpoint, b.updated,
	(SELECT count(*) FROM entries e WHERE e.bank = b.name)`

func scanBank(sc interface{ Scan(...any) error }) (moderation.Bank, error) {
	var b moderation.Bank
	var tags, action string
	var updated int64
	err := sc.Scan(&b.Name, &b.Source, &b.Label, &tags, &action, &b.Version, &b.Checkpoint, &updated, &b.Entries)
	b.Tags = splitTags(tags)
	b.Action = hashlist.Action(action)
	b.Updated = time.UnixMilli(updated)
	return b, err
}

// Bank implements moderation.Store.
func (s *Store) Bank(ctx context.Context, name string) (moderation.Bank, error) {
	b, err := scanBank(s.db.QueryRowContext(ctx, `SELECT `+bankCols+` FROM banks b WHERE b.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("bank %q: %w", name, moderation.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("modsqlite: read bank: %w", err)
	}
	return b, nil
}

// Banks implements moderation.Store.
func (s *Store) Banks(ctx context.Context) ([]moderation.Bank, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+bankCols+` FROM banks b ORDER BY b.name`)
	if err != nil {
		return nil, fmt.Errorf("modsqlite: list banks: %w", err)
	}
	defer rows.Close()
	var out []moderation.Bank
	for rows.Next() {
		b, err := scanBank(rows)
		if err != nil {
			return nil, fmt.Errorf("modsqlite: list banks: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Entries implements moderation.Store.
func (s *Store) Entries(ctx context.Context, bank string) ([]hashlist.Entry, error) {
	if _, err := s.Bank(ctx, bank); err != nil {
		return nil, err
	}
	return readEntries(ctx, s.db, bank)
}

// Changes implements moderation.Store.
func (s *Store) Changes(ctx context.Context, bank string, since int64, limit int) ([]moderation.Change, error) {
	limit = moderation.PageLimit(limit, 1000)
	var rows *sql.Rows
	var err error
	if bank == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT seq, bank, op, type, value, tags, time FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, since, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT seq, bank, op, type, value, tags, time FROM changes WHERE bank = ? AND seq > ? ORDER BY seq LIMIT ?`, bank, since, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modsqlite: read changes: %w", err)
	}
	defer rows.Close()
	var out []moderation.Change
	for rows.Next() {
		var c moderation.Change
		var op, t, tags string
		var ms int64
		if err := rows.Scan(&c.Seq, &c.Bank, &op, &t, &c.Entry.Value, &tags, &ms); err != nil {
			return nil, fmt.Errorf("modsqlite: read changes: %w", err)
		}
		c.Op, c.Entry.Type, c.Entry.Tags, c.Time = moderation.Op(op), hashlist.SignalType(t), splitTags(tags), time.UnixMilli(ms)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastChange implements moderation.Store.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM changes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("modsqlite: last change: %w", err)
	}
	return n.Int64, nil
}

// Position implements moderation.Store: max(seq) of an INTEGER PRIMARY KEY
// and a one-row table, two index lookups.
func (s *Store) Position(ctx context.Context) (moderation.Position, error) {
	var p moderation.Position
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT ifnull(max(seq), 0) FROM changes), (SELECT version FROM bank_meta)`).Scan(&p.Change, &p.Meta)
	if err != nil {
		return p, fmt.Errorf("modsqlite: position: %w", err)
	}
	return p, nil
}

// SetPublishToken implements moderation.Store.
func (s *Store) SetPublishToken(ctx context.Context, bank string, tokenHash []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE banks SET publish_token = ? WHERE name = ?`, tokenHash, bank)
	if err != nil {
		return fmt.Errorf("modsqlite: publish: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("bank %q: %w", bank, moderation.ErrNotFound)
	}
	return nil
}

// PublishToken implements moderation.Store.
func (s *Store) PublishToken(ctx context.Context, bank string) ([]byte, error) {
	var tok []byte
	err := s.db.QueryRowContext(ctx, `SELECT publish_token FROM banks WHERE name = ?`, bank).Scan(&tok)
	if errors.Is(err, sql.ErrNoRows) || err == nil && len(tok) == 0 {
		return nil, fmt.Errorf("bank %q not published: %w", bank, moderation.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("modsqlite: publish token: %w", err)
	}
	return tok, nil
}

// RecordDecision implements moderation.Store.
func (s *Store) RecordDecision(ctx context.Context, d moderation.Decision) (int64, error) {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.Time.UnixMilli(), d.Kind, d.Bank, string(d.Type), d.Hash, d.Distance, d.Subject, d.Actor, d.Note)
	if err != nil {
		return 0, fmt.Errorf("modsqlite: record decision: %w", err)
	}
	return res.LastInsertId()
}

// Decisions implements moderation.Store.
func (s *Store) Decisions(ctx context.Context, subject string, limit int) ([]moderation.Decision, error) {
	limit = moderation.PageLimit(limit, 100)
	const cols = `SELECT id, time, kind, bank, type, hash, distance, subject, actor, note FROM decisions`
	var rows *sql.Rows
	var err error
	if subject == "" {
		rows, err = s.db.QueryContext(ctx, cols+` ORDER BY id DESC LIMIT ?`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, cols+` WHERE subject = ? ORDER BY id DESC LIMIT ?`, subject, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modsqlite: decisions: %w", err)
	}
	defer rows.Close()
	var out []moderation.Decision
	for rows.Next() {
		var d moderation.Decision
		var ms int64
		var t string
		if err := rows.Scan(&d.ID, &ms, &d.Kind, &d.Bank, &t, &d.Hash, &d.Distance, &d.Subject, &d.Actor, &d.Note); err != nil {
			return nil, fmt.Errorf("modsqlite: decisions: %w", err)
		}
		d.Time, d.Type = time.UnixMilli(ms), hashlist.SignalType(t)
		out = append(out, d)
	}
	return out, rows.Err()
}
