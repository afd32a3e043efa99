package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/content"
)

// Disappearing messages (docs/protocol.md, "Disappearing messages").
//
// A conversation's timer is set by any member with a MIMI message of
// type typeTimer that every member applies in the order of the
// conversation log. While it is on, every message a device sends carries
// its expiry in the MIMI content's expires field (absolute: the time it
// was sent plus the timer), and the same expiry, in the clear, in the
// SendRequest, so that the server deletes the ciphertext (and an
// attachment's blob) by then. Receivers do not rely on the sender: they
// keep a message at most the conversation's timer after the server
// accepted it, whatever its content says.
//
// Each device keeps an index of what must go when (bucketExpiring) and
// deletes it on a sweep (at every sync, and when a Watch wakes for the
// next expiry): the history entry, the file key and the downloaded
// file, the franking record, unreported entries, events waiting for the
// message, outbox entries, and its reactions from the message they
// react to. The profile overwrites deleted rows (secure_delete) and the
// sweep truncates its WAL.

const (
	typeTimer = "application/vnd.parley.timer+cbor"
	// KindTimer is the history entry of a timer change.
	KindTimer = "timer"
	// bucketExpiring: hex(message id) → expiring, for every message
	// this device keeps something of that has an expiry.
	bucketExpiring = "expiring"
	// bucketDownloads: hex(message id) → []string, the files GetFile
	// wrote for the message's attachment.
	bucketDownloads = "downloads"
)

// MaxTimer is the longest disappearing-messages timer.
const MaxTimer = 365 * 24 * time.Hour

// ErrBadTimer is returned for a timer out of range or not understood.
var ErrBadTimer = errors.New("client: a timer is a duration from 1s to 365d (like 30s, 5m, 1h, 1d, 1w), or off")

// ErrExpiredBeforeSent: an outbox entry's disappearing time passed
// before it could be sent; it is dropped.
var ErrExpiredBeforeSent = errors.New("client: the message disappeared before it could be sent")

type expiring struct {
	Conv []byte    `json:"conv"`
	At   time.Time `json:"at"`
	// Reaction is the message a reaction reacts to: the reaction is
	// taken off it when the reaction expires.
	Reaction string `json:"reaction,omitempty"`
}

// ParseTimer parses a timer: "off" (0), or a Go duration ("90s", "1h30m")
// with the extra units d (24h) and w (7d), from 1s to MaxTimer.
func ParseTimer(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, ErrBadTimer
		}
		d = time.Duration(v) * 24 * time.Hour
	} else if n, ok := strings.CutSuffix(s, "w"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, ErrBadTimer
		}
		d = time.Duration(v) * 7 * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, ErrBadTimer
		}
	}
	if d < time.Second || d > MaxTimer || d%time.Second != 0 {
		return 0, ErrBadTimer
	}
	return d, nil
}

// FormatTimer is the short form of a timer: "off", or its largest exact
// unit ("1w", "3d", "1h", "90m", "45s").
func FormatTimer(d time.Duration) string {
	switch {
	case d <= 0:
		return "off"
	case d%(7*24*time.Hour) == 0:
		return fmt.Sprintf("%dw", d/(7*24*time.Hour))
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func timerBody(d time.Duration) (content.Part, error) {
	b, err := content.Marshal(map[string]uint64{"seconds": uint64(d / time.Second)})
	return content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeTimer, Content: b}, err
}

// parseTimerBody decodes a timer message: a map with only "seconds".
func parseTimerBody(b []byte) (time.Duration, error) {
	var t struct {
		Seconds *uint64 `cbor:"seconds"`
	}
	dm, _ := cbor.DecOptions{ExtraReturnErrors: cbor.ExtraDecErrorUnknownField, DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
	if err := dm.Unmarshal(b, &t); err != nil || t.Seconds == nil || *t.Seconds > uint64(MaxTimer/time.Second) {
		return 0, fmt.Errorf("%w: bad disappearing-messages timer", errBadContent)
	}
	return time.Duration(*t.Seconds) * time.Second, nil
}

// TimerSet is the result of SetTimer.
type TimerSet struct {
	Sent
	Timer string `json:"timer"`
	// Seconds is the timer in seconds, 0 for off.
	Seconds int64 `json:"seconds"`
}

// SetTimer sets (or with 0 turns off) the disappearing-messages timer of
// target for every member: from then on every message sent there
// disappears that long after it was sent, on every device and on the
// server.
func (c *Client) SetTimer(ctx context.Context, target string, d time.Duration) (TimerSet, error) {
	if d < 0 || d > MaxTimer || d%time.Second != 0 {
		return TimerSet{}, ErrBadTimer
	}
	var out TimerSet
	err := c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		body, err := timerBody(d)
		if err != nil {
			return err
		}
		out.Sent, err = c.sendContent(ctx, conn, r, newContent(body), true)
		return err
	})
	out.Timer, out.Seconds = FormatTimer(d), int64(d/time.Second)
	return out, err
}

