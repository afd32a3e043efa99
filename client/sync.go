package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/wire"
)

// Buckets of the history.
const (
	bucketSeen  = "seen"  // hex(message id) → "" for every processed message; for a sent one, when it was first sent (markSent)
	bucketNew   = "new"   // hex(message id) → newEntry, not yet reported by Sync
	bucketFiles = "file"  // hex(message id) → fileDescriptor (with the key)
	historyPfx  = "hist/" // + hex(conversation id): hex(message id) → Message
	// bucketUnread: hex(conversation id) → "" for a conversation this
	// device is a member of on the server but will never read: its
	// Welcome was refused (a blocked inviter) or unusable, or it was only
	// a history transfer's envelope. Its log is acknowledged unread.
	bucketUnread = "unread"
)

// errNotJoined: a conversation log entry of a conversation this device
// has no state for yet (its Welcome has not been processed). It is left
// unacknowledged for a sync after the Welcome.
var errNotJoined = errors.New("client: a message of a conversation not joined yet")

// joinRefusal wraps checkJoin's refusal of a Welcome, which the server is
// told of (a verdict), unlike other failures to join.
type joinRefusal struct{ err error }

func (e *joinRefusal) Error() string { return e.err.Error() }
func (e *joinRefusal) Unwrap() error { return e.err }

type newEntry struct {
	Conv []byte `json:"conv"`
	// Event is set for reactions, edits and deletes, which change another
	// message of the history instead of being one.
	Event *Message `json:"event,omitempty"`
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: decode stored record: %w", err)
	}
	return nil
}

func markSeen(tx *profile.Tx, id []byte) error { return tx.Put(bucketSeen, hexID(id), nil) }

func seen(tx *profile.Tx, id []byte) (bool, error) { return tx.Has(bucketSeen, hexID(id)) }

// notARedelivery reports whether m, a log entry whose id this device has
// seen, may still be new to it. The server keys its idempotency records
// by (first-send time, id) and stores what another device sends under a
// seen id with another first-send time (docs/protocol.md, "Idempotency"),
// or under an id seen in another conversation; the seen set cannot tell
// that from a redelivery. A commit or proposal that declares the device's
// server epoch or later is processed again: every commit this device
// processed, failed to process or sent moved that epoch past the commit's
// declared epoch, and a proposal this device holds already, or sent
// itself, is answered with mls.ErrReplay (a redelivery, dropped quietly).
// Skipping instead would leave this device behind the members who had
// not seen the id: an epoch behind the server for a commit, without the
// proposal a later commit includes by reference. Application messages
// under a seen id stay dropped: their id is a hash of their content
// (the MIMI id check), so a reused id would not pass it anyway.
func notARedelivery(tx *profile.Tx, r *convRecord, m transport.Message) (bool, error) {
	if (m.Kind != transport.KindCommit && m.Kind != transport.KindProposal) || r.Removed {
		return false, nil
	}
	g, err := loadGroup(tx, r.ID)
	if errors.Is(err, profile.ErrNotFound) {
		return false, nil // no group state to count it in
	}
	if err != nil {
		return false, err
	}
	return m.Epoch >= serverEpoch(g, r), nil
}

// markSent marks id seen as a message this device sends and returns when
// the device first tried to send it: now at the first attempt, the time
// recorded then at every later one (after a restart too), so that every
// retry carries the same SendRequest.first_sent_unix_ms and the server
// recognises it. A message marked seen without a time (received, or sent
// by a version that kept none) has the zero time, which is what that
// version sent.
func markSent(tx *profile.Tx, id []byte, now time.Time) (time.Time, error) {
	v, err := tx.Get(bucketSeen, hexID(id))
	switch {
	case err == nil && len(v) == 8:
		return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), nil
	case err == nil:
		return time.Time{}, nil
	case !errors.Is(err, profile.ErrNotFound):
		return time.Time{}, err
	}
	ms := transport.FirstSentUnixMs(now)
	if err := tx.Put(bucketSeen, hexID(id), binary.BigEndian.AppendUint64(nil, ms)); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(ms)), nil
}

// record adds m to the conversation's history and, if notify, to the
// queue of messages Sync reports.
func (c *Client) record(tx *profile.Tx, r *convRecord, m *Message, notify bool) error {
	if r.Kind == ConvSelf {
		return nil // the own-devices conversation has no history to show
	}
	if r.Request {
		notify = false // a message request is shown once accepted
	}
	if err := tx.PutJSON(historyPfx+hexID(r.ID), m.ID, m); err != nil {
		return err
	}
	if m.SentAt.After(r.Last) {
		r.Last = m.SentAt
		if err := putConv(tx, r); err != nil {
			return err
		}
	}
	if notify {
		return tx.PutJSON(bucketNew, m.ID, newEntry{Conv: r.ID})
	}
	return nil
}

