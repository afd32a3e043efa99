package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// KeyPackage is an opaque MLS KeyPackage and its KeyPackageRef.
type KeyPackage struct {
	Ref  []byte
	Data []byte
	// Suite is the MLS cipher suite of Data; 0 is sent as "undeclared",
	// which the server reads as suite 1.
	Suite uint16
}

// DeviceKeyPackage is a key package fetched for one device.
type DeviceKeyPackage struct {
	DeviceID   string
	KeyPackage KeyPackage
	// LastResort packages are handed out again until replaced
	// (RFC 9420 §16.8).
	LastResort bool
}

// UploadKeyPackages stores key packages for the authenticated device;
// lastResort, if non-nil, replaces its last-resort package. It returns how
// many non-last-resort packages the server now holds for the device.
func (c *Conn) UploadKeyPackages(ctx context.Context, kps []KeyPackage, lastResort *KeyPackage) (int, error) {
	req := &parleypb.UploadKeyPackagesRequest{}
	for _, k := range kps {
		req.KeyPackages = append(req.KeyPackages, &parleypb.KeyPackage{Ref: k.Ref, Data: k.Data, CipherSuite: uint32(k.Suite)})
	}
	if lastResort != nil {
		req.LastResort = &parleypb.KeyPackage{Ref: lastResort.Ref, Data: lastResort.Data, CipherSuite: uint32(lastResort.Suite)}
	}
	f, err := c.call(ctx, &parleypb.ClientFrame_UploadKeyPackages{UploadKeyPackages: req})
	if err != nil {
		return 0, fmt.Errorf("transport: upload key packages: %w", err)
	}
	return int(f.GetUploadKeyPackages().GetRemaining()), nil
}

// FetchKeyPackages consumes one key package of MLS cipher suite 1 for
// each device of username (or only the listed devices). Devices without
// any package of suite 1 are left out.
func (c *Conn) FetchKeyPackages(ctx context.Context, username string, deviceIDs ...string) ([]DeviceKeyPackage, error) {
	return c.FetchKeyPackagesOf(ctx, 1, username, deviceIDs...)
}

// FetchKeyPackagesOf is FetchKeyPackages for cipher suite suite: devices
// without any package of that suite are left out.
func (c *Conn) FetchKeyPackagesOf(ctx context.Context, suite uint16, username string, deviceIDs ...string) ([]DeviceKeyPackage, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_FetchKeyPackages{FetchKeyPackages: &parleypb.FetchKeyPackagesRequest{Username: username, DeviceIds: deviceIDs, CipherSuite: uint32(suite)}})
	if err != nil {
		return nil, fmt.Errorf("transport: fetch key packages: %w", err)
	}
	var out []DeviceKeyPackage
	for _, k := range f.GetFetchKeyPackages().GetKeyPackages() {
		out = append(out, DeviceKeyPackage{
			DeviceID:   k.DeviceId,
			KeyPackage: KeyPackage{Ref: k.GetKeyPackage().GetRef(), Data: k.GetKeyPackage().GetData(), Suite: suite},
			LastResort: k.LastResort,
		})
	}
	return out, nil
}

// CreateConversation registers a new MLS group (id = group id) with the
// authenticated device as its only member, at epoch 0.
func (c *Conn) CreateConversation(ctx context.Context, id []byte) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: id}}); err != nil {
		return fmt.Errorf("transport: create conversation: %w", err)
	}
	return nil
}

// CreateDirectConversation registers the direct conversation of the
// authenticated user with peer; id must be wire.DirectConversationID of
// the two (the server checks).
func (c *Conn) CreateDirectConversation(ctx context.Context, id []byte, peer string) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: id, DirectPeer: peer}}); err != nil {
		return fmt.Errorf("transport: create direct conversation: %w", err)
	}
	return nil
}

// Kind is a message's declared MLS content type.
type Kind = parleypb.Kind

const (
	KindCommit      = parleypb.Kind_COMMIT
	KindProposal    = parleypb.Kind_PROPOSAL
	KindApplication = parleypb.Kind_APPLICATION
	KindWelcome     = parleypb.Kind_WELCOME
	// KindRefused: an inbox entry telling that the members' verdicts
	// undid this device's addition by the commit of the entry's ID.
	KindRefused = parleypb.Kind_REFUSED
)

