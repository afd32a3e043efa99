package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/wire"
)

// Message requests. With the "requests" setting on, a direct
// conversation that someone else started, with a user this profile never
// had a direct conversation with, is a request: it is joined (the MLS
// state is kept, so nothing is lost) but its messages are not reported by
// Sync, Watch or the daemon, and no read or delivery receipt, commit or
// device addition goes to it, so its sender learns nothing, not even that
// the user is active. Sharing a group does not make someone a contact
// (anyone in a large group could write otherwise); the request lists the
// groups in common instead, as Signal does. The user accepts it (the
// messages are then shown and receipts sent), answers it (sending is
// accepting), or deletes it (its history goes; a later message from the
// same person is a request again); blocking the person drops everything
// from them. Another device of the user that sends anything in the
// conversation (a message, a receipt) accepts it on every device.

// ErrNoRequest means there is no pending message request from that user.
var ErrNoRequest = errors.New("client: no message request from that user")

// MessageRequest is a pending request (`parley requests`).
type MessageRequest struct {
	User         string    `json:"user"`
	Conversation string    `json:"conversation"`
	Messages     int       `json:"messages"`
	First        time.Time `json:"first,omitzero"`
	Last         time.Time `json:"last,omitzero"`
	// Preview is the start of the first message.
	Preview string `json:"preview,omitempty"`
	// Common are the groups the user shares with the sender.
	Common []string `json:"groups_in_common"`
}

// isRequest decides whether a direct conversation joined from a Welcome
// of adder is a message request.
func isRequest(tx *profile.Tx, id []byte, adder, self string) (bool, error) {
	if old, err := getConv(tx, id); err == nil {
		return old.Request, nil // known before: as it was
	} else if !errors.Is(err, profile.ErrNotFound) {
		return false, err
	}
	if adder == self {
		return false, nil // the user (another of their devices) started it
	}
	if acceptedElsewhere(tx, adder) {
		return false, nil // accepted on another device before this one joined
	}
	return requestsOn(tx), nil
}

// requestMessages are a request's text and file messages, in log order.
func requestMessages(tx *profile.Tx, r *convRecord) ([]Message, error) {
	items, err := tx.List(historyPfx + hexID(r.ID))
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, it := range items {
		var m Message
		if err := jsonUnmarshal(it.Value, &m); err != nil {
			return nil, err
		}
		if m.Kind == KindText || m.Kind == KindFile {
			m.Conversation = r.label()
			out = append(out, m)
		}
	}
	return inLogOrder(out), nil
}

