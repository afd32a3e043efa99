package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/wire"
)

// Buckets of message state.
const (
	// orphanPfx + hex(conversation) + "/" + referenced id: events
	// (reactions, edits, deletes) that arrived before the message they
	// refer to, applied when it arrives.
	orphanPfx = "orph/"
	// reactionPfx + hex(conversation): reaction id → id of the message
	// it reacts to.
	reactionPfx = "rx/"
	// bucketGone: messages deleted on this device only ("delete for
	// me"); later events about them are dropped.
	bucketGone = "gone"
)

// event is a message as Parley applies it, whichever device sent it.
type event struct {
	ID       string    `json:"id"`
	Mimi     string    `json:"mimi"`
	Sender   Sender    `json:"sender"`
	At       time.Time `json:"at"`
	Seq      uint64    `json:"seq"`
	Outgoing bool      `json:"outgoing,omitempty"`
	Kind     string    `json:"kind"`
	Text     string    `json:"text,omitempty"`
	// Target is the MIMI id an edit, a delete or a removed reaction
	// replaces; ReplyTo the one a reply or reaction refers to.
	Target  string `json:"target,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	// Expires is when it disappears from this device (zero: never).
	Expires time.Time `json:"expires,omitzero"`
}

func hexMimi(id *content.MessageID) string {
	if id == nil {
		return ""
	}
	return hex.EncodeToString(id[:])
}

// sendContent encrypts cont for the conversation and posts it. If record,
// the message is applied to this device's history as every receiver
// applies it. Call with the lock held and the conversation caught up.
func (c *Client) sendContent(ctx context.Context, conn *transport.Conn, r *convRecord, cont *content.Content, record bool) (Sent, error) {
	if cont.Expires == nil {
		// Under a disappearing-messages timer everything sent disappears.
		cont.Expires = mimiExpiry(c.expiryFor(r))
	}
	if c.testHookContent != nil {
		c.testHookContent(cont)
	}
	if kt := c.latestView(); kt != nil {
		if err := cont.SetExtension(extKT, []any{kt.Size, kt.Root}); err != nil {
			return Sent{}, err
		}
	}
	mid, plaintext, err := cont.MessageID(senderURI(c.acct.User), roomURI(r.ID))
	if err != nil {
		return Sent{}, err
	}
	return c.sendEncoded(ctx, conn, r, cont, mid, plaintext, record)
}

// sendEncoded encrypts and posts plaintext, the exact encoding of cont
// whose MIMI id is mid: every attempt with the same bytes has the same
// id, so the server stores it once (the outbox relies on it), and the
// franking tag commits to these bytes. Call with the lock held and the
// conversation caught up.
func (c *Client) sendEncoded(ctx context.Context, conn *transport.Conn, r *convRecord, cont *content.Content, mid content.MessageID, plaintext []byte, record bool) (Sent, error) {
	p, err := interpret(cont)
	if err != nil {
		return Sent{}, err
	}
	expires := contentExpiry(cont, c.opts.now())
	if c.expired(expires) {
		return Sent{}, ErrExpiredBeforeSent
	}
	id := bytes.Clone(mid[:wire.MessageIDSize])
	for attempt := 0; ; attempt++ {
		var ciphertext []byte
		var epoch uint64
		var firstSent time.Time
		err := c.store.Update(func(tx *profile.Tx) error {
			rr, err := getConv(tx, r.ID)
			if err != nil {
				return err
			}
			if rr.Removed {
				return ErrNotMember
			}
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			epoch = serverEpoch(g, rr)
			// The key generation is consumed: save the state before the
			// ciphertext leaves the device.
			// The franking tag commits to the exact content; the AEAD binds
			// it to the ciphertext (docs/moderation.md).
			tag, err := franking.Tag(cont.Salt[:], plaintext)
			if err != nil {
				return err
			}
			if c.testHookTag != nil {
				tag = c.testHookTag(tag)
			}
			if ciphertext, err = g.Encrypt(plaintext, franking.AAD(tag)); err != nil {
				return fmt.Errorf("encrypt: %w", err)
			}
			if err := saveGroup(tx, g); err != nil {
				return err
			}
			firstSent, err = markSent(tx, id, c.opts.now())
			return err
		})
		if err != nil {
			return Sent{}, err
		}
		res, err := retryRateLimited(ctx, func() (transport.SendResult, error) {
			return conn.SendExpiringApplication(ctx, id, r.ID, epoch, ciphertext, expires, firstSent)
		})
		if errors.Is(err, wire.ErrWrongEpoch) && attempt < 3 {
			// A commit we had not seen moved the group on: catch up and
			// encrypt again in the new epoch (same id: nothing was stored).
			if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
				return Sent{}, err
			}
			continue
		}
		if err != nil {
			return Sent{}, err
		}
		sent := Sent{ID: hexID(id), Conversation: r.label(), ConversationID: hexID(r.ID), Seq: res.Seq, Duplicate: res.Duplicate, Kind: p.kind}
		if p.file != nil {
			sent.File = &FileInfo{Name: p.file.Name, Size: p.file.Size, SHA256: hex.EncodeToString(p.file.SHA256)}
		}
		if !record {
			return sent, nil
		}
		ev := &event{ID: hexID(id), Mimi: hexMimi(&mid), Sender: Sender{User: c.acct.User, Device: c.acct.DeviceID},
			At: c.opts.now().UTC(), Seq: res.Seq, Outgoing: true, Expires: expires}
		err = c.store.Update(func(tx *profile.Tx) error {
			rr, err := getConv(tx, r.ID)
			if err != nil {
				return err
			}
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			return c.accept(tx, rr, memberUsers(rr, g), ev, p, false)
		})
		return sent, err
	}
}

// memberUsers are the users a group's text can mention (none in a direct
// conversation).
func memberUsers(r *convRecord, g *mls.Group) map[string]bool {
	if r.Kind != ConvGroup {
		return nil
	}
	out := map[string]bool{}
	for _, m := range g.Members() {
		if s, err := memberIdentity(m); err == nil {
			out[s.User] = true
		}
	}
	return out
}

// handleMimi processes a received MIMI content. Anything malformed, or
// an id that does not match the content, is a warning and changes
// nothing.
func (c *Client) handleMimi(tx *profile.Tx, r *convRecord, g *mls.Group, m transport.Message, sender Sender, plaintext, aad []byte) error {
	cont, err := content.Decode(plaintext)
	if err != nil {
		c.warn(r, m.ID, fmt.Errorf("message from %s dropped: %w", sender.User, err))
		return nil
	}
	mid, err := content.ComputeMessageID(senderURI(sender.User), roomURI(r.ID), plaintext)
	if err != nil || !bytes.Equal(mid[:wire.MessageIDSize], m.ID) {
		c.warn(r, m.ID, errors.New("message id does not match its content; dropped"))
		return nil
	}
	if v, ok := cont.Extension(content.SenderURIKey); ok && !bytes.Equal(v, mustCBOR(senderURI(sender.User))) {
		c.warn(r, m.ID, fmt.Errorf("%w: the sender it names is not its MLS sender; dropped", errBadContent))
		return nil
	}
	if v, ok := cont.Extension(content.RoomURIKey); ok && !bytes.Equal(v, mustCBOR(roomURI(r.ID))) {
		c.warn(r, m.ID, fmt.Errorf("%w: the conversation it names is another; dropped", errBadContent))
		return nil
	}
	p, err := interpret(cont)
	if err != nil {
		c.warn(r, m.ID, fmt.Errorf("message from %s dropped: %w", sender.User, err))
		return nil
	}
	self := Sender{User: c.acct.User, Device: c.acct.DeviceID}
	if p.kind == kindOwnSync {
		ev := &event{ID: hexID(m.ID), Sender: sender, At: m.Stored.UTC(), Seq: m.Seq, Outgoing: sender == self}
		return c.acceptOwnSync(tx, r, groupDevices(g), ev, p.own)
	}
	expires := c.receivedExpiry(r, cont, m.Stored)
	if c.expired(expires) && p.kind != KindTimer && p.kind != kindMeta {
		return nil // disappeared before this device got it: keep nothing
	}
	if err := c.keepFrank(tx, r, m, sender, cont, plaintext, aad, sender == self); err != nil {
		c.warn(r, m.ID, err)
		return nil
	}
	if err := noteExpiring(tx, r, hexID(m.ID), expires, ""); err != nil {
		return err
	}
	if p.kt != nil && sender != self {
		c.notePeerView(r, sender, p.kt)
	}
	ev := &event{ID: hexID(m.ID), Mimi: hexMimi(&mid), Sender: sender, At: m.Stored.UTC(), Seq: m.Seq, Outgoing: sender == self, Expires: expires}
	return c.accept(tx, r, memberUsers(r, g), ev, p, true)
}

func mustCBOR(v any) []byte {
	b, _ := content.Marshal(v)
	return b
}

// accept applies a message to this device's state: the history, the
// group's name, reactions, edits and deletes. notify queues what Sync
// reports.
func (c *Client) accept(tx *profile.Tx, r *convRecord, members map[string]bool, ev *event, p *parsed, notify bool) error {
	ev.Kind, ev.Text = p.kind, p.text
	ev.Target, ev.ReplyTo = hexMimi(p.target), hexMimi(p.inReplyTo)
	if r.Request && ev.Sender.User == c.acct.User && p.kind != kindMeta {
		// Another device of the user answered (or accepted, which sends
		// receipts): the request is accepted on this device too.
		r.Request = false
		if err := putConv(tx, r); err != nil {
			return err
		}
	}
	if r.Request {
		notify = false
	}
	if p.kind != kindMeta && p.kind != KindTimer && ev.Sender.User != c.acct.User {
		// Someone the user blocked may still be in a group with them (the
		// server refuses only new invitations): their messages are not
		// shown, stored or answered with receipts. (Group state, the name
		// and the timer, is applied from anyone, or devices would differ.)
		if isBlocked(tx, ev.Sender.User) {
			return nil
		}
	}
	if c.expired(ev.Expires) && p.kind != KindTimer && p.kind != kindMeta {
		return nil
	}
	switch p.kind {
	case kindOwnSync:
		return nil // handled by handleMimi (ownsync.go); never history
	case KindTimer:
		return c.applyTimer(tx, r, ev, p.timer, notify)
	case kindTyping:
		return nil // only ever ephemeral (typing.go); one in the log means nothing
	case kindMeta:
		if r.Kind == ConvGroup && r.Name != p.group.Name {
			r.Name = p.group.Name
			return putConv(tx, r)
		}
		return nil
	case KindReceipt:
		return c.acceptReceipt(tx, r, ev, p.receipts, true)
	case kindDelivered:
		return c.acceptReceipt(tx, r, ev, p.receipts, false)
	case KindJoinRequest:
		return c.acceptJoinRequest(tx, r, ev, p.join)
	case KindReaction, KindEdit, KindDelete:
		return c.applyEvent(tx, r, members, ev, notify)
	}
	msg := &Message{
		ID: ev.ID, MimiID: ev.Mimi, Conversation: r.label(), ConversationID: hexID(r.ID), Sender: ev.Sender,
		SentAt: ev.At, Kind: p.kind, Text: p.text, Seq: ev.Seq, Outgoing: ev.Outgoing, Forwarded: p.forwarded,
		ExpiresAt: ev.Expires,
	}
	if err := noteExpiring(tx, r, ev.ID, ev.Expires, ""); err != nil {
		return err
	}
	if p.inReplyTo != nil {
		msg.ReplyTo = shortID(p.inReplyTo)
	}
	switch p.kind {
	case KindFile:
		f := p.file
		msg.File = &FileInfo{Name: f.Name, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256)}
		if msg.Text == "" {
			msg.Text = f.Name
		}
		if err := tx.PutJSON(bucketFiles, ev.ID, f); err != nil {
			return err
		}
	case KindText:
		setMentions(msg, members, c.acct.User)
	case KindUnsupported:
		msg.Text = "unsupported message"
		c.warn(r, nil, fmt.Errorf("message %s from %s: unsupported message (%s): this client cannot show it", ev.ID, ev.Sender.User, p.why))
	}
	if err := c.record(tx, r, msg, notify); err != nil {
		return err
	}
	return c.applyOrphans(tx, r, members, ev.ID, notify)
}

func setMentions(m *Message, members map[string]bool, self string) {
	m.Mentions = mentionsIn(m.Text, members)
	m.Mentioned = slices.Contains(m.Mentions, self)
}

// applyEvent applies a reaction, an edit or a delete to the message it
// refers to, or keeps it until that message arrives.
func (c *Client) applyEvent(tx *profile.Tx, r *convRecord, members map[string]bool, ev *event, notify bool) error {
	hist := historyPfx + hexID(r.ID)
	ref := ev.Target // edits, deletes
	if ev.Kind == KindReaction {
		ref = ev.ReplyTo
		if ev.Target != "" {
			// A removed reaction: find the message through the reaction.
			var target string
			err := tx.GetJSON(reactionPfx+hexID(r.ID), ev.Target[:32], &target)
			if errors.Is(err, profile.ErrNotFound) {
				return c.keepOrphan(tx, r, ev.Target[:32], ev)
			}
			if err != nil {
				return err
			}
			ref = target
		}
	}
	short := ref[:32]
	if gone, err := tx.Has(bucketGone, short); err != nil || gone {
		return err
	}
	var m Message
	err := tx.GetJSON(hist, short, &m)
	if errors.Is(err, profile.ErrNotFound) {
		return c.keepOrphan(tx, r, short, ev)
	}
	if err != nil {
		return err
	}
	if m.MimiID == "" || (len(ref) == 64 && m.MimiID != ref) {
		c.warn(r, nil, fmt.Errorf("%s %s from %s refers to message %s by an id that does not match it; ignored", ev.Kind, ev.ID, ev.Sender.User, short))
		return nil
	}
	if m.Kind != KindText && m.Kind != KindFile {
		c.warn(r, nil, fmt.Errorf("%s %s from %s refers to a %s message; ignored", ev.Kind, ev.ID, ev.Sender.User, m.Kind))
		return nil
	}
	out := &Message{ID: ev.ID, MimiID: ev.Mimi, Conversation: r.label(), ConversationID: hexID(r.ID), Sender: ev.Sender,
		SentAt: ev.At, Kind: ev.Kind, Seq: ev.Seq, Outgoing: ev.Outgoing, Target: m.ID, ExpiresAt: earlier(ev.Expires, m.ExpiresAt)}
	who := ev.Sender.User
	if ev.Outgoing {
		who = "you"
	}
	subject := quote(&m)
	switch ev.Kind {
	case KindReaction:
		if ev.Target == "" {
			if slices.ContainsFunc(m.Reactions, func(x Reaction) bool { return x.ID == ev.ID }) {
				return nil
			}
			m.Reactions = append(m.Reactions, Reaction{Emoji: ev.Text, User: ev.Sender.User, ID: ev.ID, Full: ev.Mimi})
			if err := tx.PutJSON(reactionPfx+hexID(r.ID), ev.ID, m.ID); err != nil {
				return err
			}
			if err := noteExpiring(tx, r, ev.ID, ev.Expires, m.ID); err != nil {
				return err
			}
			out.Reaction, out.Text = ev.Text, fmt.Sprintf("%s reacted %s to %s", who, ev.Text, subject)
		} else {
			i := slices.IndexFunc(m.Reactions, func(x Reaction) bool { return x.ID == ev.Target[:32] })
			if i < 0 {
				return nil // removed already
			}
			if m.Reactions[i].User != ev.Sender.User || m.Reactions[i].Full != ev.Target {
				c.warn(r, nil, fmt.Errorf("%s tried to remove another person's reaction; ignored", ev.Sender.User))
				return nil
			}
			out.Reaction, out.Removed = m.Reactions[i].Emoji, true
			out.Text = fmt.Sprintf("%s removed the reaction %s to %s", who, m.Reactions[i].Emoji, subject)
			m.Reactions = slices.Delete(m.Reactions, i, i+1)
		}
	case KindEdit, KindDelete:
		// Only the sender may (draft-ietf-mimi-content §10.3).
		if m.Sender.User != ev.Sender.User {
			c.warn(r, nil, fmt.Errorf("%s %s: %s tried to change %s's message %s; ignored", ev.Kind, ev.ID, ev.Sender.User, m.Sender.User, m.ID))
			return nil
		}
		if m.Deleted {
			return nil
		}
		if ev.Kind == KindDelete {
			if d := ev.At.Sub(m.SentAt); d > DeleteWindow || d < -DeleteWindow {
				c.warn(r, nil, fmt.Errorf("delete %s from %s came %v after the message; ignored: %w", ev.ID, ev.Sender.User, d.Round(time.Second), ErrDeleteWindow))
				return nil
			}
			m.Deleted, m.Text, m.File, m.Edits, m.Mentions, m.Mentioned, m.Forwarded = true, "", nil, nil, nil, false, false
			if err := tx.Delete(bucketFiles, m.ID); err != nil {
				return err
			}
			out.Text = fmt.Sprintf("%s deleted %s", who, subject)
			break
		}
		if m.Kind != KindText {
			c.warn(r, nil, fmt.Errorf("edit %s from %s: only text messages can be edited; ignored", ev.ID, ev.Sender.User))
			return nil
		}
		if ev.Seq < m.EditSeq {
			// An older edit arriving late: only history.
			m.Edits = append(m.Edits, Edit{Text: ev.Text, At: ev.At})
			slices.SortStableFunc(m.Edits, func(a, b Edit) int { return a.At.Compare(b.At) })
		} else {
			at := m.EditedAt
			if at.IsZero() {
				at = m.SentAt
			}
			m.Edits = append(m.Edits, Edit{Text: m.Text, At: at})
			m.Text, m.Edited, m.EditedAt, m.EditSeq = ev.Text, true, ev.At, ev.Seq
			setMentions(&m, members, c.acct.User)
		}
		// The message now holds the edit's text: it goes when the edit does.
		if m.ExpiresAt = earlier(m.ExpiresAt, ev.Expires); !m.ExpiresAt.IsZero() {
			if err := noteExpiring(tx, r, m.ID, m.ExpiresAt, ""); err != nil {
				return err
			}
		}
		out.Text = ev.Text
	}
	if err := tx.PutJSON(hist, m.ID, &m); err != nil {
		return err
	}
	if notify {
		if err := tx.PutJSON(bucketNew, out.ID, newEntry{Conv: r.ID, Event: out}); err != nil {
			return err
		}
	}
	if ev.Kind == KindReaction && ev.Target == "" {
		return c.applyOrphans(tx, r, members, ev.ID, notify) // a removal that came first
	}
	return nil
}

// quote is the start of a message's text, as a subject.
func quote(m *Message) string {
	if m.Deleted {
		return "a deleted message"
	}
	words := strings.Fields(m.Text)
	s := strings.Join(words[:min(len(words), 6)], " ")
	if len(words) > 6 {
		s += " …"
	}
	return "\u201c" + s + "\u201d"
}

func (c *Client) keepOrphan(tx *profile.Tx, r *convRecord, ref string, ev *event) error {
	return tx.PutJSON(orphanPfx+hexID(r.ID)+"/"+ref, ev.ID, ev)
}

// applyOrphans applies the events that were waiting for message id, in
// the order of the conversation log.
func (c *Client) applyOrphans(tx *profile.Tx, r *convRecord, members map[string]bool, id string, notify bool) error {
	bucket := orphanPfx + hexID(r.ID) + "/" + id
	items, err := tx.List(bucket)
	if err != nil || len(items) == 0 {
		return err
	}
	if err := tx.DeleteBucket(bucket); err != nil {
		return err
	}
	evs := make([]*event, 0, len(items))
	for _, it := range items {
		var ev event
		if err := jsonUnmarshal(it.Value, &ev); err != nil {
			return err
		}
		evs = append(evs, &ev)
	}
	slices.SortStableFunc(evs, func(a, b *event) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, ev := range evs {
		if err := c.applyEvent(tx, r, members, ev, notify); err != nil {
			return err
		}
	}
	return nil
}

// findMessage finds a message of this device's history by id.
func findMessage(tx *profile.Tx, id string) (*convRecord, *Message, error) {
	id = strings.ToLower(id)
	if b, err := hex.DecodeString(id); err != nil || len(b) != wire.MessageIDSize {
		return nil, nil, fmt.Errorf("%w: %q is not a message id", ErrMessageNotFound, id)
	}
	convs, err := listConvs(tx)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range convs {
		var m Message
		err := tx.GetJSON(historyPfx+hexID(r.ID), id, &m)
		if err == nil {
			return r, &m, nil
		}
		if !errors.Is(err, profile.ErrNotFound) {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("%w: %s", ErrMessageNotFound, id)
}

// act finds message id, checks it with check, then sends what build makes
// to its conversation and records it.
func (c *Client) act(ctx context.Context, id string, check func(r *convRecord, m *Message) error, build func(m *Message) (*content.Content, error)) (Sent, error) {
	var sent Sent
	err := c.withLock(ctx, func() error {
		var r *convRecord
		var m *Message
		if err := c.store.Update(func(tx *profile.Tx) (err error) { r, m, err = findMessage(tx, id); return err }); err != nil {
			return err
		}
		if m.Kind != KindText && m.Kind != KindFile {
			return fmt.Errorf("%w: message %s is a %s", ErrCannotDo, m.ID, m.Kind)
		}
		if m.MimiID == "" {
			return ErrLegacyMessage
		}
		if check != nil {
			if err := check(r, m); err != nil {
				return err
			}
		}
		conn, rr, err := c.prepareSend(ctx, r.label())
		if err != nil {
			return err
		}
		cont, err := build(m)
		if err != nil {
			return err
		}
		sent, err = c.sendContent(ctx, conn, rr, cont, true)
		return err
	})
	return sent, err
}

// SendReply sends text to target as a reply to message replyTo (which
// must be in that conversation).
func (c *Client) SendReply(ctx context.Context, target, replyTo, text string) (Sent, error) {
	if err := checkText(text); err != nil {
		return Sent{}, err
	}
	var want *convRecord
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) (err error) { want, err = lookupLocal(tx, c.acct.User, target); return err })
	})
	if err != nil {
		return Sent{}, err
	}
	return c.act(ctx, replyTo, func(r *convRecord, m *Message) error {
		if !bytes.Equal(r.ID, want.ID) {
			return fmt.Errorf("%w: message %s is in %s, not %s", ErrCannotDo, m.ID, r.label(), target)
		}
		return nil
	}, func(m *Message) (*content.Content, error) {
		ref, err := parseMimiID(m.MimiID)
		if err != nil {
			return nil, err
		}
		cont := newContent(textBody(text))
		cont.InReplyTo = ref
		return cont, nil
	})
}

// React reacts to message id with emoji, or with remove takes this
// user's reaction emoji back.
func (c *Client) React(ctx context.Context, id, emoji string, remove bool) (Sent, error) {
	emoji = strings.TrimSpace(emoji)
	if emoji == "" || len(emoji) > maxReactionBytes || strings.ContainsAny(emoji, "\x00\n\r\t") {
		return Sent{}, fmt.Errorf("client: a reaction is one emoji (at most %d bytes)", maxReactionBytes)
	}
	var mine *Reaction
	return c.act(ctx, id, func(r *convRecord, m *Message) error {
		if m.Deleted {
			return fmt.Errorf("%w: message %s was deleted", ErrCannotDo, m.ID)
		}
		for i, x := range m.Reactions {
			if x.User == c.acct.User && x.Emoji == emoji {
				mine = &m.Reactions[i]
			}
		}
		if remove && mine == nil {
			return fmt.Errorf("%w: you have not reacted %s to message %s", ErrCannotDo, emoji, m.ID)
		}
		if !remove && mine != nil {
			return fmt.Errorf("%w: you already reacted %s to message %s", ErrCannotDo, emoji, m.ID)
		}
		return nil
	}, func(m *Message) (*content.Content, error) {
		ref, err := parseMimiID(m.MimiID)
		if err != nil {
			return nil, err
		}
		if remove {
			// "Unlike" (§5.7): replace the reaction with a null part.
			rid, err := parseMimiID(mine.Full)
			if err != nil {
				return nil, err
			}
			cont := newContent(content.Part{Disposition: content.Reaction, Cardinality: content.NullPart})
			cont.Replaces, cont.InReplyTo = rid, ref
			return cont, nil
		}
		cont := newContent(content.Part{Disposition: content.Reaction, Cardinality: content.SinglePart,
			ContentType: content.TypePlainText, Content: []byte(emoji)})
		cont.InReplyTo = ref
		return cont, nil
	})
}

// Edit replaces the text of message id, which this user sent. Every
// member keeps the earlier versions and shows the message as edited.
func (c *Client) Edit(ctx context.Context, id, text string) (Sent, error) {
	if err := checkText(text); err != nil {
		return Sent{}, err
	}
	return c.act(ctx, id, func(r *convRecord, m *Message) error {
		switch {
		case m.Sender.User != c.acct.User:
			return ErrNotYourMessage
		case m.Deleted:
			return fmt.Errorf("%w: message %s was deleted", ErrCannotDo, m.ID)
		case m.Kind != KindText:
			return fmt.Errorf("%w: only text messages can be edited", ErrCannotDo)
		}
		return nil
	}, func(m *Message) (*content.Content, error) {
		ref, err := parseMimiID(m.MimiID)
		if err != nil {
			return nil, err
		}
		cont := newContent(textBody(text))
		cont.Replaces = ref // always the first version (§5.5)
		return cont, nil
	})
}

// DeleteForEveryone deletes message id, which this user sent within
// DeleteWindow, on every device of every member. An attachment's blob is
// deleted from the server too.
func (c *Client) DeleteForEveryone(ctx context.Context, id string) (Sent, error) {
	var blob string
	sent, err := c.act(ctx, id, func(r *convRecord, m *Message) error {
		switch {
		case m.Sender.User != c.acct.User:
			return ErrNotYourMessage
		case m.Deleted:
			return fmt.Errorf("%w: message %s was already deleted", ErrCannotDo, m.ID)
		case c.opts.now().Sub(m.SentAt) > DeleteWindow:
			return ErrDeleteWindow
		}
		if m.Kind == KindFile {
			var fd fileDescriptor
			if c.store.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketFiles, m.ID, &fd) }) == nil {
				blob = fd.Blob
			}
		}
		return nil
	}, func(m *Message) (*content.Content, error) {
		ref, err := parseMimiID(m.MimiID)
		if err != nil {
			return nil, err
		}
		cont := newContent(content.Part{Disposition: content.Render, Cardinality: content.NullPart})
		cont.Replaces = ref // §5.6
		return cont, nil
	})
	if err == nil && blob != "" {
		c.withLock(ctx, func() error {
			if conn, err := c.connection(ctx); err == nil {
				dropBlob(ctx, conn, blob)
			}
			return nil
		})
	}
	return sent, err
}

// DeleteForMe removes message id from this device's history (other
// devices and members keep it). Reactions, edits and deletes that arrive
// for it later are dropped.
func (c *Client) DeleteForMe(ctx context.Context, id string) error {
	return c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			r, m, err := findMessage(tx, id)
			if err != nil {
				return err
			}
			if err := tx.Delete(historyPfx+hexID(r.ID), m.ID); err != nil {
				return err
			}
			if err := tx.Delete(bucketFiles, m.ID); err != nil {
				return err
			}
			return tx.Put(bucketGone, m.ID, nil)
		})
	})
}

// Forward sends message id (a text or a file) to target, marked as
// forwarded. A file is not uploaded again: the new message carries the
// same encrypted blob's key.
func (c *Client) Forward(ctx context.Context, id, target string) (Sent, error) {
	var body content.Part
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			_, m, err := findMessage(tx, id)
			if err != nil {
				return err
			}
			switch {
			case m.Deleted:
				return fmt.Errorf("%w: message %s was deleted", ErrCannotDo, m.ID)
			case m.Kind == KindText:
				body = textBody(m.Text)
			case m.Kind == KindFile:
				var fd fileDescriptor
				if err := tx.GetJSON(bucketFiles, m.ID, &fd); err != nil {
					return fmt.Errorf("%w: the file of message %s is not in this profile", ErrCannotDo, m.ID)
				}
				desc := ""
				if m.File != nil && m.Text != m.File.Name {
					desc = m.Text
				}
				body = fileBody(&fd, desc)
			default:
				return fmt.Errorf("%w: message %s is a %s", ErrCannotDo, m.ID, m.Kind)
			}
			return nil
		})
	})
	if err != nil {
		return Sent{}, err
	}
	var sent Sent
	err = c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		cont := newContent(body)
		if err := cont.SetExtension(extForwarded, true); err != nil {
			return err
		}
		sent, err = c.sendContent(ctx, conn, r, cont, true)
		return err
	})
	return sent, err
}

// withQuote fills in the quote of a reply from the stored history.
func withQuote(tx *profile.Tx, m *Message) {
	if m.ReplyTo == "" {
		return
	}
	var t Message
	if err := tx.GetJSON(historyPfx+m.ConversationID, m.ReplyTo, &t); err == nil {
		m.Quote = strings.Trim(quote(&t), "\u201c\u201d")
		if t.Deleted {
			m.Quote = "deleted"
		}
	}
}
