// Package transport is the Go client of parleyd's wire protocol (package
// wire, docs/protocol.md): one WebSocket carrying requests, responses and
// pushes, plus HTTP streaming for attachments.
//
// A Conn is one connection. It does no cryptography beyond signing the
// server's challenge with the device's Ed25519 key: message payloads are
// opaque MLS bytes built by the caller. Reconnecting is the caller's
// business: when Done is closed, Dial again, Authenticate, and catch up
// with ListConversations, Fetch and FetchInbox (delivery is at least once
// and pushes are only hints).
package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// writeTimeout bounds writing one request; a server that does not read
// for this long is considered gone.
const writeTimeout = 30 * time.Second

// requestTimeout bounds the wait for a response when the caller's context
// sets no deadline: a server that takes a request and never answers it
// (overloaded, or stuck) must not leave a command or a page waiting
// forever. Every request is answered at once or after a group commit;
// waits that are long by design (a link's approval, pushes) are not
// requests. A variable for tests.
var requestTimeout = 2 * time.Minute

// ErrNoAnswer means the server took a request and did not answer it
// within the default request timeout. It wraps context.DeadlineExceeded.
var ErrNoAnswer = fmt.Errorf("transport: the server did not answer (it may be overloaded or stuck; try again later): %w", context.DeadlineExceeded)

// Options tunes Dial. The zero value is fine.
type Options struct {
	// HTTPClient is used for the WebSocket handshake and blob transfers.
	HTTPClient *http.Client
	// EventBuffer is the capacity of the Events channel (default 1024).
	// When it is full further pushes are dropped (and counted by
	// DroppedEvents); Fetch recovers anything missed.
	EventBuffer int
	// MaxFrame bounds frames read from the server (default 64 MiB).
	MaxFrame int64
}

// Conn is a connection to a parleyd server. Its methods are safe for
// concurrent use; the server answers requests in the order sent.
type Conn struct {
	ws       *websocket.Conn
	base     *url.URL // http(s)://host[:port]
	client   *http.Client
	events   chan Event
	dropped  atomic.Uint64
	nextID   atomic.Uint64
	done     chan struct{}
	closeErr error // set before done is closed
	// noDirectUploads: the server answered that it takes uploads itself
	// (blobs.go, uploadDirect); ask no more.
	noDirectUploads atomic.Bool

	challenge   []byte
	authContext string
	maxFrame    atomic.Int64 // the server's limit, from HelloResponse
	maxGroup    atomic.Int64 // the server's --max-group-members, from HelloResponse

	mu      sync.Mutex
	pending map[uint64]chan *parleypb.ServerFrame
	session *Session
}

// Dial connects to the server at serverURL (http://, https://, ws:// or
// wss://host:port; the path is ignored) and performs the version
// handshake.
func Dial(ctx context.Context, serverURL string, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("transport: server URL: %w", err)
	}
	base := &url.URL{Host: u.Host}
	switch u.Scheme {
	case "http", "ws":
		base.Scheme = "http"
	case "https", "wss":
		base.Scheme = "https"
	default:
		return nil, fmt.Errorf("transport: server URL %q: scheme must be http, https, ws or wss", serverURL)
	}
	wsURL := *base
	wsURL.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	wsURL.Path = wire.PathWebSocket
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	ws, _, err := websocket.Dial(ctx, wsURL.String(), dialOptions(client))
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", wsURL.String(), err)
	}
	maxFrame := opts.MaxFrame
	if maxFrame <= 0 {
		maxFrame = 64 << 20
	}
	ws.SetReadLimit(maxFrame)
	buf := opts.EventBuffer
	if buf <= 0 {
		buf = 1024
	}
	c := &Conn{
		ws:      ws,
		base:    base,
		client:  client,
		events:  make(chan Event, buf),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan *parleypb.ServerFrame),
	}
	go c.readLoop()
	f, err := c.call(ctx, &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: wire.ProtocolVersion}})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("transport: handshake: %w", err)
	}
	h := f.GetHello()
	if h == nil || len(h.Challenge) != wire.ChallengeSize {
		c.Close()
		return nil, errors.New("transport: handshake: malformed HelloResponse")
	}
	c.challenge, c.authContext = h.Challenge, h.AuthContext
	c.maxFrame.Store(int64(h.MaxFrame))
	c.maxGroup.Store(int64(h.MaxGroupMembers))
	return c, nil
}

