// Package natsbus is the server's Bus between nodes on NATS
// (github.com/nats-io/nats.go): each node publishes the messages it stored
// on one subject and every node subscribes to it. Core NATS, not
// JetStream: the database is the durable record, and a lost notice only
// delays a push until the device's next fetch (Jepsen found NATS 2.12.1
// losing acknowledged JetStream writes at the default fsync interval, so
// nothing durable depends on NATS).
package natsbus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects the nodes of one deployment publish on.
const (
	// Subject carries the messages a node stored.
	Subject = "parley.delivery"
	// ChannelSubject carries "public channel X has new events".
	ChannelSubject = "parley.channels"
)

// Bus is a server.Bus on a NATS connection.
type Bus struct {
	nc *nats.Conn
}

// Connect connects to the NATS server(s) at url (comma separated),
// reconnecting for as long as it takes.
func Connect(url string, log *slog.Logger) (*Bus, error) {
	nc, err := nats.Connect(url,
		nats.Name("parleyd"),
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
	return &Bus{nc: nc}, nil
}

// Publish implements server.Bus.
func (b *Bus) Publish(msg []byte) error { return b.nc.Publish(Subject, msg) }

// Subscribe implements server.Bus.
func (b *Bus) Subscribe(fn func([]byte)) (func(), error) { return b.On(Subject).Subscribe(fn) }

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
