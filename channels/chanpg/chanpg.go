// Package chanpg implements channels.Store on PostgreSQL with
// github.com/jackc/pgx/v5, for parleyd nodes that share one database
// ("parleyd serve --db"). Its tables live in the schema "channels" of
// that database (internal/pgdb), beside the delivery store's. Media bytes
// are stored beside their hashes (BYTEA, at most channels'
// MaxMediaBytes, 16 MiB by default), so a post and its files are written
// in one transaction, as in chansqlite; docs/scaling.md says where they
// go at a larger scale.
//
// Followers read a channel's feed with a cursor (Events since seq), so a
// channel's events must become visible in sequence order even when posts
// reach two nodes at once: every transaction that appends an event locks
// the channel's row first (SELECT ... FOR UPDATE), and takes its sequence
// number only then.
package chanpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/internal/pgdb"
)

// Schema is the PostgreSQL schema holding the store's tables.
const Schema = "channels"

// Store is a channels.Store on PostgreSQL.
type Store struct {
	pool pgdb.DB
}

var _ channels.Store = (*Store)(nil)

// migrations are applied in order; never edit one that has shipped, add
// a new one (a new column is ALTER TABLE ... ADD COLUMN with a default).
// The tables are chansqlite's in PostgreSQL's types: times are Unix
// milliseconds, text compares bytewise (COLLATE "C").
var migrations = []string{`
CREATE TABLE channels (
	id          TEXT COLLATE "C" PRIMARY KEY,
	title       TEXT NOT NULL,
	description TEXT NOT NULL,
	owner       TEXT COLLATE "C" NOT NULL,
	created     BIGINT NOT NULL
);
CREATE INDEX channels_owner ON channels (owner);
CREATE TABLE admins (
	channel TEXT COLLATE "C" NOT NULL REFERENCES channels (id),
	"user"  TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (channel, "user")
);
CREATE INDEX admins_user ON admins ("user");
CREATE TABLE followers (
	channel TEXT COLLATE "C" NOT NULL REFERENCES channels (id),
	"user"  TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (channel, "user")
);
CREATE INDEX followers_user ON followers ("user");
CREATE TABLE posts (
	id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	channel TEXT COLLATE "C" NOT NULL REFERENCES channels (id),
	author  TEXT COLLATE "C" NOT NULL,
	text    TEXT NOT NULL,
	status  TEXT NOT NULL,
	reason  TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX posts_author ON posts (author);
CREATE INDEX posts_channel ON posts (channel);
CREATE TABLE media (
	post_id      BIGINT NOT NULL REFERENCES posts (id),
	idx          INTEGER NOT NULL,
	content_type TEXT NOT NULL,
	size         BIGINT NOT NULL,
	md5          BYTEA NOT NULL,
	sha256       BYTEA NOT NULL,
	pdq          BYTEA,
	quality      INTEGER NOT NULL,
	data         BYTEA NOT NULL,
	PRIMARY KEY (post_id, idx)
);
CREATE TABLE events (
	seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	channel TEXT COLLATE "C" NOT NULL,
	kind    TEXT NOT NULL,
	post_id BIGINT NOT NULL,
	reason  TEXT NOT NULL,
	time    BIGINT NOT NULL
);
CREATE INDEX events_channel ON events (channel, seq);
CREATE TABLE meta (
	key   TEXT COLLATE "C" PRIMARY KEY,
	value BIGINT NOT NULL
);
CREATE TABLE retired_channels (
	id      TEXT COLLATE "C" PRIMARY KEY,
	retired BIGINT NOT NULL
);
`, `
ALTER TABLE media ADD COLUMN vpdq TEXT;
ALTER TABLE media ADD COLUMN tmk BYTEA;
`, `
ALTER TABLE media ADD COLUMN object TEXT COLLATE "C";
CREATE INDEX media_object ON media (object) WHERE object IS NOT NULL;
CREATE TABLE dropped_objects (
	object TEXT COLLATE "C" PRIMARY KEY
);
`}

// Options tunes Open (the pool's size, the logger); the zero value is
// fine.
type Options = pgdb.Tuning