// Timer returns the disappearing-messages timer of target (0: off) as
// of this device's last sync.
func (c *Client) Timer(ctx context.Context, target string) (time.Duration, error) {
	var d time.Duration
	err := c.withLock(ctx, func() error {
		return c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
			r, err := lookupLocalPast(tx, c.acct.User, target)
			if err == nil {
				d = time.Duration(r.Timer) * time.Second
			}
			return err
		})
	})
	return d, err
}

// expiryFor is when a message sent now to r disappears (zero: never).
func (c *Client) expiryFor(r *convRecord) time.Time {
	if r.Timer <= 0 {
		return time.Time{}
	}
	return c.opts.now().Add(time.Duration(r.Timer) * time.Second).Truncate(time.Second)
}

func mimiExpiry(t time.Time) *content.Expiration {
	if t.IsZero() {
		return nil
	}
	return &content.Expiration{Time: uint32(min(max(t.Unix(), 1), 1<<32-1))}
}

// contentExpiry is the absolute expiry a content names (zero: none). A
// relative one (seconds after reading) counts from now.
func contentExpiry(cont *content.Content, now time.Time) time.Time {
	if cont.Expires == nil {
		return time.Time{}
	}
	if cont.Expires.Relative {
		return now.Add(time.Duration(cont.Expires.Time) * time.Second)
	}
	return time.Unix(int64(cont.Expires.Time), 0)
}

