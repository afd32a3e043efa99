package client

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/wire"
)

// Invite links (docs/protocol.md, "Invite links"). An admin's client
// makes a code naming the admin, a random handle and a random secret,
// and remembers handle → (group, secret). Whoever has the code sends a
// join request (handle and secret) to the admin in their direct
// conversation, end to end inside MLS; the admin's client checks the
// secret and lists the request; the admin approves it with an ordinary
// add. The server sees a direct message, as for any other, and never
// the group, the handle or the secret.

// Invite codes and their parts.
const (
	invitePrefix   = "parley-invite:"
	inviteHandleSz = 16
	inviteSecretSz = 16
	// InviteLifetime is how long an invite code can be used.
	InviteLifetime = 7 * 24 * time.Hour
	// typeJoinRequest is the content type of a join request.
	typeJoinRequest = "application/vnd.parley.join-request+cbor"
	// KindJoinRequest is the kind of the notice an admin sees in the
	// direct conversation when someone asks to join with a valid code.
	KindJoinRequest = "join_request"
)

const (
	bucketInvites      = "invite"       // hex(handle) → inviteRecord
	bucketJoinRequests = "join-request" // hex(conversation id) + "/" + user → JoinRequest
)

// Errors of invite links.
var (
	ErrBadInvite      = errors.New("client: not a valid invite code (it looks like parley-invite:USER:...)")
	ErrNoJoinRequest  = errors.New("client: no pending request to join from that user")
	errInviteMismatch = errors.New("a join request with an unknown, expired or wrong invite code; ignored")
)

type inviteRecord struct {
	Conv    []byte    `json:"conv"`
	Secret  []byte    `json:"secret"`
	Expires time.Time `json:"expires"`
}

// Invite is a code made by CreateInvite.
type Invite struct {
	Code    string    `json:"code"`
	Group   string    `json:"group"`
	Expires time.Time `json:"expires"`
}

// JoinRequest is a request to join a group with a valid invite code.
type JoinRequest struct {
	User  string    `json:"user"`
	Group string    `json:"group"`
	At    time.Time `json:"at"`
}

// joinRequest is a join request's content: the code's handle and secret.
type joinRequest struct {
	_      struct{} `cbor:",toarray"`
	Handle []byte
	Secret []byte
}

// CreateInvite makes an invite code for group (admins only). The code
// is a secret: whoever has it may ask to join until it expires.
func (c *Client) CreateInvite(ctx context.Context, group string) (Invite, error) {
	var inv Invite
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			r, err := findGroup(tx, strings.TrimPrefix(group, "#"))
			if err != nil {
				return err
			}
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			if err := c.mayAdminister(g); err != nil {
				return err
			}
			handle, secret := randomBytes(inviteHandleSz), randomBytes(inviteSecretSz)
			rec := inviteRecord{Conv: r.ID, Secret: secret, Expires: c.opts.now().Add(InviteLifetime).UTC()}
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := tx.Put(bucketInvites, hexID(handle), v); err != nil {
				return err
			}
			// Every device of the admin can check and approve requests
			// made with the code (ownsync.go).
			if err := c.putOwn(tx, ownInvite+hexID(handle), v, false); err != nil {
				return err
			}
			inv = Invite{Code: invitePrefix + c.acct.User + ":" + base64.RawURLEncoding.EncodeToString(append(handle, secret...)),
				Group: r.label(), Expires: rec.Expires}
			return nil
		})
		if err == nil {
			c.shareOwnNow(ctx)
		}
		return err
	})
	return inv, err
}

// parseInvite splits a code into the inviter, handle and secret.
func parseInvite(code string) (inviter string, req joinRequest, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(code), invitePrefix)
	if !ok {
		return "", req, ErrBadInvite
	}
	inviter, key, ok := strings.Cut(rest, ":")
	if !ok || wire.CheckUsername(inviter) != nil {
		return "", req, ErrBadInvite
	}
	// encoding/base64 skips CR and LF even in strict mode: refuse them, so
	// that a code has one spelling.
	if strings.ContainsAny(key, "\r\n") {
		return "", req, ErrBadInvite
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(key)
	if err != nil || len(b) != inviteHandleSz+inviteSecretSz {
		return "", req, ErrBadInvite
	}
	return inviter, joinRequest{Handle: b[:inviteHandleSz], Secret: b[inviteHandleSz:]}, nil
}

// JoinGroup asks the admin who made code to add this account: the
// request goes to them end to end, in the direct conversation. It
// returns the admin's name. The admin's client lists it (JoinRequests);
// once approved, the group arrives like any other at a sync.
func (c *Client) JoinGroup(ctx context.Context, code string) (string, error) {
	inviter, req, err := parseInvite(code)
	if err != nil {
		return "", err
	}
	if inviter == c.acct.User {
		return "", fmt.Errorf("%w: this is your own invite", ErrBadTarget)
	}
	b, err := content.Marshal(req)
	if err != nil {
		return "", err
	}
	body := content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeJoinRequest, Content: b}
	err = c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, "@"+inviter)
		if err != nil {
			return err
		}
		_, err = c.sendContent(ctx, conn, r, newContent(body), false)
		return err
	})
	return inviter, err
}

