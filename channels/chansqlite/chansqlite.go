// Package chansqlite implements channels.Store on SQLite with the pure-Go
// modernc.org/sqlite driver (by convention in DATA/channels.db). Media bytes
// are stored in the database beside their hashes, so a post and its files
// are written in one transaction.
package chansqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/internal/sqlitedb"
)

// Store is a channels.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var _ channels.Store = (*Store)(nil)

// migrations are applied in order; never edit one that has shipped.
var migrations = []string{`
CREATE TABLE channels (
	id          TEXT PRIMARY KEY,
	title       TEXT NOT NULL,
	description TEXT NOT NULL,
	owner       TEXT NOT NULL,
	created     INTEGER NOT NULL
) STRICT;
CREATE TABLE admins (
	channel TEXT NOT NULL REFERENCES channels(id),
	user    TEXT NOT NULL,
	PRIMARY KEY (channel, user)
) STRICT, WITHOUT ROWID;
CREATE TABLE followers (
	channel TEXT NOT NULL REFERENCES channels(id),
	user    TEXT NOT NULL,
	PRIMARY KEY (channel, user)
) STRICT, WITHOUT ROWID;
CREATE INDEX followers_user ON followers (user);
CREATE TABLE posts (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	channel TEXT NOT NULL REFERENCES channels(id),
	author  TEXT NOT NULL,
	text    TEXT NOT NULL,
	status  TEXT NOT NULL,
	reason  TEXT NOT NULL,
	created INTEGER NOT NULL
) STRICT;
CREATE TABLE media (
	post_id      INTEGER NOT NULL REFERENCES posts(id),
	idx          INTEGER NOT NULL,
	content_type TEXT NOT NULL,
	size         INTEGER NOT NULL,
	md5          BLOB NOT NULL,
	sha256       BLOB NOT NULL,
	pdq          BLOB,
	quality      INTEGER NOT NULL,
	data         BLOB NOT NULL,
	PRIMARY KEY (post_id, idx)
) STRICT;
CREATE TABLE events (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	channel TEXT NOT NULL,
	kind    TEXT NOT NULL,
	post_id INTEGER NOT NULL,
	reason  TEXT NOT NULL,
	time    INTEGER NOT NULL
) STRICT;
CREATE INDEX events_channel ON events (channel, seq);
`, `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;
`, `
CREATE TABLE retired_channels (
	id      TEXT PRIMARY KEY,
	retired INTEGER NOT NULL
) STRICT;
CREATE INDEX posts_author ON posts (author);
CREATE INDEX posts_channel ON posts (channel);
`, `
ALTER TABLE media ADD COLUMN vpdq TEXT;
ALTER TABLE media ADD COLUMN tmk BLOB;
`, `
ALTER TABLE media ADD COLUMN object TEXT;
CREATE INDEX media_object ON media (object) WHERE object IS NOT NULL;
CREATE TABLE dropped_objects (
	object TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
`}

// Open opens (creating with mode 0600 if needed) the database at path and
// applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Migrations: migrations})
	if err != nil {
		return nil, fmt.Errorf("chansqlite: %w", err)
	}
	return &Store{db: db}, nil
}

