package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Sessions end where the store says so (docs/protocol.md §11, "Ending
// sessions"). A connection is authenticated once, but what made it so can
// change behind it: the device is removed (a lost phone, through any
// node), its account deleted, or moderators suspend or ban the account
// (from the web console or from "parleyd admin cases" in another
// process). One node ends its own connections of a removed device at
// once; every other place learns of it three ways, each of which relies
// on the store alone, never on a notice:
//
//   - Account requests (everything but the traffic of messages: linking,
//     removing devices, deleting the account, key packages, device lists,
//     conversations, reports) look the device and the account's sanction
//     up again first (recheckRequest). A device removed on another node
//     can therefore never approve a link, remove its owner's devices or
//     delete the account. Sends, fetches and acks need no lookup: the
//     store refuses them for a device that is no member any more.
//   - The node that removed a device publishes a recheck notice naming
//     it on the bus; every node looks those devices up and ends the
//     sessions the store no longer backs. The notice only says where to
//     look: a forged or replayed one ends nothing.
//   - Every SessionCheck interval (default 1 min) each node looks up
//     every device connected to it (checkSessions): a lost notice, a
//     node without a bus, and decisions taken in another process end
//     within that interval. A changed sanction (a suspension, a ban, or
//     one lifted) ends the account's sessions too, and the client signs
//     in again to learn it.

// maxRecheckDevices bounds the devices one recheck notice makes a
// node look up (an account has at most MaxDevices; the bound only keeps a
// malformed notice cheap).
const maxRecheckDevices = 256

// errDeviceGone answers a request of a device whose session the store no
// longer backs.
var errDeviceGone = &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED,
	Message: "this device was removed from its account (or the account was deleted): it can no longer act for it; link it again from a device of the account"}

// sessionEnd is why the store no longer backs a session.
type sessionEnd int

const (
	sessionGoesOn sessionEnd = iota
	endDeviceRemoved
	endAccountDeleted
	endSanctionChanged
)

// Close reasons the client sees.
const (
	reasonDeviceRemoved  = "device removed"
	reasonAccountDeleted = "account deleted"
)

func (e sessionEnd) reason() string {
	switch e {
	case endDeviceRemoved:
		return reasonDeviceRemoved
	case endAccountDeleted:
		return reasonAccountDeleted
	case endSanctionChanged:
		return "moderators' decision on this account changed: sign in again"
	}
	return ""
}

// label names e in the parleyd_sessions_ended_total metric.
func (e sessionEnd) label() string {
	switch e {
	case endDeviceRemoved:
		return "device_removed"
	case endAccountDeleted:
		return "account_deleted"
	case endSanctionChanged:
		return "sanction_changed"
	}
	return "none"
}

// messageTraffic reports whether a request is part of exchanging messages,
// which the store itself refuses to a device that is no longer a member:
// these are not rechecked, so that the hot path costs no extra lookup.
func messageTraffic(f *parleypb.ClientFrame) bool {
	switch f.Body.(type) {
	case *parleypb.ClientFrame_Ping, *parleypb.ClientFrame_Send, *parleypb.ClientFrame_Fetch, *parleypb.ClientFrame_Ack,
		*parleypb.ClientFrame_FetchInbox, *parleypb.ClientFrame_AckInbox, *parleypb.ClientFrame_ListConversations,
		*parleypb.ClientFrame_KtKeys, *parleypb.ClientFrame_KtHistory, *parleypb.ClientFrame_KtConsistency:
		return true
	}
	return false
}

// recheckRequest looks c's device and its account's sanction up again
// before an account request. A removed device is refused and its
// connection closed once the answer is sent; a changed sanction closes
// the connection the same way (the client signs in again and is told).
func (c *conn) recheckRequest(ctx context.Context) error {
	end, err := c.s.sessionVerdict(ctx, c.dev.ID, c.dev.Username, c.barred)
	if err != nil || end == sessionGoesOn {
		return err
	}
	c.s.metrics.sessionsEnded.WithLabelValues(end.label()).Inc()
	c.closeReason = end.reason()
	if end == endSanctionChanged {
		return &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED, Message: "the moderators' decision on this account changed since this device signed in: sign in again"}
	}
	return errDeviceGone
}

// sessionVerdict says whether a session of device id (of account user,
// signed in with sanction message barred) may go on, or why not. An
// error means the store could not tell.
func (s *Server) sessionVerdict(ctx context.Context, id, user, barred string) (sessionEnd, error) {
	d, err := s.cfg.Store.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if devs, err := s.cfg.Store.Devices(ctx, user); err == nil && len(devs) == 0 {
			return endAccountDeleted, nil
		}
		return endDeviceRemoved, nil
	}
	if err != nil {
		return sessionGoesOn, err
	}
	if d.Username != user {
		return endDeviceRemoved, nil // cannot happen: ids are never reused
	}
	msg, err := s.barredMessage(ctx, user)
	if err != nil {
		return sessionGoesOn, err
	}
	if msg != barred {
		return endSanctionChanged, nil
	}
	return sessionGoesOn, nil
}