// MaxGroupMembers is the most accounts the server lets a group hold (0:
// the server announced no limit).
func (c *Conn) MaxGroupMembers() int { return int(c.maxGroup.Load()) }

// Close closes the connection.
func (c *Conn) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}

// Done is closed when the connection is gone; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.closeErr
	default:
		return nil
	}
}

// Events delivers pushes from the server. It is closed with Done.
func (c *Conn) Events() <-chan Event { return c.events }

// DroppedEvents counts pushes dropped because Events was full.
func (c *Conn) DroppedEvents() uint64 { return c.dropped.Load() }

// Session returns the authenticated session, or nil.
func (c *Conn) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// ErrFrameTooLarge is returned, without sending, for a request larger
// than the server accepts.
var ErrFrameTooLarge = errors.New("transport: frame too large")

// ErrClosed is returned for requests on a closed connection (wrapped with
// the reason).
var ErrClosed = errors.New("transport: connection closed")

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.closeErr = fmt.Errorf("%w: %w", ErrClosed, err)
		c.mu.Unlock()
		close(c.done)
		close(c.events)
	}()
	for {
		var data []byte
		_, data, err = c.ws.Read(context.Background())
		if err != nil {
			return
		}
		f, derr := wire.DecodeServerFrame(data)
		if derr != nil {
			err = derr
			c.ws.Close(websocket.StatusProtocolError, "malformed frame")
			return
		}
		if f.RequestId != 0 {
			c.mu.Lock()
			ch := c.pending[f.RequestId]
			delete(c.pending, f.RequestId)
			c.mu.Unlock()
			if ch != nil {
				ch <- f
			}
			continue
		}
		var ev Event
		switch b := f.Body.(type) {
		case *parleypb.ServerFrame_Push:
			ev = eventFromWire(b.Push)
		case *parleypb.ServerFrame_Error:
			ev = Event{Type: EventError, Err: wireError(b.Error)}
		default:
			continue
		}
		select {
		case c.events <- ev:
		default:
			c.dropped.Add(1)
		}
	}
}

func wireError(e *parleypb.Error) error {
	we := &wire.Error{Code: e.Code, Message: e.Message, Conflict: e.Conflict, RetryAfter: time.Duration(e.RetryAfterSeconds) * time.Second}
	if e.Code == parleypb.ErrorCode_EPOCH_CONFLICT && e.Conflict != nil {
		return &EpochConflictError{Winner: messageFromWire(e.Conflict), err: we}
	}
	return we
}

// call sends one request and waits for its response. A server error
// comes back as *wire.Error (or *EpochConflictError).
func (c *Conn) call(ctx context.Context, body parleypb.ClientFrameBody) (*parleypb.ServerFrame, error) {
	id := c.nextID.Add(1)
	b, err := wire.Encode(&parleypb.ClientFrame{RequestId: id, Body: body})
	if err != nil {
		return nil, err
	}
	if max := c.maxFrame.Load(); max > 0 && int64(len(b)) > max {
		return nil, fmt.Errorf("transport: request of %d bytes exceeds the server's limit of %d: %w", len(b), max, ErrFrameTooLarge)
	}
	ch := make(chan *parleypb.ServerFrame, 1)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, c.closeErr
	default:
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		forget()
		return nil, err
	}
	var noAnswer <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(requestTimeout)
		defer t.Stop()
		noAnswer = t.C
	}
	// The write does not use ctx: coder/websocket closes the connection
	// when a write's context ends, and one cancelled request must not
	// tear down the connection for everyone else.
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err = c.ws.Write(wctx, websocket.MessageBinary, b)
	cancel()
	if err != nil {
		forget()
		return nil, fmt.Errorf("transport: send: %w", err)
	}
	select {
	case f := <-ch:
		if e := f.GetError(); e != nil {
			return nil, wireError(e)
		}
		return f, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-noAnswer:
		forget()
		return nil, fmt.Errorf("%w (waited %v for the answer to %s)", ErrNoAnswer, requestTimeout, requestName(body))
	case <-c.done:
		// The response may have raced the close.
		select {
		case f := <-ch:
			if e := f.GetError(); e != nil {
				return nil, wireError(e)
			}
			return f, nil
		default:
		}
		return nil, c.closeErr
	}
}