// Open connects to the database dsn (a postgres:// URL) and applies
// pending migrations to the schema "channels", creating it if needed.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	pool, err := pgdb.Open(ctx, dsn, pgdb.Options{Schema: Schema, Migrations: migrations}.Tuned(opts))
	if err != nil {
		return nil, fmt.Errorf("chanpg: %w", err)
	}
	return &Store{pool: pgdb.DB{Pool: pool}}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.pool.Close() }

// CreateChannel implements channels.Store.
func (s *Store) CreateChannel(ctx context.Context, c channels.Channel) error {
	if err := channels.CheckChannel(c); err != nil {
		return err
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	// A deleted channel's id stays retired. Retiring takes the channel's
	// row lock (DeleteChannel), and an INSERT racing it fails on the key.
	tag, err := s.pool.Exec(ctx, `INSERT INTO channels (id, title, description, owner, created)
		SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM retired_channels WHERE id = $1)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.Title, c.Description, c.Owner, c.Created.UnixMilli())
	if err != nil {
		return fmt.Errorf("chanpg: create channel: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("channel %q: %w", c.ID, channels.ErrExists)
	}
	return nil
}

// Channel implements channels.Store.
func (s *Store) Channel(ctx context.Context, id string) (channels.Channel, error) {
	var c channels.Channel
	var created, followers int64
	err := s.pool.QueryRow(ctx, `SELECT id, title, description, owner, created,
		(SELECT count(*) FROM followers f WHERE f.channel = c.id) FROM channels c WHERE id = $1`, id).
		Scan(&c.ID, &c.Title, &c.Description, &c.Owner, &created, &followers)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("channel %q: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("chanpg: read channel: %w", err)
	}
	c.Created, c.Followers = time.UnixMilli(created), int(followers)
	c.Admins, err = queryStrings(ctx, s.pool, `SELECT "user" FROM admins WHERE channel = $1 ORDER BY "user"`, id)
	if len(c.Admins) == 0 {
		c.Admins = nil
	}
	return c, err
}

func (s *Store) setMember(ctx context.Context, table, channel, user string, on bool) error {
	if user == "" {
		return fmt.Errorf("%w: empty user", channels.ErrInvalid)
	}
	return s.pool.InTx(ctx, func(tx pgx.Tx) error {
		// The row lock keeps a concurrent DeleteChannel from leaving a
		// follower of a deleted channel.
		if err := lockChannel(ctx, tx, channel); err != nil {
			return err
		}
		q := `INSERT INTO ` + table + ` (channel, "user") VALUES ($1, $2) ON CONFLICT DO NOTHING`
		if !on {
			q = `DELETE FROM ` + table + ` WHERE channel = $1 AND "user" = $2`
		}
		if _, err := tx.Exec(ctx, q, channel, user); err != nil {
			return fmt.Errorf("chanpg: %s: %w", table, err)
		}
		return nil
	})
}

// lockChannel locks a channel's row for the transaction, or answers
// ErrNotFound. Every event of the channel is appended under it.
func lockChannel(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM channels WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("channel %q: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("chanpg: lock channel: %w", err)
	}
	return nil
}

// SetAdmin implements channels.Store.
func (s *Store) SetAdmin(ctx context.Context, channel, user string, admin bool) error {
	return s.setMember(ctx, "admins", channel, user, admin)
}

// SetFollow implements channels.Store.
func (s *Store) SetFollow(ctx context.Context, channel, user string, follow bool) error {
	return s.setMember(ctx, "followers", channel, user, follow)
}

// Owned implements channels.Store.
func (s *Store) Owned(ctx context.Context, user string) ([]string, error) {
	return queryStrings(ctx, s.pool, `SELECT id FROM channels WHERE owner = $1 ORDER BY id`, user)
}

// Following implements channels.Store.
func (s *Store) Following(ctx context.Context, user string) ([]string, error) {
	return queryStrings(ctx, s.pool, `SELECT channel FROM followers WHERE "user" = $1 ORDER BY channel`, user)
}

func encodePDQ(d *pdq.Dihedral) []byte {
	if d == nil {
		return nil
	}
	out := make([]byte, 0, pdq.Size*len(d.Hashes))
	for _, h := range d.Hashes {
		out = append(out, h[:]...)
	}
	return out
}

func decodePDQ(b []byte, quality int) *pdq.Dihedral {
	var d pdq.Dihedral
	if len(b) != pdq.Size*len(d.Hashes) {
		return nil
	}
	for i := range d.Hashes {
		copy(d.Hashes[i][:], b[i*pdq.Size:])
	}
	d.Quality = quality
	return &d
}

func appendEvent(ctx context.Context, tx pgx.Tx, channel, kind string, postID int64, reason string, now int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO events (channel, kind, post_id, reason, time) VALUES ($1, $2, $3, $4, $5)`,
		channel, kind, postID, reason, now)
	if err != nil {
		return fmt.Errorf("chanpg: append event: %w", err)
	}
	return nil
}

// AddPost implements channels.Store.
func (s *Store) AddPost(ctx context.Context, p channels.Post, data [][]byte) (channels.Post, error) {
	if err := channels.CheckPost(p, len(data)); err != nil {
		return p, err
	}
	if p.Created.IsZero() {
		p.Created = time.Now()
	}
	now := p.Created.UnixMilli()
	media := p.Media
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		p.Media = append([]channels.Media(nil), media...)
		if err := lockChannel(ctx, tx, p.Channel); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO posts (channel, author, text, status, reason, created) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			p.Channel, p.Author, p.Text, string(p.Status), p.Reason, now).Scan(&p.ID); err != nil {
			return fmt.Errorf("chanpg: add post: %w", err)
		}
		b := &pgx.Batch{}
		for i := range p.Media {
			m := &p.Media[i]
			m.Index = i
			var object any
			if m.Object != "" {
				object = m.Object
			} else {
				m.Size = int64(len(data[i]))
			}
			q := 0
			if m.PDQ != nil {
				q = m.PDQ.Quality
			}
			vp, tmk, err := channels.EncodeVideoHashes(*m)
			if err != nil {
				return fmt.Errorf("chanpg: add media: %w", err)
			}
			var vpArg any
			if vp != "" {
				vpArg = vp
			}
			b.Queue(`INSERT INTO media (post_id, idx, content_type, size, md5, sha256, pdq, quality, data, vpdq, tmk, object)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, p.ID, i, m.ContentType, m.Size, m.MD5[:], m.SHA256[:], encodePDQ(m.PDQ), q, nonNil(data[i]), vpArg, tmk, object)
		}
		if p.Status == channels.Published {
			b.Queue(`INSERT INTO events (channel, kind, post_id, reason, time) VALUES ($1, $2, $3, '', $4)`, p.Channel, channels.EventPost, p.ID, now)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("chanpg: add post: %w", err)
		}
		return nil
	})
	return p, err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readMedia(ctx context.Context, q querier, postID int64) ([]channels.Media, error) {
	rows, err := q.Query(ctx, `SELECT idx, content_type, size, md5, sha256, pdq, quality, vpdq, tmk, object FROM media WHERE post_id = $1 ORDER BY idx`, postID)
	if err != nil {
		return nil, fmt.Errorf("chanpg: read media: %w", err)
	}
	defer rows.Close()
	var out []channels.Media
	for rows.Next() {
		var m channels.Media
		var md5, sha, ph, tmk []byte
		var vp, object *string
		var idx, q int32
		if err := rows.Scan(&idx, &m.ContentType, &m.Size, &md5, &sha, &ph, &q, &vp, &tmk, &object); err != nil {
			return nil, fmt.Errorf("chanpg: read media: %w", err)
		}
		m.Index = int(idx)
		if object != nil {
			m.Object = *object
		}
		copy(m.MD5[:], md5)
		copy(m.SHA256[:], sha)
		m.PDQ = decodePDQ(ph, int(q))
		vps := ""
		if vp != nil {
			vps = *vp
		}
		if err := channels.DecodeVideoHashes(&m, vps, tmk); err != nil {
			return nil, fmt.Errorf("chanpg: read media of post %d: %w", postID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const postCols = `SELECT id, channel, author, text, status, reason, created FROM posts`

func scanPost(sc interface{ Scan(...any) error }) (channels.Post, error) {
	var p channels.Post
	var status string
	var created int64
	err := sc.Scan(&p.ID, &p.Channel, &p.Author, &p.Text, &status, &p.Reason, &created)
	p.Status, p.Created = channels.Status(status), time.UnixMilli(created)
	return p, err
}

// Post implements channels.Store.
func (s *Store) Post(ctx context.Context, id int64) (channels.Post, error) {
	p, err := scanPost(s.pool.QueryRow(ctx, postCols+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("chanpg: read post: %w", err)
	}
	p.Media, err = readMedia(ctx, s.pool, id)
	return p, err
}

// lockPost reads a post and locks its channel's row (then re-reads the
// post under the lock, as a concurrent change may have committed while
// waiting for it).
func lockPost(ctx context.Context, tx pgx.Tx, id int64) (channels.Post, error) {
	var channel string
	err := tx.QueryRow(ctx, `SELECT channel FROM posts WHERE id = $1`, id).Scan(&channel)
	if errors.Is(err, pgx.ErrNoRows) {
		return channels.Post{}, fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return channels.Post{}, fmt.Errorf("chanpg: read post: %w", err)
	}
	if err := lockChannel(ctx, tx, channel); err != nil {
		return channels.Post{}, err
	}
	p, err := scanPost(tx.QueryRow(ctx, postCols+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("chanpg: read post: %w", err)
	}
	return p, nil
}

// SetStatus implements channels.Store.
func (s *Store) SetStatus(ctx context.Context, id int64, status channels.Status, reason string) (channels.Post, bool, error) {
	if err := channels.CheckStatus(status); err != nil {
		return channels.Post{}, false, err
	}
	var p channels.Post
	var changed bool
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		changed = false
		var err error
		if p, err = lockPost(ctx, tx, id); err != nil {
			return err
		}
		if p.Status == channels.Deleted {
			return fmt.Errorf("post %d was deleted: %w", id, channels.ErrNotFound)
		}
		if p.Status == status {
			return nil
		}
		now := time.Now().UnixMilli()
		if _, err := tx.Exec(ctx, `UPDATE posts SET status = $1, reason = $2 WHERE id = $3`, string(status), reason, id); err != nil {
			return fmt.Errorf("chanpg: set status: %w", err)
		}
		switch {
		case status == channels.Published:
			err = appendEvent(ctx, tx, p.Channel, channels.EventPost, id, "", now)
		case p.Status == channels.Published:
			err = appendEvent(ctx, tx, p.Channel, channels.EventTakedown, id, reason, now)
		}
		if err != nil {
			return err
		}
		p.Status, p.Reason, changed = status, reason, true
		return nil
	})
	if err != nil {
		return channels.Post{}, false, err
	}
	p.Media, err = readMedia(ctx, s.pool, id)
	return p, changed, err
}

// DeletePost implements channels.Store.
func (s *Store) DeletePost(ctx context.Context, id int64, reason string) (channels.Post, error) {
	var p channels.Post
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		q, err := lockPost(ctx, tx, id)
		if err != nil {
			return err
		}
		p, err = deletePost(ctx, tx, q, reason, time.Now().UnixMilli())
		return err
	})
	return p, err
}

// deletePost erases p, whose channel's row the transaction has locked.
func deletePost(ctx context.Context, tx pgx.Tx, p channels.Post, reason string, now int64) (channels.Post, error) {
	if p.Status == channels.Deleted {
		return p, nil
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE posts SET status = $1, reason = $2, text = '' WHERE id = $3`, string(channels.Deleted), reason, p.ID)
	b.Queue(`INSERT INTO dropped_objects (object) SELECT object FROM media WHERE post_id = $1 AND object IS NOT NULL ON CONFLICT DO NOTHING`, p.ID)
	b.Queue(`DELETE FROM media WHERE post_id = $1`, p.ID)
	if p.Status == channels.Published {
		b.Queue(`INSERT INTO events (channel, kind, post_id, reason, time) VALUES ($1, $2, $3, $4, $5)`, p.Channel, channels.EventTakedown, p.ID, reason, now)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return p, fmt.Errorf("chanpg: delete post: %w", err)
	}
	p.Status, p.Reason, p.Text = channels.Deleted, reason, ""
	return p, nil
}

// DeleteChannel implements channels.Store.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	return s.pool.InTx(ctx, func(tx pgx.Tx) error { return deleteChannel(ctx, tx, id) })
}

