// Package channels implements Parley's public channels: broadcast pages that
// an owner and the admins the owner names post to and that anyone can
// follow and read. Channels are public and NOT end-to-end encrypted — unlike
// Parley's private chats (MLS), the server stores and serves their content
// in the clear, so it takes a publisher's responsibility for it: every media
// upload is hashed (PDQ for images, MD5 and SHA-256 of the bytes) and matched
// against the hash banks of package moderation before it is published, and
// published posts are checked again when banks gain hashes.
//
// The HTTP API (Service.Handler) is described in docs/channels.md. Followers
// receive posts and takedowns by long-polling an event feed with a cursor,
// which also serves reconnects.
package channels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/parleychat/parley/channels/channelapi"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

// PublicNotice is shown by every client beside channel content.
const PublicNotice = channelapi.PublicNotice

// Errors that callers branch on with errors.Is.
var (
	ErrNotFound     = channelapi.ErrNotFound
	ErrExists       = errors.New("channels: already exists")
	ErrInvalid      = errors.New("channels: invalid request")
	ErrForbidden    = errors.New("channels: not allowed")
	ErrUnauthorized = errors.New("channels: not authenticated")
	// ErrMediaStorage: the object store holding media files
	// (Config.MediaObjects) failed; nothing was stored, and the client
	// may retry later.
	ErrMediaStorage = errors.New("channels: the media files' storage is unavailable")
)