// requestName names a request for an error message: "Ping" for a
// *parleypb.ClientFrame_Ping.
func requestName(body parleypb.ClientFrameBody) string {
	name := fmt.Sprintf("%T", body)
	return name[strings.LastIndexByte(name, '_')+1:] + " request"
}

// NewMessageID returns a random 16-byte message id (a UUIDv4).
func NewMessageID() []byte {
	b := make([]byte, wire.MessageIDSize)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// Session is an authenticated device session.
type Session struct {
	Username               string
	DeviceID               string
	BlobToken              string
	TokenExpires           time.Time
	KeyPackagesRemaining   int
	KeyPackageLowThreshold int
	// KeyPackageCounts has, per MLS cipher suite the device holds any key
	// package of, the non-last-resort packages left (nil from a server
	// from before cipher suites).
	KeyPackageCounts map[uint16]int
	// LinkConfirmation is, once, for a device just linked: the approving
	// device's confirmation (opaque to the server).
	LinkConfirmation []byte
	// Barred, if set, is a moderation decision that suspends or bans the
	// account: the server serves only an appeal or account deletion.
	Barred string
	// Notices are the moderators' decisions about the account, newest
	// first (docs/moderation.md "What the reported user is told").
	Notices []ModerationNotice
}

// ModerationNotice is one moderators' decision about this account.
type ModerationNotice struct {
	Case          string    `json:"case"`
	Action        string    `json:"action"` // warn, suspend, ban; or dismiss, deciding an appeal
	Reason        string    `json:"reason"`
	Until         time.Time `json:"until,omitzero"`
	Decided       time.Time `json:"decided"`
	AppealDecided bool      `json:"appeal_decided,omitempty"`
	Appealable    bool      `json:"appealable,omitempty"`
}

func (c *Conn) sign(key ed25519.PrivateKey, purpose string) (pub, sig []byte, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, nil, errors.New("transport: device key must be an Ed25519 private key")
	}
	return key.Public().(ed25519.PublicKey), ed25519.Sign(key, wire.ChallengeMessage(c.challenge, c.authContext, purpose)), nil
}

func (c *Conn) setSession(f *parleypb.ServerFrame) (*Session, error) {
	s := f.GetSession()
	if s == nil {
		return nil, errors.New("transport: unexpected response")
	}
	sess := &Session{
		Username:               s.Username,
		DeviceID:               s.DeviceId,
		BlobToken:              s.BlobToken,
		TokenExpires:           time.Now().Add(time.Duration(s.TokenTtlSeconds) * time.Second),
		KeyPackagesRemaining:   int(s.KeyPackagesRemaining),
		KeyPackageLowThreshold: int(s.KeyPackageLowThreshold),
		LinkConfirmation:       s.LinkConfirmation,
		Barred:                 s.Barred,
	}
	for _, n := range s.Notices {
		mn := ModerationNotice{Case: n.CaseId, Action: n.Action, Reason: n.Reason, Decided: time.UnixMilli(n.DecidedUnixMs).UTC(),
			AppealDecided: n.AppealDecided, Appealable: n.Appealable}
		if n.UntilUnixMs != 0 {
			mn.Until = time.UnixMilli(n.UntilUnixMs).UTC()
		}
		sess.Notices = append(sess.Notices, mn)
	}
	for _, kc := range s.KeyPackageCounts {
		if kc.CipherSuite == 0 || kc.CipherSuite > 0xFFFF {
			continue
		}
		if sess.KeyPackageCounts == nil {
			sess.KeyPackageCounts = map[uint16]int{}
		}
		sess.KeyPackageCounts[uint16(kc.CipherSuite)] = int(kc.Remaining)
	}
	c.mu.Lock()
	c.session = sess
	c.mu.Unlock()
	return sess, nil
}

