// Package channelapi is the public channel HTTP API's paths and JSON
// shapes (docs/channels.md), shared by the server (package channels) and
// clients, so that a client links none of the server's moderation and
// hashing code.
package channelapi

import (
	"errors"
	"time"
)

// ErrNotFound: no such channel or post (HTTP 404).
var ErrNotFound = errors.New("channels: not found")

// PublicNotice is shown by every client beside channel content.
const PublicNotice = "Channels are public and NOT end-to-end encrypted: the server and anyone can read what is posted."

// Channel is a public channel.
type Channel struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Owner       string    `json:"owner"`
	Admins      []string  `json:"admins,omitempty"`
	Followers   int       `json:"followers"`
	Created     time.Time `json:"created"`
}

// CanPost reports whether user may post to c.
func (c Channel) CanPost(user string) bool {
	if user == c.Owner {
		return true
	}
	for _, a := range c.Admins {
		if a == user {
			return true
		}
	}
	return false
}

// Status is where a post is in moderation.
type Status string

const (
	Published Status = "published"
	Held      Status = "held"    // waiting for a moderator (matched a review list)
	Removed   Status = "removed" // taken down or rejected
	// Deleted is final: the author or the channel deleted the post, and
	// its text and media are gone.
	Deleted Status = "deleted"
)

// Event kinds in a channel's feed.
const (
	EventPost     = "post"     // a post became visible
	EventTakedown = "takedown" // a post stopped being visible: clients remove it
)

// PathPrefix is where the server serves the channel API.
const PathPrefix = "/v1/channels"

// FollowRedirectHeader: a media request that carries it with the value
// "1" may be answered 307 with a pre-signed URL of the file in the
// server's object store, valid a short while, to be followed without the
// caller's credentials (the same header as the attachments' download,
// docs/protocol.md §10). Without it the server streams the file itself.
const FollowRedirectHeader = "Parley-Follow-Redirect"

// PrivacyHeader is set on every channel API response.
const PrivacyHeader = "Parley-Channel-Privacy"

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Code is a stable machine-readable reason: "unauthenticated",
	// "forbidden", "not_found", "unknown_user" (404: no such account),
	// "exists", "invalid", "too_large",
	// "media_refused" (422), "video_unavailable" (415: the server cannot
	// decode videos; the message names the package it lacks), "blocked"
	// (451), "rate_limited" (429, with Retry-After).
	Code string `json:"code"`
	// For "blocked": the hash list the media matched, its label, and
	// which file of the post matched. The hash and the distance are not
	// disclosed, so that the API cannot be used to tune evasions.
	List  string `json:"list,omitempty"`
	Label string `json:"label,omitempty"`
	Media *int   `json:"media,omitempty"`
}

// MediaView describes a media file in API responses.
type MediaView struct {
	Index       int    `json:"index"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
	// SHA256 is the hex SHA-256 of the media's bytes, for clients to
	// check a download against.
	SHA256 string `json:"sha256,omitempty"`
}

// PostView is a post in API responses.
type PostView struct {
	ID      int64       `json:"id"`
	Channel string      `json:"channel"`
	Author  string      `json:"author"`
	Text    string      `json:"text,omitempty"`
	Media   []MediaView `json:"media,omitempty"`
	Status  Status      `json:"status"`
	Reason  string      `json:"reason,omitempty"`
	Created time.Time   `json:"created"`
}

// PostResponse answers a post: 201 when published, 202 when held.
type PostResponse struct {
	Post   PostView `json:"post"`
	Notice string   `json:"notice"`
}

// EventView is one event of a channel feed.
type EventView struct {
	Seq    int64     `json:"seq"`
	Kind   string    `json:"kind"` // "post" or "takedown"
	PostID int64     `json:"post_id"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
	// Post is the post of a "post" event, if it is still published.
	Post *PostView `json:"post,omitempty"`
}

// EventsResponse answers GET .../events.
type EventsResponse struct {
	Channel string      `json:"channel"`
	Public  bool        `json:"public"`
	Notice  string      `json:"notice"`
	Events  []EventView `json:"events"`
	// Cursor is the since value for the next request.
	Cursor int64 `json:"cursor"`
}

// ChannelResponse answers channel creation and GET of a channel.
type ChannelResponse struct {
	Channel   Channel `json:"channel"`
	Public    bool    `json:"public"`
	Notice    string  `json:"notice"`
	Following bool    `json:"following"`
}

// ListResponse answers GET /v1/channels: the caller's followed and owned
// channels.
type ListResponse struct {
	Following []string `json:"following"`
	Owned     []string `json:"owned"`
	Public    bool     `json:"public"`
	Notice    string   `json:"notice"`
}

// CreateRequest is the JSON body of POST /v1/channels.
type CreateRequest struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}
