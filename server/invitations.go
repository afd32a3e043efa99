package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Who may add whom: a commit whose Welcome adds devices of another
// account is refused when that account has blocked the sender's account,
// or allows group invitations only from contacts (accounts it has a
// direct conversation with) and the sender is not one. The server can
// check this without learning anything new: it already routes the
// commit, and a direct conversation's id is computable from the two
// usernames.

// errInviteRefused is the same for a block and for the contacts-only
// setting, so that the sender cannot tell which applied.
func errInviteRefused(user string) error {
	return &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED,
		Message: fmt.Sprintf("%s does not accept invitations from you", user)}
}

// checkAdds applies the checks of a commit that adds devices: the added
// accounts' privacy settings and the group size.
func (c *conn) checkAdds(ctx context.Context, a store.Append) error {
	if err := c.checkInvitations(ctx, a); err != nil {
		return err
	}
	return c.checkGroupSize(ctx, a)
}

// checkInvitations enforces the privacy settings of every account whose
// devices a commit adds.
func (c *conn) checkInvitations(ctx context.Context, a store.Append) error {
	if a.Kind != store.KindCommit || len(a.Added) == 0 {
		return nil
	}
	var users []string
	for _, id := range a.Added {
		d, err := c.s.cfg.Store.Device(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // Append answers UNKNOWN_DEVICE
		}
		if err != nil {
			return err
		}
		if d.Username != c.dev.Username && !slices.Contains(users, d.Username) {
			users = append(users, d.Username)
		}
	}
	for _, u := range users {
		p, err := c.s.cfg.Store.Privacy(ctx, u)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if _, blocked := slices.BinarySearch(p.Blocked, c.dev.Username); blocked {
			return errInviteRefused(u)
		}
		if p.GroupInvites != store.GroupInvitesContacts {
			continue
		}
		direct := wire.DirectConversationID(c.dev.Username, u)
		if bytes.Equal(a.ConversationID, direct) {
			continue // anyone not blocked may start a direct conversation
		}
		ok, err := c.s.haveDirectConversation(ctx, direct, u)
		if err != nil {
			return err
		}
		if !ok {
			return errInviteRefused(u)
		}
	}
	return nil
}

// haveDirectConversation reports whether the direct conversation id
// exists with a device of user among its members.
func (s *Server) haveDirectConversation(ctx context.Context, id []byte, user string) (bool, error) {
	conv, err := s.cfg.Store.Conversation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	devs, err := s.cfg.Store.Devices(ctx, user)
	if err != nil {
		return false, err
	}
	for _, d := range devs {
		if slices.Contains(conv.Members, d.ID) {
			return true, nil
		}
	}
	return false, nil
}

var groupInvitesFromWire = map[parleypb.GroupInvites]store.GroupInvites{
	parleypb.GroupInvites_GROUP_INVITES_UNSPECIFIED: 0,
	parleypb.GroupInvites_EVERYONE:                  store.GroupInvitesEveryone,
	parleypb.GroupInvites_CONTACTS:                  store.GroupInvitesContacts,
}

func (c *conn) handlePrivacy(ctx context.Context, r *parleypb.PrivacyRequest) (parleypb.ServerFrameBody, error) {
	if len(r.Block)+len(r.Unblock) > maxPrivacyChanges {
		return nil, badRequest("at most %d usernames per request", maxPrivacyChanges)
	}
	for _, u := range slices.Concat(r.Block, r.Unblock) {
		if err := wire.CheckUsername(u); err != nil {
			return nil, badRequest("%q: %v", u, err)
		}
	}
	invites, ok := groupInvitesFromWire[r.GroupInvites]
	if !ok {
		return nil, badRequest("group_invites must be EVERYONE or CONTACTS")
	}
	p, err := c.s.cfg.Store.UpdatePrivacy(ctx, c.dev.Username, r.Block, r.Unblock, invites)
	if errors.Is(err, store.ErrNotFound) && len(r.Block) > 0 {
		return nil, &wire.Error{Code: parleypb.ErrorCode_NOT_FOUND, Message: "no account by that name to block"}
	}
	if err != nil {
		return nil, err
	}
	resp := &parleypb.PrivacyResponse{Blocked: p.Blocked, GroupInvites: parleypb.GroupInvites_EVERYONE}
	if p.GroupInvites == store.GroupInvitesContacts {
		resp.GroupInvites = parleypb.GroupInvites_CONTACTS
	}
	return &parleypb.ServerFrame_Privacy{Privacy: resp}, nil
}

// maxPrivacyChanges bounds one PrivacyRequest, so that it cannot hold
// the store's writer for long.
const maxPrivacyChanges = 100

// checkGroupSize refuses a commit that would take a conversation past
// MaxGroupMembers accounts. Only commits adding devices are checked; the
// accounts are looked up only when the devices alone exceed the limit
// (each account has at least one).
func (c *conn) checkGroupSize(ctx context.Context, a store.Append) error {
	if a.Kind != store.KindCommit || len(a.Added) == 0 {
		return nil
	}
	max := c.s.cfg.MaxGroupMembers
	conv, err := c.s.cfg.Store.Conversation(ctx, a.ConversationID)
	if err != nil {
		return sendError(err)
	}
	devices := slices.DeleteFunc(slices.Clone(conv.Members), func(d string) bool { return slices.Contains(a.Removed, d) })
	devices = append(devices, a.Added...)
	if len(devices) <= max {
		return nil
	}
	accounts := map[string]bool{}
	for _, id := range devices {
		d, err := c.s.cfg.Store.Device(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // a device deleted since (Append checks the added ones)
		}
		if err != nil {
			return err
		}
		accounts[d.Username] = true
	}
	if len(accounts) > max {
		return &wire.Error{Code: parleypb.ErrorCode_GROUP_FULL,
			Message: fmt.Sprintf("the group would have %d members; this server allows at most %d", len(accounts), max)}
	}
	return nil
}
