package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/wire"
)

const bucketConv = "conversation" // hex(id) → convRecord

// Conversation kinds.
const (
	ConvDirect = "direct"
	ConvGroup  = "group"
)

// convRecord is what the profile keeps about a conversation besides its
// MLS state.
type convRecord struct {
	ID      []byte    `json:"id"`
	Kind    string    `json:"kind"`
	Peer    string    `json:"peer,omitempty"` // direct
	Name    string    `json:"name,omitempty"` // group
	Created time.Time `json:"created"`
	// Removed is set once this device was removed from the group.
	Removed bool `json:"removed,omitempty"`
	// Leaving is set once this account asked to leave the group (its
	// Remove proposals were sent in epoch LeaveEpoch); see leave.go.
	Leaving    bool   `json:"leaving,omitempty"`
	LeaveEpoch uint64 `json:"leave_epoch,omitempty"`
	// SelfRemovals are other users' proposals to leave, to commit.
	SelfRemovals []selfRemoval `json:"self_removals,omitempty"`
	// Skipped counts the commits of the log this device refused (a
	// member broke the group's roles): the server counted each as an
	// epoch, MLS did not. See serverEpoch.
	Skipped uint64 `json:"skipped_commits,omitempty"`
	// JoinedAt is the server epoch of the Welcome this device joined by
	// (0 for a group it made): log entries of earlier epochs are from
	// before it joined, which it cannot read (a device removed and added
	// back before it read its removal still has them in its log).
	JoinedAt uint64 `json:"joined_at,omitempty"`
	// JoinedBy is the message id of the Welcome (its commit's) this
	// device joined by, and AddedBy the user who made that commit: a
	// refused notice names the commit (refused.go).
	JoinedBy []byte `json:"joined_by,omitempty"`
	AddedBy  string `json:"added_by,omitempty"`
	// Refused is set (with Removed) once the server told that the
	// members refused the commit that added this device (refused.go).
	Refused bool `json:"refused,omitempty"`
	// Last is the time of the newest message.
	Last time.Time `json:"last"`
	// Timer is the disappearing-messages timer in seconds (0: off), as
	// set by the message with log position TimerSeq.
	Timer    int64  `json:"timer,omitempty"`
	TimerSeq uint64 `json:"timer_seq,omitempty"`
	// Request is set for a direct conversation a stranger started, until
	// the user accepts it (requests.go).
	Request bool `json:"request,omitempty"`
	// Imported is set for a conversation whose history came from
	// "parley import": read-only, no MLS state (export.go).
	Imported bool `json:"imported,omitempty"`
}

// label is how the conversation is named on the command line.
func (r *convRecord) label() string {
	if r.Kind == ConvDirect {
		return "@" + r.Peer
	}
	if r.Kind == ConvSelf {
		return "(your devices)"
	}
	if r.Name != "" {
		return "#" + r.Name
	}
	h := hexID(r.ID)
	return "#" + h[:min(len(h), 12)]
}

// Conversation describes a conversation for listings.
type Conversation struct {
	ID      string   `json:"id"`
	Label   string   `json:"conversation"`
	Kind    string   `json:"kind"`
	Members []Sender `json:"members"`
	Epoch   uint64   `json:"epoch"`
	Removed bool     `json:"removed,omitempty"` // this device is no longer a member (read-only)
	Left    bool     `json:"left,omitempty"`    // ... because the user left, not removed by others
	// Refused: removed because the group's other members refused the
	// commit that added this device (ErrRefusedByMembers); RefusedBy is
	// who made it. A security alert: the device saw only a fork of the
	// group.
	Refused   bool   `json:"refused,omitempty"`
	RefusedBy string `json:"refused_by,omitempty"`
	Last      string `json:"last,omitempty"`
	// Timer is the disappearing-messages timer ("1h"), empty when off.
	Timer string `json:"timer,omitempty"`
	// Name, Topic and Admins are a group's agreed state (GroupInfo).
	Name   string   `json:"name,omitempty"`
	Topic  string   `json:"topic,omitempty"`
	Admins []string `json:"admins,omitempty"`
	// Request: a message request, not accepted yet (parley requests).
	Request bool `json:"request,omitempty"`
	// Muted until this time (forever: the zero time with MutedForever).
	Muted *Mute `json:"muted,omitempty"`
	// Imported: history from "parley import", read-only.
	Imported bool `json:"imported,omitempty"`
}

// directID is the group id of the direct conversation of two users: both
// derive it, so neither creates a second one.
func directID(a, b string) []byte { return wire.DirectConversationID(a, b) }

// groupIDSize is the length of a new group's random id: not
// wire.DirectConversationIDSize, which the server keeps for direct
// conversations.
const groupIDSize = 16