func deleteChannel(ctx context.Context, tx pgx.Tx, id string) error {
	if err := lockChannel(ctx, tx, id); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, q := range []string{
		`INSERT INTO dropped_objects (object) SELECT object FROM media
			WHERE post_id IN (SELECT id FROM posts WHERE channel = $1) AND object IS NOT NULL ON CONFLICT DO NOTHING`,
		`DELETE FROM media WHERE post_id IN (SELECT id FROM posts WHERE channel = $1)`,
		`DELETE FROM posts WHERE channel = $1`,
		`DELETE FROM events WHERE channel = $1`,
		`DELETE FROM admins WHERE channel = $1`,
		`DELETE FROM followers WHERE channel = $1`,
		`DELETE FROM channels WHERE id = $1`,
	} {
		b.Queue(q, id)
	}
	b.Queue(`INSERT INTO retired_channels (id, retired) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, time.Now().UnixMilli())
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("chanpg: delete channel: %w", err)
	}
	return nil
}

// ForgetUser implements channels.Store.
func (s *Store) ForgetUser(ctx context.Context, user string) ([]string, error) {
	var owned []string
	err := s.pool.InTx(ctx, func(tx pgx.Tx) error {
		owned = nil
		ids, err := queryStrings(ctx, tx, `SELECT id FROM channels WHERE owner = $1 ORDER BY id`, user)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := deleteChannel(ctx, tx, id); err != nil {
				return err
			}
			owned = append(owned, id)
		}
		rows, err := tx.Query(ctx, `SELECT id FROM posts WHERE author = $1 AND status <> $2 ORDER BY id`, user, string(channels.Deleted))
		if err != nil {
			return fmt.Errorf("chanpg: forget user: %w", err)
		}
		posts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("chanpg: forget user: %w", err)
		}
		now := time.Now().UnixMilli()
		for _, id := range posts {
			p, err := lockPost(ctx, tx, id)
			if err != nil {
				return err
			}
			if _, err := deletePost(ctx, tx, p, "deleted with its author's account", now); err != nil {
				return err
			}
		}
		for _, q := range []string{`DELETE FROM admins WHERE "user" = $1`, `DELETE FROM followers WHERE "user" = $1`} {
			if _, err := tx.Exec(ctx, q, user); err != nil {
				return fmt.Errorf("chanpg: forget user: %w", err)
			}
		}
		return nil
	})
	return owned, err
}

// queryStrings runs a query of one text column.
func queryStrings(ctx context.Context, q querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("chanpg: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("chanpg: %w", err)
	}
	return out, nil
}

// Events implements channels.Store.
func (s *Store) Events(ctx context.Context, channel string, since int64, limit int) ([]channels.Event, error) {
	limit = channels.PageLimit(limit, 100)
	rows, err := s.pool.Query(ctx, `SELECT seq, channel, kind, post_id, reason, time FROM events
		WHERE channel = $1 AND seq > $2 ORDER BY seq LIMIT $3`, channel, since, limit)
	if err != nil {
		return nil, fmt.Errorf("chanpg: events: %w", err)
	}
	defer rows.Close()
	var out []channels.Event
	for rows.Next() {
		var e channels.Event
		var ms int64
		if err := rows.Scan(&e.Seq, &e.Channel, &e.Kind, &e.PostID, &e.Reason, &ms); err != nil {
			return nil, fmt.Errorf("chanpg: events: %w", err)
		}
		e.Time = time.UnixMilli(ms)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MediaData implements channels.Store.
func (s *Store) MediaData(ctx context.Context, postID int64, index int) ([]byte, string, error) {
	var data []byte
	var object *string
	err := s.pool.QueryRow(ctx, `SELECT data, object FROM media WHERE post_id = $1 AND idx = $2`, postID, index).Scan(&data, &object)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", fmt.Errorf("media %d/%d: %w", postID, index, channels.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("chanpg: media: %w", err)
	}
	if object != nil {
		return nil, *object, nil
	}
	return data, "", nil
}

// DroppedObjects implements channels.Store.
func (s *Store) DroppedObjects(ctx context.Context, limit int) ([]string, error) {
	out, err := queryStrings(ctx, s.pool, `SELECT object FROM dropped_objects ORDER BY object LIMIT $1`, channels.PageLimit(limit, 100))
	if err != nil {
		return nil, fmt.Errorf("chanpg: dropped objects: %w", err)
	}
	return out, nil
}

// ForgetDroppedObjects implements channels.Store.
func (s *Store) ForgetDroppedObjects(ctx context.Context, objects []string) error {
	if len(objects) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM dropped_objects WHERE object = ANY($1)`, objects); err != nil {
		return fmt.Errorf("chanpg: forget dropped objects: %w", err)
	}
	return nil
}

