package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/wire"
)

// The outbox holds text messages and replies typed while the server
// could not be reached. Each entry is encoded as MIMI content once, when it is queued
// (with its random salt and the key transparency checkpoint of that
// moment), and those exact bytes are sent at every attempt: the MIMI
// message id is a hash of them, so the entry keeps its id (and the
// server-visible id, its first 16 octets) for every attempt, and the
// franking tag commits to the same bytes. The server stores an id once (a
// resent id is answered as a duplicate with the first one's sequence
// number), so a message whose acknowledgement was lost is never delivered
// twice. An
// entry leaves the outbox only after the server acknowledged it, or when
// it is refused for a reason a retry cannot fix (it is then kept, marked
// failed, until retried or discarded). Entries are sent in the order they
// were queued, holding the profile lock, so two processes sharing a
// profile never send the same entry at once.

const bucketOutbox = "outbox" // hex(message id) → Queued, in queue order

// Queued is a message waiting in the outbox.
type Queued struct {
	// ID is the id the message is sent with (and then has in history):
	// the first 16 octets of its MIMI message id.
	ID string `json:"id"`
	// Conversation is the target as given: "@user" or "#group".
	Conversation string `json:"conversation"`
	Text         string `json:"text"`
	// ReplyTo is the id of the message this one answers, if it is a
	// reply.
	ReplyTo string `json:"reply_to,omitempty"`
	// Room is the hex id of the conversation the MIMI id was computed
	// for; an attempt to send it elsewhere is refused.
	Room string `json:"room"`
	// Content is the encoded MIMI content, sent as is at every attempt.
	Content  []byte    `json:"content"`
	QueuedAt time.Time `json:"queued_at"`
	Attempts int       `json:"attempts,omitempty"`
	// LastError is why the last attempt did not send it.
	LastError string `json:"last_error,omitempty"`
	// ExpiresAt is when the message disappears (the conversation had a
	// timer when it was queued): an entry still here then is deleted.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Failed is set when the server or the client refused the message for
	// a reason retrying cannot fix by itself (no such user, not a member,
	// a contact's changed devices to verify): it is not retried until
	// RetryOutbox.
	Failed bool `json:"failed,omitempty"`
}

// Enqueue stores a text message for target in the outbox, without
// sending it (that needs no connection). FlushOutbox sends it.
// The content is encoded here, once: its bytes, and so its message id,
// never change afterwards.
func (c *Client) Enqueue(ctx context.Context, target, text string) (Queued, error) {
	return c.enqueue(ctx, target, text, "")
}

// EnqueueReply is Enqueue for a reply to message replyTo, which must be
// in target's conversation in this device's history. The reference is
// the replied message's MIMI id, read here: no connection is needed.
func (c *Client) EnqueueReply(ctx context.Context, target, replyTo, text string) (Queued, error) {
	if replyTo == "" {
		return Queued{}, fmt.Errorf("%w: no message to reply to", ErrCannotDo)
	}
	return c.enqueue(ctx, target, text, replyTo)
}

func (c *Client) enqueue(ctx context.Context, target, text, replyTo string) (Queued, error) {
	if err := checkText(text); err != nil {
		return Queued{}, err
	}
	room, err := c.queueRoom(ctx, target)
	if err != nil {
		return Queued{}, err
	}
	cont := newContent(textBody(text))
	var expires time.Time
	err = c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		if r, err := getConv(tx, room); err == nil {
			expires = c.expiryFor(r)
		} else if !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		if replyTo == "" {
			return nil
		}
		ref, err := replyRef(tx, room, target, replyTo)
		cont.InReplyTo = ref
		return err
	})
	if err != nil {
		return Queued{}, err
	}
	cont.Expires = mimiExpiry(expires)
	if kt := c.latestView(); kt != nil {
		if err := cont.SetExtension(extKT, []any{kt.Size, kt.Root}); err != nil {
			return Queued{}, err
		}
	}
	mid, encoded, err := cont.MessageID(senderURI(c.acct.User), roomURI(room))
	if err != nil {
		return Queued{}, err
	}
	q := Queued{ID: shortID(&mid), Conversation: target, Room: hexID(room), Text: text, ReplyTo: replyTo, Content: encoded, QueuedAt: c.opts.now().UTC(), ExpiresAt: expires}
	err = c.store.UpdateContext(ctx, func(tx *profile.Tx) error { return tx.PutJSON(bucketOutbox, q.ID, q) })
	return q, err
}