func getConv(tx *profile.Tx, id []byte) (*convRecord, error) {
	var r convRecord
	if err := tx.GetJSON(bucketConv, hexID(id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func putConv(tx *profile.Tx, r *convRecord) error { return tx.PutJSON(bucketConv, hexID(r.ID), r) }

func listConvs(tx *profile.Tx) ([]*convRecord, error) {
	items, err := tx.List(bucketConv)
	if err != nil {
		return nil, err
	}
	var out []*convRecord
	for _, it := range items {
		var r convRecord
		if err := jsonUnmarshal(it.Value, &r); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, nil
}

// parseTarget splits "@user" or "#group".
func parseTarget(target string) (kind, name string, err error) {
	switch {
	case strings.HasPrefix(target, "@"):
		if err := wire.CheckUsername(target[1:]); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrBadTarget, err)
		}
		return ConvDirect, target[1:], nil
	case strings.HasPrefix(target, "#"):
		if err := checkGroupName(target[1:]); err != nil {
			return "", "", err
		}
		return ConvGroup, target[1:], nil
	}
	return "", "", ErrBadTarget
}

// findConv resolves "#name" (or a hex id prefix) to a stored group.
func findGroup(tx *profile.Tx, name string) (*convRecord, error) {
	return findGroupIn(tx, name, false)
}

// findGroupIn is findGroup that, with past set, also finds groups this
// device is no longer in (their history stays readable). A current group
// of the name wins over a past one.
func findGroupIn(tx *profile.Tx, name string, past bool) (*convRecord, error) {
	convs, err := listConvs(tx)
	if err != nil {
		return nil, err
	}
	// By name first; a group whose name is not known yet (its meta
	// message has not arrived) by a prefix of its hex id.
	var match *convRecord
	for _, byID := range []bool{false, true} {
		for _, r := range convs {
			// A refused group is found too, so that using it says why
			// it may not be (prepare).
			if r.Kind != ConvGroup || (r.Removed && !past && !r.Refused) {
				continue
			}
			if (!byID && r.Name == name) || (byID && len(name) >= 6 && strings.HasPrefix(hexID(r.ID), name)) {
				if match == nil || (match.Removed && !r.Removed) || (match.Removed == r.Removed && r.Created.After(match.Created)) {
					match = r
				}
			}
		}
		if match != nil {
			break
		}
	}
	if match == nil {
		return nil, fmt.Errorf("%w: #%s", ErrUnknownTarget, name)
	}
	return match, nil
}

// Conversations lists this device's conversations, most recent first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			convs, err := listConvs(tx)
			if err != nil {
				return err
			}
			for _, r := range convs {
				if r.Kind == ConvSelf {
					continue // not a chat: the devices' own channel (ownsync.go)
				}
				cv := Conversation{ID: hexID(r.ID), Label: r.label(), Kind: r.Kind, Removed: r.Removed, Left: r.Removed && r.Leaving && !r.Refused,
					Refused: r.Refused, RefusedBy: r.AddedBy,
					Request: r.Request, Muted: muteOf(tx, r.ID, c.opts.now()), Imported: r.Imported}
				if r.Timer > 0 {
					cv.Timer = FormatTimer(time.Duration(r.Timer) * time.Second)
				}
				if !r.Last.IsZero() {
					cv.Last = r.Last.UTC().Format(time.RFC3339)
				}
				if g, err := loadGroup(tx, r.ID); err == nil {
					cv.Epoch = g.Epoch()
					if st, _, err := groupStateOf(g.GroupContext().Extensions); err == nil && st != nil {
						cv.Name, cv.Topic, cv.Admins = st.Name, st.Topic, st.Admins
					}
					if !r.Removed {
						for s := range groupDevices(g) {
							cv.Members = append(cv.Members, s)
						}
					}
				}
				sort.Slice(cv.Members, func(i, j int) bool {
					a, b := cv.Members[i], cv.Members[j]
					return a.User < b.User || a.User == b.User && a.Device < b.Device
				})
				out = append(out, cv)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last > out[j].Last })
	return out, err
}

// resolve finds the conversation for target, creating a direct one on
// first use. Call with the lock held.
func (c *Client) resolve(ctx context.Context, target string, create bool) (*convRecord, error) {
	kind, name, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if kind == ConvGroup {
		var r *convRecord
		err := c.store.Update(func(tx *profile.Tx) error { r, err = findGroup(tx, name); return err })
		return r, err
	}
	if name == c.acct.User {
		return nil, fmt.Errorf("%w: to reach your own devices, message someone else; your devices see everything you send", ErrBadTarget)
	}
	id := directID(c.acct.User, name)
	var r *convRecord
	err = c.store.Update(func(tx *profile.Tx) error { r, err = getConv(tx, id); return err })
	if err == nil && r.Refused {
		return r, nil // prepare says why it may not be used
	}
	if err == nil && !r.Removed {
		if err := checkDirect(r, name); err != nil {
			return nil, err
		}
		// Finish a creation interrupted before its first commit.
		if err := c.completeDirect(ctx, r); err != nil {
			return nil, err
		}
		return r, nil
	}
	if !errors.Is(err, profile.ErrNotFound) && err != nil {
		return nil, err
	}
	if !create {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTarget, target)
	}
	return c.createDirect(ctx, name, id)
}

