package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Limits on abuse; see docs/protocol.md "Rate limits".
const (
	maxAuthFailures   = 5 // per connection, then it is closed
	linkApprovalFails = 10
	linkWindow        = 10 * time.Minute
	linkTTL           = 10 * time.Minute
	keyPackageFetches = 120 // key packages handed out per fetching device per minute
)

func badRequest(format string, args ...any) error {
	return &wire.Error{Code: parleypb.ErrorCode_BAD_REQUEST, Message: fmt.Sprintf(format, args...)}
}

var errUnauthenticated = &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED, Message: "authenticate first"}

// dispatch runs a request. Handlers run with a context that is not
// cancelled by shutdown: an in-flight request always completes.
func (c *conn) dispatch(f *parleypb.ClientFrame) (parleypb.ServerFrameBody, error) {
	ctx := context.Background()
	if h := f.GetHello(); h != nil {
		return c.handleHello(h)
	}
	if !c.hello {
		return nil, badRequest("the first frame must be Hello")
	}
	if f.RequestId == 0 {
		return nil, badRequest("request_id must not be zero")
	}
	// Requests allowed before authentication.
	switch b := f.Body.(type) {
	case *parleypb.ClientFrame_Ping:
		return empty(), nil
	case *parleypb.ClientFrame_Register:
		return c.handleRegister(ctx, b.Register)
	case *parleypb.ClientFrame_Authenticate:
		return c.handleAuthenticate(ctx, b.Authenticate)
	case *parleypb.ClientFrame_RequestLink:
		return c.handleRequestLink(ctx, b.RequestLink)
	}
	if c.dev == nil {
		return nil, errUnauthenticated
	}
	if c.barred != "" {
		// A suspended or banned account may appeal, delete itself, and
		// nothing else; every other request says why.
		switch f.Body.(type) {
		case *parleypb.ClientFrame_Appeal, *parleypb.ClientFrame_DeleteAccount, *parleypb.ClientFrame_Ping:
		default:
			return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED, Message: c.barred}
		}
	}
	if !messageTraffic(f) {
		// The device may have been removed, or the account's sanction
		// changed, since it signed in, through another node or process
		// (sessions.go).
		if err := c.recheckRequest(ctx); err != nil {
			return nil, err
		}
	}
	switch f.Body.(type) {
	case *parleypb.ClientFrame_ApproveLink, *parleypb.ClientFrame_RemoveDevice, *parleypb.ClientFrame_UploadKeyPackages,
		*parleypb.ClientFrame_CreateConversation, *parleypb.ClientFrame_AckInbox, *parleypb.ClientFrame_Privacy,
		*parleypb.ClientFrame_PublishDeviceList:
		if err := c.checkWrite(); err != nil {
			return nil, err
		}
	}
	switch b := f.Body.(type) {
	case *parleypb.ClientFrame_ApproveLink:
		return c.handleApproveLink(ctx, b.ApproveLink)
	case *parleypb.ClientFrame_ListDevices:
		return c.handleListDevices(ctx)
	case *parleypb.ClientFrame_RemoveDevice:
		return c.handleRemoveDevice(ctx, b.RemoveDevice)
	case *parleypb.ClientFrame_DeleteAccount:
		return c.handleDeleteAccount(ctx, b.DeleteAccount)
	case *parleypb.ClientFrame_UploadKeyPackages:
		return c.handleUploadKeyPackages(ctx, b.UploadKeyPackages)
	case *parleypb.ClientFrame_FetchKeyPackages:
		return c.handleFetchKeyPackages(ctx, b.FetchKeyPackages)
	case *parleypb.ClientFrame_CreateConversation:
		return c.handleCreateConversation(ctx, b.CreateConversation)
	case *parleypb.ClientFrame_Send:
		return c.handleSend(ctx, b.Send)
	case *parleypb.ClientFrame_Fetch:
		return c.handleFetch(ctx, b.Fetch)
	case *parleypb.ClientFrame_Ack:
		return c.handleAck(ctx, b.Ack)
	case *parleypb.ClientFrame_ListConversations:
		return c.handleListConversations(ctx, b.ListConversations)
	case *parleypb.ClientFrame_FetchInbox:
		return c.handleFetchInbox(ctx, b.FetchInbox)
	case *parleypb.ClientFrame_AckInbox:
		return c.handleAckInbox(ctx, b.AckInbox)
	case *parleypb.ClientFrame_Privacy:
		return c.handlePrivacy(ctx, b.Privacy)
	case *parleypb.ClientFrame_PublishDeviceList:
		return c.handlePublishDeviceList(ctx, b.PublishDeviceList)
	case *parleypb.ClientFrame_FetchDeviceList:
		return c.handleFetchDeviceList(ctx, b.FetchDeviceList)
	case *parleypb.ClientFrame_InspectLink:
		return c.handleInspectLink(ctx, b.InspectLink)
	case *parleypb.ClientFrame_Report:
		return c.handleReport(ctx, b.Report)
	case *parleypb.ClientFrame_Appeal:
		return c.handleAppeal(ctx, b.Appeal)
	case *parleypb.ClientFrame_KtKeys:
		return c.handleKTKeys()
	case *parleypb.ClientFrame_KtHistory:
		return c.handleKTHistory(ctx, b.KtHistory)
	case *parleypb.ClientFrame_KtConsistency:
		return c.handleKTConsistency(b.KtConsistency)
	}
	return nil, badRequest("unknown request type")
}

func empty() parleypb.ServerFrameBody {
	return &parleypb.ServerFrame_Empty{Empty: &parleypb.Empty{}}
}