// replyRef is the MIMI reference of message id, checked to be a text or
// file message of conversation room (named target in errors).
func replyRef(tx *profile.Tx, room []byte, target, id string) (*content.MessageID, error) {
	r, m, err := findMessage(tx, id)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(r.ID, room) {
		return nil, fmt.Errorf("%w: message %s is in %s, not %s", ErrCannotDo, m.ID, r.label(), target)
	}
	if m.Kind != KindText && m.Kind != KindFile {
		return nil, fmt.Errorf("%w: message %s is a %s", ErrCannotDo, m.ID, m.Kind)
	}
	if m.MimiID == "" {
		return nil, ErrLegacyMessage
	}
	return parseMimiID(m.MimiID)
}

// queueRoom is the id of the conversation target names, from what this
// device knows (no connection needed): a direct conversation's id is
// derived from the two names; a group must be known already.
func (c *Client) queueRoom(ctx context.Context, target string) ([]byte, error) {
	kind, name, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if kind != ConvGroup {
		if name == c.acct.User {
			return nil, fmt.Errorf("%w: to reach your own devices, message someone else; your devices see everything you send", ErrBadTarget)
		}
		return directID(c.acct.User, name), nil
	}
	var room []byte
	err = c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		r, err := findGroup(tx, name)
		if err == nil {
			room = r.ID
		}
		return err
	})
	return room, err
}

// Outbox returns the messages not sent yet, in the order they are sent.
func (c *Client) Outbox(ctx context.Context) ([]Queued, error) {
	var out []Queued
	err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		items, err := tx.List(bucketOutbox)
		if err != nil {
			return err
		}
		for _, it := range items {
			var q Queued
			if err := jsonUnmarshal(it.Value, &q); err != nil {
				return err
			}
			out = append(out, q)
		}
		return nil
	})
	return out, err
}

// RetryOutbox clears the failed mark of the outbox entries for
// conversation (all if ""), so that the next FlushOutbox tries them
// again. It returns how many it cleared.
func (c *Client) RetryOutbox(ctx context.Context, conversation string) (int, error) {
	return c.editOutbox(ctx, func(q *Queued) (keep, changed bool) {
		if q.Failed && (conversation == "" || q.Conversation == conversation) {
			q.Failed = false
			return true, true
		}
		return true, false
	})
}

// DiscardOutbox removes the outbox entry id ("" : every failed entry)
// without sending it. It returns how many it removed.
func (c *Client) DiscardOutbox(ctx context.Context, id string) (int, error) {
	return c.editOutbox(ctx, func(q *Queued) (keep, changed bool) {
		if id == q.ID || (id == "" && q.Failed) {
			return false, true
		}
		return true, false
	})
}

func (c *Client) editOutbox(ctx context.Context, fn func(*Queued) (keep, changed bool)) (int, error) {
	n := 0
	err := c.withLock(ctx, func() error {
		return c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
			items, err := tx.List(bucketOutbox)
			if err != nil {
				return err
			}
			for _, it := range items {
				var q Queued
				if err := jsonUnmarshal(it.Value, &q); err != nil {
					return err
				}
				keep, changed := fn(&q)
				switch {
				case !changed:
					continue
				case keep:
					err = tx.PutJSON(bucketOutbox, q.ID, q)
				default:
					err = tx.Delete(bucketOutbox, q.ID)
				}
				if err != nil {
					return err
				}
				n++
			}
			return nil
		})
	})
	return n, err
}

// FlushResult is what FlushOutbox did.
type FlushResult struct {
	// Sent are the delivery receipts of the entries sent, in order.
	Sent []Sent
	// Failed are the entries refused for good this time (kept in the
	// outbox, marked failed).
	Failed []Queued
	// Pending counts the entries left to send (not counting failed ones).
	Pending int
	// errs are the errors of the Failed entries, by id (with their
	// chain: a security alert stays one).
	errs map[string]error
}