// Message is a conversation log entry or an inbox entry (Kind Welcome).
type Message struct {
	ID             []byte
	ConversationID []byte
	Seq            uint64 // log position; for inbox entries, inbox position
	Epoch          uint64 // epoch it was sent in (Welcome: the new epoch)
	Kind           Kind
	Sender         string // device id
	Payload        []byte
	Stored         time.Time
	// Frank is the server's frank of a message whose MLS authenticated
	// data carries a franking tag, with the sender's account and the
	// accepted time it covers (package franking).
	Frank      []byte
	SenderUser string
	Accepted   time.Time
}

func messageFromWire(m *parleypb.Message) Message {
	var accepted time.Time
	if m.AcceptedUnixMs != 0 {
		accepted = time.UnixMilli(m.AcceptedUnixMs)
	}
	return Message{
		ID: m.Id, ConversationID: m.ConversationId, Seq: m.Seq, Epoch: m.Epoch, Kind: m.Kind,
		Sender: m.SenderDeviceId, Payload: m.Payload, Stored: time.Unix(m.StoredUnix, 0),
		Frank: m.Frank, SenderUser: m.SenderUser, Accepted: accepted,
	}
}

// SendResult is the server's store acknowledgement: the message is durable.
type SendResult struct {
	Seq       uint64
	Epoch     uint64 // the conversation's epoch after the message
	Duplicate bool   // the id was already stored (a retry); not stored twice
}

// EpochConflictError is returned by SendCommit when another commit won
// the epoch. Process Winner, rebuild the commit on the new epoch and
// retry. errors.Is(err, wire.ErrEpochConflict) is true.
type EpochConflictError struct {
	Winner Message
	err    *wire.Error
}

func (e *EpochConflictError) Error() string {
	return fmt.Sprintf("parley: EPOCH_CONFLICT: epoch %d was won by commit seq %d", e.Winner.Epoch, e.Winner.Seq)
}

func (e *EpochConflictError) Unwrap() error { return e.err }

// Commit is an MLS commit with its declared effects.
type Commit struct {
	ID             []byte // NewMessageID(); reuse it when retrying the same commit
	ConversationID []byte
	Epoch          uint64 // the epoch the commit was made in
	Payload        []byte // MLSMessage(PublicMessage or PrivateMessage)
	Added          []string
	Removed        []string
	Welcome        []byte // MLSMessage(Welcome) for the added devices
	// FirstSent is when the device first tried to send this commit (zero:
	// not known); reuse it with ID when retrying.
	FirstSent time.Time
}

// FirstSentUnixMs is SendRequest.first_sent_unix_ms for a first-send time:
// milliseconds since 1970, 0 for the zero time (or one before 1970). The
// server keys its idempotency record by it and the message id, so a
// retry must send the same value (docs/protocol.md, "Idempotency").
func FirstSentUnixMs(t time.Time) uint64 {
	if t.IsZero() || t.UnixMilli() <= 0 {
		return 0
	}
	return uint64(t.UnixMilli())
}

// SendCommit posts a commit. If another commit already closed Epoch the
// error is *EpochConflictError carrying the winner.
func (c *Conn) SendCommit(ctx context.Context, cm Commit) (SendResult, error) {
	return c.send(ctx, &parleypb.SendRequest{
		MessageId: cm.ID, ConversationId: cm.ConversationID, Epoch: cm.Epoch, Kind: parleypb.Kind_COMMIT,
		Payload: cm.Payload, AddedDeviceIds: cm.Added, RemovedDeviceIds: cm.Removed, Welcome: cm.Welcome,
		FirstSentUnixMs: FirstSentUnixMs(cm.FirstSent),
	})
}

// SendProposal posts a standalone proposal made in epoch.
func (c *Conn) SendProposal(ctx context.Context, id, conversationID []byte, epoch uint64, payload []byte) (SendResult, error) {
	return c.send(ctx, &parleypb.SendRequest{MessageId: id, ConversationId: conversationID, Epoch: epoch, Kind: parleypb.Kind_PROPOSAL, Payload: payload})
}

// SendApplication posts an application message made in epoch. id is a
// NewMessageID(); resending with the same id is safe.
func (c *Conn) SendApplication(ctx context.Context, id, conversationID []byte, epoch uint64, payload []byte) (SendResult, error) {
	return c.send(ctx, &parleypb.SendRequest{MessageId: id, ConversationId: conversationID, Epoch: epoch, Kind: parleypb.Kind_APPLICATION, Payload: payload})
}