func (c *conn) handleHello(h *parleypb.Hello) (parleypb.ServerFrameBody, error) {
	if c.hello {
		return nil, badRequest("Hello sent twice")
	}
	if h.ProtocolVersion != wire.ProtocolVersion {
		return nil, &wire.Error{Code: parleypb.ErrorCode_UNSUPPORTED_VERSION,
			Message: fmt.Sprintf("client speaks protocol version %d, this server speaks %d", h.ProtocolVersion, wire.ProtocolVersion)}
	}
	c.hello = true
	return &parleypb.ServerFrame_Hello{Hello: &parleypb.HelloResponse{
		ProtocolVersion: wire.ProtocolVersion,
		Challenge:       c.challenge,
		AuthContext:     c.s.cfg.AuthContext,
		MaxFrame:        uint64(c.s.cfg.MaxFrame),
		MaxGroupMembers: uint32(c.s.cfg.MaxGroupMembers),
	}}, nil
}

// verify checks a challenge signature. Too many failures close the
// connection, so the challenge cannot be used for guessing.
func (c *conn) verify(pub, sig []byte, purpose string) error {
	if len(pub) != ed25519.PublicKeySize {
		return badRequest("public key must be %d bytes", ed25519.PublicKeySize)
	}
	// RFC 8032 verification accepts keys of small order, and for those
	// anyone can make a signature that verifies: such a key would let
	// anyone authenticate as its account.
	if ciphersuite.IsSmallOrderEd25519(pub) {
		return badRequest("public key is of small order: generate a new key")
	}
	msg := wire.ChallengeMessage(c.challenge, c.s.cfg.AuthContext, purpose)
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		c.failures++
		if c.failures >= maxAuthFailures {
			c.stop(websocket.StatusPolicyViolation, "too many authentication failures")
		}
		return &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED, Message: "bad signature"}
	}
	return nil
}

func (c *conn) handleRegister(ctx context.Context, r *parleypb.RegisterRequest) (parleypb.ServerFrameBody, error) {
	if c.dev != nil {
		return nil, badRequest("connection is already authenticated")
	}
	if err := wire.CheckNewUsername(r.Username); err != nil {
		return nil, badRequest("%v", err)
	}
	if err := c.verify(r.PublicKey, r.Signature, wire.PurposeRegister); err != nil {
		return nil, err
	}
	if err := c.s.check("registrations", limitKey{"per_address", "reg-addr:" + c.remote, c.s.cfg.Limits.RegisterPerAddr, true}); err != nil {
		return nil, err
	}
	invite := ""
	if c.s.cfg.Registration == RegistrationInvite {
		if r.InviteCode == "" {
			return nil, &wire.Error{Code: parleypb.ErrorCode_INVALID_INVITE, Message: "this server requires an invite code"}
		}
		invite = r.InviteCode
	}
	dev := store.Device{ID: randomHex(16), Username: r.Username, PublicKey: r.PublicKey, Created: time.Now()}
	if err := c.s.cfg.Store.CreateAccount(ctx, dev, invite); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS,
				Message: fmt.Sprintf("the name %s is taken; choose another", r.Username)}
		}
		if errors.Is(err, store.ErrLookalike) {
			return nil, &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS,
				Message: fmt.Sprintf("the name %s is too much like an existing account's name (people could mistake one for the other); choose another", r.Username)}
		}
		return nil, err
	}
	c.s.log.Info("account registered", "username", dev.Username, "device", dev.ID)
	return c.authenticated(ctx, dev)
}

func (c *conn) handleAuthenticate(ctx context.Context, r *parleypb.AuthenticateRequest) (parleypb.ServerFrameBody, error) {
	if c.dev != nil {
		return nil, badRequest("connection is already authenticated")
	}
	if err := c.verify(r.PublicKey, r.Signature, wire.PurposeAuthenticate); err != nil {
		return nil, err
	}
	dev, err := c.s.cfg.Store.DeviceByKey(ctx, r.PublicKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, c.unknownKey(ctx, r.Username)
	}
	if err != nil {
		return nil, err
	}
	return c.authenticated(ctx, dev)
}

// unknownKey words the refusal of a key no device has. If the client
// names the account it believes the key is in and that account exists
// with no device left (a deleted account keeps only its name), the answer
// says the account was deleted, so the user is not left guessing. The
// signature was checked first, so only a holder of a key can ask; what it
// learns (that a name's account was deleted) registration already tells.
func (c *conn) unknownKey(ctx context.Context, username string) error {
	if username != "" && wire.CheckUsername(username) == nil {
		devs, err := c.s.cfg.Store.Devices(ctx, username)
		if err == nil && len(devs) == 0 {
			return &wire.Error{Code: parleypb.ErrorCode_ACCOUNT_DELETED,
				Message: fmt.Sprintf("the account %s was deleted: its devices and data are gone from this server; register a new account to use Parley here again", username)}
		}
		if err == nil {
			return &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED,
				Message: fmt.Sprintf("this device is not one of %s's devices: it was removed, or its link is not approved yet", username)}
		}
	}
	return &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED, Message: "no device has this key (a link may not be approved yet)"}
}