// Register creates an account with this device (key) as its first device
// and authenticates the connection. invite may be empty on servers with
// open registration.
func (c *Conn) Register(ctx context.Context, username string, key ed25519.PrivateKey, invite string) (*Session, error) {
	if err := wire.CheckUsername(username); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	pub, sig, err := c.sign(key, wire.PurposeRegister)
	if err != nil {
		return nil, err
	}
	f, err := c.call(ctx, &parleypb.ClientFrame_Register{Register: &parleypb.RegisterRequest{
		Username: username, PublicKey: pub, Signature: sig, InviteCode: invite}})
	if err != nil {
		return nil, fmt.Errorf("transport: register: %w", err)
	}
	return c.setSession(f)
}

// Authenticate proves possession of a registered device key.
func (c *Conn) Authenticate(ctx context.Context, key ed25519.PrivateKey) (*Session, error) {
	return c.AuthenticateAs(ctx, key, "")
}

// AuthenticateAs is Authenticate naming the account the key is believed
// to be in, so that a refusal can say the account was deleted
// (wire.ErrAccountDeleted) instead of only that the key is unknown.
func (c *Conn) AuthenticateAs(ctx context.Context, key ed25519.PrivateKey, username string) (*Session, error) {
	pub, sig, err := c.sign(key, wire.PurposeAuthenticate)
	if err != nil {
		return nil, err
	}
	f, err := c.call(ctx, &parleypb.ClientFrame_Authenticate{Authenticate: &parleypb.AuthenticateRequest{PublicKey: pub, Signature: sig, Username: username}})
	if err != nil {
		return nil, fmt.Errorf("transport: authenticate: %w", err)
	}
	return c.setSession(f)
}

// RequestLink asks to add this new device (key) to username's account.
// The returned code must be entered on an existing device (ApproveLink)
// before it expires; then Authenticate succeeds.
func (c *Conn) RequestLink(ctx context.Context, username string, key ed25519.PrivateKey) (code string, expires time.Time, err error) {
	return c.RequestLinkE2E(ctx, username, key, nil, nil)
}

// RequestLinkE2E is RequestLink carrying the new device's MLS signature
// key and the end-to-end link MAC that the approving device checks.
func (c *Conn) RequestLinkE2E(ctx context.Context, username string, key ed25519.PrivateKey, mlsKey, mac []byte) (code string, expires time.Time, err error) {
	pub, sig, err := c.sign(key, wire.PurposeLink)
	if err != nil {
		return "", time.Time{}, err
	}
	f, err := c.call(ctx, &parleypb.ClientFrame_RequestLink{RequestLink: &parleypb.RequestLinkRequest{Username: username, PublicKey: pub, Signature: sig,
		MlsSignatureKey: mlsKey, LinkMac: mac}})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("transport: request link: %w", err)
	}
	r := f.GetRequestLink()
	if r == nil {
		return "", time.Time{}, errors.New("transport: unexpected response")
	}
	return r.Code, time.Unix(r.ExpiresUnix, 0), nil
}

// Device is one device of an account.
type Device struct {
	ID        string
	PublicKey ed25519.PublicKey
	Created   time.Time
}

func deviceFromWire(d *parleypb.Device) Device {
	return Device{ID: d.Id, PublicKey: d.PublicKey, Created: time.Unix(d.CreatedUnix, 0)}
}

// ApproveLink approves a pending link of the authenticated account and
// returns the new device.
func (c *Conn) ApproveLink(ctx context.Context, code string) (Device, error) {
	return c.ApproveLinkE2E(ctx, code, nil, nil)
}