// Warning is a problem with one message that did not stop a sync (for
// instance a message that failed to decrypt). It never contains message
// contents.
type Warning struct {
	Conversation string `json:"conversation"`
	ID           string `json:"id"`
	Err          string `json:"error"`
	// Alert is set when the warning is a sign that the server (or a
	// member) is attacking the conversation: a device or member not in
	// its account's signed list, a changed account key, an older list, a
	// message from outside the group. Clients must show it so that no
	// one can miss it.
	Alert bool `json:"alert,omitempty"`
}

// IsSecurityAlert reports whether err is a sign that the server or a
// member attacks the conversation (see Warning.Alert): a client must show
// it so that no one can miss it.
func IsSecurityAlert(err error) bool { return isAlert(err) }

// isAlert reports whether err is one of the signs of an attack.
func isAlert(err error) bool {
	// A list that does not verify can only come from a server (or a
	// network path) that tampered with it.
	for _, e := range []error{ErrUnlistedDevice, ErrAccountKeyChanged, ErrListRollback, ErrOutsider, ErrLinkTampered,
		devicelist.ErrBadSignature, devicelist.ErrMalformed, ErrDirectory, ErrRefusedByMembers} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (c *Client) warn(r *convRecord, id []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	label := ""
	if r != nil {
		label = r.label()
	}
	c.warnings = append(c.warnings, Warning{Conversation: label, ID: hexID(id), Err: err.Error(), Alert: isAlert(err)})
}

// Warnings returns and clears the warnings collected so far.
func (c *Client) Warnings() []Warning {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.warnings
	c.warnings = nil
	return w
}

// syncConversation fetches, processes and acknowledges everything after
// this device's cursor in one conversation. Call with the lock held.
func (c *Client) syncConversation(ctx context.Context, conn *transport.Conn, id []byte) (int, error) {
	if err := c.settlePending(ctx, conn, id); err != nil {
		return 0, err
	}
	n := 0
	for {
		msgs, more, err := conn.Fetch(ctx, id, 0)
		if errors.Is(err, wire.ErrNotMember) || errors.Is(err, wire.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		for _, m := range msgs {
			if err := c.processLogMessage(m); errors.Is(err, errNotJoined) {
				// Nothing of it was processed (no entry of a conversation
				// without state is): nothing is acknowledged.
				return n, nil
			} else if err != nil {
				return n, err
			}
			n++
		}
		if len(msgs) > 0 {
			if err := c.ackWithVerdicts(ctx, conn, id, msgs[len(msgs)-1].Seq); err != nil {
				return n, err
			}
		}
		if !more || len(msgs) == 0 {
			c.alertRoster(ctx, conn, id)
			return n, nil
		}
	}
}

// alertRoster checks a conversation's members against their accounts'
// signed device lists after it changed, and warns, naming the device,
// when one is not listed: the server may have slipped it in. (Sending to
// the conversation is refused by prepare's check meanwhile.)
func (c *Client) alertRoster(ctx context.Context, conn *transport.Conn, id []byte) {
	var r *convRecord
	var g *mls.Group
	err := c.store.Update(func(tx *profile.Tx) error {
		var err error
		if r, err = getConv(tx, id); err != nil {
			return err
		}
		if r.Removed {
			r = nil
			return nil
		}
		g, err = loadGroup(tx, id)
		return err
	})
	if err != nil || r == nil {
		return
	}
	if err := c.checkRoster(ctx, conn, r, g); err != nil {
		c.warn(r, nil, err)
	}
}

// processLogMessage handles one conversation log entry in its own
// transaction. A message that cannot be processed is skipped with a
// warning rather than wedging the conversation; storage errors abort.
func (c *Client) processLogMessage(m transport.Message) error {
	return c.store.Update(func(tx *profile.Tx) error {
		r, err := getConv(tx, m.ConversationID)
		if errors.Is(err, profile.ErrNotFound) {
			if ok, err := tx.Has(bucketUnread, hexID(m.ConversationID)); err != nil || ok {
				return err // a conversation this device will never read
			}
			// Listed by the server before its Welcome was processed (it
			// arrived during this sync): acknowledging it now would lose
			// it, as the Welcome only gives the state to read it with.
			return errNotJoined
		}
		if err != nil {
			return err
		}
		if len(m.ID) != wire.MessageIDSize {
			c.warn(r, m.ID, errors.New("malformed message id"))
			return nil
		}
		seenBefore, err := seen(tx, m.ID)
		if err != nil {
			return err
		}
		if seenBefore {
			if again, err := notARedelivery(tx, r, m); err != nil || !again {
				return err // a redelivery
			}
		} else if err := markSeen(tx, m.ID); err != nil {
			return err
		}
		if r.Removed || m.Epoch < r.JoinedAt {
			return nil // removed, or from before this device joined
		}
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		var pc pendingCommit
		hasPending := g.HasPendingCommit()
		if hasPending {
			if err := tx.GetJSON(bucketPending, hexID(r.ID), &pc); err != nil && !errors.Is(err, profile.ErrNotFound) {
				return err
			}
			if m.Kind == transport.KindCommit && !bytes.Equal(pc.ID, m.ID) {
				// Another commit took the epoch of our unsent-or-unknown
				// one: ours can never be accepted.
				g.DiscardPendingCommit()
				hasPending = false
				if err := saveGroup(tx, g); err != nil {
					return err
				}
				if err := tx.Delete(bucketPending, hexID(r.ID)); err != nil {
					return err
				}
			}
		}
		before := g.Members()
		oldExt := g.GroupContext().Extensions
		epochBefore := g.Epoch()
		res, err := g.Process(m.Payload)
		if errors.Is(err, mls.ErrDuplicateProposal) || (seenBefore && m.Kind == transport.KindProposal && errors.Is(err, mls.ErrReplay)) {
			// A repeat of a proposal we hold (a leave run twice), or a
			// seen proposal that is a redelivery after all (one this
			// device holds or sent: notARedelivery).
			return nil
		}
		if err != nil {
			c.warn(r, m.ID, fmt.Errorf("cannot process %s: %w", kindName(m.Kind), err))
			if m.Kind == transport.KindCommit {
				// Not applied, but the server counted it (serverEpoch);
				// what it declared to change is refused.
				if err := noteVerdict(tx, r.ID, m.ID, true); err != nil {
					return err
				}
				return noteServerEpoch(tx, r, m.Epoch+1, g.Epoch())
			}
			return nil
		}
		if res.Sender.Type != mls.SenderTypeMember || (res.Commit != nil && res.Commit.External) {
			// Parley groups take members only by their members' commits:
			// an external commit or a proposal from outside the group is
			// how a server would slip a member in. The group stays as it
			// was, and goes on past it as past any refused commit.
			c.warn(r, m.ID, fmt.Errorf("%w: refused a %s from outside the group", ErrOutsider, kindName(m.Kind)))
			if res.Commit != nil {
				if err := noteVerdict(tx, r.ID, m.ID, true); err != nil {
					return err
				}
				return noteServerEpoch(tx, r, m.Epoch+1, res.Commit.NewEpoch-1)
			}
			return nil
		}
		if res.Kind == mls.ResultCommit && !(hasPending && res.Commit != nil && res.Commit.Own) && !c.testNoRoles {
			// Every member checks the committer's right to the change
			// against the state before it; a refused commit is not
			// applied (g is dropped unsaved), by every member alike.
			if err := checkCommitPolicy(oldExt, g.GroupContext().Extensions, commitChangeOf(r, c.acct.User, res, before, g)); err != nil {
				c.warn(r, m.ID, err)
				// The server keeps what the commit declared to change
				// pending until the members' verdicts: this one undoes it.
				if err := noteVerdict(tx, r.ID, m.ID, true); err != nil {
					return err
				}
				// The MLS epoch before the commit: g.Epoch()-1 is not it
				// when the commit removed this device (g then stays in its
				// epoch, marked removed).
				return noteServerEpoch(tx, r, m.Epoch+1, epochBefore)
			}
		}
		if err := saveGroup(tx, g); err != nil {
			return err
		}
		if m.Kind == transport.KindCommit {
			if err := noteServerEpoch(tx, r, m.Epoch+1, g.Epoch()); err != nil {
				return err
			}
		}
		if cr := res.Commit; res.Kind == mls.ResultCommit && cr != nil && !cr.Own && len(cr.Added)+len(cr.Removed) > 0 {
			// Applied: the membership change it declared to the server
			// takes effect there by the members' verdicts.
			if err := noteVerdict(tx, r.ID, m.ID, false); err != nil {
				return err
			}
		}
		if res.Kind == mls.ResultCommit && hasPending && res.Commit != nil && res.Commit.Own {
			// Our pending commit came back: it was accepted.
			return c.finishCommit(tx, r, &pc, m.Seq)
		}
		sender, err := parseIdentity(res.Credential.Identity)
		if err != nil {
			c.warn(r, m.ID, err)
			return nil
		}
		switch res.Kind {
		case mls.ResultApplication:
			return c.handleApplication(tx, r, g, m, sender, res.Plaintext, res.AuthenticatedData)
		case mls.ResultCommit:
			return c.handleCommit(tx, r, g, m, sender, before, res.Commit)
		case mls.ResultProposal:
			return c.handleProposal(tx, r, g, res, sender)
		}
		return nil
	})
}

func kindName(k transport.Kind) string {
	switch k {
	case transport.KindCommit:
		return "commit"
	case transport.KindApplication:
		return "message"
	case transport.KindProposal:
		return "proposal"
	}
	return "entry"
}

func (c *Client) handleApplication(tx *profile.Tx, r *convRecord, g *mls.Group, m transport.Message, sender Sender, plaintext, aad []byte) error {
	if len(plaintext) == 0 || plaintext[0] != '{' {
		return c.handleMimi(tx, r, g, m, sender, plaintext, aad)
	}
	// A JSON payload of a client from before the MIMI content format.
	if why, ok := legacyUnsupported(plaintext); ok {
		if why.ID != hexID(m.ID) {
			c.warn(r, m.ID, errors.New("message id does not match its envelope; dropped"))
			return nil
		}
		ev := &event{ID: why.ID, Sender: sender, At: m.Stored.UTC(), Seq: m.Seq, Outgoing: sender == Sender{User: c.acct.User, Device: c.acct.DeviceID}}
		return c.accept(tx, r, nil, ev, &parsed{kind: KindUnsupported, why: why.Kind}, true)
	}
	p, err := decodePayload(plaintext)
	if err != nil {
		c.warn(r, m.ID, err)
		return nil
	}
	if p.ID != hexID(m.ID) {
		c.warn(r, m.ID, errors.New("message id does not match its envelope; dropped"))
		return nil
	}
	if p.KT != nil && sender != (Sender{User: c.acct.User, Device: c.acct.DeviceID}) {
		c.notePeerView(r, sender, p.KT)
	}
	ev := &event{ID: p.ID, Sender: sender, At: time.UnixMilli(p.SentAt).UTC(), Seq: m.Seq,
		Outgoing: sender.User == c.acct.User && sender.Device == c.acct.DeviceID}
	return c.accept(tx, r, memberUsers(r, g), ev, &parsed{kind: p.Kind, text: p.Text, file: p.File, receipts: p.Receipts, group: p.Group}, true)
}

func (c *Client) handleCommit(tx *profile.Tx, r *convRecord, g *mls.Group, m transport.Message, sender Sender, before []mls.Member, cr *mls.CommitResult) error {
	if cr == nil {
		return nil
	}
	ms := &Membership{}
	for _, leaf := range cr.Removed {
		for _, old := range before {
			if old.LeafIndex == leaf {
				if s, err := memberIdentity(old); err == nil {
					if leftByProposal(r, s, c.acct.User) {
						ms.Left = append(ms.Left, s)
					} else {
						ms.Removed = append(ms.Removed, s)
					}
				}
			}
		}
	}
	// Proposals of the closed epoch lapsed.
	if n := len(r.SelfRemovals); n > 0 {
		r.SelfRemovals = slices.DeleteFunc(r.SelfRemovals, func(sr selfRemoval) bool { return sr.Epoch < g.Epoch() })
		if len(r.SelfRemovals) != n {
			if err := putConv(tx, r); err != nil {
				return err
			}
		}
	}
	for _, leaf := range cr.Added {
		if mem, ok := g.Member(leaf); ok {
			if s, err := memberIdentity(mem); err == nil {
				ms.Added = append(ms.Added, s)
			}
		}
	}
	if cr.RemovedSelf {
		r.Removed = true
		if err := putConv(tx, r); err != nil {
			return err
		}
	}
	if len(ms.Added) == 0 && len(ms.Removed) == 0 && len(ms.Left) == 0 {
		return nil
	}
	msg := &Message{
		ID: hexID(m.ID), Conversation: r.label(), ConversationID: hexID(r.ID), Sender: sender,
		SentAt: m.Stored.UTC(), Kind: KindMembership, Text: membershipText(sender.User, ms),
		Membership: ms, Seq: m.Seq,
	}
	return c.record(tx, r, msg, true)
}

// processInbox joins the groups of pending Welcomes. Call with the lock
// held. It returns the ids of the conversations joined.
func (c *Client) processInbox(ctx context.Context, conn *transport.Conn) ([][]byte, error) {
	var joined [][]byte
	for {
		msgs, more, err := conn.FetchInbox(ctx, 0)
		if err != nil {
			return joined, err
		}
		for _, m := range msgs {
			if m.Kind == transport.KindRefused {
				if err := c.noteRefused(m); err != nil {
					return joined, err
				}
				continue
			}
			id, err := c.joinFromWelcome(m)
			if errors.Is(err, profile.ErrStorage) {
				// Nothing was stored: the Welcome stays in the inbox,
				// unacknowledged, for the next sync (acknowledged, it
				// was lost with its whole conversation).
				return joined, err
			}
			if err != nil || id == nil {
				// Refused, unusable, a history transfer's envelope or a
				// repeat: unless the conversation is known, it is one this
				// device cannot read, and its log is acknowledged unread.
				if err := c.markUnread(m.ConversationID); err != nil {
					return joined, err
				}
			}
			if errors.Is(err, errBlockedWelcome) {
				continue // refused in silence: acked below, never joined
			}
			if jr := (*joinRefusal)(nil); errors.As(err, &jr) {
				// Refused because the committer may not add anyone: the
				// server is told, so that this device leaves the
				// group's delivery (unless the members decided first).
				if err := c.store.Update(func(tx *profile.Tx) error { return noteVerdict(tx, m.ConversationID, m.ID, true) }); err != nil {
					return joined, err
				}
			}
			if err != nil {
				c.warn(nil, m.ID, fmt.Errorf("cannot join from Welcome: %w", err))
				continue
			}
			if len(id) == ownConvIDSize && c.isOwnConv(id) {
				// The account's state (settings, request decisions) first:
				// whether the Welcomes after it are message requests
				// depends on it.
				if _, err := c.syncConversation(ctx, conn, id); err != nil {
					return joined, err
				}
			} else if id != nil {
				joined = append(joined, id)
			}
		}
		if len(msgs) > 0 {
			if err := conn.AckInbox(ctx, msgs[len(msgs)-1].Seq); err != nil {
				return joined, err
			}
		}
		if !more || len(msgs) == 0 {
			break
		}
	}
	c.flushVerdicts(ctx, conn)
	// Read what was sent after we were added (the group name, messages).
	for _, id := range joined {
		if _, err := c.syncConversation(ctx, conn, id); err != nil {
			return joined, err
		}
	}
	return joined, nil
}

// markUnread records that this device will never read the conversation
// id unless it already has it (see bucketUnread).
func (c *Client) markUnread(id []byte) error {
	if len(id) == 0 {
		return nil
	}
	return c.store.Update(func(tx *profile.Tx) error {
		if _, err := getConv(tx, id); !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return tx.Put(bucketUnread, hexID(id), nil)
	})
}

func (c *Client) joinFromWelcome(m transport.Message) ([]byte, error) {
	refs, err := welcomeRefs(m.Payload)
	if err != nil {
		return nil, err
	}
	var joined []byte
	err = c.store.Update(func(tx *profile.Tx) error {
		if c.testHookJoin != nil {
			if err := c.testHookJoin(); err != nil {
				return err
			}
		}
		if ok, err := seen(tx, m.ID); err != nil || ok {
			return err
		}
		if old, err := getConv(tx, m.ConversationID); err == nil && !old.Removed {
			og, err := loadGroup(tx, old.ID)
			if err != nil || m.Epoch <= serverEpoch(og, old) {
				// Already a member (a duplicate delivery).
				return markSeen(tx, m.ID)
			}
			// A Welcome for a later epoch than this device is in: it was
			// removed and added back before it read its removal (the
			// server kept it a member, its removal pending: §14 of
			// docs/protocol.md). It joins anew, as after a removal.
		}
		bundle, err := takeBundle(tx, refs)
		if err != nil {
			return err
		}
		cfg := groupConfig()
		g, err := mls.JoinFromWelcome(m.Payload, bundle, nil, &cfg)
		if err != nil {
			return err
		}
		if !bytes.Equal(g.GroupID(), m.ConversationID) {
			return errors.New("the Welcome is for another group than its envelope says")
		}
		if ext, ok := g.GroupContext().Extensions.Find(extensionHistoryTransfer); ok {
			// A history transfer from another device of this account:
			// the group was only its envelope (historytransfer.go).
			return c.historyWelcome(tx, m, g, ext)
		}
		if !c.testNoRoles {
			// Added by a commit every member refuses, this device would be
			// in a group of one with the committer: refused, the key
			// package is not used.
			if err := checkJoin(g, c.acct.User); err != nil {
				return &joinRefusal{err}
			}
		}
		users := map[string]bool{}
		var adder Sender
		for _, mem := range g.Members() {
			s, err := memberIdentity(mem)
			if err != nil {
				return err
			}
			users[s.User] = true
			if s.Device == m.Sender {
				adder = s
			}
		}
		r := &convRecord{ID: g.GroupID(), Kind: ConvGroup, Created: c.opts.now().UTC(), JoinedAt: m.Epoch, JoinedBy: m.ID, AddedBy: adder.User}
		if m.Epoch > g.Epoch() {
			// The server's epoch (after the commit that added us) is ahead
			// of MLS's by the commits the members refused: see serverEpoch.
			r.Skipped = m.Epoch - g.Epoch()
		}
		if len(users) == 2 {
			for u := range users {
				if u != c.acct.User && bytes.Equal(directID(c.acct.User, u), g.GroupID()) {
					r.Kind, r.Peer = ConvDirect, u
				}
			}
		}
		if len(users) == 1 && users[c.acct.User] && len(r.ID) == ownConvIDSize {
			// Only devices of this account: its own-devices conversation
			// (ownsync.go). Send this device's state to the others.
			r.Kind = ConvSelf
			if err := tx.Put(bucketOwnMeta, "dirty", []byte{1}); err != nil {
				return err
			}
		}
		if r.Kind == ConvDirect {
			if r.Request, err = isRequest(tx, r.ID, adder.User, c.acct.User); err != nil {
				return err
			}
		}
		if err := saveGroup(tx, g); err != nil {
			return err
		}
		if err := putConv(tx, r); err != nil {
			return err
		}
		if err := markSeen(tx, m.ID); err != nil {
			return err
		}
		if r.Kind != ConvSelf {
			// Joined: the addition the server holds pending is accepted.
			if err := noteVerdict(tx, r.ID, m.ID, false); err != nil {
				return err
			}
		}
		joined = r.ID
		// Nothing from a blocked person reaches the user, even if the
		// server let their commit through (it refuses them, but a block
		// made after the invitation was queued, or a server that does not
		// enforce blocks, would): the invitation is refused, the key
		// package is not used, and the inviter is not told.
		for u := range users {
			if u != c.acct.User && isBlocked(tx, u) && (u == adder.User || r.Kind == ConvDirect) {
				return errBlockedWelcome
			}
		}
		if adder.User == "" {
			adder.User = "someone"
		}
		if r.Kind == ConvDirect && g.Epoch() == 1 || r.Kind == ConvSelf {
			return nil // a direct chat does not open with "alice added bob"
		}
		ms := &Membership{Added: []Sender{{User: c.acct.User, Device: c.acct.DeviceID}}}
		msg := &Message{
			ID: hexID(m.ID), Conversation: r.label(), ConversationID: hexID(r.ID), Sender: adder,
			SentAt: m.Stored.UTC(), Kind: KindMembership, Text: membershipText(adder.User, ms), Membership: ms,
		}
		return c.record(tx, r, msg, true)
	})
	return joined, err
}

// SyncResult is what Sync found.
type SyncResult struct {
	Messages []Message
	// Receipts counts the read receipts sent.
	Receipts int
}

// Sync fetches everything new (Welcomes first, then every conversation
// log in order), sends read receipts for the text and file messages it
// reports, and returns the new messages, each exactly once.
func (c *Client) Sync(ctx context.Context) (SyncResult, error) {
	var out SyncResult
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if err := c.handlePendingEvents(ctx, conn); err != nil {
			return err
		}
		if err := c.syncAll(ctx, conn); err != nil {
			return err
		}
		if err := c.monitorOwn(ctx, conn, false); err != nil && !isNotReady(err) {
			c.warn(nil, nil, fmt.Errorf("checking this account in the key transparency directory: %w", err))
		}
		c.comparePeerViews(ctx, conn)
		c.healOwnDevices(ctx, conn)
		c.shareOwnState(ctx, conn, false)
		c.completeLeaves(ctx, conn)
		if _, _, err := c.sweepExpired(ctx); err != nil {
			return err
		}
		out.Messages, err = c.drainNew()
		if err != nil {
			return err
		}
		out.Receipts = c.sendReceipts(ctx, conn, out.Messages)
		return nil
	})
	return out, err
}