func (c *conn) authenticated(ctx context.Context, dev store.Device) (parleypb.ServerFrameBody, error) {
	n, err := c.s.cfg.Store.CountKeyPackages(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	bySuite, err := c.s.cfg.Store.KeyPackageCounts(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	counts := make([]*parleypb.KeyPackageCount, 0, len(bySuite))
	for suite, n := range bySuite {
		counts = append(counts, &parleypb.KeyPackageCount{CipherSuite: uint32(suite), Remaining: uint32(n)})
	}
	slices.SortFunc(counts, func(a, b *parleypb.KeyPackageCount) int { return cmp.Compare(a.CipherSuite, b.CipherSuite) })
	barred, err := c.s.barredMessage(ctx, dev.Username)
	if err != nil {
		return nil, err
	}
	c.barred = barred
	var notices []*parleypb.ModerationNotice
	if c.s.cfg.Notices != nil {
		if notices, err = c.s.cfg.Notices(ctx, dev.Username); err != nil {
			return nil, err
		}
	}
	if !c.s.acquireAccountConn(ctx, dev.Username) {
		c.s.metrics.rateLimited.WithLabelValues("connections_per_account").Inc()
		return nil, rateLimited(fmt.Sprintf("this account has %d connections open, the most allowed; close one (or wait for idle ones to time out)", c.s.cfg.MaxConnsPerAccount), 30*time.Second)
	}
	confirmation, err := c.s.cfg.Store.TakeLinkConfirmation(ctx, dev.ID)
	if err != nil {
		c.s.releaseAccountConn(dev.Username)
		return nil, err
	}
	if c.s.cfg.beforeHubAdd != nil {
		c.s.cfg.beforeHubAdd() // tests: a removal lands here
	}
	c.signedIn = &dev
	c.s.hub.add(dev.ID, c)
	// Looked up again now that the node would end this session: a
	// removal committed before this lookup is seen here, and one
	// committed after it is announced after this connection is in the
	// hub (sessions.go).
	if _, err := c.s.cfg.Store.Device(ctx, dev.ID); err != nil {
		c.s.hub.remove(dev.ID, c)
		c.s.releaseAccountConn(dev.Username)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errDeviceGone
		}
		return nil, err
	}
	c.dev = &dev
	if db, ok := c.s.cfg.Bus.(DeviceBus); ok {
		// Before the answer: the device's catch-up fetches come after
		// it, so a message another node stores is either found by them
		// or announced to this node.
		if unwatch, err := db.Watch(dev.ID); err != nil {
			c.s.log.Warn("not subscribed to the device's notices; it gets other nodes' messages at its fetches", "err", err)
		} else {
			c.unwatch = unwatch
		}
	}
	c.s.seen(ctx, dev.ID)
	return &parleypb.ServerFrame_Session{Session: &parleypb.Session{
		Username:               dev.Username,
		DeviceId:               dev.ID,
		BlobToken:              c.blobToken(dev.ID),
		TokenTtlSeconds:        int64(c.s.cfg.TokenTTL / time.Second),
		KeyPackagesRemaining:   uint32(n),
		KeyPackageLowThreshold: uint32(c.s.cfg.KeyPackageLowThreshold),
		LinkConfirmation:       confirmation,
		KeyPackageCounts:       counts,
		Barred:                 c.barred,
		Notices:                notices,
	}}, nil
}

func (c *conn) handleRequestLink(ctx context.Context, r *parleypb.RequestLinkRequest) (parleypb.ServerFrameBody, error) {
	if err := wire.CheckUsername(r.Username); err != nil {
		return nil, badRequest("%v", err)
	}
	if err := c.verify(r.PublicKey, r.Signature, wire.PurposeLink); err != nil {
		return nil, err
	}
	if len(r.MlsSignatureKey) > 2048 || len(r.LinkMac) > 64 {
		return nil, badRequest("mls_signature_key or link_mac too long")
	}
	// Counted per source address: a limit per target account let anyone
	// lock a user out of linking their own devices. The per-account limit
	// is far higher, only to bound the pending links one account collects.
	lim := c.s.cfg.Limits
	if err := c.s.check("link requests",
		limitKey{"per_address", "link-addr:" + c.remote, lim.LinkRequestPerAddr, true},
		limitKey{"per_target_account", "link-acct:" + r.Username, lim.LinkRequestPerAccount, true}); err != nil {
		return nil, err
	}
	if _, err := c.s.cfg.Store.DeviceByKey(ctx, r.PublicKey); err == nil {
		return nil, &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS, Message: "this key already belongs to a device"}
	}
	expires := time.Now().Add(linkTTL)
	for range 5 {
		code, err := linkCode()
		if err != nil {
			return nil, err
		}
		err = c.s.cfg.Store.CreateLink(ctx, store.Link{Username: r.Username, Code: code, PublicKey: r.PublicKey, Expires: expires,
			MLSKey: r.MlsSignatureKey, MAC: r.LinkMac})
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			// No such account. Answer as for one that exists, with a
			// code nothing can approve, so that link requests do not
			// tell anyone which usernames exist.
			return &parleypb.ServerFrame_RequestLink{RequestLink: &parleypb.RequestLinkResponse{Code: code, ExpiresUnix: expires.Unix()}}, nil
		}
		if err != nil {
			return nil, err
		}
		key := r.Username + "/" + code
		c.s.mu.Lock()
		c.s.links[key] = c
		c.s.mu.Unlock()
		c.linkKeys = append(c.linkKeys, key)
		return &parleypb.ServerFrame_RequestLink{RequestLink: &parleypb.RequestLinkResponse{Code: code, ExpiresUnix: expires.Unix()}}, nil
	}
	return nil, fmt.Errorf("no free link code")
}

func linkCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", wire.LinkCodeDigits, n.Int64()), nil
}