// parseJoinRequest decodes a join request's content strictly.
func parseJoinRequest(b []byte) (*joinRequest, error) {
	var req joinRequest
	dm, _ := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 16, MaxMapPairs: 16}.DecMode()
	if err := dm.Unmarshal(b, &req); err != nil || len(req.Handle) != inviteHandleSz || len(req.Secret) != inviteSecretSz {
		return nil, fmt.Errorf("%w: bad join request", errBadContent)
	}
	return &req, nil
}

// acceptJoinRequest checks a join request received in a direct
// conversation against this device's invites and, if it is good, keeps
// it for the admin and records a notice. A request without a matching,
// current invite changes nothing but a warning.
func (c *Client) acceptJoinRequest(tx *profile.Tx, r *convRecord, ev *event, req *joinRequest) error {
	if r.Kind != ConvDirect || ev.Sender.User == c.acct.User {
		return nil
	}
	var inv inviteRecord
	err := tx.GetJSON(bucketInvites, hexID(req.Handle), &inv)
	if errors.Is(err, profile.ErrNotFound) || err == nil && (subtle.ConstantTimeCompare(inv.Secret, req.Secret) != 1 || c.opts.now().After(inv.Expires)) {
		c.warn(r, nil, fmt.Errorf("%s: %w", ev.Sender.User, errInviteMismatch))
		return nil
	}
	if err != nil {
		return err
	}
	g, err := getConv(tx, inv.Conv)
	if errors.Is(err, profile.ErrNotFound) || err == nil && g.Removed {
		c.warn(r, nil, fmt.Errorf("%s asks to join a group this device is no longer in; ignored", ev.Sender.User))
		return nil
	}
	if err != nil {
		return err
	}
	if deniedAfter(tx, inv.Conv, ev.Sender.User, ev.At) {
		return nil // denied on another device of this user
	}
	jr := JoinRequest{User: ev.Sender.User, Group: g.label(), At: ev.At}
	if err := tx.PutJSON(bucketJoinRequests, hexID(inv.Conv)+"/"+jr.User, jr); err != nil {
		return err
	}
	msg := &Message{
		ID: ev.ID, MimiID: ev.Mimi, Conversation: r.label(), ConversationID: hexID(r.ID), Sender: ev.Sender,
		SentAt: ev.At, Kind: KindJoinRequest, Seq: ev.Seq,
		Text: fmt.Sprintf("%s asks to join %s (parley group approve '%s' @%s)", jr.User, jr.Group, jr.Group, jr.User),
	}
	return c.record(tx, r, msg, true)
}

// JoinRequests syncs and lists the pending requests to join group that
// this device received.
func (c *Client) JoinRequests(ctx context.Context, group string) ([]JoinRequest, error) {
	var out []JoinRequest
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if err := c.syncAll(ctx, conn); err != nil {
			return err
		}
		return c.store.Update(func(tx *profile.Tx) error {
			r, err := findGroup(tx, strings.TrimPrefix(group, "#"))
			if err != nil {
				return err
			}
			items, err := tx.List(bucketJoinRequests)
			if err != nil {
				return err
			}
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			members := memberUserSet(g)
			for _, it := range items {
				if !strings.HasPrefix(it.Key, hexID(r.ID)+"/") {
					continue
				}
				var jr JoinRequest
				if err := jsonUnmarshal(it.Value, &jr); err != nil {
					return err
				}
				if members[jr.User] {
					// Added meanwhile (by another admin).
					if err := tx.Delete(bucketJoinRequests, it.Key); err != nil {
						return err
					}
					continue
				}
				jr.Group = r.label()
				out = append(out, jr)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, err
}

// ApproveJoin adds user, who asked to join group with an invite code, to
// the group (admins only; the add is an ordinary commit, checked by
// every member). With deny, the request is dropped instead.
func (c *Client) ApproveJoin(ctx context.Context, group, user string, deny bool) error {
	user = strings.TrimPrefix(user, "@")
	return c.withLock(ctx, func() error {
		var r *convRecord
		var key string
		err := c.store.Update(func(tx *profile.Tx) error {
			var err error
			if r, err = findGroup(tx, strings.TrimPrefix(group, "#")); err != nil {
				return err
			}
			key = hexID(r.ID) + "/" + user
			if ok, err := tx.Has(bucketJoinRequests, key); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("%w: %s, in %s", ErrNoJoinRequest, user, r.label())
				}
				return err
			}
			if deny {
				if err := c.putOwn(tx, ownJoin+key, []byte(decisionDenied), false); err != nil {
					return err
				}
				return tx.Delete(bucketJoinRequests, key)
			}
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			return c.mayAdminister(g)
		})
		if err != nil || deny {
			if err == nil {
				c.shareOwnNow(ctx)
			}
			return err
		}
		if err := c.addUsers(ctx, r, []string{user}, true, nil); err != nil {
			return err
		}
		return c.store.Update(func(tx *profile.Tx) error { return tx.Delete(bucketJoinRequests, key) })
	})
}
