package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire/parleypb"
)

// Several nodes (docs/protocol.md §11). Nodes share one database (store
// backend PostgreSQL), the durable source of truth, and a Bus over which
// each node announces the messages it stored, so that the nodes where
// recipients are connected push them at once. A lost notice only delays
// delivery until the device's next fetch: nothing durable depends on the
// bus.

// Bus carries notices between server nodes (package natsbus: NATS).
type Bus interface {
	// Publish sends a notice to every node; it must not block for long.
	Publish(b []byte) error
	// Subscribe calls fn for every notice other nodes publish until stop
	// is called. A node's own notices may come back too (natsbus keeps
	// them away); the caller must not depend on either.
	Subscribe(fn func(b []byte)) (stop func(), err error)
}

// DeviceBus is a Bus that can also route a notice to the nodes where one
// device is connected (package natsbus: a NATS subject per device), so
// that a node's bus traffic is the deliveries it makes rather than every
// message of the deployment.
type DeviceBus interface {
	Bus
	// PublishTo sends a notice to the nodes that watch device.
	PublishTo(device string, b []byte) error
	// Watch makes notices published to device reach this node's
	// Subscribe handler until unwatch is called (once per Watch). It
	// returns once a notice published after it will be delivered.
	Watch(device string) (unwatch func(), err error)
}

// maxDirectRecipients is the most recipient devices a notice is
// published to one by one on a DeviceBus; a notice for more (a large
// group) goes once to every node.
const maxDirectRecipients = 16