func (c *Client) syncAll(ctx context.Context, conn *transport.Conn) error {
	var pending []profile.Item
	if err := c.store.Update(func(tx *profile.Tx) (err error) { pending, err = tx.List(bucketPending); return err }); err != nil {
		return err
	}
	for _, it := range pending {
		id, err := hex.DecodeString(it.Key)
		if err != nil {
			continue
		}
		if err := c.settlePending(ctx, conn, id); err != nil {
			return err
		}
	}
	c.refreshBlocked(ctx, conn)
	if _, err := c.processInbox(ctx, conn); err != nil {
		return err
	}
	if _, err := c.receiveHistory(ctx, conn); err != nil {
		return err
	}
	if c.testHookAfterInbox != nil {
		c.testHookAfterInbox()
	}
	infos, err := conn.ListConversations(ctx)
	if err != nil {
		return err
	}
	// The own-devices conversation first: an invite made on another
	// device must be known before a join request for it is read.
	var own *convRecord
	if err := c.store.Update(func(tx *profile.Tx) (err error) { own, err = ownConv(tx); return err }); err != nil {
		return err
	}
	if own != nil {
		slices.SortStableFunc(infos, func(a, b transport.ConversationInfo) int {
			ao, bo := bytes.Equal(a.ID, own.ID), bytes.Equal(b.ID, own.ID)
			switch {
			case ao && !bo:
				return -1
			case bo && !ao:
				return 1
			}
			return 0
		})
	}
	reread := false
	for _, ci := range infos {
		if ci.HeadSeq <= ci.Cursor && ci.RemovedAt == 0 {
			continue
		}
		if !reread && !c.hasConvState(ci.ID) {
			// Its Welcome came after the inbox was read: join it now,
			// and the others that came with it.
			reread = true
			if _, err := c.processInbox(ctx, conn); err != nil {
				return err
			}
		}
		if _, err := c.syncConversation(ctx, conn, ci.ID); err != nil {
			return err
		}
	}
	c.flushVerdicts(ctx, conn)
	return nil
}

