// Package modpg implements moderation.Store on PostgreSQL with
// github.com/jackc/pgx/v5, for parleyd nodes that share one database
// ("parleyd serve --db"). Its tables live in the schema "moderation" of
// that database (internal/pgdb), beside the delivery store's.
//
// What SQLite serialises by having one writer, this store serialises in
// the database, never in one process: every bank change takes the row
// lock of bank_meta first, so change-log sequence numbers become visible
// in order and a node reading Changes(since) never skips one that commits
// late; filing a report takes a transaction advisory lock on the reported
// account, so that two nodes receiving reports of the same messages at
// once put them in one case; acting on a case locks its row.
package modpg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/internal/pgdb"
	"github.com/parleychat/parley/moderation"
)

// Schema is the PostgreSQL schema holding the store's tables.
const Schema = "moderation"

// Store is a moderation.Store on PostgreSQL.
type Store struct {
	pool pgdb.DB
}

var _ moderation.Store = (*Store)(nil)

// migrations are applied in order; never edit one that has shipped. The
// tables are modsqlite's in PostgreSQL's types: times are Unix
// milliseconds, text compares bytewise (COLLATE "C") as in SQLite.
var migrations = []string{`
CREATE TABLE banks (
	name          TEXT COLLATE "C" PRIMARY KEY,
	source        TEXT NOT NULL,
	label         TEXT NOT NULL,
	tags          TEXT NOT NULL,
	action        TEXT NOT NULL,
	version       BIGINT NOT NULL,
	checkpoint    TEXT NOT NULL,
	publish_token BYTEA,
	updated       BIGINT NOT NULL
);
CREATE TABLE entries (
	bank  TEXT COLLATE "C" NOT NULL REFERENCES banks (name) ON DELETE CASCADE,
	type  TEXT COLLATE "C" NOT NULL,
	value TEXT COLLATE "C" NOT NULL,
	tags  TEXT NOT NULL,
	PRIMARY KEY (bank, type, value)
);
CREATE TABLE changes (
	seq   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	bank  TEXT COLLATE "C" NOT NULL,
	op    TEXT NOT NULL,
	type  TEXT NOT NULL,
	value TEXT NOT NULL,
	tags  TEXT NOT NULL,
	time  BIGINT NOT NULL
);
CREATE INDEX changes_bank ON changes (bank, seq);
CREATE TABLE decisions (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time     BIGINT NOT NULL,
	kind     TEXT NOT NULL,
	bank     TEXT NOT NULL,
	type     TEXT NOT NULL,
	hash     TEXT NOT NULL,
	distance INTEGER NOT NULL,
	subject  TEXT COLLATE "C" NOT NULL,
	actor    TEXT NOT NULL,
	note     TEXT NOT NULL
);
CREATE INDEX decisions_subject ON decisions (subject, id);
CREATE TABLE bank_meta (
	id      INTEGER PRIMARY KEY CHECK (id = 0),
	version BIGINT NOT NULL
);
INSERT INTO bank_meta (id, version) VALUES (0, 0);
CREATE TABLE cases (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	opened   BIGINT NOT NULL,
	reported TEXT COLLATE "C" NOT NULL,
	state    TEXT NOT NULL
);
CREATE INDEX cases_state ON cases (state, id);
CREATE INDEX cases_reported ON cases (reported);
CREATE TABLE case_reports (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	case_id  BIGINT NOT NULL REFERENCES cases (id),
	reporter TEXT NOT NULL,
	reason   TEXT NOT NULL,
	note     TEXT NOT NULL,
	received BIGINT NOT NULL
);
CREATE INDEX case_reports_case ON case_reports (case_id);
CREATE TABLE case_messages (
	case_id       BIGINT NOT NULL REFERENCES cases (id),
	tag           BYTEA NOT NULL,
	conversation  BYTEA NOT NULL,
	sender_user   TEXT NOT NULL,
	sender_device TEXT NOT NULL,
	accepted      BIGINT NOT NULL,
	content       BYTEA NOT NULL,
	salt          BYTEA NOT NULL,
	frank         BYTEA NOT NULL,
	PRIMARY KEY (case_id, tag)
);
CREATE INDEX case_messages_tag ON case_messages (tag);
CREATE TABLE case_events (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	case_id   BIGINT NOT NULL REFERENCES cases (id),
	time      BIGINT NOT NULL,
	action    TEXT NOT NULL,
	moderator TEXT NOT NULL,
	reason    TEXT NOT NULL,
	until     BIGINT NOT NULL
);
CREATE INDEX case_events_case ON case_events (case_id, id);
CREATE TABLE moderators (
	name        TEXT COLLATE "C" PRIMARY KEY,
	lead        BOOLEAN NOT NULL,
	password    TEXT NOT NULL,
	totp_secret BYTEA NOT NULL,
	created     BIGINT NOT NULL
);
`, `
ALTER TABLE cases ADD COLUMN kind TEXT NOT NULL DEFAULT 'report';
ALTER TABLE cases ADD COLUMN hold TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN hold_post BIGINT NOT NULL DEFAULT 0;
CREATE INDEX cases_hold_post ON cases (hold_post, state) WHERE hold_post <> 0;
ALTER TABLE moderators ADD COLUMN removed BIGINT NOT NULL DEFAULT 0;
`, `
CREATE TABLE console_sessions (
	token_hash BYTEA PRIMARY KEY,
	moderator  TEXT COLLATE "C" NOT NULL,
	created    BIGINT NOT NULL,
	expires    BIGINT NOT NULL
);
CREATE INDEX console_sessions_moderator ON console_sessions (moderator);
CREATE INDEX console_sessions_expires ON console_sessions (expires);
`, `
ALTER TABLE moderators ADD COLUMN totp_step BIGINT NOT NULL DEFAULT 0;
CREATE TABLE console_login_failures (
	subject      TEXT PRIMARY KEY,
	window_start BIGINT NOT NULL,
	count        BIGINT NOT NULL
);
CREATE INDEX console_login_failures_window ON console_login_failures (window_start);
`}