// createDirect creates the direct conversation with peer, or joins it if
// the peer created it first.
func (c *Client) createDirect(ctx context.Context, peer string, id []byte) (*convRecord, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, err
	}
	// Make sure the peer exists, and choose the suite, before creating
	// anything.
	suite, pre, notPQ, err := c.prefetchNew(ctx, conn, []string{peer})
	if err != nil {
		return nil, err
	}
	err = conn.CreateDirectConversation(ctx, id, peer)
	if errors.Is(err, wire.ErrAlreadyExists) {
		// The peer (or another of our devices) created it: its Welcome
		// is on the way to our inbox.
		deadline := time.Now().Add(15 * time.Second)
		for {
			if _, err := c.processInbox(ctx, conn); err != nil {
				return nil, err
			}
			var r *convRecord
			err := c.store.Update(func(tx *profile.Tx) error { r, err = getConv(tx, id); return err })
			if err == nil && !r.Removed {
				return r, checkDirect(r, peer)
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("client: the conversation with %s exists but this device has not been added to it yet; try again later", peer)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	if err != nil {
		return nil, err
	}
	r := &convRecord{ID: id, Kind: ConvDirect, Peer: peer, Created: c.opts.now().UTC()}
	if err := c.newGroup(r, suite, notPQ); err != nil {
		return nil, err
	}
	if err := c.addUsers(ctx, r, []string{peer}, true, pre); err != nil {
		return nil, err
	}
	return r, nil
}

// ErrNotDirect means the conversation that should be the direct one with
// a user is something else: someone created a group under its id.
var ErrNotDirect = errors.New("client: the direct conversation's id is taken by a conversation with other members")

func checkDirect(r *convRecord, peer string) error {
	if r.Kind != ConvDirect || r.Peer != peer {
		return fmt.Errorf("%w (with %s)", ErrNotDirect, peer)
	}
	return nil
}

// checkDirectMembers makes sure a direct conversation holds only devices
// of its two users: a member adding a third person to it is refused
// rather than letting messages meant for one person reach another.
func checkDirectMembers(g *mls.Group, self, peer string) error {
	for s := range groupDevices(g) {
		if s.User != self && s.User != peer {
			return fmt.Errorf("%w: %s is in the conversation with %s", ErrNotDirect, s.User, peer)
		}
	}
	return nil
}

// newGroup creates the MLS group, of cipher suite id, for a conversation
// the server has just created, and stores it. notPQ names the devices
// that made a conversation fall back from X-Wing to suite 1: this is
// said once, as a warning.
func (c *Client) newGroup(r *convRecord, id ciphersuite.ID, notPQ []string) error {
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return err
	}
	if len(notPQ) > 0 {
		c.warn(r, nil, fmt.Errorf("%s is not post-quantum: it uses %s because %s cannot join an X-Wing conversation yet (an older Parley)", r.label(), suiteName(id), strings.Join(notPQ, ", ")))
	}
	opts := &mls.CreateOptions{Config: groupConfig(), Capabilities: leafCapabilities(s)}
	if r.Kind == ConvGroup {
		// The creator is the first admin (see groupstate.go).
		st := &groupProfile{Name: r.Name, Admins: []string{c.acct.User}}
		opts.Extensions = mls.Extensions{st.extension()}
	}
	g, err := mls.CreateGroup(s, r.ID, c.credential(), c.acct.SignKey, opts)
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	return c.store.Update(func(tx *profile.Tx) error {
		if err := saveGroup(tx, g); err != nil {
			return err
		}
		return putConv(tx, r)
	})
}

// completeDirect adds the peer's devices if the conversation still has
// only this device (a creation that was interrupted).
func (c *Client) completeDirect(ctx context.Context, r *convRecord) error {
	var alone bool
	err := c.store.Update(func(tx *profile.Tx) error {
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		alone = len(g.Members()) == 1
		return nil
	})
	if err != nil || !alone {
		return err
	}
	return c.addUsers(ctx, r, []string{r.Peer}, true, nil)
}

// CreateGroup creates group name with the given users ("@bob" or "bob")
// and this account's other devices.
func (c *Client) CreateGroup(ctx context.Context, name string, users []string) (Conversation, error) {
	if err := checkGroupName(name); err != nil {
		return Conversation{}, err
	}
	users, err := cleanUsers(users)
	if err != nil {
		return Conversation{}, err
	}
	var out Conversation
	err = c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		var exists bool
		if err := c.store.Update(func(tx *profile.Tx) error {
			_, err := findGroup(tx, name)
			exists = err == nil
			if errors.Is(err, ErrUnknownTarget) {
				return nil
			}
			return err
		}); err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("client: you are already in a group named #%s", name)
		}
		if slices.Contains(users, c.acct.User) {
			return fmt.Errorf("%w: you are in every group you create", ErrBadTarget)
		}
		if max := conn.MaxGroupMembers(); max > 0 && len(users)+1 > max {
			return fmt.Errorf("%w: it would have %d members, and this server allows at most %d", ErrGroupFull, len(users)+1, max)
		}
		// Fetch the key packages first, so a typo does not leave an
		// empty group behind.
		suite, prefetched, notPQ, err := c.prefetchNew(ctx, conn, users)
		if err != nil {
			return err
		}
		id := randomBytes(groupIDSize)
		if err := conn.CreateConversation(ctx, id); err != nil {
			return err
		}
		r := &convRecord{ID: id, Kind: ConvGroup, Name: name, Created: c.opts.now().UTC()}
		if err := c.newGroup(r, suite, notPQ); err != nil {
			return err
		}
		if err := c.addUsers(ctx, r, users, true, prefetched); err != nil {
			return err
		}
		out = Conversation{ID: hexID(id), Label: r.label(), Kind: ConvGroup}
		return nil
	})
	return out, err
}

