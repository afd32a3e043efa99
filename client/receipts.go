package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/parleychat/parley/client/profile"
)

// Receipts: every member's client tells the conversation, end to end
// inside MLS, which messages it has shown ("read") or, when its user
// turned read receipts off, only received ("delivered"). One line per
// user, not per device: a user's first device to report a message is
// the one that counts, and a message's sender's own devices never count
// as its readers.

const (
	// typeDelivered is the content type of a delivery receipt: the same
	// CBOR array of message ids as typeReceipt (read).
	typeDelivered = "application/vnd.parley.delivered+cbor"
	// kindDelivered is a delivery receipt as interpret reads it; like
	// kindMeta, it never reaches the history.
	kindDelivered = "delivered"
	// receiptPfx + message id: user → receiptState.
	receiptPfx = "rcpt/"
)

// receiptState is what one user reported about one message, with the
// server's times of their receipts.
type receiptState struct {
	Delivered time.Time `json:"delivered,omitzero"`
	Read      time.Time `json:"read,omitzero"`
}

// Receipt states in MemberStatus.State.
const (
	StateSent      = "sent"      // nothing reported yet
	StateDelivered = "delivered" // on one of the member's devices
	StateRead      = "read"      // shown on one of the member's devices
)

// MemberStatus is what one member reported about a message.
type MemberStatus struct {
	User        string    `json:"user"`
	State       string    `json:"state"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	ReadAt      time.Time `json:"read_at,omitzero"`
}

// MessageInfo is a message with the receipts of every member (`parley
// info ID`).
type MessageInfo struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conversation"`
	Sender       Sender    `json:"sender"`
	SentAt       time.Time `json:"sent_at"`
	Kind         string    `json:"kind"`
	Text         string    `json:"text"`
	// Members: one entry per user of the conversation other than the
	// message's sender and this user (and users who reported it and left
	// since).
	Members []MemberStatus `json:"members"`
	// ReadReceipts is this profile's setting: when off, others' read
	// receipts show as deliveries only.
	ReadReceipts bool `json:"read_receipts"`
}

// acceptReceipt records a read (or, with read false, delivery) receipt.
// A read receipt makes a line of the history, one per reader and message
// (a message another device of the same reader already reported is not
// reported again). Own devices' receipts tell this account nothing, and
// a user's receipt for their own message counts for nothing.
func (c *Client) acceptReceipt(tx *profile.Tx, r *convRecord, ev *event, ids []string, read bool) error {
	if ev.Sender.User == c.acct.User {
		return nil
	}
	if read && !readReceiptsOn(tx) {
		read = false // not seen while this profile sends none
	}
	var fresh []string
	for _, id := range ids {
		var m Message
		if err := tx.GetJSON(historyPfx+hexID(r.ID), id, &m); err != nil {
			if errors.Is(err, profile.ErrNotFound) {
				continue // not a message this device has (or deleted here)
			}
			return err
		}
		if m.Sender.User == ev.Sender.User {
			continue
		}
		bucket := receiptPfx + id
		var st receiptState
		if err := tx.GetJSON(bucket, ev.Sender.User, &st); err != nil && !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		changed := false
		if st.Delivered.IsZero() {
			st.Delivered, changed = ev.At, true
		}
		if read && st.Read.IsZero() {
			st.Read, changed = ev.At, true
			if old, _ := tx.Has(bucketReadBy, id+"/"+ev.Sender.User); !old {
				fresh = append(fresh, id)
			}
		}
		if changed {
			if err := tx.PutJSON(bucket, ev.Sender.User, &st); err != nil {
				return err
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	msg := &Message{
		ID: ev.ID, MimiID: ev.Mimi, Conversation: r.label(), ConversationID: hexID(r.ID), Sender: ev.Sender,
		SentAt: ev.At, Kind: KindReceipt, Seq: ev.Seq, ReceiptFor: fresh,
		Text:      "read by " + ev.Sender.User + c.receiptSubject(tx, r, fresh),
		ExpiresAt: ev.Expires,
	}
	// The receipt quotes the messages it is for: it goes when they do.
	for _, id := range fresh {
		var m Message
		if err := tx.GetJSON(historyPfx+hexID(r.ID), id, &m); err == nil {
			msg.ExpiresAt = earlier(msg.ExpiresAt, m.ExpiresAt)
		}
	}
	if err := noteExpiring(tx, r, ev.ID, msg.ExpiresAt, ""); err != nil {
		return err
	}
	return c.record(tx, r, msg, true)
}

// Info returns message id with what every member of its conversation
// reported about it.
func (c *Client) Info(ctx context.Context, id string) (MessageInfo, error) {
	var out MessageInfo
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			r, m, err := findMessage(tx, id)
			if err != nil {
				return err
			}
			out = MessageInfo{ID: m.ID, Conversation: r.label(), Sender: m.Sender, SentAt: m.SentAt, Kind: m.Kind, Text: m.Text,
				Members: []MemberStatus{}, ReadReceipts: readReceiptsOn(tx)}
			if m.Deleted {
				out.Text = ""
			}
			users := map[string]bool{}
			if !r.Removed {
				if g, err := loadGroup(tx, r.ID); err == nil {
					for s := range groupDevices(g) {
						users[s.User] = true
					}
				}
			}
			if r.Kind == ConvDirect {
				users[r.Peer], users[c.acct.User] = true, true
			}
			states := map[string]receiptState{}
			items, err := tx.List(receiptPfx + m.ID)
			if err != nil {
				return err
			}
			for _, it := range items {
				var st receiptState
				if err := json.Unmarshal(it.Value, &st); err != nil {
					return fmt.Errorf("client: decode stored receipt: %w", err)
				}
				states[it.Key], users[it.Key] = st, true
			}
			// The sender is no reader of their message, and this user's
			// own reading needs no receipt.
			delete(users, m.Sender.User)
			delete(users, c.acct.User)
			for u := range users {
				st := states[u]
				if !out.ReadReceipts && !st.Read.IsZero() {
					// Recorded before the setting was turned off.
					st.Delivered, st.Read = minTime(st.Delivered, st.Read), time.Time{}
				}
				ms := MemberStatus{User: u, State: StateSent, DeliveredAt: st.Delivered, ReadAt: st.Read}
				if old, _ := tx.Has(bucketReadBy, m.ID+"/"+u); old && st.Read.IsZero() && out.ReadReceipts {
					ms.State = StateRead // a receipt from before receipt times were kept
				}
				switch {
				case !st.Read.IsZero():
					ms.State = StateRead
				case !st.Delivered.IsZero() && ms.State == StateSent:
					ms.State = StateDelivered
				}
				out.Members = append(out.Members, ms)
			}
			sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].User < out.Members[j].User })
			return nil
		})
	})
	return out, err
}

// minTime is the earlier of two times, ignoring zero ones.
func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
