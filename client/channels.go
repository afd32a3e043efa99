package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/channels/channelapi"
	"github.com/parleychat/parley/client/profile"
)

// HTTPAuth connects (if needed) and returns the server URL and a function
// that authorizes HTTP requests to it with this device's session token.
// Public channels, which are not end to end encrypted, are served over
// plain HTTP beside the delivery service and use it.
func (c *Client) HTTPAuth(ctx context.Context) (serverURL string, auth func(*http.Request) error, err error) {
	var token string
	err = c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		token = conn.Session().BlobToken
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return c.acct.Server, func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}, nil
}

// bucketChannelCursor holds, per followed public channel, the feed
// cursor up to which its posts were reported (channel id → int64).
const bucketChannelCursor = "chancursor"

// firstSightPosts is how many of a channel's latest posts are reported
// the first time a sync sees it followed.
const firstSightPosts = 20

// ChannelPost is a new event of a followed public channel, as reported
// by sync: a post ("channel_post") or the takedown or deletion of one
// ("channel_takedown"). Channels are public and not end to end
// encrypted; Public and EndToEnd say so in every JSON object.
type ChannelPost struct {
	Kind     string               `json:"kind"`
	Channel  string               `json:"channel"`
	Public   bool                 `json:"public"`
	EndToEnd bool                 `json:"end_to_end_encrypted"`
	Seq      int64                `json:"seq"`
	PostID   int64                `json:"post_id"`
	SentAt   time.Time            `json:"sent_at"`
	Post     *channelapi.PostView `json:"post,omitempty"`
	Reason   string               `json:"reason,omitempty"`
}

// Kinds of ChannelPost.
const (
	KindChannelPost     = "channel_post"
	KindChannelTakedown = "channel_takedown"
)

// ChannelUpdates returns what is new in the public channels this account
// follows since the last call (the first time a channel is seen, its
// latest posts), oldest first per channel, and remembers how far it got.
func (c *Client) ChannelUpdates(ctx context.Context) ([]ChannelPost, error) {
	server, auth, err := c.HTTPAuth(ctx)
	if err != nil {
		return nil, err
	}
	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+path, nil)
		if err != nil {
			return err
		}
		auth(req)
		hc := c.opts.HTTPClient
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return channelapi.ErrNotFound
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("client: public channels: %s: HTTP %d", path, resp.StatusCode)
		}
		return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
	}
	var list channelapi.ListResponse
	if err := get(channelapi.PathPrefix, &list); errors.Is(err, channelapi.ErrNotFound) {
		return nil, nil // a server without public channels
	} else if err != nil {
		return nil, err
	}
	var out []ChannelPost
	for _, id := range list.Following {
		var cursor int64
		first := false
		err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
			err := tx.GetJSON(bucketChannelCursor, id, &cursor)
			if errors.Is(err, profile.ErrNotFound) {
				first = true
				return nil
			}
			return err
		})
		if err != nil {
			return out, err
		}
		var got []ChannelPost
		for {
			var resp channelapi.EventsResponse
			err := get(fmt.Sprintf("%s/%s/events?since=%d", channelapi.PathPrefix, url.PathEscape(id), cursor), &resp)
			if errors.Is(err, channelapi.ErrNotFound) {
				break // deleted meanwhile
			}
			if err != nil {
				return out, err
			}
			for _, e := range resp.Events {
				p := ChannelPost{Channel: id, Public: true, Seq: e.Seq, PostID: e.PostID, SentAt: e.Time, Reason: e.Reason}
				switch {
				case e.Kind == channelapi.EventTakedown || (e.Kind == channelapi.EventPost && e.Post == nil):
					p.Kind = KindChannelTakedown
					if first {
						got = slices.DeleteFunc(got, func(g ChannelPost) bool { return g.PostID == e.PostID })
						continue
					}
				case e.Kind == channelapi.EventPost:
					p.Kind, p.Post, p.SentAt = KindChannelPost, e.Post, e.Post.Created
				default:
					continue
				}
				got = append(got, p)
			}
			if len(resp.Events) == 0 || resp.Cursor <= cursor {
				break
			}
			cursor = resp.Cursor
		}
		if first && len(got) > firstSightPosts {
			got = got[len(got)-firstSightPosts:]
		}
		out = append(out, got...)
		if err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error { return tx.PutJSON(bucketChannelCursor, id, cursor) }); err != nil {
			return out, err
		}
	}
	return out, nil
}
