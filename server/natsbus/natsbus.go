// Package natsbus is the server's Bus between nodes on NATS
// (github.com/nats-io/nats.go). A node announces a message it stored to
// its recipients' devices, each on a subject of its own
// (parley.device.<id>), which only the nodes where that device is
// connected subscribe to: NATS routes each notice to those nodes alone,
// so a node's bus traffic is the deliveries it makes, not every message
// of the deployment. Notices for many recipients (large groups) go on one
// subject every node subscribes to. Core NATS, not JetStream: the
// database is the durable record, and a lost notice only delays a push
// until the device's next fetch (Jepsen found NATS 2.12.1 losing
// acknowledged JetStream writes at the default fsync interval, so nothing
// durable depends on NATS).
package natsbus

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects the nodes of one deployment publish on.
const (
	// Subject carries notices for every node: messages with many
	// recipients, and those of a node that watches no device subjects.
	Subject = "parley.delivery"
	// DevicePrefix, followed by a device id, is the subject of the
	// notices for that device; the nodes where it is connected subscribe
	// to it (Watch).
	DevicePrefix = "parley.device."
	// ChannelSubject carries "public channel X has new events".
	ChannelSubject = "parley.channels"
)

// inboxSize bounds the device notices waiting for the Subscribe handler;
// beyond it NATS drops them (a slow consumer), which only delays pushes.
const inboxSize = 1 << 16

// flushTimeout bounds how long Watch waits for the NATS server to
// confirm a subscription.
const flushTimeout = 2 * time.Second

// Bus is a server.Bus (and server.DeviceBus) on a NATS connection.
type Bus struct {
	nc  *nats.Conn
	log *slog.Logger
	// inbox receives the notices on every watched device subject (one
	// channel, no goroutine per subscription: a node watches every
	// device connected to it).
	inbox chan *nats.Msg

	mu      sync.Mutex
	watched map[string]*watch
}

// watch is one device subject this node subscribes to, for n connections.
type watch struct {
	sub *nats.Subscription
	n   int
}

// Connect connects to the NATS server(s) at url (comma separated),
// reconnecting for as long as it takes.
func Connect(url string, log *slog.Logger) (*Bus, error) {
	nc, err := nats.Connect(url,
		nats.Name("parleyd"),
		// A node never needs its own notices back: it has pushed to its
		// own devices already. Without this NATS delivers them to it
		// whenever it also watches a recipient (a device connected here
		// and to another node), and every broadcast, each a decode to
		// drop.
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected; reconnecting (pushes to other nodes wait)", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect to %s: %w", url, err)
	}
	return &Bus{nc: nc, log: log, inbox: make(chan *nats.Msg, inboxSize), watched: make(map[string]*watch)}, nil
}

// Publish implements server.Bus: msg goes to every node.
func (b *Bus) Publish(msg []byte) error { return b.nc.Publish(Subject, msg) }

// PublishTo implements server.DeviceBus: msg goes to the nodes that
// watch device.
func (b *Bus) PublishTo(device string, msg []byte) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	return b.nc.Publish(DevicePrefix+device, msg)
}

// Subscribe implements server.Bus: fn gets the notices on Subject and on
// every watched device subject, one at a time, until stop is called.
func (b *Bus) Subscribe(fn func([]byte)) (func(), error) {
	stopAll, err := b.On(Subject).Subscribe(fn)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case m := <-b.inbox:
				fn(m.Data)
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			stopAll()
			close(done)
			wg.Wait()
		})
	}, nil
}

// Watch implements server.DeviceBus: notices published to device reach
// this node's Subscribe handler until every unwatch returned for it was
// called. It returns once the NATS server has the subscription (or
// flushTimeout passed, NATS being away: the subscription is then made
// when it reconnects), so that a notice published after Watch returns
// is delivered.
func (b *Bus) Watch(device string) (unwatch func(), err error) {
	if err := checkDevice(device); err != nil {
		return nil, err
	}
	b.mu.Lock()
	w := b.watched[device]
	if w == nil {
		// Local work only (the SUB is buffered): no network wait under mu.
		sub, err := b.nc.ChanSubscribe(DevicePrefix+device, b.inbox)
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("natsbus: watch device %s: %w", device, err)
		}
		w = &watch{sub: sub}
		b.watched[device] = w
	}
	w.n++
	b.mu.Unlock()
	var once sync.Once
	unwatch = func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if w.n--; w.n == 0 {
				w.sub.Unsubscribe()
				delete(b.watched, device)
			}
		})
	}
	if !b.nc.IsConnected() {
		// NATS is away: the subscription is made when it reconnects, and
		// until then no notice reaches any node. Waiting would only
		// delay the sign-in.
		return unwatch, nil
	}
	if err := b.nc.FlushTimeout(flushTimeout); err != nil {
		b.log.Debug("NATS did not confirm a device subscription; notices for it may be missed until it does (the device's fetches still find every message)", "err", err)
	}
	return unwatch, nil
}

// Watched reports how many device subjects this node subscribes to.
func (b *Bus) Watched() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.watched)
}

// checkDevice refuses a device id that is not one subject token (the
// server's ids are 32 lowercase hex digits).
func checkDevice(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("natsbus: a device id must be 1-64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return fmt.Errorf("natsbus: device id %q is not a NATS subject token", id)
		}
	}
	return nil
}

// On returns the bus on another subject of the same connection (for
// example ChannelSubject for channels.Config.Bus).
func (b *Bus) On(subject string) Topic { return Topic{nc: b.nc, subject: subject} }

// Topic is one subject of a Bus's connection: a server.Bus or
// channels.Bus of its own.
type Topic struct {
	nc      *nats.Conn
	subject string
}

// Publish sends msg to every subscriber of the subject.
func (t Topic) Publish(msg []byte) error { return t.nc.Publish(t.subject, msg) }

// Subscribe calls fn for every message on the subject until stop is
// called.
func (t Topic) Subscribe(fn func([]byte)) (func(), error) {
	sub, err := t.nc.Subscribe(t.subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w", t.subject, err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// Close drains and closes the connection.
func (b *Bus) Close() error {
	return b.nc.Drain()
}
