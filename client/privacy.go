package client

import (
	"context"
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
		return c.store.Update(func(tx *profile.Tx) error {
			old, err := tx.List(bucketBlocked)
			if err != nil {
				return err
			}
			for _, it := range old {
				if err := tx.Delete(bucketBlocked, it.Key); err != nil {
					return err
				}
			}
			for _, u := range out.Blocked {
				if err := tx.Put(bucketBlocked, u, []byte{1}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return out, err
}