// hasConvState reports whether this device has a conversation's state,
// or knows it will never read it (bucketUnread).
func (c *Client) hasConvState(id []byte) bool {
	known := true
	c.store.Update(func(tx *profile.Tx) error {
		if _, err := getConv(tx, id); !errors.Is(err, profile.ErrNotFound) {
			return nil
		}
		ok, err := tx.Has(bucketUnread, hexID(id))
		known = ok || err != nil
		return nil
	})
	return known
}

// healOwnDevices adds this account's devices that are missing from one
// of its conversations (a link approved by a device that was not in it,
// or an approval interrupted half way), so that every device of the
// account is in every conversation. Devices without key packages yet are
// skipped until a later sync. Failures only warn. Call with the lock
// held.
func (c *Client) healOwnDevices(ctx context.Context, conn *transport.Conn) {
	// Only devices in the account's signed list: the server's list of
	// devices could hold a ghost.
	own, err := c.verifiedList(ctx, conn, c.acct.User)
	if err != nil {
		c.warn(nil, nil, fmt.Errorf("this account's device list: %w", err))
		return
	}
	devs := own.Devices
	if len(devs) > 1 {
		if err := c.ensureOwnConv(ctx, conn); err != nil {
			c.warn(nil, nil, fmt.Errorf("the conversation of this account's own devices: %w", err))
		}
	}
	var convs []*convRecord
	if err := c.store.Update(func(tx *profile.Tx) (err error) { convs, err = listConvs(tx); return err }); err != nil {
		c.warn(nil, nil, err)
		return
	}
	for _, r := range convs {
		if r.Removed || r.Request {
			continue // a message request: nothing is sent before it is accepted
		}
		var missing bool
		err := c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			present := groupDevices(g)
			for _, d := range devs {
				if _, ok := present[Sender{User: c.acct.User, Device: d.ID}]; !ok {
					missing = true
				}
			}
			return nil
		})
		if err != nil || !missing {
			continue
		}
		if err := c.addUsers(ctx, r, nil, true, nil); err != nil {
			c.warn(r, nil, fmt.Errorf("add this account's other devices: %w", err))
		}
	}
}