// receivedExpiry is when a received message disappears from this
// device: its own expiry, but no later than the conversation's timer
// after the server accepted it (a sender's client that leaves the
// expiry out does not keep its message on everyone's devices).
func (c *Client) receivedExpiry(r *convRecord, cont *content.Content, stored time.Time) time.Time {
	exp := contentExpiry(cont, c.opts.now())
	if r.Timer > 0 {
		if t := stored.Add(time.Duration(r.Timer) * time.Second); exp.IsZero() || t.Before(exp) {
			exp = t
		}
	}
	return exp
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// noteExpiring indexes message id of r to be deleted at at.
func noteExpiring(tx *profile.Tx, r *convRecord, id string, at time.Time, reaction string) error {
	if at.IsZero() {
		return nil
	}
	var old expiring
	if err := tx.GetJSON(bucketExpiring, id, &old); err == nil && !old.At.IsZero() && old.At.Before(at) {
		return nil // an earlier expiry already holds
	}
	return tx.PutJSON(bucketExpiring, id, expiring{Conv: r.ID, At: at, Reaction: reaction})
}

// applyTimer applies a timer change, in log order (a change the server
// ordered before the one already applied is history only).
func (c *Client) applyTimer(tx *profile.Tx, r *convRecord, ev *event, d time.Duration, notify bool) error {
	if ev.Seq != 0 && ev.Seq < r.TimerSeq {
		return nil
	}
	r.Timer, r.TimerSeq = int64(d/time.Second), ev.Seq
	if err := putConv(tx, r); err != nil {
		return err
	}
	who := ev.Sender.User
	if ev.Outgoing {
		who = "you"
	}
	text := fmt.Sprintf("%s set disappearing messages to %s", who, FormatTimer(d))
	if d == 0 {
		text = who + " turned off disappearing messages"
	}
	msg := &Message{ID: ev.ID, MimiID: ev.Mimi, Conversation: r.label(), ConversationID: hexID(r.ID), Sender: ev.Sender,
		SentAt: ev.At, Kind: KindTimer, Text: text, Seq: ev.Seq, Outgoing: ev.Outgoing, ExpiresAt: ev.Expires}
	if err := noteExpiring(tx, r, ev.ID, ev.Expires, ""); err != nil {
		return err
	}
	return c.record(tx, r, msg, notify)
}

// expired reports whether a message with expiry at is gone by now.
func (c *Client) expired(at time.Time) bool { return !at.IsZero() && !c.opts.now().Before(at) }

// sweepExpired deletes from the profile everything whose expiry passed,
// and returns how many messages went and the next expiry (zero: none).
// Call with the lock held.
func (c *Client) sweepExpired(ctx context.Context) (int, time.Time, error) {
	now := c.opts.now()
	var n int
	var next time.Time
	var files []string
	err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		n, next, files = 0, time.Time{}, nil
		items, err := tx.List(bucketExpiring)
		if err != nil {
			return err
		}
		for _, it := range items {
			var e expiring
			if err := jsonUnmarshal(it.Value, &e); err != nil {
				return err
			}
			if now.Before(e.At) {
				next = earlier(next, e.At)
				continue
			}
			paths, err := c.forget(tx, it.Key, &e)
			if err != nil {
				return err
			}
			files = append(files, paths...)
			n++
		}
		outbox, err := tx.List(bucketOutbox)
		if err != nil {
			return err
		}
		for _, it := range outbox {
			var q Queued
			if err := jsonUnmarshal(it.Value, &q); err != nil {
				return err
			}
			if q.ExpiresAt.IsZero() {
				continue
			}
			if now.Before(q.ExpiresAt) {
				next = earlier(next, q.ExpiresAt)
				continue
			}
			if err := tx.Delete(bucketOutbox, it.Key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("delete disappeared messages: %w", err)
	}
	for _, p := range files {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.warn(nil, nil, fmt.Errorf("a disappeared message's downloaded file %s could not be deleted: %w", p, err))
		}
	}
	c.mu.Lock()
	c.nextSweep = next
	c.mu.Unlock()
	if n > 0 {
		if err := c.store.Compact(ctx); err != nil {
			return n, next, err
		}
	}
	return n, next, nil
}

// forget deletes message id (due to disappear) from the profile and
// returns the downloaded files of its attachment to remove.
func (c *Client) forget(tx *profile.Tx, id string, e *expiring) ([]string, error) {
	conv := hexID(e.Conv)
	hist := historyPfx + conv
	var files []string
	var fd fileDescriptor
	if err := tx.GetJSON(bucketFiles, id, &fd); err == nil {
		var paths []string
		if err := tx.GetJSON(bucketDownloads, id, &paths); err == nil {
			for _, p := range paths {
				// Only the file as written: one the user replaced is theirs.
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() == fd.Size {
					files = append(files, p)
				}
			}
		}
	}
	if e.Reaction != "" {
		// Take the reaction off the message it reacts to.
		var m Message
		if err := tx.GetJSON(hist, e.Reaction, &m); err == nil {
			if i := slices.IndexFunc(m.Reactions, func(x Reaction) bool { return x.ID == id }); i >= 0 {
				m.Reactions = slices.Delete(m.Reactions, i, i+1)
				if err := tx.PutJSON(hist, m.ID, &m); err != nil {
					return nil, err
				}
			}
		}
		if err := tx.Delete(reactionPfx+conv, id); err != nil {
			return nil, err
		}
	}
	for _, b := range []string{hist, bucketFiles, bucketDownloads, bucketFranks, bucketNew, bucketExpiring} {
		if err := tx.Delete(b, id); err != nil {
			return nil, err
		}
	}
	if err := tx.DeleteBucket(orphanPfx + conv + "/" + id); err != nil {
		return nil, err
	}
	// Unreported events about it quote its text.
	items, err := tx.List(bucketNew)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		var ne newEntry
		if jsonUnmarshal(it.Value, &ne) == nil && ne.Event != nil && ne.Event.Target == id {
			if err := tx.Delete(bucketNew, it.Key); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// nextExpiry is when the next disappearing message is due (zero: none
// known at the last sweep).
func (c *Client) nextExpiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextSweep
}

// SweepExpired deletes every disappeared message from this device's
// profile now (syncs do it too) and returns how many went and when the
// next one is due (zero: none).
func (c *Client) SweepExpired(ctx context.Context) (int, time.Time, error) {
	var n int
	var next time.Time
	err := c.withLock(ctx, func() (err error) { n, next, err = c.sweepExpired(ctx); return err })
	return n, next, err
}

// noteDownload records a file GetFile wrote for message id, to delete
// it when the message disappears.
func (c *Client) noteDownload(id, path string) error {
	return c.store.Update(func(tx *profile.Tx) error {
		if has, err := tx.Has(bucketExpiring, id); err != nil || !has {
			return err
		}
		var paths []string
		if err := tx.GetJSON(bucketDownloads, id, &paths); err != nil && !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return tx.PutJSON(bucketDownloads, id, append(paths, path))
	})
}