// ObjectInUse implements channels.Store.
func (s *Store) ObjectInUse(ctx context.Context, object string) (bool, error) {
	var used bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM media WHERE object = $1)`, object).Scan(&used); err != nil {
		return false, fmt.Errorf("chanpg: object in use: %w", err)
	}
	return used, nil
}

// StoredMedia implements channels.Store.
func (s *Store) StoredMedia(ctx context.Context, after channels.MediaRef, limit int) ([]channels.MediaRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.post_id, m.idx, m.size FROM media m JOIN posts p ON p.id = m.post_id
		WHERE (m.post_id, m.idx) > ($1, $2) AND m.object IS NULL AND p.status IN ($3, $4) ORDER BY m.post_id, m.idx LIMIT $5`,
		after.PostID, after.Index, string(channels.Published), string(channels.Held), channels.PageLimit(limit, 100))
	if err != nil {
		return nil, fmt.Errorf("chanpg: stored media: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (channels.MediaRef, error) {
		var r channels.MediaRef
		var idx int32
		err := row.Scan(&r.PostID, &idx, &r.Size)
		r.Index = int(idx)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("chanpg: stored media: %w", err)
	}
	return out, nil
}

// MoveMediaToObject implements channels.Store.
func (s *Store) MoveMediaToObject(ctx context.Context, postID int64, index int, object string) (bool, error) {
	if object == "" {
		return false, fmt.Errorf("%w: no object", channels.ErrInvalid)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE media SET object = $1, data = ''::bytea WHERE post_id = $2 AND idx = $3 AND object IS NULL
		AND post_id IN (SELECT id FROM posts WHERE status IN ($4, $5))`, object, postID, index, string(channels.Published), string(channels.Held))
	if err != nil {
		return false, fmt.Errorf("chanpg: move media: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Posts implements channels.Store.
func (s *Store) Posts(ctx context.Context, after int64, limit int, statuses ...channels.Status) ([]channels.Post, error) {
	limit = channels.PageLimit(limit, 100)
	if len(statuses) == 0 {
		return nil, nil
	}
	st := make([]string, len(statuses))
	for i, v := range statuses {
		st[i] = string(v)
	}
	return s.queryPosts(ctx, "posts", `WHERE id > $1 AND status = ANY($2) ORDER BY id LIMIT $3`, after, st, limit)
}

// PostsBy implements channels.Store.
func (s *Store) PostsBy(ctx context.Context, author string, after int64, limit int) ([]channels.Post, error) {
	return s.queryPosts(ctx, "posts by author", `WHERE author = $1 AND id > $2 ORDER BY id LIMIT $3`, author, after, channels.PageLimit(limit, 100))
}

// queryPosts reads the posts that where (a WHERE clause and what
// follows) selects, with their media; what names the query in errors.
func (s *Store) queryPosts(ctx context.Context, what, where string, args ...any) ([]channels.Post, error) {
	rows, err := s.pool.Query(ctx, postCols+" "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("chanpg: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (channels.Post, error) { return scanPost(row) })
	if err != nil {
		return nil, fmt.Errorf("chanpg: %s: %w", what, err)
	}
	for i := range out {
		if out[i].Media, err = readMedia(ctx, s.pool, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RescanCheckpoint implements channels.Store.
func (s *Store) RescanCheckpoint(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'rescan_seq'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("chanpg: rescan checkpoint: %w", err)
	}
	return v, nil
}

// SetRescanCheckpoint implements channels.Store: the checkpoint never
// moves backwards, even when two nodes set it at once.
func (s *Store) SetRescanCheckpoint(ctx context.Context, seq int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('rescan_seq', $1)
		ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, excluded.value)`, seq)
	if err != nil {
		return fmt.Errorf("chanpg: set rescan checkpoint: %w", err)
	}
	return nil
}