// SendExpiringApplication is SendApplication for a disappearing message:
// the server deletes it by expires (zero: never, as SendApplication).
// firstSent is when this device first tried to send the message (zero:
// not known); every retry must give the same (FirstSentUnixMs).
func (c *Conn) SendExpiringApplication(ctx context.Context, id, conversationID []byte, epoch uint64, payload []byte, expires, firstSent time.Time) (SendResult, error) {
	req := &parleypb.SendRequest{MessageId: id, ConversationId: conversationID, Epoch: epoch, Kind: parleypb.Kind_APPLICATION, Payload: payload,
		FirstSentUnixMs: FirstSentUnixMs(firstSent)}
	if !expires.IsZero() {
		req.ExpiresUnix = max(expires.Unix(), 1)
	}
	return c.send(ctx, req)
}

// SendEphemeral relays an application message (a typing indicator) to
// the conversation's members' connected devices; the server stores
// nothing, and the result has no Seq.
func (c *Conn) SendEphemeral(ctx context.Context, id, conversationID []byte, epoch uint64, payload []byte) error {
	_, err := c.send(ctx, &parleypb.SendRequest{MessageId: id, ConversationId: conversationID, Epoch: epoch,
		Kind: parleypb.Kind_APPLICATION, Payload: payload, Ephemeral: true})
	return err
}

func (c *Conn) send(ctx context.Context, req *parleypb.SendRequest) (SendResult, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_Send{Send: req})
	if err != nil {
		var ce *EpochConflictError
		if errors.As(err, &ce) {
			return SendResult{}, err
		}
		return SendResult{}, fmt.Errorf("transport: send: %w", err)
	}
	r := f.GetSend()
	return SendResult{Seq: r.GetSeq(), Epoch: r.GetEpoch(), Duplicate: r.GetDuplicate()}, nil
}

// Fetch returns up to limit (0: server default) messages after this
// device's cursor in a conversation, in order; more reports whether
// further messages are waiting. Messages stay until acknowledged.
func (c *Conn) Fetch(ctx context.Context, conversationID []byte, limit int) (msgs []Message, more bool, err error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_Fetch{Fetch: &parleypb.FetchRequest{ConversationId: conversationID, Limit: clampLimit(limit)}})
	if err != nil {
		return nil, false, fmt.Errorf("transport: fetch: %w", err)
	}
	for _, m := range f.GetFetch().GetMessages() {
		msgs = append(msgs, messageFromWire(m))
	}
	return msgs, f.GetFetch().GetMore(), nil
}

func clampLimit(n int) uint32 {
	if n < 0 {
		return 0
	}
	if n > wire.MaxFetchLimit {
		return wire.MaxFetchLimit
	}
	return uint32(n)
}

// Verdict is this device's verdict on a commit it processed (or, added
// by it, on its Welcome): docs/protocol.md §14, "Verdicts".
type Verdict struct {
	CommitID []byte `json:"commit"` // the commit's message id
	Refuse   bool   `json:"refuse,omitempty"`
}

// Ack acknowledges every message of the conversation up to seq (0:
// none) and gives the verdicts, which the server records first.
func (c *Conn) Ack(ctx context.Context, conversationID []byte, seq uint64, verdicts ...Verdict) error {
	req := &parleypb.AckRequest{ConversationId: conversationID, Seq: seq}
	for _, v := range verdicts {
		req.Verdicts = append(req.Verdicts, &parleypb.CommitVerdict{CommitId: v.CommitID, Refuse: v.Refuse})
	}
	if _, err := c.call(ctx, &parleypb.ClientFrame_Ack{Ack: req}); err != nil {
		return fmt.Errorf("transport: ack: %w", err)
	}
	return nil
}

// ConversationInfo is this device's view of a conversation.
type ConversationInfo struct {
	ID        []byte
	Epoch     uint64
	Members   []string
	Cursor    uint64 // last acknowledged seq
	HeadSeq   uint64 // last stored seq; Cursor < HeadSeq means unread
	RemovedAt uint64 // non-zero: removed by the commit at this seq
}

// ListConversations lists the conversations of the authenticated device,
// page by page.
func (c *Conn) ListConversations(ctx context.Context) ([]ConversationInfo, error) {
	var out []ConversationInfo
	var after []byte
	for {
		f, err := c.call(ctx, &parleypb.ClientFrame_ListConversations{ListConversations: &parleypb.ListConversationsRequest{After: after}})
		if err != nil {
			return nil, fmt.Errorf("transport: list conversations: %w", err)
		}
		page := f.GetListConversations()
		for _, ci := range page.GetConversations() {
			out = append(out, ConversationInfo{ID: ci.ConversationId, Epoch: ci.Epoch, Members: ci.MemberDeviceIds,
				Cursor: ci.Cursor, HeadSeq: ci.HeadSeq, RemovedAt: ci.RemovedAtSeq})
		}
		cs := page.GetConversations()
		if !page.GetMore() || len(cs) == 0 {
			return out, nil
		}
		after = cs[len(cs)-1].ConversationId
	}
}

