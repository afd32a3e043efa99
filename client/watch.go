package client

import (
	"context"
	"errors"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
)

// Event types reported by Watch.
const (
	EventMessage      = "message"      // a new message (Event.Message)
	EventSent         = "sent"         // an outbox entry was delivered (Event.Sent)
	EventSendFailed   = "send_failed"  // an outbox entry was refused for good (Event.Queued)
	EventConnected    = "connected"    // connected (again) and caught up
	EventDisconnected = "disconnected" // the server cannot be reached; retry in Event.RetryIn
	EventAlert        = "alert"        // a security alert (Event.Warning)
	EventWarning      = "warning"      // a problem with one message (Event.Warning)
	EventChannelPost  = "channel_post" // a new post in a followed public channel (Event.ChannelPost)
	EventTyping       = "typing"       // a member is typing, or stopped (Event.Typing)
	EventHistory      = "history"      // history from another device of the account was imported (Event.History)
)

// Event is something Watch reports.
type Event struct {
	Type        string           `json:"type"`
	Message     *Message         `json:"message,omitempty"`
	Sent        *Sent            `json:"sent,omitempty"`
	Queued      *Queued          `json:"queued,omitempty"`
	Warning     *Warning         `json:"warning,omitempty"`
	ChannelPost *ChannelPost     `json:"channel_post,omitempty"`
	Typing      *Typing          `json:"typing,omitempty"`
	History     *HistoryReceived `json:"history,omitempty"`
	// Err is why the connection was lost (disconnected).
	Err error `json:"-"`
	// RetryIn is when the next attempt is made (disconnected).
	RetryIn time.Duration `json:"-"`
}

// WatchOptions adjust Watch.
type WatchOptions struct {
	// Warnings: report the client's warnings and alerts as events
	// (taking them from Warnings).
	Warnings bool
	// Channels: report new posts of the public channels this account
	// follows, checked every ChannelPoll (default 15s).
	Channels    bool
	ChannelPoll time.Duration
	// Backoff between reconnection attempts (default: 200ms doubling to
	// 10s, jittered).
	Backoff Backoff
}

// Watch syncs, sends the outbox, then stays connected and reports every
// new message, delivered outbox entry and change of connection to fn
// until ctx is done. When the server cannot be reached it retries with a
// jittered backoff from a short first delay (reporting EventDisconnected
// before each wait), and catches up and sends the outbox once it is back.
// It returns only when ctx is done or this device was removed or is
// unknown to the server.
func (c *Client) Watch(ctx context.Context, opts WatchOptions, fn func(Event)) error {
	bo := opts.Backoff
	var lastChannels time.Time
	poll := opts.ChannelPoll
	if poll <= 0 {
		poll = 15 * time.Second
	}
	connected := false
	for {
		var conn *transport.Conn
		res, err := c.Sync(ctx)
		if err == nil {
			if !connected {
				connected = true
				fn(Event{Type: EventConnected})
			}
			for i := range res.Messages {
				fn(Event{Type: EventMessage, Message: &res.Messages[i]})
			}
			for _, t := range c.takeTyping() {
				fn(Event{Type: EventTyping, Typing: &t})
			}
			for _, h := range c.TakeReceivedHistory() {
				fn(Event{Type: EventHistory, History: &h})
			}
			var fr FlushResult
			fr, err = c.FlushOutbox(ctx)
			for i := range fr.Sent {
				fn(Event{Type: EventSent, Sent: &fr.Sent[i]})
			}
			for i := range fr.Failed {
				fn(Event{Type: EventSendFailed, Queued: &fr.Failed[i]})
			}
			if err == nil && len(fr.Sent) > 0 {
				// What the outbox sent may disappear before the next sync.
				_, _, err = c.SweepExpired(ctx)
			}
			if err == nil && opts.Channels && time.Since(lastChannels) >= poll {
				lastChannels = time.Now()
				posts, cerr := c.ChannelUpdates(ctx)
				for i := range posts {
					fn(Event{Type: EventChannelPost, ChannelPost: &posts[i]})
				}
				if cerr != nil && ctx.Err() == nil {
					c.warnLabel("channels", cerr)
				}
			}
			if opts.Warnings {
				for _, w := range c.Warnings() {
					t := EventWarning
					if w.Alert {
						t = EventAlert
					}
					fn(Event{Type: t, Warning: &w})
				}
			}
			if err == nil {
				bo.Reset()
				c.mu.Lock()
				conn = c.conn
				c.mu.Unlock()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || conn == nil {
			if errors.Is(err, wire.ErrUnauthenticated) || errors.Is(err, ErrDeviceRemoved) || errors.Is(err, ErrNoAccount) {
				return err
			}
			connected = false
			d := bo.Next()
			fn(Event{Type: EventDisconnected, Err: err, RetryIn: d})
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
			continue
		}
		for {
			wait := 30 * time.Second
			if opts.Channels {
				wait = min(wait, max(poll-time.Since(lastChannels), 0))
			}
			if next := c.nextExpiry(); !next.IsZero() {
				// Wake to sweep a disappearing message at its time.
				wait = min(wait, max(next.Sub(c.opts.now()), 0)+10*time.Millisecond)
			}
			typed, err := c.waitForEventFor(ctx, conn, wait)
			if err != nil {
				return err
			}
			for _, t := range c.takeTyping() {
				fn(Event{Type: EventTyping, Typing: &t})
			}
			for _, h := range c.TakeReceivedHistory() {
				fn(Event{Type: EventHistory, History: &h})
			}
			if !typed {
				break
			}
		}
	}
}