func (c *conn) handleApproveLink(ctx context.Context, r *parleypb.ApproveLinkRequest) (parleypb.ServerFrameBody, error) {
	if len(r.Code) != wire.LinkCodeDigits {
		return nil, badRequest("link code must be %d digits", wire.LinkCodeDigits)
	}
	if err := c.checkLinkCodeGuesses(); err != nil {
		return nil, err
	}
	if devs, err := c.s.cfg.Store.Devices(ctx, c.dev.Username); err != nil {
		return nil, err
	} else if len(devs) >= c.s.cfg.MaxDevices {
		return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED,
			Message: fmt.Sprintf("an account may have at most %d devices; remove one (parley devices remove ID) before linking another", c.s.cfg.MaxDevices)}
	}
	if len(r.Confirmation) > 1024 {
		return nil, badRequest("link confirmation over 1024 bytes")
	}
	// With public_key, the approver verified that key (InspectLink and the
	// link MAC): the store approves only that one, atomically.
	dev, err := c.s.cfg.Store.ApproveLink(ctx, c.dev.Username, r.Code, store.Device{ID: randomHex(16), PublicKey: r.PublicKey}, r.Confirmation, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, c.wrongLinkCode()
	}
	if err != nil {
		return nil, err
	}
	c.s.log.Info("device linked", "username", dev.Username, "device", dev.ID)
	// Tell the waiting new device, if it is still connected.
	linkKey := c.dev.Username + "/" + r.Code
	c.s.mu.Lock()
	waiting := c.s.links[linkKey]
	delete(c.s.links, linkKey)
	c.s.mu.Unlock()
	approved := &parleypb.Push{Event: &parleypb.Push_LinkApproved{LinkApproved: &parleypb.LinkApproved{DeviceId: dev.ID}}}
	if waiting != nil {
		waiting.push(approved)
	} else {
		c.s.forwardLinkApproved(linkKey, approved) // it may wait on another node
	}
	return &parleypb.ServerFrame_ApproveLink{ApproveLink: &parleypb.ApproveLinkResponse{Device: deviceToWire(dev)}}, nil
}

func deviceToWire(d store.Device) *parleypb.Device {
	return &parleypb.Device{Id: d.ID, PublicKey: d.PublicKey, CreatedUnix: d.Created.Unix()}
}

func (c *conn) handleListDevices(ctx context.Context) (parleypb.ServerFrameBody, error) {
	devs, err := c.s.cfg.Store.Devices(ctx, c.dev.Username)
	if err != nil {
		return nil, err
	}
	resp := &parleypb.ListDevicesResponse{}
	for _, d := range devs {
		resp.Devices = append(resp.Devices, deviceToWire(d))
	}
	return &parleypb.ServerFrame_ListDevices{ListDevices: resp}, nil
}

func (c *conn) handleRemoveDevice(ctx context.Context, r *parleypb.RemoveDeviceRequest) (parleypb.ServerFrameBody, error) {
	dev, err := c.s.cfg.Store.Device(ctx, r.DeviceId)
	if err != nil {
		return nil, err
	}
	if dev.Username != c.dev.Username {
		return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED, Message: "device belongs to another account"}
	}
	if err := c.s.cfg.Store.RemoveDevice(ctx, dev.ID); err != nil {
		return nil, err
	}
	for _, other := range c.s.hub.conns(dev.ID) {
		if other != c {
			other.stop(websocket.StatusPolicyViolation, reasonDeviceRemoved)
		}
	}
	// Tell the account's other online devices, on every node.
	if devs, err := c.s.cfg.Store.Devices(ctx, c.dev.Username); err == nil {
		removed := &parleypb.Push{Event: &parleypb.Push_DeviceRemoved{DeviceRemoved: &parleypb.DeviceRemoved{DeviceId: dev.ID}}}
		others := make([]string, 0, len(devs))
		for _, d := range devs {
			others = append(others, d.ID)
			for _, oc := range c.s.hub.conns(d.ID) {
				if oc != c {
					oc.push(removed)
				}
			}
		}
		c.s.forwardPush(others, removed)
	}
	c.s.announceRecheck([]string{dev.ID})
	if dev.ID == c.dev.ID {
		c.closeReason = reasonDeviceRemoved // answer, then close
	}
	c.s.log.Info("device removed", "username", dev.Username, "device", dev.ID)
	return empty(), nil
}