func cleanUsers(users []string) ([]string, error) {
	var out []string
	for _, u := range users {
		u = strings.TrimPrefix(u, "@")
		if err := wire.CheckUsername(u); err != nil {
			return nil, fmt.Errorf("%q: %w", u, err)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// AddMembers adds users to a group.
func (c *Client) AddMembers(ctx context.Context, group string, users []string) error {
	users, err := cleanUsers(users)
	if err != nil {
		return err
	}
	return c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, "#"+strings.TrimPrefix(group, "#"), false)
		if err != nil {
			return err
		}
		if r.Kind != ConvGroup {
			return fmt.Errorf("%w: members of a direct conversation cannot change", ErrBadTarget)
		}
		return c.addUsers(ctx, r, users, true, nil)
	})
}

// RemoveMembers removes every device of users from a group.
func (c *Client) RemoveMembers(ctx context.Context, group string, users []string) error {
	users, err := cleanUsers(users)
	if err != nil {
		return err
	}
	return c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, "#"+strings.TrimPrefix(group, "#"), false)
		if err != nil {
			return err
		}
		if r.Kind != ConvGroup {
			return fmt.Errorf("%w: members of a direct conversation cannot change", ErrBadTarget)
		}
		return c.removeDevices(ctx, r, func(s Sender) bool { return slices.Contains(users, s.User) }, users)
	})
}

// Rekey commits an empty commit with a fresh UpdatePath (post-compromise
// security for this device's leaf).
func (c *Client) Rekey(ctx context.Context, target string) error {
	return c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, target, false)
		if err != nil {
			return err
		}
		_, err = c.commit(ctx, r, func(g *mls.Group) (*commitPlan, error) {
			return &commitPlan{opts: mls.CommitOptions{ForcePath: true}}, nil
		})
		return err
	})
}

// commitPlan is a commit to make in the group's current epoch.
type commitPlan struct {
	opts    mls.CommitOptions
	added   []string // device ids
	removed []string
	// membership, if set, is recorded in the history once accepted.
	membership *Membership
}

// errNothingToCommit tells commit there is nothing left to do (a
// competing commit already did it).
var errNothingToCommit = errors.New("nothing to commit")

// maxCommitAttempts bounds EPOCH_CONFLICT retries.
const maxCommitAttempts = 8

// pendingCommit is a commit that was sent (or was about to be) but whose
// outcome is not known yet: the connection may have dropped after the
// server stored it. It is saved, with the group's pending MLS state,
// before the commit leaves the device, so the outcome can be settled
// later: by resending it under the same id (the server is idempotent),
// or by seeing it, or a competing commit, in the log.
type pendingCommit struct {
	ID         []byte      `json:"id"`
	Epoch      uint64      `json:"epoch"`
	Payload    []byte      `json:"payload"`
	Welcome    []byte      `json:"welcome,omitempty"`
	Added      []string    `json:"added,omitempty"`
	Removed    []string    `json:"removed,omitempty"`
	Membership *Membership `json:"membership,omitempty"`
	// FirstSent is when the commit was made, just before its first
	// attempt: every retry sends it with ID (SendRequest.first_sent_unix_ms).
	// Zero in commits saved by versions that kept none, as they sent.
	FirstSent time.Time `json:"first_sent,omitzero"`
}