// endSessions ends the connections of device id on this node that the
// store no longer backs. Each connection's sanction is its own (one may
// have signed in before a decision, another after).
func (s *Server) endSessions(ctx context.Context, id string) {
	for _, c := range s.hub.conns(id) {
		end, err := s.sessionVerdict(ctx, id, c.signedIn.Username, c.barred)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("session check: the store could not say whether a device may stay connected; checking again later", "err", err)
			}
			return
		}
		if end != sessionGoesOn {
			s.metrics.sessionsEnded.WithLabelValues(end.label()).Inc()
			c.stop(websocket.StatusPolicyViolation, end.reason())
		}
	}
}

// announceRecheck asks the nodes where devices are connected to look
// them up again (after this node removed them, or a moderation decision).
func (s *Server) announceRecheck(devices []string) {
	if s.cfg.Bus == nil || len(devices) == 0 {
		return
	}
	if err := s.publishNotice(&parleypb.ClusterNotice{Node: s.nodeID, Recipients: devices, Recheck: true}); err != nil {
		s.log.Warn("session recheck not published; other nodes end the removed devices' sessions at their next session check", "err", err)
	}
}

// onRecheck looks up the devices a recheck notice names that have
// sessions on this node.
func (s *Server) onRecheck(devices []string) {
	if len(devices) > maxRecheckDevices {
		devices = devices[:maxRecheckDevices]
	}
	ctx, cancel := context.WithTimeout(s.sweepCtx, 10*time.Second)
	defer cancel()
	for i, id := range devices {
		if len(s.hub.conns(id)) == 0 || slices.Contains(devices[:i], id) {
			continue
		}
		s.endSessions(ctx, id)
	}
}

// sessionCheckBatch is how many connected devices the session check
// looks up with one store query.
const sessionCheckBatch = 500

// checkSessions looks up every device connected to this node and ends
// the sessions the store no longer backs: the devices sessionCheckBatch
// at a time, and the sanctions of their accounts (in one call per batch
// with Config.Sanctions, else once per account).
func (s *Server) checkSessions(ctx context.Context) {
	sanctions := make(map[string]string) // account -> its barred message ("" for none)
	for batch := range slices.Chunk(s.hub.devices(), sessionCheckBatch) {
		found, err := s.cfg.Store.DevicesByID(ctx, batch)
		if err == nil {
			err = s.lookUpSanctions(ctx, found, sanctions)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("session check: the store could not say which devices may stay connected; checking again later", "err", err)
			}
			return
		}
		for _, id := range batch {
			d, ok := found[id]
			if !ok {
				s.endSessions(ctx, id) // says why: removed, or the account deleted
				continue
			}
			barred, known := sanctions[d.Username]
			if !known {
				continue // no moderation
			}
			for _, c := range s.hub.conns(id) {
				if c.barred != barred {
					s.metrics.sessionsEnded.WithLabelValues(endSanctionChanged.label()).Inc()
					c.stop(websocket.StatusPolicyViolation, endSanctionChanged.reason())
				}
			}
		}
	}
}

// lookUpSanctions adds to sanctions the barred message ("" for none) of
// every account of devs not in it yet.
func (s *Server) lookUpSanctions(ctx context.Context, devs map[string]store.Device, sanctions map[string]string) error {
	if s.cfg.Sanction == nil && s.cfg.Sanctions == nil {
		return nil
	}
	var accounts []string
	for _, d := range devs {
		if _, known := sanctions[d.Username]; !known {
			sanctions[d.Username] = ""
			accounts = append(accounts, d.Username)
		}
	}
	if s.cfg.Sanctions != nil {
		barred, err := s.cfg.Sanctions(ctx, accounts)
		if err != nil {
			return err
		}
		maps.Copy(sanctions, barred)
		return nil
	}
	for _, a := range accounts {
		msg, err := s.barredMessage(ctx, a)
		if err != nil {
			return err
		}
		sanctions[a] = msg
	}
	return nil
}

// barredMessage is what a barred account is told (Config.Sanction), ""
// if the account is not barred or the server has no moderation.
func (s *Server) barredMessage(ctx context.Context, user string) (string, error) {
	if s.cfg.Sanction == nil {
		return "", nil
	}
	barred, msg, err := s.cfg.Sanction(ctx, user)
	if err != nil || !barred {
		return "", err
	}
	return msg, nil
}

// sessionChecker runs checkSessions every SessionCheck until the server
// shuts down.
func (s *Server) sessionChecker() {
	defer s.sweepWG.Done()
	t := time.NewTicker(s.cfg.SessionCheck)
	defer t.Stop()
	for {
		select {
		case <-s.sweepCtx.Done():
			return
		case <-t.C:
			s.checkSessions(s.sweepCtx)
		}
	}
}

// RecheckAccount looks the sessions of username's devices up again, on
// this node at once and, with a bus, on the others: call it after a
// moderation decision about the account, so that a suspension, a ban or
// its lifting takes effect now rather than at the next session check.
func (s *Server) RecheckAccount(ctx context.Context, username string) error {
	devs, err := s.cfg.Store.Devices(ctx, username)
	if err != nil {
		return fmt.Errorf("server: recheck %s: %w", username, err)
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
		s.endSessions(ctx, d.ID)
	}
	s.announceRecheck(ids)
	return nil
}