// drainNew returns and clears the queue of unreported messages, oldest
// first.
func (c *Client) drainNew() ([]Message, error) {
	var out []Message
	err := c.store.Update(func(tx *profile.Tx) error {
		items, err := tx.List(bucketNew)
		if err != nil {
			return err
		}
		for _, it := range items {
			var e newEntry
			if err := jsonUnmarshal(it.Value, &e); err != nil {
				return err
			}
			mute := muteOf(tx, e.Conv, c.opts.now())
			if e.Event != nil {
				if c.expired(e.Event.ExpiresAt) {
					continue
				}
				if r, err := getConv(tx, e.Conv); err == nil {
					e.Event.Conversation = r.label()
				}
				e.Event.Muted = mute.silences(false)
				out = append(out, *e.Event)
				continue
			}
			var m Message
			err := tx.GetJSON(historyPfx+hexID(e.Conv), it.Key, &m)
			if err == nil && c.expired(m.ExpiresAt) {
				continue
			}
			if err == nil {
				// Show the conversation's current name.
				if r, err := getConv(tx, e.Conv); err == nil {
					m.Conversation = r.label()
				}
				withQuote(tx, &m)
				m.Muted = mute.silences(m.Mentioned)
				out = append(out, m)
			} else if !errors.Is(err, profile.ErrNotFound) {
				return err
			}
		}
		return tx.DeleteBucket(bucketNew)
	})
	return out, err
}