const bucketPending = "pending-commit" // hex(conversation id) → pendingCommit

// commit makes, sends and merges a commit, rebuilding it on EPOCH_CONFLICT
// after processing the winner: plan is called again on the new epoch.
// Call with the lock held.
func (c *Client) commit(ctx context.Context, r *convRecord, plan func(g *mls.Group) (*commitPlan, error)) (*mls.CommitResult, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.connection(ctx)
		if err != nil {
			return nil, err
		}
		// Settle an earlier commit whose outcome is unknown and catch
		// up: committing on a stale epoch is a sure conflict.
		if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
			return nil, err
		}
		var g *mls.Group
		if err := c.store.Update(func(tx *profile.Tx) error {
			rr, err := getConv(tx, r.ID)
			if err != nil {
				return err
			}
			if rr.Removed {
				return ErrNotMember
			}
			*r = *rr
			g, err = loadGroup(tx, r.ID)
			return err
		}); err != nil {
			return nil, err
		}
		if g.HasPendingCommit() {
			// Left over with no record of it (settled above otherwise):
			// it was never sent, or can never win.
			g.DiscardPendingCommit()
		}
		p, err := plan(g)
		if errors.Is(err, errNothingToCommit) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if err := c.checkOwnPlan(g, p); err != nil {
			return nil, err
		}
		pc := &pendingCommit{ID: transport.NewMessageID(), Epoch: serverEpoch(g, r), Added: p.added, Removed: p.removed, Membership: p.membership,
			FirstSent: c.opts.now().Truncate(time.Millisecond)}
		out, err := g.Commit(p.opts)
		if err != nil {
			return nil, fmt.Errorf("make commit: %w", err)
		}
		pc.Payload, pc.Welcome = out.Commit, out.Welcome
		if err := c.store.Update(func(tx *profile.Tx) error {
			if err := saveGroup(tx, g); err != nil {
				return err
			}
			return tx.PutJSON(bucketPending, hexID(r.ID), pc)
		}); err != nil {
			return nil, err
		}
		if c.testHookBeforeCommit != nil {
			c.testHookBeforeCommit()
		}
		cr, err := c.sendPending(ctx, conn, r, g, pc)
		if errors.Is(err, errLostEpoch) {
			c.conflicts.Add(1)
			if attempt+1 >= maxCommitAttempts {
				return nil, fmt.Errorf("client: gave up after %d epoch conflicts", attempt+1)
			}
			continue
		}
		return cr, err
	}
}

// errLostEpoch means another commit won the epoch of ours.
var errLostEpoch = errors.New("client: another commit won the epoch")

// sendPending sends (or resends) a pending commit and settles it: merged
// on success, discarded (errLostEpoch) if another commit won the epoch.
// On any other error the commit stays pending. g holds the pending state.
func (c *Client) sendPending(ctx context.Context, conn *transport.Conn, r *convRecord, g *mls.Group, pc *pendingCommit) (*mls.CommitResult, error) {
	var res transport.SendResult
	var err error
	for try := 0; try < 3; try++ {
		res, err = retryRateLimited(ctx, func() (transport.SendResult, error) {
			return conn.SendCommit(ctx, transport.Commit{
				ID: pc.ID, ConversationID: r.ID, Epoch: pc.Epoch, Payload: pc.Payload,
				Added: pc.Added, Removed: pc.Removed, Welcome: pc.Welcome, FirstSent: pc.FirstSent,
			})
		})
		var we *wire.Error
		var conflict *transport.EpochConflictError
		if err == nil || errors.As(err, &we) || errors.As(err, &conflict) || ctx.Err() != nil {
			break
		}
		// The connection failed: the server may or may not have the
		// commit. Resend the same id on a new connection.
		if conn, err = c.redial(ctx); err != nil {
			return nil, err
		}
	}
	var conflict *transport.EpochConflictError
	if errors.As(err, &conflict) || errors.Is(err, wire.ErrWrongEpoch) {
		// Forget ours; syncing will process the winner.
		g.DiscardPendingCommit()
		if err := c.store.Update(func(tx *profile.Tx) error {
			if err := saveGroup(tx, g); err != nil {
				return err
			}
			return tx.Delete(bucketPending, hexID(r.ID))
		}); err != nil {
			return nil, err
		}
		return nil, errLostEpoch
	}
	if err != nil {
		return nil, err
	}
	cr, err := g.MergePendingCommit()
	if err != nil {
		return nil, err
	}
	err = c.store.Update(func(tx *profile.Tx) error {
		if err := saveGroup(tx, g); err != nil {
			return err
		}
		return c.finishCommit(tx, r, pc, res.Seq)
	})
	return cr, err
}