// FlushOutbox sends the outbox's entries in order. It stops at the first
// error that retrying can fix (the server cannot be reached, is
// restarting or asks to slow down) and returns it, leaving that entry and
// the later ones queued; an entry refused for another reason is marked
// failed and the next ones are sent.
func (c *Client) FlushOutbox(ctx context.Context) (FlushResult, error) {
	var res FlushResult
	skip := map[string]bool{} // failed during this flush
	for {
		var stop error
		done := false
		err := c.withLock(ctx, func() error {
			// Re-read under the lock: another process may have sent some.
			all, err := c.Outbox(ctx)
			if err != nil {
				return err
			}
			var q *Queued
			res.Pending = 0
			for i := range all {
				if all[i].Failed || skip[all[i].ID] || c.expired(all[i].ExpiresAt) {
					continue
				}
				if q == nil {
					q = &all[i]
				}
				res.Pending++
			}
			if q == nil {
				done = true
				return nil
			}
			sent, err := c.sendQueued(ctx, q)
			if err == nil {
				res.Sent = append(res.Sent, sent)
				res.Pending--
				return c.store.UpdateContext(ctx, func(tx *profile.Tx) error { return tx.Delete(bucketOutbox, q.ID) })
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			q.Attempts++
			q.LastError = err.Error()
			if IsTransient(err) {
				stop = err
			} else {
				q.Failed = true
				skip[q.ID] = true
				res.Failed = append(res.Failed, *q)
				if res.errs == nil {
					res.errs = map[string]error{}
				}
				res.errs[q.ID] = err
				res.Pending--
				c.warnLabel(q.Conversation, fmt.Errorf("message %s not sent (%s): %w", q.ID, firstWords(q.Text), err))
			}
			return c.store.UpdateContext(ctx, func(tx *profile.Tx) error { return tx.PutJSON(bucketOutbox, q.ID, q) })
		})
		if err != nil {
			return res, err
		}
		if stop != nil {
			return res, stop
		}
		if done {
			return res, nil
		}
	}
}

// sendQueued sends one outbox entry with its own id and queued time. Call
// with the lock held.
func (c *Client) sendQueued(ctx context.Context, q *Queued) (Sent, error) {
	conn, r, err := c.prepareSend(ctx, q.Conversation)
	if err != nil {
		return Sent{}, err
	}
	if hexID(r.ID) != q.Room {
		return Sent{}, fmt.Errorf("%w: %s is no longer the conversation the message was queued for", ErrBadTarget, q.Conversation)
	}
	// The bytes stored when it was queued, never re-encoded: the same
	// MIMI id, server id and franking commitment at every attempt.
	cont, err := content.Decode(q.Content)
	if err != nil {
		return Sent{}, fmt.Errorf("client: outbox entry %s: %w", q.ID, err)
	}
	mid, err := content.ComputeMessageID(senderURI(c.acct.User), roomURI(r.ID), q.Content)
	if err != nil {
		return Sent{}, err
	}
	if shortID(&mid) != q.ID {
		return Sent{}, fmt.Errorf("client: outbox entry %s: its content has another message id", q.ID)
	}
	return c.sendEncoded(ctx, conn, r, cont, mid, q.Content, true)
}

// SendResult is the outcome of Send: the delivery receipt, or the
// outbox entry when the server could not be reached.
type SendResult struct {
	Sent   *Sent   `json:"sent,omitempty"`
	Queued *Queued `json:"queued,omitempty"`
	// Err is why the message is queued.
	Err error `json:"-"`
	// Before are receipts of messages queued earlier, sent first.
	Before []Sent `json:"before,omitempty"`
}

// Send sends a text message through the outbox: it is stored there
// first, then whatever was queued before it is sent, then it. When the
// server cannot be reached (or asks to wait), the message stays queued
// and Send returns it in Queued, with no error: a later Send, Sync,
// Follow, Watch or FlushOutbox sends it. Any other failure is returned as
// an error and the message is not kept.
func (c *Client) Send(ctx context.Context, target, text string) (SendResult, error) {
	return c.sendThroughOutbox(ctx, target, func() (Queued, error) { return c.Enqueue(ctx, target, text) })
}

// Reply is Send for a reply to message replyTo (in target's
// conversation): queued like any text when the server cannot be reached.
func (c *Client) Reply(ctx context.Context, target, replyTo, text string) (SendResult, error) {
	return c.sendThroughOutbox(ctx, target, func() (Queued, error) { return c.EnqueueReply(ctx, target, replyTo, text) })
}

func (c *Client) sendThroughOutbox(ctx context.Context, target string, enqueue func() (Queued, error)) (SendResult, error) {
	q, err := enqueue()
	if errors.Is(err, ErrUnknownTarget) && strings.HasPrefix(target, "#") {
		// A group this device was just added to: its welcome is waiting
		// on the server (a queued message needs the group's id).
		if ierr := c.withLock(ctx, func() error {
			conn, err := c.connection(ctx)
			if err != nil {
				return err
			}
			_, err = c.processInbox(ctx, conn)
			return err
		}); ierr == nil {
			q, err = enqueue()
		}
	}
	if err != nil {
		return SendResult{}, err
	}
	res, ferr := c.FlushOutbox(ctx)
	var out SendResult
	for _, s := range res.Sent {
		if s.ID == q.ID {
			out.Sent = &s
		} else {
			out.Before = append(out.Before, s)
		}
	}
	if out.Sent != nil {
		return out, nil
	}
	for _, f := range res.Failed {
		if f.ID == q.ID {
			// Refused: the caller has the text and the error; keep nothing.
			c.DiscardOutbox(context.WithoutCancel(ctx), q.ID)
			c.dropWarning(q.ID)
			return out, res.errs[f.ID]
		}
	}
	// Another process sharing the profile (a sync --follow, a chat, the
	// daemon) may have sent it: it is then in history, not the outbox.
	if s, ok := c.sentByOther(ctx, q); ok {
		out.Sent = &s
		return out, nil
	}
	if ferr != nil && IsTransient(ferr) {
		out.Queued, out.Err = &q, ferr
		return out, nil
	}
	if ferr == nil {
		ferr = errors.New("client: the message was not sent")
	}
	c.DiscardOutbox(context.WithoutCancel(ctx), q.ID)
	return out, ferr
}

// sentByOther returns the delivery receipt of outbox entry q if it left
// the outbox and is in history.
func (c *Client) sentByOther(ctx context.Context, q Queued) (Sent, bool) {
	var s Sent
	ok := false
	c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		if has, err := tx.Has(bucketOutbox, q.ID); err != nil || has {
			return err
		}
		r, err := lookupLocal(tx, c.acct.User, q.Conversation)
		if err != nil {
			return err
		}
		var m Message
		if err := tx.GetJSON(historyPfx+hexID(r.ID), q.ID, &m); err != nil {
			return err
		}
		s = Sent{ID: m.ID, Conversation: r.label(), ConversationID: hexID(r.ID), Seq: m.Seq, Kind: m.Kind}
		ok = true
		return nil
	})
	return s, ok
}