// publishNotice sends n to the nodes that need it: to each recipient
// device's subject on a DeviceBus (the notice then names that device
// alone), else, or with no recipients or too many, to every node.
func (s *Server) publishNotice(n *parleypb.ClusterNotice) error {
	db, direct := s.cfg.Bus.(DeviceBus)
	if !direct || len(n.Recipients) == 0 || len(n.Recipients) > maxDirectRecipients {
		b, err := proto.Marshal(n)
		if err != nil {
			return err
		}
		return s.cfg.Bus.Publish(b)
	}
	all := n.Recipients
	defer func() { n.Recipients = all }()
	var firstErr error
	for i, d := range all {
		if slices.Contains(all[:i], d) {
			continue
		}
		n.Recipients = []string{d}
		b, err := proto.Marshal(n)
		if err == nil {
			err = db.PublishTo(d, b)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func newNodeID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// announce publishes stored messages for other nodes' connected devices.
func (s *Server) announce(res store.AppendResult) {
	if s.cfg.Bus == nil {
		return
	}
	publish := func(n *parleypb.ClusterNotice) {
		if err := s.publishNotice(n); err != nil {
			s.log.Warn("cluster notice not published; recipients on other nodes get the message at their next fetch", "err", err)
		}
	}
	// The stored time to the millisecond: the other node franks with it.
	wm := func(m store.Message) *parleypb.Message {
		w := messageToWire(m)
		w.AcceptedUnixMs = m.Stored.UnixMilli()
		return w
	}
	if len(res.Recipients) > 0 {
		publish(&parleypb.ClusterNotice{Node: s.nodeID, Recipients: res.Recipients, Message: wm(res.Message)})
	}
	for _, w := range res.Welcomes {
		publish(&parleypb.ClusterNotice{Node: s.nodeID, Recipients: []string{w.DeviceID}, Message: wm(w.Message), Inbox: true})
	}
}

// onNotice pushes another node's stored message to this node's connected
// recipients.
func (s *Server) onNotice(b []byte) {
	var n parleypb.ClusterNotice
	if proto.Unmarshal(b, &n) != nil || n.Node == s.nodeID {
		return
	}
	if n.Recheck {
		s.onRecheck(n.Recipients)
		return
	}
	if n.Push != nil {
		s.onForwardedPush(&n)
		return
	}
	if n.Message == nil {
		return
	}
	m := store.Message{ID: n.Message.Id, ConversationID: n.Message.ConversationId, Seq: n.Message.Seq, Epoch: n.Message.Epoch,
		Kind: storeKind(n.Message.Kind), Sender: n.Message.SenderDeviceId, Payload: n.Message.Payload,
		Stored: time.UnixMilli(n.Message.AcceptedUnixMs)}
	var push *parleypb.Push
	for i, d := range n.Recipients {
		conns := s.hub.conns(d)
		if len(conns) == 0 || slices.Contains(n.Recipients[:i], d) {
			continue
		}
		if push == nil {
			if n.Ephemeral {
				push = &parleypb.Push{Event: &parleypb.Push_Ephemeral{Ephemeral: n.Message}}
			} else if n.Inbox {
				push = &parleypb.Push{Event: &parleypb.Push_Inbox{Inbox: messageToWire(m)}}
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				push = &parleypb.Push{Event: &parleypb.Push_Message{Message: s.toWire(ctx, m)}}
				cancel()
			}
		}
		for _, oc := range conns {
			oc.push(push)
		}
	}
}

// announceEphemeral publishes an ephemeral message for other nodes'
// connected devices of the conversation's members.
func (s *Server) announceEphemeral(recipients []string, m *parleypb.Message) {
	if s.cfg.Bus == nil || len(recipients) == 0 {
		return
	}
	if err := s.publishNotice(&parleypb.ClusterNotice{Node: s.nodeID, Recipients: recipients, Message: m, Ephemeral: true}); err != nil {
		s.log.Debug("cluster notice of an ephemeral message not published", "err", err)
	}
}

func storeKind(k parleypb.Kind) store.Kind {
	switch k {
	case parleypb.Kind_WELCOME:
		return store.KindWelcome
	case parleypb.Kind_REFUSED:
		return store.KindRefused
	}
	return kindFromWire[k]
}

// forwardPush sends a push event that arose on this node to devices
// connected to other nodes.
func (s *Server) forwardPush(devices []string, p *parleypb.Push) {
	if s.cfg.Bus == nil || len(devices) == 0 {
		return
	}
	if err := s.publishNotice(&parleypb.ClusterNotice{Node: s.nodeID, Recipients: devices, Push: p}); err != nil {
		s.log.Debug("push not forwarded to other nodes", "err", err)
	}
}

// forwardLinkApproved tells the node where the new device waits for the
// approval of link (username/code) that it was approved.
func (s *Server) forwardLinkApproved(link string, p *parleypb.Push) {
	if s.cfg.Bus == nil {
		return
	}
	if err := s.publishNotice(&parleypb.ClusterNotice{Node: s.nodeID, Link: link, Push: p}); err != nil {
		s.log.Debug("link approval not forwarded; the new device finds it when it polls", "err", err)
	}
}

// onForwardedPush pushes an event another node forwarded to this node's
// connections. Only events that are hints are taken: the client acts on
// each by asking the server (uploading key packages, signing in,
// fetching the device list), so a forged one misleads no one.
func (s *Server) onForwardedPush(n *parleypb.ClusterNotice) {
	switch e := n.Push.Event.(type) {
	case *parleypb.Push_LinkApproved:
		if n.Link == "" {
			return
		}
		s.mu.Lock()
		waiting := s.links[n.Link]
		delete(s.links, n.Link)
		s.mu.Unlock()
		if waiting != nil {
			waiting.push(n.Push)
		}
	case *parleypb.Push_KeyPackagesLow, *parleypb.Push_DeviceRemoved:
		for i, d := range n.Recipients {
			if slices.Contains(n.Recipients[:i], d) {
				continue
			}
			if dr, ok := e.(*parleypb.Push_DeviceRemoved); ok && (dr.DeviceRemoved == nil || dr.DeviceRemoved.DeviceId == d) {
				continue // a device's own removal is the store's to say (sessions.go)
			}
			for _, c := range s.hub.conns(d) {
				c.push(n.Push)
			}
		}
	}
}
