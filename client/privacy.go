package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
)

// Privacy is who may add this account's devices to conversations. The
// server enforces it on every commit that would add them, so that people
// one has blocked cannot fill one's inbox or put one in groups; it knows
// the list (it has to, to refuse their invitations).
type Privacy struct {
	// Blocked accounts can add this account to nothing, not even a
	// direct conversation.
	Blocked []string `json:"blocked"`
	// GroupInvites is "everyone" (the default) or "contacts": only people
	// one has a direct conversation with may add one to groups.
	GroupInvites string `json:"group_invites"`
}

// bucketBlocked holds the usernames this account blocked, as the server
// last confirmed them.
const bucketBlocked = "blocked"

// Group invitation settings for UpdatePrivacy.
const (
	GroupInvitesEveryone = "everyone"
	GroupInvitesContacts = "contacts"
)

// UpdatePrivacy blocks and unblocks users and, unless groupInvites is
// empty, sets who may add this account to groups. With nothing to change
// it returns the current settings.
func (c *Client) UpdatePrivacy(ctx context.Context, block, unblock []string, groupInvites string) (Privacy, error) {
	invites := transport.GroupInvitesUnchanged
	switch groupInvites {
	case "":
	case GroupInvitesEveryone:
		invites = transport.GroupInvitesEveryone
	case GroupInvitesContacts:
		invites = transport.GroupInvitesContacts
	default:
		return Privacy{}, fmt.Errorf("group invitations from %q: say %q or %q", groupInvites, GroupInvitesEveryone, GroupInvitesContacts)
	}
	for _, list := range [][]string{block, unblock} {
		for i, u := range list {
			list[i] = strings.TrimPrefix(u, "@")
			if err := wire.CheckUsername(list[i]); err != nil {
				return Privacy{}, fmt.Errorf("%q: %w", u, err)
			}
		}
	}
	var out Privacy
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		p, err := conn.UpdatePrivacy(ctx, block, unblock, invites)
		if err != nil {
			return err
		}
		out = Privacy{Blocked: p.Blocked, GroupInvites: GroupInvitesEveryone}
		if p.GroupInvites == transport.GroupInvitesContacts {
			out.GroupInvites = GroupInvitesContacts
		}
		if out.Blocked == nil {
			out.Blocked = []string{}
		}
		// Kept here too, so that sync hides what blocked people still
		// send in conversations shared with them.
		return c.store.Update(func(tx *profile.Tx) error { return storeBlocked(tx, out.Blocked) })
	})
	return out, err
}

// storeBlocked replaces this device's copy of the block list.
func storeBlocked(tx *profile.Tx, blocked []string) error {
	old, err := tx.List(bucketBlocked)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, u := range blocked {
		keep[u] = true
	}
	for _, it := range old {
		if !keep[it.Key] {
			if err := tx.Delete(bucketBlocked, it.Key); err != nil {
				return err
			}
		}
	}
	for _, u := range blocked {
		if err := tx.Put(bucketBlocked, u, []byte{1}); err != nil {
			return err
		}
	}
	return nil
}

// isBlocked reports whether this account blocked user.
func isBlocked(tx *profile.Tx, user string) bool {
	ok, err := tx.Has(bucketBlocked, user)
	return err == nil && ok
}

// refreshBlocked fetches the account's block list from the server, so
// that a block made on another of the user's devices applies here before
// this sync processes anything. Call with the lock held; failures warn.
func (c *Client) refreshBlocked(ctx context.Context, conn *transport.Conn) {
	p, err := conn.UpdatePrivacy(ctx, nil, nil, transport.GroupInvitesUnchanged)
	if err == nil {
		err = c.store.Update(func(tx *profile.Tx) error { return storeBlocked(tx, p.Blocked) })
	}
	if err != nil && ctx.Err() == nil {
		c.warn(nil, nil, fmt.Errorf("refresh the block list: %w", err))
	}
}

// errBlockedWelcome: an invitation from someone the user blocked, dropped
// without a word to anyone.
var errBlockedWelcome = errors.New("client: an invitation from a blocked account")