// Options tunes Open (the pool's size, the logger); the zero value is
// fine.
type Options = pgdb.Tuning

// Open connects to the database dsn (a postgres:// URL) and applies
// pending migrations to the schema "moderation", creating it if needed.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	pool, err := pgdb.Open(ctx, dsn, pgdb.Options{Schema: Schema, Migrations: migrations}.Tuned(opts))
	if err != nil {
		return nil, fmt.Errorf("modpg: %w", err)
	}
	return &Store{pool: pgdb.DB{Pool: pool}}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.pool.Close() }

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

// lockBanks serialises every change to the banks across nodes: the
// change log's sequence numbers then commit in order.
func lockBanks(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT version FROM bank_meta WHERE id = 0 FOR UPDATE`); err != nil {
		return fmt.Errorf("modpg: lock banks: %w", err)
	}
	return nil
}

// upsertMeta writes the bank's metadata, creating it at version 0.
// Creating a bank or changing its label or action moves Position.Meta.
func upsertMeta(ctx context.Context, tx pgx.Tx, meta moderation.Bank, now int64) error {
	var label, action string
	err := tx.QueryRow(ctx, `SELECT label, action FROM banks WHERE name = $1`, meta.Name).Scan(&label, &action)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("modpg: read bank %q: %w", meta.Name, err)
	}
	if err != nil || label != meta.Label || action != string(meta.Action) {
		if err := bumpMeta(ctx, tx); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO banks (name, source, label, tags, action, version, checkpoint, updated)
		VALUES ($1, $2, $3, $4, $5, 0, '', $6)
		ON CONFLICT (name) DO UPDATE SET source = excluded.source, label = excluded.label,
			tags = excluded.tags, action = excluded.action, updated = excluded.updated`,
		meta.Name, meta.Source, meta.Label, joinTags(meta.Tags), string(meta.Action), now)
	if err != nil {
		return fmt.Errorf("modpg: write bank %q: %w", meta.Name, err)
	}
	return nil
}