// OpenExisting opens the database at path like Open, but only if it
// exists with its schema: it never creates one, and fails with an error
// wrapping sqlitedb.ErrNoDatabase instead. The admin commands use it.
func OpenExisting(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Migrations: migrations, NoCreate: true})
	if err != nil {
		return nil, fmt.Errorf("chansqlite: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// CreateChannel implements channels.Store.
func (s *Store) CreateChannel(ctx context.Context, c channels.Channel) error {
	if err := channels.CheckChannel(c); err != nil {
		return err
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	// A deleted channel's id stays retired.
	res, err := s.db.ExecContext(ctx, `INSERT INTO channels (id, title, description, owner, created)
		SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM retired_channels WHERE id = ?)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.Title, c.Description, c.Owner, c.Created.UnixMilli(), c.ID)
	if err != nil {
		return fmt.Errorf("chansqlite: create channel: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("channel %q: %w", c.ID, channels.ErrExists)
	}
	return nil
}

// Channel implements channels.Store.
func (s *Store) Channel(ctx context.Context, id string) (channels.Channel, error) {
	var c channels.Channel
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, title, description, owner, created,
		(SELECT count(*) FROM followers f WHERE f.channel = c.id) FROM channels c WHERE id = ?`, id).
		Scan(&c.ID, &c.Title, &c.Description, &c.Owner, &created, &c.Followers)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("channel %q: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("chansqlite: read channel: %w", err)
	}
	c.Created = time.UnixMilli(created)
	rows, err := s.db.QueryContext(ctx, `SELECT user FROM admins WHERE channel = ? ORDER BY user`, id)
	if err != nil {
		return c, fmt.Errorf("chansqlite: read admins: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return c, fmt.Errorf("chansqlite: read admins: %w", err)
		}
		c.Admins = append(c.Admins, u)
	}
	return c, rows.Err()
}

func (s *Store) setMember(ctx context.Context, table, channel, user string, on bool) error {
	if user == "" {
		return fmt.Errorf("%w: empty user", channels.ErrInvalid)
	}
	if _, err := s.Channel(ctx, channel); err != nil {
		return err
	}
	q := `INSERT INTO ` + table + ` (channel, user) VALUES (?, ?) ON CONFLICT DO NOTHING`
	if !on {
		q = `DELETE FROM ` + table + ` WHERE channel = ? AND user = ?`
	}
	if _, err := s.db.ExecContext(ctx, q, channel, user); err != nil {
		return fmt.Errorf("chansqlite: %s: %w", table, err)
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
	out, err := queryStrings(ctx, s.db, `SELECT id FROM channels WHERE owner = ? ORDER BY id`, user)
	if err != nil {
		return nil, fmt.Errorf("owned: %w", err)
	}
	return out, nil
}

// Following implements channels.Store.
func (s *Store) Following(ctx context.Context, user string) ([]string, error) {
	out, err := queryStrings(ctx, s.db, `SELECT channel FROM followers WHERE user = ? ORDER BY channel`, user)
	if err != nil {
		return nil, fmt.Errorf("following: %w", err)
	}
	return out, nil
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

func appendEvent(ctx context.Context, tx *sql.Tx, channel, kind string, postID int64, reason string, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (channel, kind, post_id, reason, time) VALUES (?, ?, ?, ?, ?)`,
		channel, kind, postID, reason, now)
	if err != nil {
		return fmt.Errorf("chansqlite: append event: %w", err)
	}
	return nil
}

// AddPost implements channels.Store.
func (s *Store) AddPost(ctx context.Context, p channels.Post, data [][]byte) (channels.Post, error) {
	if err := channels.CheckPost(p, len(data)); err != nil {
		return p, err
	}
	if _, err := s.Channel(ctx, p.Channel); err != nil {
		return p, err
	}
	if p.Created.IsZero() {
		p.Created = time.Now()
	}
	now := p.Created.UnixMilli()
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO posts (channel, author, text, status, reason, created) VALUES (?, ?, ?, ?, ?, ?)`,
			p.Channel, p.Author, p.Text, string(p.Status), p.Reason, now)
		if err != nil {
			return fmt.Errorf("chansqlite: add post: %w", err)
		}
		if p.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("chansqlite: add post: %w", err)
		}
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
				return fmt.Errorf("chansqlite: add media: %w", err)
			}
			body := data[i]
			if body == nil {
				body = []byte{}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO media (post_id, idx, content_type, size, md5, sha256, pdq, quality, data, vpdq, tmk, object)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, i, m.ContentType, m.Size, m.MD5[:], m.SHA256[:], encodePDQ(m.PDQ), q, body, vp, tmk, object)
			if err != nil {
				return fmt.Errorf("chansqlite: add media: %w", err)
			}
		}
		if p.Status == channels.Published {
			return appendEvent(ctx, tx, p.Channel, channels.EventPost, p.ID, "", now)
		}
		return nil
	})
	return p, err
}