func (c *conn) handleDeleteAccount(ctx context.Context, r *parleypb.DeleteAccountRequest) (parleypb.ServerFrameBody, error) {
	if r.Username != c.dev.Username {
		return nil, badRequest("to delete your account, send your own username (%s) as confirmation", c.dev.Username)
	}
	if forget := c.s.cfg.ForgetAccount; forget != nil {
		if err := forget(ctx, c.dev.Username); err != nil {
			c.s.log.Error("account deletion: removing the account's data from mounted services failed", "err", err)
			return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	if err := c.s.deleteAccountBlobs(ctx, c.dev.Username); err != nil {
		return nil, err
	}
	ids, err := c.s.cfg.Store.DeleteAccount(ctx, c.dev.Username)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		for _, other := range c.s.hub.conns(id) {
			if other != c {
				other.stop(websocket.StatusPolicyViolation, reasonAccountDeleted)
			}
		}
	}
	c.s.announceRecheck(ids)
	c.closeReason = reasonAccountDeleted // answer, then close
	c.s.log.Info("account deleted", "username", c.dev.Username, "devices", len(ids))
	return empty(), nil
}

func (c *conn) handleUploadKeyPackages(ctx context.Context, r *parleypb.UploadKeyPackagesRequest) (parleypb.ServerFrameBody, error) {
	if len(r.KeyPackages) > wire.MaxKeyPackagesBatch {
		return nil, badRequest("at most %d key packages per upload", wire.MaxKeyPackagesBatch)
	}
	if len(r.KeyPackages) == 0 && r.LastResort == nil {
		return nil, badRequest("no key packages")
	}
	conv := func(k *parleypb.KeyPackage) (store.KeyPackage, error) {
		if len(k.Data) == 0 || len(k.Ref) == 0 || len(k.Ref) > wire.MaxKeyPackageRef {
			return store.KeyPackage{}, badRequest("key package needs data and a ref of 1-%d bytes", wire.MaxKeyPackageRef)
		}
		if len(k.Data) > wire.MaxKeyPackageSize {
			return store.KeyPackage{}, badRequest("key package of %d bytes is over the limit of %d", len(k.Data), wire.MaxKeyPackageSize)
		}
		suite, err := cipherSuite(k.CipherSuite)
		if err != nil {
			return store.KeyPackage{}, err
		}
		return store.KeyPackage{Ref: k.Ref, Data: k.Data, Suite: suite}, nil
	}
	var kps []store.KeyPackage
	for _, k := range r.KeyPackages {
		kp, err := conv(k)
		if err != nil {
			return nil, err
		}
		kps = append(kps, kp)
	}
	// Key packages are stored until someone fetches them: without a cap a
	// device could fill the server's disk with them.
	if len(kps) > 0 {
		held, err := c.s.cfg.Store.CountKeyPackages(ctx, c.dev.ID)
		if err != nil {
			return nil, err
		}
		if held+len(kps) > wire.MaxKeyPackagesHeld {
			return nil, badRequest("this device holds %d key packages; at most %d may be held: upload %d or fewer", held, wire.MaxKeyPackagesHeld, max(0, wire.MaxKeyPackagesHeld-held))
		}
	}
	var last *store.KeyPackage
	if r.LastResort != nil {
		kp, err := conv(r.LastResort)
		if err != nil {
			return nil, err
		}
		last = &kp
	}
	n, err := c.s.cfg.Store.AddKeyPackages(ctx, c.dev.ID, kps, last)
	if err != nil {
		return nil, err
	}
	for _, kp := range kps {
		c.s.kpLow.uploaded(c.dev.ID, kp.Suite)
	}
	if last != nil {
		c.s.kpLow.uploaded(c.dev.ID, last.Suite)
	}
	return &parleypb.ServerFrame_UploadKeyPackages{UploadKeyPackages: &parleypb.UploadKeyPackagesResponse{Remaining: uint32(n)}}, nil
}

// cipherSuite reads a key package's or a fetch's declared MLS cipher
// suite: 0, from clients that declare none, is suite 1.
func cipherSuite(s uint32) (uint16, error) {
	switch {
	case s == 0:
		return 1, nil
	case s > 0xFFFF:
		return 0, badRequest("cipher suite %d is not a 16-bit MLS cipher suite", s)
	}
	return uint16(s), nil
}

func (c *conn) handleFetchKeyPackages(ctx context.Context, r *parleypb.FetchKeyPackagesRequest) (parleypb.ServerFrameBody, error) {
	if err := wire.CheckUsername(r.Username); err != nil {
		return nil, badRequest("%v", err)
	}
	suite, err := cipherSuite(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	// A device named twice would be handed two packages for one request,
	// and a long list would hold the store's writer: refused.
	if len(r.DeviceIds) > c.s.cfg.MaxDevices {
		return nil, badRequest("at most %d device ids per request (an account has at most %d devices)", c.s.cfg.MaxDevices, c.s.cfg.MaxDevices)
	}
	seen := make(map[string]bool, len(r.DeviceIds))
	for _, id := range r.DeviceIds {
		if seen[id] {
			return nil, badRequest("device id %q named twice", id)
		}
		seen[id] = true
	}
	n := len(r.DeviceIds)
	if n == 0 {
		devs, err := c.s.cfg.Store.Devices(ctx, r.Username)
		if err != nil {
			return nil, err
		}
		n = len(devs)
	}
	// Fetching consumes other people's key packages; bound how fast one
	// device can drain them (the last-resort package still works). Each
	// package handed out counts, not each request.
	lim := c.s.cfg.Limits
	if err := c.s.checkN("key package fetches", max(n, 1),
		limitKey{"per_device", "kpfetch:" + c.dev.ID, lim.KeyPackageFetchPerDev, false},
		limitKey{"per_account", "kpfetch-acct:" + c.dev.Username, lim.KeyPackageFetchPerAcct, true},
		limitKey{"per_address", "kpfetch-addr:" + c.remote, lim.KeyPackageFetchPerAddr, true}); err != nil {
		return nil, err
	}
	got, err := c.s.cfg.Store.ConsumeKeyPackages(ctx, r.Username, r.DeviceIds, suite)
	if err != nil {
		return nil, err
	}
	resp := &parleypb.FetchKeyPackagesResponse{}
	for _, g := range got {
		resp.KeyPackages = append(resp.KeyPackages, &parleypb.DeviceKeyPackage{
			DeviceId:   g.DeviceID,
			KeyPackage: &parleypb.KeyPackage{Ref: g.KeyPackage.Ref, Data: g.KeyPackage.Data, CipherSuite: uint32(suite)},
			LastResort: g.LastResort,
		})
		// Told once until the device uploads again: a drainer must not
		// be able to flood its victim with notices.
		if g.Remaining < c.s.cfg.KeyPackageLowThreshold && c.s.kpLow.first(g.DeviceID, suite, c.s.now()) {
			low := &parleypb.Push{Event: &parleypb.Push_KeyPackagesLow{KeyPackagesLow: &parleypb.KeyPackagesLow{Remaining: uint32(g.Remaining), CipherSuite: uint32(suite)}}}
			for _, oc := range c.s.hub.conns(g.DeviceID) {
				oc.push(low)
			}
			c.s.forwardPush([]string{g.DeviceID}, low) // it may be connected to another node
		}
	}
	return &parleypb.ServerFrame_FetchKeyPackages{FetchKeyPackages: resp}, nil
}

func checkConversationID(id []byte) error {
	if len(id) == 0 || len(id) > wire.MaxConversationID {
		return badRequest("conversation id must be 1-%d bytes", wire.MaxConversationID)
	}
	return nil
}

func (c *conn) handleCreateConversation(ctx context.Context, r *parleypb.CreateConversationRequest) (parleypb.ServerFrameBody, error) {
	if err := checkConversationID(r.ConversationId); err != nil {
		return nil, err
	}
	// Ids of DirectConversationIDSize bytes belong to direct
	// conversations, and only the two users of one may create it: anyone
	// else taking it first would keep them from ever talking directly.
	switch {
	case r.DirectPeer == "" && len(r.ConversationId) == wire.DirectConversationIDSize:
		return nil, badRequest("%d-byte conversation ids are reserved for direct conversations: name the peer (direct_peer), or use another length", wire.DirectConversationIDSize)
	case r.DirectPeer != "" && (r.DirectPeer == c.dev.Username || wire.CheckUsername(r.DirectPeer) != nil):
		return nil, badRequest("direct_peer must be another user's name")
	case r.DirectPeer != "" && !bytes.Equal(r.ConversationId, wire.DirectConversationID(c.dev.Username, r.DirectPeer)):
		return nil, badRequest("conversation id is not the direct conversation id of %s and %s", c.dev.Username, r.DirectPeer)
	}
	if err := c.s.cfg.Store.CreateConversation(ctx, r.ConversationId, c.dev.ID); err != nil {
		return nil, err
	}
	return &parleypb.ServerFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationResponse{Epoch: 0}}, nil
}

var kindFromWire = map[parleypb.Kind]store.Kind{
	parleypb.Kind_COMMIT:      store.KindCommit,
	parleypb.Kind_PROPOSAL:    store.KindProposal,
	parleypb.Kind_APPLICATION: store.KindApplication,
}

func kindToWire(k store.Kind) parleypb.Kind {
	switch k {
	case store.KindCommit:
		return parleypb.Kind_COMMIT
	case store.KindProposal:
		return parleypb.Kind_PROPOSAL
	case store.KindApplication:
		return parleypb.Kind_APPLICATION
	case store.KindWelcome:
		return parleypb.Kind_WELCOME
	case store.KindRefused:
		return parleypb.Kind_REFUSED
	}
	return parleypb.Kind_KIND_UNSPECIFIED
}

func messageToWire(m store.Message) *parleypb.Message {
	return &parleypb.Message{
		Id:             m.ID,
		ConversationId: m.ConversationID,
		Seq:            m.Seq,
		Epoch:          m.Epoch,
		Kind:           kindToWire(m.Kind),
		SenderDeviceId: m.Sender,
		Payload:        m.Payload,
		StoredUnix:     m.Stored.Unix(),
	}
}

func (c *conn) handleSend(ctx context.Context, r *parleypb.SendRequest) (parleypb.ServerFrameBody, error) {
	if r.Ephemeral {
		return c.handleEphemeral(ctx, r)
	}
	a, err := c.checkSend(r)
	if err != nil {
		return nil, err
	}
	if err := c.checkAdds(ctx, a); err != nil {
		return nil, err
	}
	res, err := c.s.cfg.Store.Append(ctx, a)
	if err != nil {
		return nil, sendError(err)
	}
	return c.sent(a, res), nil
}

// errNotMemberOrAbsent answers a send to a conversation the sender is not
// in, whether or not it exists: answering NOT_FOUND for one that does not
// would let anyone test which direct conversations (whose ids are
// computable from two usernames) exist, and so who talks to whom.
var errNotMemberOrAbsent = &wire.Error{Code: parleypb.ErrorCode_NOT_MEMBER, Message: "you are not a member of this conversation (or it does not exist)"}

// sendError maps an Append error for the client.
func sendError(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotMember) {
		return errNotMemberOrAbsent
	}
	if errors.Is(err, store.ErrInboxFull) {
		return &wire.Error{Code: parleypb.ErrorCode_INBOX_FULL,
			Message: "a device you are adding holds too many unread invitations; try again after its owner has synced"}
	}
	return err
}