// sendReceipts sends one read receipt per conversation for the text and
// file messages of other users among msgs (a delivery receipt when this
// profile's read receipts are off). Failures only warn.
func (c *Client) sendReceipts(ctx context.Context, conn *transport.Conn, msgs []Message) int {
	byConv := map[string][]string{}
	var order []string
	for _, m := range msgs {
		if (m.Kind != KindText && m.Kind != KindFile) || m.Sender.User == c.acct.User {
			continue
		}
		if _, ok := byConv[m.ConversationID]; !ok {
			order = append(order, m.ConversationID)
		}
		byConv[m.ConversationID] = append(byConv[m.ConversationID], m.ID)
	}
	sent := 0
	read := true
	c.store.Update(func(tx *profile.Tx) error { read = readReceiptsOn(tx); return nil })
	for _, convHex := range order {
		id, _ := hex.DecodeString(convHex)
		var r *convRecord
		err := c.store.Update(func(tx *profile.Tx) (err error) { r, err = getConv(tx, id); return err })
		if err != nil || r.Removed {
			continue
		}
		ids := byConv[convHex]
		for len(ids) > 0 {
			n := min(len(ids), maxReceipts)
			body, err := receiptBody(ids[:n], read)
			if err == nil {
				_, err = c.sendContent(ctx, conn, r, newContent(body), false)
			}
			if err != nil {
				c.warn(r, nil, fmt.Errorf("read receipt not sent: %w", err))
				break
			}
			ids = ids[n:]
			sent++
		}
	}
	return sent
}