// Authenticator tells the channel API who is calling. The server plugs in
// its device authentication; tests use a fake.
type Authenticator interface {
	// Authenticate returns the calling user, or an error (wrapping
	// ErrUnauthorized for a missing or bad credential).
	Authenticate(r *http.Request) (user string, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(*http.Request) (string, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (string, error) { return f(r) }

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{1,63}$`)

// ValidID reports whether id is a valid channel id: 2 to 64 characters of
// a-z, 0-9, '_' and '-', starting with a letter or digit.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// The checks every Store makes of its arguments before it writes, so
// that the backends refuse the same input with the same ErrInvalid.

// CheckChannel is CreateChannel's: a valid id and an owner.
func CheckChannel(c Channel) error {
	if !ValidID(c.ID) || c.Owner == "" {
		return fmt.Errorf("%w: channel id %q or owner", ErrInvalid, c.ID)
	}
	return nil
}

// CheckStatus is SetStatus's: one of the statuses a post can have.
func CheckStatus(status Status) error {
	switch status {
	case Published, Held, Removed:
		return nil
	}
	return fmt.Errorf("%w: status %q", ErrInvalid, status)
}

// CheckPost is AddPost's: a media description for each of the files,
// and a valid status.
func CheckPost(p Post, files int) error {
	if files != len(p.Media) {
		return fmt.Errorf("%w: %d media descriptions for %d files", ErrInvalid, len(p.Media), files)
	}
	return CheckStatus(p.Status)
}

// Channel is a public channel (its JSON shape is channelapi's).
type Channel = channelapi.Channel

// Status is where a post is in moderation.
type Status = channelapi.Status

// The states of a post.
const (
	Published = channelapi.Published
	Held      = channelapi.Held
	Removed   = channelapi.Removed
	Deleted   = channelapi.Deleted
)

// Media is one stored file of a post and its hashes.
type Media struct {
	Index       int    `json:"index"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	MD5         [16]byte
	SHA256      [32]byte
	// PDQ holds the dihedral PDQ hashes of an image; nil otherwise.
	PDQ *pdq.Dihedral `json:"-"`
	// VPDQ (one frame a second) and TMK are a video's hashes; nil
	// otherwise.
	VPDQ []video.Feature `json:"-"`
	TMK  *video.TMK      `json:"-"`
	// VPDQBorderless are the video's vPDQ hashes with uniform borders
	// cut off (Config.VideoRemoveBorders; video.Hashes.VPDQBorderless).
	// They are used when the upload is checked and not stored, so a
	// later list change re-checks the video by VPDQ only.
	VPDQBorderless [][]video.Feature `json:"-"`
	// PDQVariants are the dihedral PDQ hashes of the image's normalised
	// variants (Config.ImageVariants; hashing/variants), used like
	// VPDQBorderless when the upload is checked and not stored.
	PDQVariants []pdq.Dihedral `json:"-"`
	// Object, if not empty, names the object holding the file's bytes in
	// the Service's MediaObjects (an S3 bucket); the Store then holds
	// the hashes alone. Empty: the Store holds the bytes.
	Object string `json:"-"`
}

// Post is a channel post.
type Post struct {
	ID      int64     `json:"id"`
	Channel string    `json:"channel"`
	Author  string    `json:"author"`
	Text    string    `json:"text,omitempty"`
	Media   []Media   `json:"media,omitempty"`
	Status  Status    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
}

// Event kinds in a channel's feed.
const (
	EventPost     = channelapi.EventPost
	EventTakedown = channelapi.EventTakedown
)

// Event is one record of a channel's feed.
type Event struct {
	Seq     int64
	Channel string
	Kind    string
	PostID  int64
	Reason  string
	Time    time.Time
}

// Store is the persistent state of channels. Every method is atomic. The
// contract suite is in package chantest.
type Store interface {
	// CreateChannel stores a new channel (ErrExists if the id is taken).
	CreateChannel(ctx context.Context, c Channel) error
	// Channel returns a channel with its admins and follower count.
	Channel(ctx context.Context, id string) (Channel, error)
	SetAdmin(ctx context.Context, channel, user string, admin bool) error
	SetFollow(ctx context.Context, channel, user string, follow bool) error
	// Following returns the channels user follows.
	Following(ctx context.Context, user string) ([]string, error)
	// Owned returns the channels user owns (not deleted), sorted.
	Owned(ctx context.Context, user string) ([]string, error)
	// AddPost stores p with its media bytes (data[i] for p.Media[i]; nil
	// for a file whose Media.Object holds it elsewhere), assigning ID and
	// Created; a published post also gets a post event.
	AddPost(ctx context.Context, p Post, data [][]byte) (Post, error)
	Post(ctx context.Context, id int64) (Post, error)
	// SetStatus moves a post to status with a reason. Becoming visible
	// appends a post event; stopping being visible appends a takedown
	// event. changed is false (and nothing is written) if the post
	// already had that status.
	SetStatus(ctx context.Context, id int64, status Status, reason string) (p Post, changed bool, err error)
	// DeletePost erases a post's text and media and marks it Deleted
	// (final: SetStatus refuses to change it again). A post that was
	// visible gets a takedown event with reason. Deleting a deleted post
	// changes nothing.
	DeletePost(ctx context.Context, id int64, reason string) (Post, error)
	// DeleteChannel deletes a channel with its admins, followers, posts,
	// media and events. Its id stays taken (CreateChannel answers
	// ErrExists), so no one else can pass for it.
	DeleteChannel(ctx context.Context, id string) error
	// ForgetUser is account deletion: it deletes the channels user owns
	// (as DeleteChannel), the posts user wrote in other channels (as
	// DeletePost), and user's follows and admin roles, in one
	// transaction. It returns the ids of the channels deleted.
	ForgetUser(ctx context.Context, user string) ([]string, error)
	// Events returns up to limit (<= 0: 100) events of a channel with
	// Seq > since.
	Events(ctx context.Context, channel string, since int64, limit int) ([]Event, error)
	// MediaData returns the bytes of a post's media file, or for a file
	// held in an object the object's name (Media.Object) and no bytes,
	// read together: a file moved to an object store meanwhile is found
	// either way.
	MediaData(ctx context.Context, postID int64, index int) (data []byte, object string, err error)
	// DroppedObjects returns up to limit (<= 0: 100) objects of media
	// that DeletePost, DeleteChannel or ForgetUser erased: each of those
	// records, in its own transaction, the Media.Object of every file it
	// erases, so that the objects are removed even if the process dies
	// before it removes them. ForgetDroppedObjects forgets them once
	// they are removed.
	DroppedObjects(ctx context.Context, limit int) ([]string, error)
	ForgetDroppedObjects(ctx context.Context, objects []string) error
	// ObjectInUse reports whether a stored media file names object (the
	// orphan sweep keeps those).
	ObjectInUse(ctx context.Context, object string) (bool, error)
	// StoredMedia returns up to limit (<= 0: 100) files whose bytes are
	// in the Store (no Media.Object), of posts published or held (not
	// removed: a file taken down, by a list or a moderator, stays out of
	// the object store; not deleted), in
	// post and index order after the file after (its Size ignored; the
	// zero MediaRef: from the start): what "parleyd admin channel-media
	// move" moves to an object store.
	StoredMedia(ctx context.Context, after MediaRef, limit int) ([]MediaRef, error)
	// MoveMediaToObject records that a file's bytes are now in object
	// and drops them from the Store, if the file is still there with its
	// bytes in the Store and its post published or held. moved is false
	// otherwise (the post was deleted or taken down meanwhile, or the
	// file moved already): the caller then removes the object.
	MoveMediaToObject(ctx context.Context, postID int64, index int, object string) (moved bool, err error)
	// Posts returns up to limit (<= 0: 100) posts with ID > after in ID
	// order, with their media hashes, whose status is one of statuses.
	Posts(ctx context.Context, after int64, limit int, statuses ...Status) ([]Post, error)
	// PostsBy returns up to limit (<= 0: 100) posts of author with ID >
	// after in ID order, in every status, with their media hashes (a
	// lawful request's answer lists them).
	PostsBy(ctx context.Context, author string, after int64, limit int) ([]Post, error)
	// RescanCheckpoint returns the last moderation change-log sequence
	// number that published posts were checked against (0 at first).
	RescanCheckpoint(ctx context.Context) (int64, error)
	// SetRescanCheckpoint stores it; it never moves backwards.
	SetRescanCheckpoint(ctx context.Context, seq int64) error
	Close() error
}

// MediaRef names one media file of a post.
type MediaRef struct {
	PostID int64
	Index  int
	Size   int64
}

// MediaObjects keeps posts' media bytes outside the Store, in an object
// store (parleyd --channel-media: an S3-compatible bucket), so that the
// channels database holds hashes and text, not gigabytes of images and
// videos. Objects are written before the post that names them is
// committed and removed after it is erased (Store.DroppedObjects);
// an object no post names (a node that died between the two) is removed
// by Sweep.
type MediaObjects interface {
	// PutMedia stores data as a new object and returns its name.
	PutMedia(ctx context.Context, data []byte) (object string, err error)
	// OpenMedia streams an object (an error wrapping fs.ErrNotExist if it
	// is not there).
	OpenMedia(ctx context.Context, object string) (io.ReadCloser, int64, error)
	// RemoveMedia removes objects; ones already gone are not an error.
	RemoveMedia(ctx context.Context, objects []string) error
	// SweepMedia removes the objects older than olderThan for which
	// inUse is false, and returns how many it removed.
	SweepMedia(ctx context.Context, olderThan time.Time, inUse func(object string) (bool, error)) (int, error)
}

// MediaURLs is implemented by MediaObjects that can hand out a URL of an
// object, valid a short while, from which clients download it without
// the bytes passing through the server (an S3 pre-signed GET). The URL
// answers with contentType, and as an attachment unless inline is true.
type MediaURLs interface {
	MediaURL(ctx context.Context, object, contentType string, inline bool) (url string, ok bool, err error)
}

// PageLimit is what a Store method does with its limit argument: limit, or
// def when limit <= 0 (the default each method's doc states).
func PageLimit(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}