// checkSend validates a SendRequest and counts it against the rate
// limits.
func (c *conn) checkSend(r *parleypb.SendRequest) (store.Append, error) {
	if len(r.MessageId) != wire.MessageIDSize {
		return store.Append{}, badRequest("message id must be %d bytes", wire.MessageIDSize)
	}
	if err := checkConversationID(r.ConversationId); err != nil {
		return store.Append{}, err
	}
	kind, ok := kindFromWire[r.Kind]
	if !ok {
		return store.Append{}, badRequest("kind must be COMMIT, PROPOSAL or APPLICATION")
	}
	if len(r.Payload) == 0 {
		return store.Append{}, badRequest("empty payload")
	}
	if kind != store.KindCommit && (len(r.AddedDeviceIds) > 0 || len(r.RemovedDeviceIds) > 0 || len(r.Welcome) > 0) {
		return store.Append{}, badRequest("only a commit carries a membership delta or a Welcome")
	}
	if len(r.AddedDeviceIds) > 0 && len(r.Welcome) == 0 {
		// Without a Welcome an add would bypass the inbox limits (and the
		// added device could not join anyway).
		return store.Append{}, badRequest("a commit that adds devices must carry their Welcome")
	}
	if len(r.Welcome) > c.s.cfg.MaxWelcome {
		return store.Append{}, badRequest("Welcome of %d bytes is larger than this server's limit of %d", len(r.Welcome), c.s.cfg.MaxWelcome)
	}
	var expires time.Time
	switch {
	case r.ExpiresUnix < 0 || (r.ExpiresUnix > 0 && kind != store.KindApplication):
		return store.Append{}, badRequest("expires_unix is a positive time, on application messages only")
	case r.ExpiresUnix > 0:
		expires = time.Unix(r.ExpiresUnix, 0)
	}
	if r.FirstSentUnixMs > math.MaxInt64 {
		return store.Append{}, badRequest("first_sent_unix_ms is a time in milliseconds since 1970, or 0")
	}
	if err := c.s.check("messages",
		limitKey{"per_account", "send-acct:" + c.dev.Username, c.s.cfg.Limits.SendPerAccount, true},
		limitKey{"per_address", "send-addr:" + c.remote, c.s.cfg.Limits.SendPerAddr, true}); err != nil {
		return store.Append{}, err
	}
	return store.Append{
		ID:             r.MessageId,
		ConversationID: r.ConversationId,
		Epoch:          r.Epoch,
		Kind:           kind,
		Sender:         c.dev.ID,
		Payload:        r.Payload,
		Added:          r.AddedDeviceIds,
		Removed:        r.RemovedDeviceIds,
		Welcome:        r.Welcome,
		InboxLimits:    c.s.cfg.InboxLimits,
		Expires:        expires,
		FirstSent:      int64(r.FirstSentUnixMs),
	}, nil
}