// ApproveLinkE2E approves the link only if it holds publicKey (the key
// the approving device verified), and leaves confirmation for the new
// device.
func (c *Conn) ApproveLinkE2E(ctx context.Context, code string, publicKey, confirmation []byte) (Device, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_ApproveLink{ApproveLink: &parleypb.ApproveLinkRequest{Code: code, PublicKey: publicKey, Confirmation: confirmation}})
	if err != nil {
		return Device{}, fmt.Errorf("transport: approve link: %w", err)
	}
	r := f.GetApproveLink()
	if r == nil || r.Device == nil {
		return Device{}, errors.New("transport: unexpected response")
	}
	return deviceFromWire(r.Device), nil
}

// ListDevices lists the authenticated account's devices.
func (c *Conn) ListDevices(ctx context.Context) ([]Device, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_ListDevices{ListDevices: &parleypb.ListDevicesRequest{}})
	if err != nil {
		return nil, fmt.Errorf("transport: list devices: %w", err)
	}
	var out []Device
	for _, d := range f.GetListDevices().GetDevices() {
		out = append(out, deviceFromWire(d))
	}
	return out, nil
}

// RemoveDevice removes a device of the authenticated account: its
// sessions are closed and its key packages and inbox deleted.
func (c *Conn) RemoveDevice(ctx context.Context, deviceID string) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_RemoveDevice{RemoveDevice: &parleypb.RemoveDeviceRequest{DeviceId: deviceID}}); err != nil {
		return fmt.Errorf("transport: remove device: %w", err)
	}
	return nil
}

// DeleteAccount deletes the authenticated account (username must be its
// name, as a confirmation): every device, with its keys, inbox and
// conversation cursors, on the server. The server then closes the
// connection.
func (c *Conn) DeleteAccount(ctx context.Context, username string) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_DeleteAccount{DeleteAccount: &parleypb.DeleteAccountRequest{Username: username}}); err != nil {
		return fmt.Errorf("transport: delete account: %w", err)
	}
	return nil
}

// Ping checks the connection.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.call(ctx, &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}})
	return err
}

// Connect dials serverURL and authenticates with the device key: the
// usual way to (re)connect a registered device. After it returns, catch up
// with ListConversations, Fetch and FetchInbox; pushes only cover what
// happens from now on.
func Connect(ctx context.Context, serverURL string, key ed25519.PrivateKey, opts *Options) (*Conn, *Session, error) {
	c, err := Dial(ctx, serverURL, opts)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.Authenticate(ctx, key)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// GroupInvites is who may add an account to group conversations.
type GroupInvites = parleypb.GroupInvites

const (
	GroupInvitesUnchanged = parleypb.GroupInvites_GROUP_INVITES_UNSPECIFIED
	GroupInvitesEveryone  = parleypb.GroupInvites_EVERYONE
	GroupInvitesContacts  = parleypb.GroupInvites_CONTACTS
)

// Privacy is who may add the account's devices to conversations, as the
// server enforces it.
type Privacy struct {
	Blocked      []string // sorted
	GroupInvites GroupInvites
}

// UpdatePrivacy blocks and unblocks accounts and, unless invites is
// GroupInvitesUnchanged, sets who may add the account to groups; with
// nothing to change it reads the settings. It returns them as they now are.
func (c *Conn) UpdatePrivacy(ctx context.Context, block, unblock []string, invites GroupInvites) (*Privacy, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_Privacy{Privacy: &parleypb.PrivacyRequest{Block: block, Unblock: unblock, GroupInvites: invites}})
	if err != nil {
		return nil, fmt.Errorf("transport: privacy: %w", err)
	}
	p := f.GetPrivacy()
	return &Privacy{Blocked: p.GetBlocked(), GroupInvites: p.GetGroupInvites()}, nil
}

// PendingLink is what a new device sent with its link request.
type PendingLink struct {
	PublicKey ed25519.PublicKey
	MLSKey    []byte
	MAC       []byte
}