// finishCommit records an accepted commit of ours.
func (c *Client) finishCommit(tx *profile.Tx, r *convRecord, pc *pendingCommit, seq uint64) error {
	if err := tx.Delete(bucketPending, hexID(r.ID)); err != nil {
		return err
	}
	if err := markSeen(tx, pc.ID); err != nil {
		return err
	}
	if r.Kind == ConvDirect && pc.Epoch == 0 {
		return nil // the commit that opens a direct chat is not news
	}
	if ms := pc.Membership; ms != nil && (len(ms.Added) > 0 || len(ms.Removed) > 0 || len(ms.Left) > 0) {
		m := &Message{
			ID: hexID(pc.ID), Conversation: r.label(), ConversationID: hexID(r.ID),
			Sender: Sender{User: c.acct.User, Device: c.acct.DeviceID}, SentAt: c.opts.now().UTC(),
			Kind: KindMembership, Text: membershipText(c.acct.User, ms), Membership: ms,
			Outgoing: true, Seq: seq,
		}
		return c.record(tx, r, m, false)
	}
	return nil
}

// settlePending resends a commit left pending by an earlier failure.
func (c *Client) settlePending(ctx context.Context, conn *transport.Conn, id []byte) error {
	var pc pendingCommit
	var r *convRecord
	var g *mls.Group
	err := c.store.Update(func(tx *profile.Tx) error {
		if err := tx.GetJSON(bucketPending, hexID(id), &pc); err != nil {
			return err
		}
		var err error
		if r, err = getConv(tx, id); err != nil {
			return err
		}
		g, err = loadGroup(tx, id)
		if err != nil {
			return err
		}
		if !g.HasPendingCommit() || serverEpoch(g, r) != pc.Epoch {
			// Settled by the log already.
			return tx.Delete(bucketPending, hexID(id))
		}
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		return nil
	}
	if err != nil || !g.HasPendingCommit() || serverEpoch(g, r) != pc.Epoch {
		return err
	}
	_, err = c.sendPending(ctx, conn, r, g, &pc)
	if errors.Is(err, errLostEpoch) {
		return nil
	}
	return err
}

// addUsers adds every device of users (and this account's other devices)
// that is not yet in the group, then (for groups) re-announces the name.
// prefetched holds key packages already fetched per user; it is updated
// so that an attempt lost to an epoch conflict reuses them (they were
// never accepted).
func (c *Client) addUsers(ctx context.Context, r *convRecord, users []string, includeOwn bool, prefetched map[string][]transport.DeviceKeyPackage) error {
	conn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	if prefetched == nil {
		prefetched = map[string][]transport.DeviceKeyPackage{}
	}
	var ownOthers []string
	if includeOwn {
		own, err := c.verifiedList(ctx, conn, c.acct.User)
		if err != nil {
			return err
		}
		for _, d := range own.Devices {
			if d.ID != c.acct.DeviceID {
				ownOthers = append(ownOthers, d.ID)
			}
		}
	}
	cr, err := c.commit(ctx, r, func(g *mls.Group) (*commitPlan, error) {
		present := groupDevices(g)
		suite := g.Suite().ID() // new members' key packages must be of the group's suite
		p := &commitPlan{membership: &Membership{}}
		add := func(user string, kps []transport.DeviceKeyPackage) {
			for _, kp := range kps {
				if _, ok := present[Sender{User: user, Device: kp.DeviceID}]; ok || slices.Contains(p.added, kp.DeviceID) {
					continue
				}
				p.opts.Adds = append(p.opts.Adds, kp.KeyPackage.Data)
				p.added = append(p.added, kp.DeviceID)
				p.membership.Added = append(p.membership.Added, Sender{User: user, Device: kp.DeviceID})
			}
		}
		for _, u := range users {
			if _, ok := prefetched[u]; !ok {
				kps, missing, err := c.fetchKeyPackages(ctx, conn, u, suite)
				if errors.Is(err, ErrSuiteNotSupported) {
					return nil, fmt.Errorf("%s uses %s: %w", r.label(), suiteName(suite), err)
				}
				if err != nil {
					return nil, err
				}
				if len(missing) > 0 && suite != classicSuite {
					c.warn(r, nil, fmt.Errorf("%s cannot join %s, which uses %s: an older Parley; it is left out", strings.Join(missing, ", "), r.label(), suiteName(suite)))
				}
				prefetched[u] = kps
			}
			add(u, prefetched[u])
		}
		var missing []string
		for _, d := range ownOthers {
			if _, ok := present[Sender{User: c.acct.User, Device: d}]; ok {
				continue
			}
			if !slices.ContainsFunc(prefetched[c.acct.User], func(kp transport.DeviceKeyPackage) bool { return kp.DeviceID == d }) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			// An own device without a package of the suite (none left,
			// or an older Parley in an X-Wing group) is left out.
			kps, _, err := c.fetchKeyPackages(ctx, conn, c.acct.User, suite, missing...)
			if err != nil && !errors.Is(err, ErrUnknownUser) && !errors.Is(err, ErrSuiteNotSupported) {
				return nil, err
			}
			prefetched[c.acct.User] = append(prefetched[c.acct.User], kps...)
		}
		add(c.acct.User, prefetched[c.acct.User])
		if len(p.opts.Adds) == 0 {
			return nil, errNothingToCommit
		}
		if err := checkGroupSize(conn, g, p.membership.Added); err != nil {
			return nil, err
		}
		return p, nil
	})
	if err != nil || cr == nil {
		return err // nil commit: nothing was missing
	}
	if r.Kind == ConvGroup {
		return c.sendMeta(ctx, r)
	}
	return nil
}

// ErrSuiteNotSupported means none of a user's devices has a key package
// of the conversation's cipher suite: they run a Parley from before it
// (X-Wing) and must update to join.
var ErrSuiteNotSupported = errors.New("client: no device of the user can join a conversation of this cipher suite")

// fetchKeyPackages fetches and checks one key package of suite per
// device of user (or of the listed devices). missing names ("user's
// device ID") the devices of the user's signed list, among those asked
// for, that got none.
func (c *Client) fetchKeyPackages(ctx context.Context, conn *transport.Conn, user string, suite ciphersuite.ID, devices ...string) (kps []transport.DeviceKeyPackage, missing []string, err error) {
	kps, err = retryRateLimited(ctx, func() ([]transport.DeviceKeyPackage, error) {
		return conn.FetchKeyPackagesOf(ctx, uint16(suite), user, devices...)
	})
	if errors.Is(err, wire.ErrNotFound) || err == nil && len(kps) == 0 && suite == classicSuite {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownUser, user)
	}
	if err != nil {
		return nil, nil, err
	}
	list, err := c.verifiedList(ctx, conn, user)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range list.Devices {
		if user == c.acct.User && d.ID == c.acct.DeviceID || len(devices) > 0 && !slices.Contains(devices, d.ID) {
			continue
		}
		if !slices.ContainsFunc(kps, func(kp transport.DeviceKeyPackage) bool { return kp.DeviceID == d.ID }) {
			missing = append(missing, fmt.Sprintf("%s's device %s", user, d.ID))
		}
	}
	if len(kps) == 0 {
		return nil, missing, fmt.Errorf("%w: %s (%s); they need to update Parley", ErrSuiteNotSupported, user, suiteName(suite))
	}
	// Key packages of devices the account did not sign are dropped: the
	// server may have added them.
	var out []transport.DeviceKeyPackage
	var unlisted error
	for _, kp := range kps {
		err := c.checkKeyPackage(kp, user, list, suite)
		if errors.Is(err, ErrUnlistedDevice) {
			unlisted = err
			c.warn(nil, nil, err)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, kp)
	}
	if len(out) == 0 {
		if unlisted != nil {
			return nil, nil, unlisted
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownUser, user)
	}
	return out, missing, nil
}