// handlePendingEvents acts on pushes that arrived since the last look
// without waiting: key package top-ups and removal of this device. New
// message pushes need nothing: the sync that follows fetches them. Call
// with the lock held.
func (c *Client) handlePendingEvents(ctx context.Context, conn *transport.Conn) error {
	for {
		select {
		case ev, ok := <-conn.Events():
			if !ok {
				return nil
			}
			if err := c.handleEvent(ctx, ev); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// handleEvent handles one push. Call with the lock held.
func (c *Client) handleEvent(ctx context.Context, ev transport.Event) error {
	switch ev.Type {
	case transport.EventKeyPackagesLow:
		if err := c.replenishSuite(ctx, ciphersuite.ID(ev.Suite), ev.KeyPackagesRemaining, ev.KeyPackagesRemaining+1, false); err != nil {
			c.warn(nil, nil, fmt.Errorf("upload key packages: %w", err))
		}
	case transport.EventDeviceRemoved:
		if ev.DeviceID == c.acct.DeviceID {
			return ErrDeviceRemoved
		}
	case transport.EventEphemeral:
		t, err := c.processEphemeral(ev.Message)
		if err != nil {
			return err
		}
		if t != nil {
			c.queueTyping(t)
		}
	}
	return nil
}

// ErrDeviceRemoved means this device was removed from its account.
var ErrDeviceRemoved = errors.New("client: this device was removed from the account")

// Follow syncs, then stays connected and calls fn for every new message
// until ctx is done, reconnecting with backoff when the connection drops
// and sending the outbox when it is back (see Watch).
func (c *Client) Follow(ctx context.Context, fn func(Message)) error {
	return c.Watch(ctx, WatchOptions{}, func(e Event) {
		if e.Type == EventMessage {
			fn(*e.Message)
		}
	})
}

// waitForEventFor blocks until the server pushes something (or the
// connection drops, or d passed: a periodic resync is due). It returns
// typed set when what came was a typing indicator (queued for takeTyping),
// which needs no sync.
func (c *Client) waitForEventFor(ctx context.Context, conn *transport.Conn, d time.Duration) (typed bool, err error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-timer.C:
			return false, nil
		case <-conn.Done():
			return false, nil
		case ev, ok := <-conn.Events():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case transport.EventMessage, transport.EventInbox:
				return false, nil
			case transport.EventKeyPackagesLow, transport.EventDeviceRemoved:
				if err := c.withLock(ctx, func() error { return c.handleEvent(ctx, ev) }); err != nil {
					return false, err
				}
			case transport.EventEphemeral:
				if err := c.withLock(ctx, func() error { return c.handleEvent(ctx, ev) }); err != nil {
					return false, err
				}
				return true, nil
			}
		}
	}
}

// bucketReadBy records which reader reported which message read
// ("message id/user"), so that a reader's several devices make one line.
const bucketReadBy = "readby"

// receiptSubject names what a receipt is for: the first words of the
// first message, and how many more.
func (c *Client) receiptSubject(tx *profile.Tx, r *convRecord, ids []string) string {
	var m Message
	if err := tx.GetJSON(historyPfx+hexID(r.ID), ids[0], &m); err != nil || m.Text == "" {
		return ""
	}
	words := strings.Fields(m.Text)
	s := strings.Join(words[:min(len(words), 6)], " ")
	if len(words) > 6 {
		s += " …"
	}
	s = ": \u201c" + s + "\u201d"
	if len(ids) > 1 {
		s += fmt.Sprintf(" and %d more", len(ids)-1)
	}
	return s
}

// warnLabel records a warning about the conversation labelled label.
func (c *Client) warnLabel(label string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warnings = append(c.warnings, Warning{Conversation: label, Err: err.Error(), Alert: isAlert(err)})
}