func bumpMeta(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `UPDATE bank_meta SET version = version + 1`); err != nil {
		return fmt.Errorf("modpg: bump bank metadata version: %w", err)
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readEntries(ctx context.Context, q querier, bank string) ([]hashlist.Entry, error) {
	rows, err := q.Query(ctx, `SELECT type, value, tags FROM entries WHERE bank = $1 ORDER BY type, value`, bank)
	if err != nil {
		return nil, fmt.Errorf("modpg: read entries: %w", err)
	}
	defer rows.Close()
	var out []hashlist.Entry
	for rows.Next() {
		var t, v, tags string
		if err := rows.Scan(&t, &v, &tags); err != nil {
			return nil, fmt.Errorf("modpg: read entries: %w", err)
		}
		out = append(out, hashlist.Entry{Type: hashlist.SignalType(t), Value: v, Tags: splitTags(tags)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("modpg: read entries: %w", err)
	}
	return out, nil
}

// applyDiff writes d to the entries table and the change log, in one
// pipelined batch.
func applyDiff(ctx context.Context, tx pgx.Tx, bank string, d hashlist.Delta, now int64) error {
	if d.Empty() {
		return nil
	}
	b := &pgx.Batch{}
	for _, e := range d.Removed {
		b.Queue(`DELETE FROM entries WHERE bank = $1 AND type = $2 AND value = $3`, bank, string(e.Type), e.Value)
		b.Queue(`INSERT INTO changes (bank, op, type, value, tags, time) VALUES ($1, $2, $3, $4, '', $5)`,
			bank, string(moderation.OpDelete), string(e.Type), e.Value, now)
	}
	for _, list := range [][]hashlist.Entry{d.Added, d.Changed} {
		for _, e := range list {
			b.Queue(`INSERT INTO entries (bank, type, value, tags) VALUES ($1, $2, $3, $4)
				ON CONFLICT (bank, type, value) DO UPDATE SET tags = excluded.tags`, bank, string(e.Type), e.Value, joinTags(e.Tags))
			b.Queue(`INSERT INTO changes (bank, op, type, value, tags, time) VALUES ($1, $2, $3, $4, $5, $6)`,
				bank, string(moderation.OpUpsert), string(e.Type), e.Value, joinTags(e.Tags), now)
		}
	}
	b.Queue(`UPDATE banks SET version = version + 1, updated = $1 WHERE name = $2`, now, bank)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("modpg: write entries: %w", err)
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
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		if err := lockBanks(ctx, tx); err != nil {
			return err
		}
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
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		if err := lockBanks(ctx, tx); err != nil {
			return err
		}
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
		if _, err := tx.Exec(ctx, `UPDATE banks SET checkpoint = $1 WHERE name = $2`, checkpoint, meta.Name); err != nil {
			return fmt.Errorf("modpg: checkpoint: %w", err)
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
	return s.pool.InTx(ctx, func(tx pgx.Tx) error {
		if err := lockBanks(ctx, tx); err != nil {
			return err
		}
		old, err := readEntries(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := applyDiff(ctx, tx, name, hashlist.Delta{Removed: old}, now); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM banks WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("modpg: remove bank: %w", err)
		}
		if tag.RowsAffected() == 0 {
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
	var updated, entries int64
	err := sc.Scan(&b.Name, &b.Source, &b.Label, &tags, &action, &b.Version, &b.Checkpoint, &updated, &entries)
	b.Tags = splitTags(tags)
	b.Action = hashlist.Action(action)
	b.Updated = time.UnixMilli(updated)
	b.Entries = int(entries)
	return b, err
}

// Bank implements moderation.Store.
func (s *Store) Bank(ctx context.Context, name string) (moderation.Bank, error) {
	b, err := scanBank(s.pool.QueryRow(ctx, `SELECT `+bankCols+` FROM banks b WHERE b.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("bank %q: %w", name, moderation.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("modpg: read bank: %w", err)
	}
	return b, nil
}

// Banks implements moderation.Store.
func (s *Store) Banks(ctx context.Context) ([]moderation.Bank, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+bankCols+` FROM banks b ORDER BY b.name`)
	if err != nil {
		return nil, fmt.Errorf("modpg: list banks: %w", err)
	}
	defer rows.Close()
	var out []moderation.Bank
	for rows.Next() {
		b, err := scanBank(rows)
		if err != nil {
			return nil, fmt.Errorf("modpg: list banks: %w", err)
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
	return readEntries(ctx, s.pool, bank)
}

// Changes implements moderation.Store.
func (s *Store) Changes(ctx context.Context, bank string, since int64, limit int) ([]moderation.Change, error) {
	limit = moderation.PageLimit(limit, 1000)
	var rows pgx.Rows
	var err error
	if bank == "" {
		rows, err = s.pool.Query(ctx, `SELECT seq, bank, op, type, value, tags, time FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, since, limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT seq, bank, op, type, value, tags, time FROM changes WHERE bank = $1 AND seq > $2 ORDER BY seq LIMIT $3`, bank, since, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modpg: read changes: %w", err)
	}
	defer rows.Close()
	var out []moderation.Change
	for rows.Next() {
		var c moderation.Change
		var op, t, tags string
		var ms int64
		if err := rows.Scan(&c.Seq, &c.Bank, &op, &t, &c.Entry.Value, &tags, &ms); err != nil {
			return nil, fmt.Errorf("modpg: read changes: %w", err)
		}
		c.Op, c.Entry.Type, c.Entry.Tags, c.Time = moderation.Op(op), hashlist.SignalType(t), splitTags(tags), time.UnixMilli(ms)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastChange implements moderation.Store.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM changes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("modpg: last change: %w", err)
	}
	return n, nil
}

// Position implements moderation.Store: max(seq) of the primary key and a
// one-row table, two index lookups in one round trip.
func (s *Store) Position(ctx context.Context) (moderation.Position, error) {
	var p moderation.Position
	err := s.pool.QueryRow(ctx, `SELECT (SELECT COALESCE(max(seq), 0) FROM changes), (SELECT version FROM bank_meta WHERE id = 0)`).Scan(&p.Change, &p.Meta)
	if err != nil {
		return p, fmt.Errorf("modpg: position: %w", err)
	}
	return p, nil
}

// SetPublishToken implements moderation.Store.
func (s *Store) SetPublishToken(ctx context.Context, bank string, tokenHash []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE banks SET publish_token = $1 WHERE name = $2`, tokenHash, bank)
	if err != nil {
		return fmt.Errorf("modpg: publish: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("bank %q: %w", bank, moderation.ErrNotFound)
	}
	return nil
}

// PublishToken implements moderation.Store.
func (s *Store) PublishToken(ctx context.Context, bank string) ([]byte, error) {
	var tok []byte
	err := s.pool.QueryRow(ctx, `SELECT publish_token FROM banks WHERE name = $1`, bank).Scan(&tok)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && len(tok) == 0 {
		return nil, fmt.Errorf("bank %q not published: %w", bank, moderation.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("modpg: publish token: %w", err)
	}
	return tok, nil
}

// RecordDecision implements moderation.Store.
func (s *Store) RecordDecision(ctx context.Context, d moderation.Decision) (int64, error) {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO decisions (time, kind, bank, type, hash, distance, subject, actor, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		d.Time.UnixMilli(), d.Kind, d.Bank, string(d.Type), d.Hash, d.Distance, d.Subject, d.Actor, d.Note).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("modpg: record decision: %w", err)
	}
	return id, nil
}

// Decisions implements moderation.Store.
func (s *Store) Decisions(ctx context.Context, subject string, limit int) ([]moderation.Decision, error) {
	limit = moderation.PageLimit(limit, 100)
	const cols = `SELECT id, time, kind, bank, type, hash, distance, subject, actor, note FROM decisions`
	var rows pgx.Rows
	var err error
	if subject == "" {
		rows, err = s.pool.Query(ctx, cols+` ORDER BY id DESC LIMIT $1`, limit)
	} else {
		rows, err = s.pool.Query(ctx, cols+` WHERE subject = $1 ORDER BY id DESC LIMIT $2`, subject, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("modpg: decisions: %w", err)
	}
	defer rows.Close()
	var out []moderation.Decision
	for rows.Next() {
		var d moderation.Decision
		var ms int64
		var t string
		var dist int32
		if err := rows.Scan(&d.ID, &ms, &d.Kind, &d.Bank, &t, &d.Hash, &dist, &d.Subject, &d.Actor, &d.Note); err != nil {
			return nil, fmt.Errorf("modpg: decisions: %w", err)
		}
		d.Time, d.Type, d.Distance = time.UnixMilli(ms), hashlist.SignalType(t), int(dist)
		out = append(out, d)
	}
	return out, rows.Err()
}