func (s *Store) media(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, postID int64) ([]channels.Media, error) {
	rows, err := q.QueryContext(ctx, `SELECT idx, content_type, size, md5, sha256, pdq, quality, vpdq, tmk, object FROM media WHERE post_id = ? ORDER BY idx`, postID)
	if err != nil {
		return nil, fmt.Errorf("chansqlite: read media: %w", err)
	}
	defer rows.Close()
	var out []channels.Media
	for rows.Next() {
		var m channels.Media
		var md5, sha, ph, tmk []byte
		var vp, object sql.NullString
		var q int
		if err := rows.Scan(&m.Index, &m.ContentType, &m.Size, &md5, &sha, &ph, &q, &vp, &tmk, &object); err != nil {
			return nil, fmt.Errorf("chansqlite: read media: %w", err)
		}
		copy(m.MD5[:], md5)
		copy(m.SHA256[:], sha)
		m.Object = object.String
		m.PDQ = decodePDQ(ph, q)
		if err := channels.DecodeVideoHashes(&m, vp.String, tmk); err != nil {
			return nil, fmt.Errorf("chansqlite: read media of post %d: %w", postID, err)
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
	p, err := scanPost(s.db.QueryRowContext(ctx, postCols+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("chansqlite: read post: %w", err)
	}
	p.Media, err = s.media(ctx, s.db, id)
	return p, err
}

// SetStatus implements channels.Store.
func (s *Store) SetStatus(ctx context.Context, id int64, status channels.Status, reason string) (channels.Post, bool, error) {
	if err := channels.CheckStatus(status); err != nil {
		return channels.Post{}, false, err
	}
	var p channels.Post
	changed := false
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		p, err = scanPost(tx.QueryRowContext(ctx, postCols+` WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("chansqlite: read post: %w", err)
		}
		if p.Status == channels.Deleted {
			return fmt.Errorf("post %d was deleted: %w", id, channels.ErrNotFound)
		}
		if p.Status == status {
			return nil
		}
		now := time.Now().UnixMilli()
		if _, err := tx.ExecContext(ctx, `UPDATE posts SET status = ?, reason = ? WHERE id = ?`, string(status), reason, id); err != nil {
			return fmt.Errorf("chansqlite: set status: %w", err)
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
	p.Media, err = s.media(ctx, s.db, id)
	return p, changed, err
}

// DeletePost implements channels.Store.
func (s *Store) DeletePost(ctx context.Context, id int64, reason string) (channels.Post, error) {
	var p channels.Post
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) (err error) {
		p, err = deletePost(ctx, tx, id, reason, time.Now().UnixMilli())
		return err
	})
	return p, err
}

func deletePost(ctx context.Context, tx *sql.Tx, id int64, reason string, now int64) (channels.Post, error) {
	p, err := scanPost(tx.QueryRowContext(ctx, postCols+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("post %d: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("chansqlite: read post: %w", err)
	}
	if p.Status == channels.Deleted {
		return p, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE posts SET status = ?, reason = ?, text = '' WHERE id = ?`, string(channels.Deleted), reason, id); err != nil {
		return p, fmt.Errorf("chansqlite: delete post: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dropped_objects (object) SELECT object FROM media WHERE post_id = ? AND object IS NOT NULL ON CONFLICT DO NOTHING`, id); err != nil {
		return p, fmt.Errorf("chansqlite: delete post media: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM media WHERE post_id = ?`, id); err != nil {
		return p, fmt.Errorf("chansqlite: delete post media: %w", err)
	}
	if p.Status == channels.Published {
		if err := appendEvent(ctx, tx, p.Channel, channels.EventTakedown, id, reason, now); err != nil {
			return p, err
		}
	}
	p.Status, p.Reason, p.Text = channels.Deleted, reason, ""
	return p, nil
}

// DeleteChannel implements channels.Store.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	return sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error { return deleteChannel(ctx, tx, id) })
}

func deleteChannel(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM channels WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("channel %q: %w", id, channels.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("chansqlite: delete channel: %w", err)
	}
	for _, q := range []string{
		`INSERT INTO dropped_objects (object) SELECT object FROM media
			WHERE post_id IN (SELECT id FROM posts WHERE channel = ?) AND object IS NOT NULL ON CONFLICT DO NOTHING`,
		`DELETE FROM media WHERE post_id IN (SELECT id FROM posts WHERE channel = ?)`,
		`DELETE FROM posts WHERE channel = ?`,
		`DELETE FROM events WHERE channel = ?`,
		`DELETE FROM admins WHERE channel = ?`,
		`DELETE FROM followers WHERE channel = ?`,
		`DELETE FROM channels WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("chansqlite: delete channel: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO retired_channels (id, retired) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("chansqlite: retire channel id: %w", err)
	}
	return nil
}

// ForgetUser implements channels.Store.
func (s *Store) ForgetUser(ctx context.Context, user string) ([]string, error) {
	var owned []string
	err := sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		owned = nil
		ids, err := queryStrings(ctx, tx, `SELECT id FROM channels WHERE owner = ? ORDER BY id`, user)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := deleteChannel(ctx, tx, id); err != nil {
				return err
			}
			owned = append(owned, id)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM posts WHERE author = ? AND status != ?`, user, string(channels.Deleted))
		if err != nil {
			return fmt.Errorf("chansqlite: forget user: %w", err)
		}
		var posts []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("chansqlite: forget user: %w", err)
			}
			posts = append(posts, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("chansqlite: forget user: %w", err)
		}
		now := time.Now().UnixMilli()
		for _, id := range posts {
			if _, err := deletePost(ctx, tx, id, "deleted with its author's account", now); err != nil {
				return err
			}
		}
		for _, q := range []string{`DELETE FROM admins WHERE user = ?`, `DELETE FROM followers WHERE user = ?`} {
			if _, err := tx.ExecContext(ctx, q, user); err != nil {
				return fmt.Errorf("chansqlite: forget user: %w", err)
			}
		}
		return nil
	})
	return owned, err
}

// queryStrings runs a query of one text column on a database or in a
// transaction.
func queryStrings(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chansqlite: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("chansqlite: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Events implements channels.Store.
func (s *Store) Events(ctx context.Context, channel string, since int64, limit int) ([]channels.Event, error) {
	limit = channels.PageLimit(limit, 100)
	rows, err := s.db.QueryContext(ctx, `SELECT seq, channel, kind, post_id, reason, time FROM events
		WHERE channel = ? AND seq > ? ORDER BY seq LIMIT ?`, channel, since, limit)
	if err != nil {
		return nil, fmt.Errorf("chansqlite: events: %w", err)
	}
	defer rows.Close()
	var out []channels.Event
	for rows.Next() {
		var e channels.Event
		var ms int64
		if err := rows.Scan(&e.Seq, &e.Channel, &e.Kind, &e.PostID, &e.Reason, &ms); err != nil {
			return nil, fmt.Errorf("chansqlite: events: %w", err)
		}
		e.Time = time.UnixMilli(ms)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MediaData implements channels.Store.
func (s *Store) MediaData(ctx context.Context, postID int64, index int) ([]byte, string, error) {
	var data []byte
	var object sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT data, object FROM media WHERE post_id = ? AND idx = ?`, postID, index).Scan(&data, &object)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("media %d/%d: %w", postID, index, channels.ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("chansqlite: media: %w", err)
	}
	if object.Valid {
		return nil, object.String, nil
	}
	return data, "", nil
}

// DroppedObjects implements channels.Store.
func (s *Store) DroppedObjects(ctx context.Context, limit int) ([]string, error) {
	out, err := queryStrings(ctx, s.db, `SELECT object FROM dropped_objects ORDER BY object LIMIT ?`, channels.PageLimit(limit, 100))
	if err != nil {
		return nil, fmt.Errorf("chansqlite: dropped objects: %w", err)
	}
	return out, nil
}

// ForgetDroppedObjects implements channels.Store.
func (s *Store) ForgetDroppedObjects(ctx context.Context, objects []string) error {
	return sqlitedb.WithTx(ctx, s.db, func(tx *sql.Tx) error {
		for _, o := range objects {
			if _, err := tx.ExecContext(ctx, `DELETE FROM dropped_objects WHERE object = ?`, o); err != nil {
				return fmt.Errorf("chansqlite: forget dropped objects: %w", err)
			}
		}
		return nil
	})
}

// ObjectInUse implements channels.Store.
func (s *Store) ObjectInUse(ctx context.Context, object string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM media WHERE object = ? LIMIT 1`, object).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("chansqlite: object in use: %w", err)
	}
	return true, nil
}

// StoredMedia implements channels.Store.
func (s *Store) StoredMedia(ctx context.Context, after channels.MediaRef, limit int) ([]channels.MediaRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.post_id, m.idx, m.size FROM media m JOIN posts p ON p.id = m.post_id
		WHERE (m.post_id, m.idx) > (?, ?) AND m.object IS NULL AND p.status IN (?, ?) ORDER BY m.post_id, m.idx LIMIT ?`,
		after.PostID, after.Index, string(channels.Published), string(channels.Held), channels.PageLimit(limit, 100))
	if err != nil {
		return nil, fmt.Errorf("chansqlite: stored media: %w", err)
	}
	defer rows.Close()
	var out []channels.MediaRef
	for rows.Next() {
		var r channels.MediaRef
		if err := rows.Scan(&r.PostID, &r.Index, &r.Size); err != nil {
			return nil, fmt.Errorf("chansqlite: stored media: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MoveMediaToObject implements channels.Store.
func (s *Store) MoveMediaToObject(ctx context.Context, postID int64, index int, object string) (bool, error) {
	if object == "" {
		return false, fmt.Errorf("%w: no object", channels.ErrInvalid)
	}
	r, err := s.db.ExecContext(ctx, `UPDATE media SET object = ?, data = X'' WHERE post_id = ? AND idx = ? AND object IS NULL
		AND post_id IN (SELECT id FROM posts WHERE status IN (?, ?))`, object, postID, index, string(channels.Published), string(channels.Held))
	if err != nil {
		return false, fmt.Errorf("chansqlite: move media: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("chansqlite: move media: %w", err)
	}
	return n == 1, nil
}

// Posts implements channels.Store.
func (s *Store) Posts(ctx context.Context, after int64, limit int, statuses ...channels.Status) ([]channels.Post, error) {
	limit = channels.PageLimit(limit, 100)
	if len(statuses) == 0 {
		return nil, nil
	}
	args := []any{after}
	marks := make([]string, len(statuses))
	for i, st := range statuses {
		marks[i] = "?"
		args = append(args, string(st))
	}
	args = append(args, limit)
	return s.queryPosts(ctx, "posts", `WHERE id > ? AND status IN (`+strings.Join(marks, ",")+`) ORDER BY id LIMIT ?`, args...)
}

// PostsBy implements channels.Store.
func (s *Store) PostsBy(ctx context.Context, author string, after int64, limit int) ([]channels.Post, error) {
	return s.queryPosts(ctx, "posts by author", `WHERE author = ? AND id > ? ORDER BY id LIMIT ?`, author, after, channels.PageLimit(limit, 100))
}

// queryPosts reads the posts that where (a WHERE clause and what
// follows) selects, with their media; what names the query in errors.
func (s *Store) queryPosts(ctx context.Context, what, where string, args ...any) ([]channels.Post, error) {
	rows, err := s.db.QueryContext(ctx, postCols+" "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("chansqlite: %s: %w", what, err)
	}
	var out []channels.Post
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("chansqlite: %s: %w", what, err)
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chansqlite: %s: %w", what, err)
	}
	// One connection: read media after closing the posts cursor.
	for i := range out {
		if out[i].Media, err = s.media(ctx, s.db, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RescanCheckpoint implements channels.Store.
func (s *Store) RescanCheckpoint(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'rescan_seq'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("chansqlite: rescan checkpoint: %w", err)
	}
	return v, nil
}

// SetRescanCheckpoint implements channels.Store.
func (s *Store) SetRescanCheckpoint(ctx context.Context, seq int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('rescan_seq', ?)
		ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)`, seq)
	if err != nil {
		return fmt.Errorf("chansqlite: set rescan checkpoint: %w", err)
	}
	return nil
}
