package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
)

// Leaving a group. An MLS member cannot commit its own removal (RFC 9420
// §12.4.2): it proposes it (a Remove proposal for each of its user's
// leaves, §12.1.3), and another member's client commits those proposals
// when it next syncs. The account's other devices, on seeing such a
// proposal, take the leave on too. A client commits only proposals in which a user
// removes their own devices, never other proposals it received, so a
// member cannot use this path to remove someone else. If another commit
// takes the epoch first, the proposals lapse and the leaving client makes
// them again for the new epoch on its next sync.

// selfRemoval is a verified proposal of a user to remove one of their own
// devices, waiting for a commit.
type selfRemoval struct {
	Epoch  uint64 `json:"epoch"`
	Ref    []byte `json:"ref"`
	User   string `json:"user"`
	Device string `json:"device"`
}

// LeaveGroup asks to leave group: it sends a Remove proposal for every
// device of this account in it. The removal takes effect when another
// member's client commits it, at its next sync.
func (c *Client) LeaveGroup(ctx context.Context, group string) error {
	return c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, "#"+strings.TrimPrefix(group, "#"), false)
		if err != nil {
			return err
		}
		if r.Kind != ConvGroup {
			return fmt.Errorf("%w: a direct conversation cannot be left", ErrBadTarget)
		}
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
			return err
		}
		return c.proposeLeave(ctx, conn, r.ID)
	})
}

// proposeLeave sends this account's Remove proposals for the current
// epoch of conversation id and marks it as being left.
func (c *Client) proposeLeave(ctx context.Context, conn *transport.Conn, id []byte) error {
	var r *convRecord
	var g *mls.Group
	if err := c.store.Update(func(tx *profile.Tx) (err error) {
		if r, err = getConv(tx, id); err != nil {
			return err
		}
		if r.Removed {
			return ErrNotMember
		}
		g, err = loadGroup(tx, id)
		return err
	}); err != nil {
		return err
	}
	others := false
	var own []Sender
	devices := groupDevices(g)
	for s := range devices {
		if s.User != c.acct.User {
			others = true
			continue
		}
		own = append(own, s)
	}
	// In a fixed order: this device first, then the others by id.
	rank := func(s Sender) int {
		if s.Device == c.acct.DeviceID {
			return 0
		}
		return 1
	}
	slices.SortFunc(own, func(a, b Sender) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Device, b.Device))
	})
	var msgs [][]byte
	for _, s := range own {
		msg, _, err := g.ProposeRemove(devices[s])
		if err != nil {
			return fmt.Errorf("propose leaving %s: %w", r.label(), err)
		}
		msgs = append(msgs, msg)
	}
	if !others {
		return fmt.Errorf("client: you are the only member of %s: there is no one to complete your leaving", r.label())
	}
	// Once one proposal is out the group is being left, even if a later
	// one fails: the record says so, so that syncs carry the leave on
	// (committers drop repeated proposals for one device, and the devices
	// still in the group are proposed again in the next epoch).
	markLeaving := func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			if err := saveGroup(tx, g); err != nil {
				return err
			}
			r.Leaving, r.LeaveEpoch = true, g.Epoch()
			return putConv(tx, r)
		})
	}
	for i, msg := range msgs {
		mid := transport.NewMessageID()
		if err := c.store.Update(func(tx *profile.Tx) error { return markSeen(tx, mid) }); err != nil {
			return err
		}
		if _, err := conn.SendProposal(ctx, mid, id, serverEpoch(g, r), msg); err != nil {
			if i == 0 {
				return fmt.Errorf("leave %s: %w", r.label(), err)
			}
			if merr := markLeaving(); merr != nil {
				return fmt.Errorf("leave %s: %w (and recording it: %v)", r.label(), err, merr)
			}
			return fmt.Errorf("leave %s: %d of %d devices proposed for removal; the rest will be at a later sync, or run this again: %w", r.label(), i, len(msgs), err)
		}
	}
	return markLeaving()
}