// prefetchNew fetches the key packages of users' devices and of this
// account's other devices for a new conversation, and chooses its cipher
// suite: X-Wing if every one of those devices has an X-Wing key package,
// else suite 1 (some device runs a Parley from before X-Wing). notPQ
// names the devices that made it fall back. The X-Wing packages fetched
// before a fallback are not used (the devices still hold their private
// keys, and have more).
func (c *Client) prefetchNew(ctx context.Context, conn *transport.Conn, users []string) (suite ciphersuite.ID, pre map[string][]transport.DeviceKeyPackage, notPQ []string, err error) {
	fetch := func(suite ciphersuite.ID) (map[string][]transport.DeviceKeyPackage, []string, error) {
		pre := map[string][]transport.DeviceKeyPackage{}
		var missing []string
		for _, u := range users {
			kps, m, err := c.fetchKeyPackages(ctx, conn, u, suite)
			if err != nil && !(errors.Is(err, ErrSuiteNotSupported) && suite != classicSuite) {
				return nil, nil, err
			}
			pre[u] = kps
			missing = append(missing, m...)
		}
		own, err := c.verifiedList(ctx, conn, c.acct.User)
		if err != nil {
			return nil, nil, err
		}
		var others []string
		for _, d := range own.Devices {
			if d.ID != c.acct.DeviceID {
				others = append(others, d.ID)
			}
		}
		if len(others) > 0 {
			kps, m, err := c.fetchKeyPackages(ctx, conn, c.acct.User, suite, others...)
			if err != nil && !errors.Is(err, ErrUnknownUser) && !errors.Is(err, ErrSuiteNotSupported) {
				return nil, nil, err
			}
			pre[c.acct.User] = kps
			missing = append(missing, m...)
		}
		return pre, missing, nil
	}
	suite = c.newGroupSuite()
	pre, missing, err := fetch(suite)
	if err != nil || len(missing) == 0 || suite == classicSuite {
		return suite, pre, nil, err
	}
	pre, _, err = fetch(classicSuite)
	if err != nil {
		return 0, nil, nil, err
	}
	return classicSuite, pre, missing, nil
}