// Requests lists the pending message requests, newest first. Requests
// from people the user blocked are not listed (nothing of theirs is
// kept).
func (c *Client) Requests(ctx context.Context) ([]MessageRequest, error) {
	out := []MessageRequest{}
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			convs, err := listConvs(tx)
			if err != nil {
				return err
			}
			for _, r := range convs {
				if !r.Request || r.Removed || isBlocked(tx, r.Peer) {
					continue
				}
				msgs, err := requestMessages(tx, r)
				if err != nil {
					return err
				}
				if len(msgs) == 0 {
					continue // deleted, and nothing new since: not a request until they write again
				}
				mr := MessageRequest{User: r.Peer, Conversation: r.label(), Messages: len(msgs), Common: []string{}}
				if len(msgs) > 0 {
					mr.First, mr.Last = msgs[0].SentAt, msgs[len(msgs)-1].SentAt
					mr.Preview = strings.Trim(quote(&msgs[0]), "\u201c\u201d")
				}
				for _, g := range convs {
					if g.Kind != ConvGroup || g.Removed {
						continue
					}
					if grp, err := loadGroup(tx, g.ID); err == nil {
						for s := range groupDevices(grp) {
							if s.User == r.Peer {
								mr.Common = append(mr.Common, g.label())
								break
							}
						}
					}
				}
				sort.Strings(mr.Common)
				out = append(out, mr)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out, err
}

// releaseRequests makes every pending message request an ordinary
// conversation, its messages queued for the next Sync to report (and
// answer with receipts): the user turned message requests off, on this
// device or another, so every device ends the same whichever order the
// setting and the requests reached it in.
func releaseRequests(tx *profile.Tx) error {
	convs, err := listConvs(tx)
	if err != nil {
		return err
	}
	for _, r := range convs {
		if !r.Request || r.Removed || isBlocked(tx, r.Peer) {
			continue
		}
		r.Request = false
		if err := putConv(tx, r); err != nil {
			return err
		}
		msgs, err := requestMessages(tx, r)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := tx.PutJSON(bucketNew, m.ID, newEntry{Conv: r.ID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// findRequest finds the pending request from user ("@bob" or "bob").
func (c *Client) findRequest(tx *profile.Tx, user string) (*convRecord, error) {
	user = strings.TrimPrefix(user, "@")
	if err := wire.CheckUsername(user); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	r, err := getConv(tx, directID(c.acct.User, user))
	if errors.Is(err, profile.ErrNotFound) || (err == nil && (!r.Request || r.Removed)) {
		return nil, fmt.Errorf("%w: %s", ErrNoRequest, user)
	}
	return r, err
}

// AcceptRequest accepts the message request from user: the conversation
// becomes an ordinary one, its messages are returned (to be shown) and
// read receipts for them are sent (delivery receipts when read receipts
// are off).
func (c *Client) AcceptRequest(ctx context.Context, user string) ([]Message, error) {
	var msgs []Message
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			r, err := c.findRequest(tx, user)
			if err != nil {
				return err
			}
			r.Request = false
			if err := putConv(tx, r); err != nil {
				return err
			}
			if err := c.putOwn(tx, ownRequest+r.Peer, []byte(decisionAccepted), false); err != nil {
				return err
			}
			msgs, err = requestMessages(tx, r)
			for i := range msgs {
				withQuote(tx, &msgs[i])
			}
			return err
		})
		if err != nil {
			return err
		}
		c.shareOwnNow(ctx)
		conn, err := c.connection(ctx)
		if err != nil {
			// Accepted here; the receipts are not sent (the next sync does
			// not send them either: they were for messages shown now).
			c.warn(nil, nil, fmt.Errorf("receipts for the accepted request not sent: %w", err))
			return nil
		}
		c.sendReceipts(ctx, conn, msgs)
		return nil
	})
	if msgs == nil {
		msgs = []Message{}
	}
	return msgs, err
}

// DeleteRequest deletes the message request from user: its messages
// (with their files' keys) are erased from this device and it leaves the
// list. The sender is not told; if they write again, that is a new
// request. It returns how many messages were deleted.
func (c *Client) DeleteRequest(ctx context.Context, user string) (int, error) {
	n := 0
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			r, err := c.findRequest(tx, user)
			if err != nil {
				return err
			}
			if err := c.putOwn(tx, ownRequest+r.Peer, []byte(decisionDeleted), false); err != nil {
				return err
			}
			n, err = deleteRequestHistory(tx, r, math.MaxUint64)
			return err
		})
		if err == nil {
			c.shareOwnNow(ctx)
		}
		return err
	})
	return n, err
}

// deleteRequestHistory erases a request's messages that arrived up to
// the time before (milliseconds; a request deleted on another device
// keeps what came after, which is a request again), with their files'
// keys. It returns how many it erased.
func deleteRequestHistory(tx *profile.Tx, r *convRecord, before uint64) (int, error) {
	bucket := historyPfx + hexID(r.ID)
	items, err := tx.List(bucket)
	if err != nil {
		return 0, err
	}
	n, kept := 0, 0
	for _, it := range items {
		var m Message
		if err := jsonUnmarshal(it.Value, &m); err != nil {
			return n, err
		}
		if ms := m.SentAt.UnixMilli(); ms > 0 && uint64(ms) > before {
			kept++
			continue
		}
		if err := tx.Delete(bucket, it.Key); err != nil {
			return n, err
		}
		if err := tx.Delete(bucketFiles, it.Key); err != nil {
			return n, err
		}
		if err := tx.Put(bucketGone, it.Key, nil); err != nil {
			return n, err
		}
		n++
	}
	if kept == 0 {
		return n, tx.DeleteBucket(bucket)
	}
	return n, nil
}