// handleProposal records a user's proposal to remove one of their own
// devices; other proposals are only cached by MLS, never committed here.
func (c *Client) handleProposal(tx *profile.Tx, r *convRecord, g *mls.Group, res *mls.Result, sender Sender) error {
	p := res.Proposal
	if p == nil || p.Type != mls.ProposalTypeRemove || p.Remove == nil {
		return nil
	}
	m, ok := g.Member(p.Remove.Removed)
	if !ok {
		return nil
	}
	removed, err := memberIdentity(m)
	if err != nil || removed.User != sender.User {
		return nil
	}
	if sender.User == c.acct.User && !r.Leaving {
		// Another device of this account is leaving: it is the account
		// that leaves, so this device carries the leave on as well. If
		// that device's proposals did not all go out, this one proposes
		// the rest after the next commit (completeLeaves).
		r.Leaving, r.LeaveEpoch = true, g.Epoch()
	}
	r.SelfRemovals = append(r.SelfRemovals, selfRemoval{Epoch: g.Epoch(), Ref: res.ProposalRef, User: removed.User, Device: removed.Device})
	return putConv(tx, r)
}

// completeLeaves commits the self-removals other users proposed in the
// conversations of this device, and proposes again the leaving of this
// account where a commit made the earlier proposals lapse. Failures only
// warn: the next sync tries again. Call with the lock held.
func (c *Client) completeLeaves(ctx context.Context, conn *transport.Conn) {
	var convs []*convRecord
	if err := c.store.Update(func(tx *profile.Tx) (err error) { convs, err = listConvs(tx); return err }); err != nil {
		return
	}
	for _, r := range convs {
		if r.Removed || r.Request {
			continue // a message request: nothing is sent before it is accepted
		}
		if r.Leaving {
			if err := c.reproposeLeave(ctx, conn, r); err != nil {
				c.warn(r, nil, fmt.Errorf("leave again: %w", err))
			}
			continue
		}
		if len(r.SelfRemovals) == 0 {
			continue
		}
		if _, err := c.commit(ctx, r, c.selfRemovalPlan(r)); err != nil {
			c.warn(r, nil, fmt.Errorf("complete a member's leaving: %w", err))
		}
	}
}

func (c *Client) reproposeLeave(ctx context.Context, conn *transport.Conn, r *convRecord) error {
	var epoch uint64
	if err := c.store.Update(func(tx *profile.Tx) error {
		g, err := loadGroup(tx, r.ID)
		if err == nil {
			epoch = g.Epoch()
		}
		return err
	}); err != nil {
		return err
	}
	if epoch == r.LeaveEpoch {
		return nil // the proposals of this epoch are out
	}
	return c.proposeLeave(ctx, conn, r.ID)
}

// selfRemovalPlan commits the recorded self-removals of the current epoch
// (by reference) and forgets the lapsed ones.
func (c *Client) selfRemovalPlan(r *convRecord) func(g *mls.Group) (*commitPlan, error) {
	return func(g *mls.Group) (*commitPlan, error) {
		p := &commitPlan{membership: &Membership{}}
		var keep []selfRemoval
		devices := groupDevices(g)
		for _, sr := range r.SelfRemovals {
			if sr.Epoch != g.Epoch() || sr.User == c.acct.User {
				continue // lapsed, or our own user's (committed by others)
			}
			if _, ok := devices[Sender{User: sr.User, Device: sr.Device}]; !ok {
				continue // already gone
			}
			if slices.ContainsFunc(keep, func(k selfRemoval) bool { return k.Device == sr.Device && k.User == sr.User }) {
				continue // proposed twice (a retried leave): one Remove per leaf (§12.2)
			}
			keep = append(keep, sr)
			p.opts.ProposalRefs = append(p.opts.ProposalRefs, sr.Ref)
			p.removed = append(p.removed, sr.Device)
			p.membership.Left = append(p.membership.Left, Sender{User: sr.User, Device: sr.Device})
		}
		if err := c.store.Update(func(tx *profile.Tx) error {
			rr, err := getConv(tx, r.ID)
			if err != nil {
				return err
			}
			rr.SelfRemovals = keep
			return putConv(tx, rr)
		}); err != nil {
			return nil, err
		}
		if len(keep) == 0 {
			return nil, errNothingToCommit
		}
		return p, nil
	}
}

// leftByProposal reports whether a removed device was removed by its own
// user's proposal (recorded as a self-removal, or this account leaving).
func leftByProposal(r *convRecord, s Sender, self string) bool {
	if s.User == self {
		return r.Leaving
	}
	for _, sr := range r.SelfRemovals {
		if sr.User == s.User && sr.Device == s.Device {
			return true
		}
	}
	return false
}