// maxEphemeral bounds an ephemeral message: a typing indicator is a few
// hundred bytes of MLS ciphertext.
const maxEphemeral = 16 << 10

// handleEphemeral relays an ephemeral application message (a typing
// indicator) to the connected devices of the conversation's other
// members, here and on other nodes, and stores nothing: a device that is
// not connected never gets it.
func (c *conn) handleEphemeral(ctx context.Context, r *parleypb.SendRequest) (parleypb.ServerFrameBody, error) {
	switch {
	case len(r.MessageId) != wire.MessageIDSize:
		return nil, badRequest("message id must be %d bytes", wire.MessageIDSize)
	case r.Kind != parleypb.Kind_APPLICATION:
		return nil, badRequest("only an application message can be ephemeral")
	case len(r.Payload) == 0 || len(r.Payload) > maxEphemeral:
		return nil, badRequest("an ephemeral message is 1 to %d bytes", maxEphemeral)
	case len(r.AddedDeviceIds) > 0 || len(r.RemovedDeviceIds) > 0 || len(r.Welcome) > 0 || r.ExpiresUnix != 0:
		return nil, badRequest("an ephemeral message carries no membership delta, Welcome or expiry")
	}
	if err := checkConversationID(r.ConversationId); err != nil {
		return nil, err
	}
	if err := c.s.check("ephemeral messages",
		limitKey{"per_device", "ephemeral-dev:" + c.dev.ID, c.s.cfg.Limits.EphemeralPerDevice, false}); err != nil {
		return nil, err
	}
	conv, err := c.s.cfg.Store.Conversation(ctx, r.ConversationId)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotMemberOrAbsent
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(conv.Members, c.dev.ID) {
		return nil, errNotMemberOrAbsent
	}
	m := &parleypb.Message{Id: r.MessageId, ConversationId: r.ConversationId, Epoch: r.Epoch, Kind: parleypb.Kind_APPLICATION,
		SenderDeviceId: c.dev.ID, Payload: r.Payload, StoredUnix: c.s.now().Unix(), SenderUser: c.dev.Username}
	p := c.s.encodePush(&parleypb.Push{Event: &parleypb.Push_Ephemeral{Ephemeral: m}})
	others := make([]string, 0, len(conv.Members))
	for _, d := range conv.Members {
		if d == c.dev.ID {
			continue
		}
		others = append(others, d)
		for _, oc := range c.s.hub.conns(d) {
			oc.pushEncoded(p)
		}
	}
	c.s.announceEphemeral(others, m)
	return &parleypb.ServerFrame_Send{Send: &parleypb.SendResponse{Epoch: conv.Epoch}}, nil
}

// sent pushes a stored message to the online recipients and returns the
// SendResponse.
func (c *conn) sent(a store.Append, res store.AppendResult) parleypb.ServerFrameBody {
	kind := a.Kind
	if !res.Duplicate {
		c.s.metrics.messages.WithLabelValues(kind.String()).Inc()
		c.s.expiryAdded(a.Expires)
		// Only devices online right now are touched; the rest catch up
		// from their cursors.
		var p []byte // encoded once, for the first online recipient
		for _, d := range res.Recipients {
			if d == c.dev.ID {
				continue
			}
			for _, oc := range c.s.hub.conns(d) {
				if p == nil {
					p = c.s.encodePush(&parleypb.Push{Event: &parleypb.Push_Message{Message: c.s.toWire(context.Background(), res.Message)}})
				}
				oc.pushEncoded(p)
			}
		}
		for _, w := range res.Welcomes {
			wp := &parleypb.Push{Event: &parleypb.Push_Inbox{Inbox: messageToWire(w.Message)}}
			for _, oc := range c.s.hub.conns(w.DeviceID) {
				oc.push(wp)
			}
		}
		c.s.announce(res)
	}
	return &parleypb.ServerFrame_Send{Send: &parleypb.SendResponse{Seq: res.Message.Seq, Epoch: res.Epoch, Duplicate: res.Duplicate}}
}

func fetchLimit(n uint32) int {
	switch {
	case n == 0:
		return wire.DefaultFetchLimit
	case n > wire.MaxFetchLimit:
		return wire.MaxFetchLimit
	}
	return int(n)
}

