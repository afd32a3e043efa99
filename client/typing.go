package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/wire"
)

// Typing indicators (docs/protocol.md, "Typing indicators"). A typing
// indicator is a MIMI content of type typeTyping (CBOR true: typing,
// false: stopped), encrypted as an MLS application message like any
// other, and sent with SendRequest.ephemeral: the server relays it to
// the members' devices that are connected and stores nothing. Receivers
// show "bob is typing…" until TypingTTL passes without a new one.

const (
	typeTyping = "application/vnd.parley.typing+cbor"
	kindTyping = "typing"
	// settingNoTyping is the row older versions kept in bucketSettings
	// for typing indicators off; migrateTyping (settings.go) moves it.
	settingNoTyping = "no-typing"
)

// TypingTTL is how long a typing indicator is shown without a new one.
const TypingTTL = 6 * time.Second

// TypingEvery is the least time between two typing indicators this
// device sends to one conversation (the server also limits them).
const TypingEvery = 3 * time.Second

// Typing is a member's typing indicator.
type Typing struct {
	Conversation   string `json:"conversation"`
	ConversationID string `json:"conversation_id"`
	User           string `json:"user"`
	Device         string `json:"device"`
	// Typing is false when the member stopped (sent their message or
	// cleared it).
	Typing bool `json:"typing"`
	// Until is when to stop showing it unless another arrives.
	Until time.Time `json:"until"`
}

// SetTypingIndicators turns sending typing indicators on or off (on by
// default): the setting SettingTyping, on every device of the account.
// Others' indicators are shown either way.
func (c *Client) SetTypingIndicators(ctx context.Context, on bool) error {
	_, err := c.SetSetting(ctx, SettingTyping, on)
	return err
}

// TypingIndicators reports whether this device sends typing indicators.
func (c *Client) TypingIndicators(ctx context.Context) (bool, error) {
	var on bool
	err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error { on = settingOn(tx, SettingTyping); return nil })
	return on, err
}

// SendTyping tells the members of target (online now) that this user is
// typing there, or with typing false that they stopped. It does nothing
// (and reports false) when typing indicators are off, or when one was
// sent to target less than TypingEvery ago. It sends on the connection
// this client has (connecting if needed) without syncing first: an
// indicator that cannot be sent right away is dropped.
func (c *Client) SendTyping(ctx context.Context, target string, typing bool) (bool, error) {
	on, err := c.TypingIndicators(ctx)
	if err != nil || !on {
		return false, err
	}
	now := c.opts.now()
	sent := false
	err = c.withLock(ctx, func() error {
		var r *convRecord
		if err := c.store.UpdateContext(ctx, func(tx *profile.Tx) (err error) { r, err = lookupLocal(tx, c.acct.User, target); return err }); err != nil {
			return err
		}
		if r.Removed {
			return fmt.Errorf("%w: %s", ErrNotMember, r.label())
		}
		key := hexID(r.ID)
		c.mu.Lock()
		last := c.typingSent[key]
		if typing && now.Sub(last) < TypingEvery && !last.IsZero() {
			c.mu.Unlock()
			return nil
		}
		if c.typingSent == nil {
			c.typingSent = map[string]time.Time{}
		}
		c.typingSent[key] = now
		if !typing {
			delete(c.typingSent, key)
		}
		c.mu.Unlock()
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		body := content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeTyping, Content: []byte{0xf4}}
		if typing {
			body.Content = []byte{0xf5}
		}
		cont := newContent(body)
		mid, plaintext, err := cont.MessageID(senderURI(c.acct.User), roomURI(r.ID))
		if err != nil {
			return err
		}
		var ciphertext []byte
		var epoch uint64
		err = c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			epoch = g.Epoch()
			if ciphertext, err = g.Encrypt(plaintext, nil); err != nil {
				return fmt.Errorf("encrypt: %w", err)
			}
			return saveGroup(tx, g)
		})
		if err != nil {
			return err
		}
		if err := conn.SendEphemeral(ctx, mid[:wire.MessageIDSize], r.ID, epoch, ciphertext); err != nil {
			return fmt.Errorf("typing indicator: %w", err)
		}
		sent = true
		return nil
	})
	return sent, err
}

// processEphemeral decrypts an ephemeral message pushed by the server
// and returns the typing indicator it carries (nil for anything else,
// which is dropped: an ephemeral message is never history). Call with
// the lock held.
func (c *Client) processEphemeral(m transport.Message) (*Typing, error) {
	var out *Typing
	err := c.store.Update(func(tx *profile.Tx) error {
		r, err := getConv(tx, m.ConversationID)
		if errors.Is(err, profile.ErrNotFound) {
			return nil
		}
		if err != nil || r.Removed {
			return err
		}
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		if m.Epoch != g.Epoch() || m.Kind != transport.KindApplication {
			return nil // made in another epoch than ours: stale, or we are behind
		}
		res, err := g.Process(m.Payload)
		if err != nil || res.Kind != mls.ResultApplication || res.Sender.Type != mls.SenderTypeMember {
			return nil
		}
		if err := saveGroup(tx, g); err != nil {
			return err
		}
		sender, err := parseIdentity(res.Credential.Identity)
		if err != nil || sender.User == c.acct.User {
			return nil
		}
		if blocked, err := tx.Has(bucketBlocked, sender.User); err != nil || blocked {
			return err
		}
		cont, err := content.Decode(res.Plaintext)
		if err != nil {
			return nil
		}
		if mid, err := content.ComputeMessageID(senderURI(sender.User), roomURI(r.ID), res.Plaintext); err != nil || !bytes.Equal(mid[:wire.MessageIDSize], m.ID) {
			return nil
		}
		p, err := interpret(cont)
		if err != nil || p.kind != kindTyping {
			return nil
		}
		out = &Typing{Conversation: r.label(), ConversationID: hexID(r.ID), User: sender.User, Device: sender.Device,
			Typing: p.typing, Until: c.opts.now().Add(TypingTTL)}
		return nil
	})
	return out, err
}

// queueTyping keeps a typing indicator for Watch to report.
func (c *Client) queueTyping(t *Typing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.typingQueue) < 100 {
		c.typingQueue = append(c.typingQueue, *t)
	}
}

// takeTyping returns and clears the queued typing indicators.
func (c *Client) takeTyping() []Typing {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.typingQueue
	c.typingQueue = nil
	return q
}