// InspectLink returns the pending link with code of the authenticated
// account, for the approving device to check before approving.
func (c *Conn) InspectLink(ctx context.Context, code string) (PendingLink, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_InspectLink{InspectLink: &parleypb.InspectLinkRequest{Code: code}})
	if err != nil {
		return PendingLink{}, fmt.Errorf("transport: inspect link: %w", err)
	}
	r := f.GetInspectLink()
	if r == nil {
		return PendingLink{}, errors.New("transport: unexpected response")
	}
	return PendingLink{PublicKey: r.PublicKey, MLSKey: r.MlsSignatureKey, MAC: r.LinkMac}, nil
}

// PublishDeviceList stores the account's new signed device list.
func (c *Conn) PublishDeviceList(ctx context.Context, l *parleypb.SignedDeviceList) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_PublishDeviceList{PublishDeviceList: &parleypb.PublishDeviceListRequest{List: l}}); err != nil {
		return fmt.Errorf("transport: publish device list: %w", err)
	}
	return nil
}

// ResetAccountKey publishes a list signed by a new account key (the
// primary device was lost); it must name this device.
func (c *Conn) ResetAccountKey(ctx context.Context, l *parleypb.SignedDeviceList) error {
	if _, err := c.call(ctx, &parleypb.ClientFrame_PublishDeviceList{PublishDeviceList: &parleypb.PublishDeviceListRequest{List: l, ResetAccountKey: true}}); err != nil {
		return fmt.Errorf("transport: reset account key: %w", err)
	}
	return nil
}

// FetchDeviceList returns username's device list as the server's key
// transparency directory serves it (resp.Kt, with proofs, and resp.List
// when present). Unverified: the client checks it with package
// transparency/directory. knownSize is the size of the latest checkpoint
// the client accepted.
func (c *Conn) FetchDeviceList(ctx context.Context, username string, knownSize int64) (*parleypb.FetchDeviceListResponse, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_FetchDeviceList{FetchDeviceList: &parleypb.FetchDeviceListRequest{Username: username, KnownSize: knownSize}})
	if err != nil {
		return nil, fmt.Errorf("transport: fetch device list of %s: %w", username, err)
	}
	r := f.GetFetchDeviceList()
	if r == nil {
		return nil, errors.New("transport: unexpected response")
	}
	return r, nil
}

// KTKeys returns the server's key transparency directory keys.
func (c *Conn) KTKeys(ctx context.Context) (*parleypb.KTKeysResponse, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_KtKeys{KtKeys: &parleypb.KTKeysRequest{}})
	if err != nil {
		return nil, fmt.Errorf("transport: key transparency keys: %w", err)
	}
	r := f.GetKtKeys()
	if r == nil {
		return nil, errors.New("transport: unexpected response")
	}
	return r, nil
}

// KTHistory returns the versions of this account's own label after an
// epoch (or from the first), with the directory's current answer.
func (c *Conn) KTHistory(ctx context.Context, r *parleypb.KTHistoryRequest) (*parleypb.KTHistoryResponse, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_KtHistory{KtHistory: r})
	if err != nil {
		return nil, fmt.Errorf("transport: key transparency history: %w", err)
	}
	resp := f.GetKtHistory()
	if resp == nil {
		return nil, errors.New("transport: unexpected response")
	}
	return resp, nil
}

// KTConsistency returns the encoded proof that the directory's checkpoint
// of size newSize extends the one of size oldSize.
func (c *Conn) KTConsistency(ctx context.Context, oldSize, newSize int64) ([]byte, error) {
	f, err := c.call(ctx, &parleypb.ClientFrame_KtConsistency{KtConsistency: &parleypb.KTConsistencyRequest{OldSize: oldSize, NewSize: newSize}})
	if err != nil {
		return nil, fmt.Errorf("transport: key transparency consistency: %w", err)
	}
	r := f.GetKtConsistency()
	if r == nil {
		return nil, errors.New("transport: unexpected response")
	}
	return r.Proof, nil
}
