package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Message franking and abuse reports (docs/moderation.md, package
// franking). The server franks each application message whose MLS
// authenticated data carries a franking tag when it hands the message
// out, from what the message row already holds, so it stores nothing for
// franking; a report is verified with the server's own franking key and
// handed to Config.Report (parleyd: the moderation queue).

// Report is a verified abuse report.
type Report struct {
	Reporter, ReporterDevice string
	Conversation             []byte
	Reason, Note             string
	Messages                 []franking.Reported
	Received                 time.Time
}

// reportLimit bounds the reports one account makes.
var reportLimit = Limit{N: 20, Per: time.Hour}

// owners caches which account a device belongs to (a device never changes
// account), for franks.
type owners struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *Server) deviceOwner(ctx context.Context, id string) (string, error) {
	s.owners.mu.Lock()
	u, ok := s.owners.m[id]
	s.owners.mu.Unlock()
	if ok {
		return u, nil
	}
	d, err := s.cfg.Store.Device(ctx, id)
	if err != nil {
		return "", err
	}
	s.owners.mu.Lock()
	if s.owners.m == nil || len(s.owners.m) > 100_000 {
		s.owners.m = map[string]string{}
	}
	s.owners.m[id] = d.Username
	s.owners.mu.Unlock()
	return d.Username, nil
}

// toWire is messageToWire with the frank of an application message whose
// authenticated data carries a franking tag. A message without one (an
// older client) goes out unfranked; one whose sender is gone too.
func (s *Server) toWire(ctx context.Context, m store.Message) *parleypb.Message {
	w := messageToWire(m)
	if m.Kind != store.KindApplication {
		return w
	}
	if !privateMessageHeader(m.Payload) {
		return w // no franking tag to find: skip the full parse
	}
	var msg mls.MLSMessage
	if err := msg.Unmarshal(m.Payload); err != nil || msg.PrivateMessage == nil {
		return w
	}
	tag, err := franking.TagFromAAD(msg.PrivateMessage.AuthenticatedData)
	if err != nil {
		return w
	}
	user, err := s.deviceOwner(ctx, m.Sender)
	if err != nil {
		return w
	}
	fc := franking.Context{Conversation: m.ConversationID, SenderUser: user, SenderDevice: m.Sender, Accepted: m.Stored.Truncate(time.Millisecond)}
	frank, err := franking.Frank(s.frankingKey, tag, fc)
	if err != nil {
		return w
	}
	w.Frank, w.SenderUser, w.AcceptedUnixMs = frank, user, fc.Accepted.UnixMilli()
	return w
}

// privateMessageHeader reports whether b starts as an MLSMessage holding
// a PrivateMessage does (RFC 9420 §6: version mls10, then wire_format
// mls_private_message, both uint16), the only kind that carries a
// franking tag. Checking the four bytes first spares pushes of anything
// else a full parse that would fail.
func privateMessageHeader(b []byte) bool {
	return len(b) >= 4 &&
		uint16(b[0])<<8|uint16(b[1]) == uint16(mls.ProtocolVersionMLS10) &&
		uint16(b[2])<<8|uint16(b[3]) == uint16(mls.WireFormatPrivateMessage)
}

// FrankingKey is the public key the server franks messages with.
func (s *Server) FrankingKey() ed25519.PublicKey { return s.frankingKey.Public().(ed25519.PublicKey) }

func (c *conn) handleReport(ctx context.Context, r *parleypb.ReportRequest) (parleypb.ServerFrameBody, error) {
	if c.s.cfg.Report == nil {
		return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED, Message: "this server does not take abuse reports"}
	}
	if err := checkConversationID(r.ConversationId); err != nil {
		return nil, err
	}
	switch {
	case !slices.Contains(franking.Reasons, r.Reason):
		return nil, badRequest("reason must be one of %s", strings.Join(franking.Reasons, ", "))
	case len(r.Note) > franking.MaxNote || !utf8.ValidString(r.Note):
		return nil, badRequest("the note must be UTF-8 text of at most %d bytes", franking.MaxNote)
	case len(r.Messages) == 0 || len(r.Messages) > franking.MaxMessages:
		return nil, badRequest("a report names 1 to %d messages", franking.MaxMessages)
	}
	conv, err := c.s.cfg.Store.Conversation(ctx, r.ConversationId)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil || !slices.Contains(conv.Members, c.dev.ID) {
		return nil, &wire.Error{Code: parleypb.ErrorCode_NOT_MEMBER, Message: "you can report only messages of a conversation you are in"}
	}
	if ok, after := c.s.shared.AllowN("report/"+c.dev.Username, 1, reportLimit); !ok {
		return nil, rateLimited(fmt.Sprintf("you have sent %d reports this hour, the most allowed", reportLimit.N), after)
	}
	now := c.s.now()
	rep := Report{Reporter: c.dev.Username, ReporterDevice: c.dev.ID, Conversation: r.ConversationId, Reason: r.Reason, Note: r.Note, Received: now}
	for i, m := range r.Messages {
		fm := franking.Reported{
			Context: franking.Context{Conversation: r.ConversationId, SenderUser: m.SenderUser, SenderDevice: m.SenderDeviceId, Accepted: time.UnixMilli(m.AcceptedUnixMs)},
			Content: m.Content, Salt: m.Salt, Tag: m.FrankingTag, Frank: m.Frank,
		}
		if err := franking.Verify(c.s.FrankingKey(), fm, now, franking.DefaultMaxAge); err != nil {
			return nil, badRequest("message %d of the report does not verify: %v", i+1, err)
		}
		if slices.ContainsFunc(rep.Messages, func(x franking.Reported) bool { return bytes.Equal(x.Tag, fm.Tag) }) {
			return nil, badRequest("message %d is in the report twice", i+1)
		}
		rep.Messages = append(rep.Messages, fm)
	}
	id, err := c.s.cfg.Report(ctx, rep)
	if err != nil {
		return nil, fmt.Errorf("filing the report: %w", err)
	}
	c.s.log.Info("abuse report received", "case", id, "reason", r.Reason, "messages", len(rep.Messages))
	return &parleypb.ServerFrame_Report{Report: &parleypb.ReportResponse{CaseId: id}}, nil
}

func (c *conn) handleAppeal(ctx context.Context, r *parleypb.AppealRequest) (parleypb.ServerFrameBody, error) {
	if c.s.cfg.Appeal == nil {
		return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED, Message: "this server does not take appeals"}
	}
	if r.CaseId == "" || len(r.Text) > franking.MaxNote || !utf8.ValidString(r.Text) || strings.TrimSpace(r.Text) == "" {
		return nil, badRequest("an appeal names the case and says why, in at most %d bytes", franking.MaxNote)
	}
	if err := c.s.cfg.Appeal(ctx, c.dev.Username, r.CaseId, r.Text); err != nil {
		return nil, err
	}
	return empty(), nil
}