func (c *conn) handleFetch(ctx context.Context, r *parleypb.FetchRequest) (parleypb.ServerFrameBody, error) {
	if err := checkConversationID(r.ConversationId); err != nil {
		return nil, err
	}
	limit := fetchLimit(r.Limit)
	ms, err := c.s.cfg.Store.Fetch(ctx, c.dev.ID, r.ConversationId, limit+1)
	if err != nil {
		return nil, err
	}
	resp := &parleypb.FetchResponse{}
	resp.Messages, resp.More = c.page(ms, limit)
	return &parleypb.ServerFrame_Fetch{Fetch: resp}, nil
}

// page answers at most limit of ms (fetched with limit+1) within the byte
// budget of a response: at most 4 frames' worth of payload, always at
// least one message, so that responses stay a size clients accept and a
// connection can queue. more reports whether anything was left out.
func (c *conn) page(ms []store.Message, limit int) (out []*parleypb.Message, more bool) {
	if len(ms) > limit {
		ms, more = ms[:limit], true
	}
	budget := 4 * c.s.cfg.MaxFrame
	for i, m := range ms {
		budget -= int64(len(m.Payload))
		if budget < 0 && i > 0 {
			return out, true
		}
		out = append(out, c.s.toWire(context.Background(), m))
	}
	return out, more
}

func (c *conn) handleAck(ctx context.Context, r *parleypb.AckRequest) (parleypb.ServerFrameBody, error) {
	if err := checkConversationID(r.ConversationId); err != nil {
		return nil, err
	}
	if len(r.Verdicts) > maxVerdicts {
		return nil, fmt.Errorf("%d verdicts in one ack (at most %d): %w", len(r.Verdicts), maxVerdicts, store.ErrBadRequest)
	}
	for _, v := range r.Verdicts {
		if len(v.CommitId) != 16 {
			return nil, fmt.Errorf("a verdict's commit id must be 16 bytes: %w", store.ErrBadRequest)
		}
	}
	// Verdicts first: the commits they judge are at or before seq, and a
	// removed device's acknowledgement past its removal ends its
	// membership.
	for _, v := range r.Verdicts {
		out, err := c.s.cfg.Store.Verdict(ctx, c.dev.ID, r.ConversationId, v.CommitId, v.Refuse)
		if err != nil {
			return nil, err
		}
		if out != store.VerdictIgnored {
			c.s.log.Debug("membership change decided", "outcome", out.String())
		}
	}
	if r.Seq == 0 {
		return empty(), nil
	}
	if err := c.s.cfg.Store.Ack(ctx, c.dev.ID, r.ConversationId, r.Seq); err != nil {
		return nil, err
	}
	return empty(), nil
}

// maxVerdicts bounds the verdicts of one AckRequest (a client acks at
// most a page of messages, and far fewer of them are commits).
const maxVerdicts = 1000

// handleListConversations answers a page of the device's conversations.
// Pages keep the answer within what a connection may queue however many
// conversations others have put the device in: one answer for all of
// them let anyone who could add a device to enough groups stop it from
// syncing.
func (c *conn) handleListConversations(ctx context.Context, r *parleypb.ListConversationsRequest) (parleypb.ServerFrameBody, error) {
	ms, err := c.s.cfg.Store.Memberships(ctx, c.dev.ID)
	if err != nil {
		return nil, err
	}
	limit := fetchLimit(r.Limit)
	budget := 4 * c.s.cfg.MaxFrame
	resp := &parleypb.ListConversationsResponse{}
	for _, m := range ms {
		if len(r.After) > 0 && bytes.Compare(m.ID, r.After) <= 0 {
			continue
		}
		size := int64(len(m.ID) + 32)
		for _, d := range m.Members {
			size += int64(len(d) + 2)
		}
		if budget -= size; len(resp.Conversations) == limit || (budget < 0 && len(resp.Conversations) > 0) {
			resp.More = true
			break
		}
		resp.Conversations = append(resp.Conversations, &parleypb.ConversationInfo{
			ConversationId:  m.ID,
			Epoch:           m.Epoch,
			MemberDeviceIds: m.Members,
			Cursor:          m.Cursor,
			HeadSeq:         m.HeadSeq,
			Removed:         m.RemovedAt != 0,
			RemovedAtSeq:    m.RemovedAt,
		})
	}
	return &parleypb.ServerFrame_ListConversations{ListConversations: resp}, nil
}

func (c *conn) handleFetchInbox(ctx context.Context, r *parleypb.FetchInboxRequest) (parleypb.ServerFrameBody, error) {
	limit := fetchLimit(r.Limit)
	ms, err := c.s.cfg.Store.FetchInbox(ctx, c.dev.ID, limit+1)
	if err != nil {
		return nil, err
	}
	// The same byte budget as Fetch: without it, a few large Welcomes made
	// a response too large to send, and the device could never sync.
	resp := &parleypb.FetchInboxResponse{}
	resp.Messages, resp.More = c.page(ms, limit)
	return &parleypb.ServerFrame_FetchInbox{FetchInbox: resp}, nil
}

func (c *conn) handleAckInbox(ctx context.Context, r *parleypb.AckInboxRequest) (parleypb.ServerFrameBody, error) {
	if err := c.s.cfg.Store.AckInbox(ctx, c.dev.ID, r.Seq); err != nil {
		return nil, err
	}
	return empty(), nil
}

// blobToken issues the session's blob token; a barred account gets none
// (it may not upload or download while suspended or banned).
func (c *conn) blobToken(deviceID string) string {
	if c.barred != "" {
		return ""
	}
	return c.s.tokens.issue(deviceID, c.s.cfg.TokenTTL)
}