// dropWarning forgets the warning FlushOutbox recorded for message id
// (Send returns the error instead).
func (c *Client) dropWarning(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.warnings[:0]
	for _, w := range c.warnings {
		if !strings.Contains(w.Err, "message "+id+" not sent") {
			out = append(out, w)
		}
	}
	c.warnings = out
}

func firstWords(s string) string {
	words := strings.Fields(s)
	out := strings.Join(words[:min(len(words), 6)], " ")
	if len(words) > 6 {
		out += " …"
	}
	return "\u201c" + out + "\u201d"
}

// IsTransient reports whether err is one that retrying later can fix by
// itself: the server cannot be reached, the connection dropped, the
// server is shutting down or its storage is unavailable, or it asked the
// client to slow down.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, e := range []error{wire.ErrShuttingDown, wire.ErrStorageUnavailable, wire.ErrRateLimited, wire.ErrInternal} {
		if errors.Is(err, e) {
			return true
		}
	}
	return isConnectionError(err)
}

// isConnectionError reports whether err means the server could not be
// reached or the connection to it was lost.
func isConnectionError(err error) bool {
	var ne net.Error
	return errors.Is(err, transport.ErrClosed) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "transport: dial ")
}

// Backoff computes reconnection delays: a short first retry, doubling
// up to a cap, each delay jittered (half fixed, half random) so that
// clients that lost the same server do not all return at once.
type Backoff struct {
	First, Max time.Duration
	n          int
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	first, maxD := b.First, b.Max
	if first <= 0 {
		first = 200 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 10 * time.Second
	}
	d := first << min(b.n, 20)
	if d > maxD || d <= 0 {
		d = maxD
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts over from the first delay (after a success).
func (b *Backoff) Reset() { b.n = 0 }
