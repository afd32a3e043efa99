package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
)

// Muting. A muted conversation (a group, or the direct conversation with
// a person) still receives, stores and answers with receipts everything
// as before; only notifications stop: Sync, Watch and the daemon mark its
// messages Muted, "sync --follow --bell" does not ring for them and "parley
// chat" does not count them as unread. The mute goes to the account's
// other devices, end to end in its own-devices conversation
// (ownsync.go); no one else, the server included, learns it.
//
// A group can be muted "except mentions": its messages that mention this
// device's user still notify (Muted stays false on them), the rest do
// not. A device too old to know the mode receives it as a plain mute.

// bucketMute: hex(conversation id) → Mute.
const bucketMute = "mute"

// Mute is how long a conversation is muted.
type Mute struct {
	Conversation string `json:"conversation,omitempty"`
	// Until is when the mute ends; zero with Forever.
	Until   time.Time `json:"until,omitzero"`
	Forever bool      `json:"forever,omitempty"`
	// ExceptMentions: messages that mention you still notify.
	ExceptMentions bool `json:"except_mentions,omitempty"`
}

// silences reports whether the mute m (nil: none) keeps a message that
// mentions this device's user (or not) from notifying.
func (m *Mute) silences(mentioned bool) bool {
	return m != nil && !(m.ExceptMentions && mentioned)
}

// muteOf returns the conversation's mute at now, or nil.
func muteOf(tx *profile.Tx, conv []byte, now time.Time) *Mute {
	var m Mute
	if err := tx.GetJSON(bucketMute, hexID(conv), &m); err != nil {
		return nil
	}
	if !m.Forever && !now.Before(m.Until) {
		return nil
	}
	return &m
}

// muteTarget is the conversation id of "@user" (whether or not the
// conversation exists yet: the direct id is derived from the names) or
// of an existing "#group".
func (c *Client) muteTarget(tx *profile.Tx, target string) ([]byte, string, error) {
	kind, name, err := parseTarget(target)
	if err != nil {
		return nil, "", err
	}
	if kind == ConvDirect {
		if name == c.acct.User {
			return nil, "", fmt.Errorf("%w: you cannot mute yourself", ErrBadTarget)
		}
		return directID(c.acct.User, name), "@" + name, nil
	}
	r, err := findGroupIn(tx, name, true)
	if err != nil {
		return nil, "", err
	}
	return r.ID, r.label(), nil
}

// SetMute mutes target ("@user" or "#group") for d, or for good when d
// is 0.
func (c *Client) SetMute(ctx context.Context, target string, d time.Duration) (Mute, error) {
	return c.SetMuteMode(ctx, target, d, false)
}

// SetMuteMode is SetMute, and with exceptMentions (groups only) the
// group's messages that mention you still notify.
func (c *Client) SetMuteMode(ctx context.Context, target string, d time.Duration, exceptMentions bool) (Mute, error) {
	if d < 0 {
		return Mute{}, errors.New("client: mute for a positive duration, or for good")
	}
	if exceptMentions && !strings.HasPrefix(target, "#") {
		return Mute{}, fmt.Errorf("%w: only group messages mention people; to mute %s, leave out \"except mentions\"", ErrBadTarget, target)
	}
	var m Mute
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			id, label, err := c.muteTarget(tx, target)
			if err != nil {
				return err
			}
			m = Mute{Conversation: label, Forever: d == 0, ExceptMentions: exceptMentions}
			if d > 0 {
				m.Until = c.opts.now().Add(d).UTC()
			}
			v, err := json.Marshal(&m)
			if err != nil {
				return err
			}
			if err := c.putOwn(tx, ownMute+hexID(id), v, false); err != nil {
				return err
			}
			return tx.Put(bucketMute, hexID(id), v)
		})
		if err == nil {
			c.shareOwnNow(ctx)
		}
		return err
	})
	return m, err
}

// Unmute ends target's mute. It reports whether it was muted.
func (c *Client) Unmute(ctx context.Context, target string) (bool, error) {
	was := false
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			id, _, err := c.muteTarget(tx, target)
			if err != nil {
				return err
			}
			was = muteOf(tx, id, c.opts.now()) != nil
			if err := c.putOwn(tx, ownMute+hexID(id), nil, true); err != nil {
				return err
			}
			return tx.Delete(bucketMute, hexID(id))
		})
		if err == nil {
			c.shareOwnNow(ctx)
		}
		return err
	})
	return was, err
}

// Mutes lists the conversations muted now, and forgets expired mutes.
func (c *Client) Mutes(ctx context.Context) ([]Mute, error) {
	out := []Mute{}
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			items, err := tx.List(bucketMute)
			if err != nil {
				return err
			}
			for _, it := range items {
				id, err := hex.DecodeString(it.Key)
				if err != nil {
					continue
				}
				m := muteOf(tx, id, c.opts.now())
				if m == nil {
					if err := tx.Delete(bucketMute, it.Key); err != nil {
						return err
					}
					continue
				}
				if r, err := getConv(tx, id); err == nil {
					m.Conversation = r.label() // a group's current name
				}
				out = append(out, *m)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Conversation < out[j].Conversation })
	return out, err
}