// checkKeyPackage makes sure a key package the server handed out for
// user's device really names that user and device, is valid, and is
// signed by the MLS key user's signed device list gives that device.
func (c *Client) checkKeyPackage(kp transport.DeviceKeyPackage, user string, list devicelist.List, suite ciphersuite.ID) error {
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		return err
	}
	var m mls.MLSMessage
	if err := m.Unmarshal(kp.KeyPackage.Data); err != nil {
		return fmt.Errorf("key package of %s/%s: %w", user, kp.DeviceID, err)
	}
	if m.WireFormat != mls.WireFormatKeyPackage || m.KeyPackage == nil {
		return fmt.Errorf("key package of %s/%s: not a key package", user, kp.DeviceID)
	}
	if err := m.KeyPackage.Validate(s, uint64(c.opts.now().Unix())); err != nil {
		return fmt.Errorf("key package of %s/%s: %w", user, kp.DeviceID, err)
	}
	id, err := parseIdentity(m.KeyPackage.LeafNode.Credential.Identity)
	if err != nil || id.User != user || id.Device != kp.DeviceID {
		return fmt.Errorf("client: the server returned a key package for %q as %s/%s", m.KeyPackage.LeafNode.Credential.Identity, user, kp.DeviceID)
	}
	return checkListed(list, kp.DeviceID, m.KeyPackage.LeafNode.SignatureKey)
}

// removeDevices removes every member matching match.
func (c *Client) removeDevices(ctx context.Context, r *convRecord, match func(Sender) bool, users []string) error {
	_, err := c.commit(ctx, r, func(g *mls.Group) (*commitPlan, error) {
		p := &commitPlan{membership: &Membership{}}
		self := Sender{User: c.acct.User, Device: c.acct.DeviceID}
		for s, leaf := range groupDevices(g) {
			if s == self || !match(s) {
				continue
			}
			p.opts.Removes = append(p.opts.Removes, leaf)
			p.removed = append(p.removed, s.Device)
			p.membership.Removed = append(p.membership.Removed, s)
		}
		if len(p.opts.Removes) == 0 {
			if users != nil {
				return nil, fmt.Errorf("%w: %s not in %s", ErrUnknownUser, strings.Join(users, ", "), r.label())
			}
			return nil, errNothingToCommit
		}
		slices.Sort(p.opts.Removes)
		// Users removed from the group stop being its admins, so that
		// being added again does not make them admins again.
		if st, _, err := groupStateOf(g.GroupContext().Extensions); err == nil && st != nil && users != nil {
			next := st
			for _, u := range users {
				next = next.withAdmin(u, false)
			}
			if len(next.Admins) != len(st.Admins) {
				p.opts.GroupContextExtensions = replaceExtension(g.GroupContext().Extensions, next.extension())
			}
		}
		return p, nil
	})
	return err
}

func membershipText(actor string, m *Membership) string {
	var parts []string
	// names lists the users among ss; the actor's own devices are "a new
	// device" (linking) or "a device" (unlinking) rather than themselves.
	names := func(ss []Sender, own string) string {
		var users []string
		for _, s := range ss {
			name := s.User
			if name == actor {
				name = own
			}
			if !slices.Contains(users, name) {
				users = append(users, name)
			}
		}
		return strings.Join(users, ", ")
	}
	if len(m.Added) > 0 {
		parts = append(parts, actor+" added "+names(m.Added, "a new device of "+actor))
	}
	if len(m.Removed) > 0 {
		parts = append(parts, actor+" removed "+names(m.Removed, "a device of "+actor))
	}
	if len(m.Left) > 0 {
		var users []string
		for _, s := range m.Left {
			if !slices.Contains(users, s.User) {
				users = append(users, s.User)
			}
		}
		parts = append(parts, strings.Join(users, ", ")+" left")
	}
	return strings.Join(parts, "; ")
}