// FetchInbox returns this device's pending Welcomes, oldest first.
func (c *Conn) FetchInbox(ctx context.Context, limit int) (msgs []Message, more bool, err error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_FetchInbox{FetchInbox: &parleypb.FetchInboxRequest{Limit: clampLimit(limit)}})
	if err != nil {
		return nil, false, fmt.Errorf("transport: fetch inbox: %w", err)
	}
	for _, m := range f.GetFetchInbox().GetMessages() {
		msgs = append(msgs, messageFromWire(m))
	}
	return msgs, f.GetFetchInbox().GetMore(), nil
}

// AckInbox deletes inbox entries up to seq.
func (c *Conn) AckInbox(ctx context.Context, seq uint64) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_AckInbox{AckInbox: &parleypb.AckInboxRequest{Seq: seq}}); err != nil {
		return fmt.Errorf("transport: ack inbox: %w", err)
	}
	return nil
}

// EventType says what an Event carries.
type EventType int

const (
	// EventMessage: a new message in a conversation (Message).
	EventMessage EventType = iota + 1
	// EventInbox: a new Welcome in this device's inbox (Message).
	EventInbox
	// EventKeyPackagesLow: upload more key packages of cipher suite Suite
	// (KeyPackagesRemaining).
	EventKeyPackagesLow
	// EventDeviceRemoved: a device of this account was removed (DeviceID).
	EventDeviceRemoved
	// EventLinkApproved: the link requested on this connection was
	// approved (DeviceID is the new device); Authenticate now.
	EventLinkApproved
	// EventError: a connection-level error, e.g. a frame the server could
	// not parse or that was too large (Err).
	EventError
	// EventEphemeral: an ephemeral message of a member (a typing
	// indicator; Message, without Seq): never stored, never fetched.
	EventEphemeral
)

// Event is a push from the server. Pushes are hints for online devices:
// the cursors (Fetch/Ack) are the source of truth.
type Event struct {
	Type                 EventType
	Message              Message
	KeyPackagesRemaining int
	Suite                uint16
	DeviceID             string
	Err                  error
}

func eventFromWire(p *parleypb.Push) Event {
	switch e := p.Event.(type) {
	case *parleypb.Push_Message:
		return Event{Type: EventMessage, Message: messageFromWire(e.Message)}
	case *parleypb.Push_Inbox:
		return Event{Type: EventInbox, Message: messageFromWire(e.Inbox)}
	case *parleypb.Push_KeyPackagesLow:
		suite := uint16(e.KeyPackagesLow.CipherSuite)
		if suite == 0 {
			suite = 1 // a server from before cipher suites
		}
		return Event{Type: EventKeyPackagesLow, KeyPackagesRemaining: int(e.KeyPackagesLow.Remaining), Suite: suite}
	case *parleypb.Push_DeviceRemoved:
		return Event{Type: EventDeviceRemoved, DeviceID: e.DeviceRemoved.DeviceId}
	case *parleypb.Push_LinkApproved:
		return Event{Type: EventLinkApproved, DeviceID: e.LinkApproved.DeviceId}
	case *parleypb.Push_Ephemeral:
		if e.Ephemeral != nil {
			return Event{Type: EventEphemeral, Message: messageFromWire(e.Ephemeral)}
		}
	}
	return Event{Type: EventError, Err: errors.New("transport: unknown push")}
}

// Report sends an abuse report of messages of a conversation this device
// is in and returns the case id(s) the server filed it under.
func (c *Conn) Report(ctx context.Context, r *parleypb.ReportRequest) (string, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_Report{Report: r})
	if err != nil {
		return "", fmt.Errorf("transport: report: %w", err)
	}
	resp := f.GetReport()
	if resp == nil {
		return "", errors.New("transport: unexpected response")
	}
	return resp.CaseId, nil
}

// Appeal appeals a moderation decision on a case about this account.
func (c *Conn) Appeal(ctx context.Context, caseID, text string) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_Appeal{Appeal: &parleypb.AppealRequest{CaseId: caseID, Text: text}}); err != nil {
		return fmt.Errorf("transport: appeal: %w", err)
	}
	return nil
}
