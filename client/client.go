// Package client is the Parley messenger: accounts and devices, 1:1 and
// group conversations on MLS (RFC 9420), sending and syncing messages,
// files and read receipts, device linking and safety numbers. The
// command-line program cmd/parley and the terminal UI (client/tui) are
// thin layers over it.
//
// A Client works on one profile directory (package client/profile, an
// encrypted SQLite database) and talks to one parleyd server through
// client/transport. The server sees only MLS ciphertext and the routing
// fields MLS needs (conversation id, epoch, kind, membership deltas).
//
// # Model
//
// Each device is an MLS member with its own leaf: a BasicCredential whose
// identity is "user/device-id" and an Ed25519 signature key. A
// conversation is an MLS group whose group id is the server's
// conversation id. A direct conversation with bob ("@bob") contains all of
// bob's devices and all of the sender's devices; its group id is derived
// from the two user names, so both sides find the same conversation. A
// group ("#team") has a random id, and its name travels in an encrypted
// "meta" message after every membership change.
//
// Application messages are JSON objects (see payload) sealed as MLS
// PrivateMessages. Commits are PrivateMessages too.
//
// # Concurrency
//
// Every operation takes the profile's inter-process lock, loads the state
// it needs from the profile, and writes it back before unlocking, so a
// `parley sync --follow` and a `parley send` can share a profile.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/wire"
)

// Errors callers branch on.
var (
	ErrNoAccount      = errors.New("client: this profile has no account yet (run parley init or parley devices link)")
	ErrUnknownTarget  = errors.New("client: no such conversation")
	ErrUnknownUser    = errors.New("client: no such user, or the user has no devices with key packages")
	ErrNotMember      = errors.New("client: this device is no longer a member of the conversation")
	ErrBadTarget      = errors.New("client: a conversation is @user or #group")
	ErrLinkExpired    = errors.New("client: the link code expired before it was approved")
	ErrFileNotFound   = errors.New("client: no such file")
	ErrWrongPassword  = profile.ErrWrongPassphrase
	ErrProfileMissing = profile.ErrNotExist
	// ErrAccountDeleted: the server says this profile's account was
	// deleted (from another device, or from this one before).
	ErrAccountDeleted = errors.New("this account was deleted")
	// ErrRefusedByMembers: the group's members refused the commit that
	// added this device (its committer was no admin of the group they
	// kept), and the server, on their verdicts, took the device off the
	// group's delivery and told it (docs/protocol.md §14, "Verdicts").
	// The device's copy of the group is a fork shared with the committer
	// alone, so nothing is sent to it. A security alert.
	ErrRefusedByMembers = errors.New("client: the group's other members refused the commit that added this device")
)

// Options configure a Client.
type Options struct {
	// Dir is the profile directory.
	Dir string
	// Passphrase protects the profile.
	Passphrase []byte
	// KDF are the Argon2id costs for a new profile (default
	// profile.DefaultKDF). Existing profiles keep theirs.
	KDF *profile.KDFParams
	// HTTPClient is used for the connection and blob transfers.
	HTTPClient *http.Client
	// KeyPackageBatch is how many key packages are uploaded at a time
	// (default 20).
	KeyPackageBatch int
	// LockTimeout bounds the wait for the profile lock (default 30s).
	LockTimeout time.Duration
	// Now returns the current time (tests).
	Now func() time.Time
	// KTWitnesses are note verifier keys of key transparency auditors
	// whose cosignature this client requires on every directory
	// checkpoint, besides those the server names (PARLEY_KT_WITNESS).
	KTWitnesses []string
	// KTMaxAge is how old the directory's served epoch may be before the
	// client refuses it as a frozen view (default 24h).
	KTMaxAge time.Duration
	// KTMonitorEvery is how often syncs check this account's own history
	// in the directory (default 4h: each check is one ~2.5 kB answer
	// whatever the number of epochs since the last, so this keeps
	// monitoring under 20 kB a day; docs/benchmarks.md). Negative: at
	// every sync. "parley audit" checks at once.
	KTMonitorEvery time.Duration

	// groupSuite, if set, is the cipher suite of new conversations
	// instead of X-Wing (tests: a conversation made before X-Wing became
	// the default).
	groupSuite ciphersuite.ID
	// keyPackageSuites, if set, are the only suites this device publishes
	// key packages for (tests: a device that predates X-Wing publishes
	// suite 1 only).
	keyPackageSuites []ciphersuite.ID
	// OnModerationNotice, if set, is called once for each moderators'
	// decision about this account that this profile had not seen
	// (warnings, suspensions, bans, appeal outcomes): the CLI prints it.
	OnModerationNotice func(ModerationNotice)
	// OnHistoryProgress, if set, is told how a history transfer being
	// received goes: stage "download" (bytes) or "import" (messages),
	// done of total.
	OnHistoryProgress func(stage string, done, total int64)
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Client is an open profile.
type Client struct {
	opts  Options
	store *profile.Store
	acct  *account

	mu       sync.Mutex // guards conn, warnings and the typing fields
	conn     *transport.Conn
	warnings []Warning
	// typingSent is when this device last sent a typing indicator, per
	// conversation; typingQueue the indicators received for Watch.
	typingSent  map[string]time.Time
	typingQueue []Typing
	// nextSweep is when the next disappearing message is due, as the
	// last sweep found (zero: none).
	nextSweep time.Time
	// historyGot are the history transfers imported and not yet taken
	// (TakeReceivedHistory, WaitForHistory); historyErr the first that
	// failed since WaitForHistory last looked.
	historyGot []HistoryReceived
	historyErr error

	// conflicts counts EPOCH_CONFLICT retries (for tests and diagnostics).
	conflicts atomic.Int64
	// testHookBeforeCommit, if set, runs after a commit is built and
	// before it is sent.
	testHookBeforeCommit func()
	// testHookTag, if set, replaces the franking tag of sent messages
	// (tests: a sender whose client lies).
	testHookTag func(tag []byte) []byte
	// testHookContent, if set, changes every content before it is sent
	// (tests: a sender whose client leaves the expiry out).
	testHookContent func(c *content.Content)
	// testHookAfterInbox, if set, runs in Sync after the inbox was read
	// and before the conversations are listed (tests: a Welcome that
	// arrives in between).
	testHookAfterInbox func()
	// testHookJoin, if set, runs in the transaction that joins from a
	// Welcome; an error it returns fails the transaction (tests: a
	// profile that cannot be written).
	testHookJoin func() error
	// testNoRoles switches off the check of commits against the group's
	// roles (checkCommitPolicy), to show in tests what it stops.
	testNoRoles bool
	// testNoOwnCheck switches off the checks that own-device sync
	// content comes from this account's devices in its own-devices
	// conversation (ownsync.go): the attacker's test shows they matter.
	testNoOwnCheck bool

	ktMu sync.Mutex // guards kt, peerViews and viewsChecked
	kt   *ktState
	// peerViews are checkpoints other members' devices put in their
	// messages, to compare with this device's (comparePeerViews);
	// viewsChecked are those found consistent.
	peerViews    []peerView
	viewsChecked map[int64][32]byte
}

// account is the profile's identity record (bucket "account", key "self").
type account struct {
	Server   string `json:"server"`
	User     string `json:"user"`
	DeviceID string `json:"device_id"`
	// DeviceKey is the Ed25519 seed that authenticates to the server.
	DeviceKey []byte `json:"device_key"`
	// SignKey is the Ed25519 seed of the MLS signature key.
	SignKey []byte    `json:"sign_key"`
	Created time.Time `json:"created"`
	// Linked is false while a new device waits for approval.
	Linked bool `json:"linked"`
	// AccountKey is the Ed25519 seed of the account key that signs the
	// account's device list; only the primary device (the one that ran
	// init) has it.
	AccountKey []byte `json:"account_key,omitempty"`
}

func (a *account) deviceKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(a.DeviceKey) }

const (
	bucketAccount = "account"
	keySelf       = "self"
)

func (o *Options) kdf() profile.KDFParams {
	if o.KDF != nil {
		return *o.KDF
	}
	return profile.DefaultKDF
}

// Init creates a profile in opts.Dir and registers a new account username
// on the server with this device as its first device.
func Init(ctx context.Context, opts Options, serverURL, username, invite string) (*Client, error) {
	if err := wire.CheckUsername(username); err != nil {
		return nil, err
	}
	st, err := profile.Create(opts.Dir, opts.Passphrase, opts.kdf())
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, store: st}
	err = c.initAccount(ctx, serverURL, username, invite)
	if err != nil {
		c.Close()
		removeProfile(opts.Dir)
		return nil, err
	}
	return c, nil
}

func (c *Client) initAccount(ctx context.Context, serverURL, username, invite string) error {
	acct := &account{Server: serverURL, User: username, Created: c.opts.now().UTC()}
	acct.DeviceKey = randomBytes(ed25519.SeedSize)
	acct.SignKey = randomBytes(ed25519.SeedSize)
	acct.AccountKey = randomBytes(ed25519.SeedSize)
	conn, err := transport.Dial(ctx, serverURL, &transport.Options{HTTPClient: c.opts.HTTPClient})
	if err != nil {
		return err
	}
	sess, err := conn.Register(ctx, username, acct.deviceKey(), invite)
	if err != nil {
		conn.Close()
		return err
	}
	acct.DeviceID = sess.DeviceID
	acct.Linked = true
	if err := c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketAccount, keySelf, acct) }); err != nil {
		conn.Close()
		return err
	}
	c.acct = acct
	c.conn = conn
	return c.withLock(ctx, func() error {
		// The account's first device list: this device alone.
		if _, err := c.publishList(ctx, conn, true, func(l *devicelist.List) {
			l.Devices = []devicelist.Device{{ID: acct.DeviceID, AuthKey: acct.deviceKey().Public().(ed25519.PublicKey),
				MLSKey: acct.mlsPublicKey(), Added: c.opts.now().UTC()}}
		}); err != nil {
			return fmt.Errorf("publish the account's device list: %w", err)
		}
		return c.replenishKeyPackages(ctx, sess.KeyPackageCounts, sess.KeyPackageLowThreshold, true)
	})
}

func removeProfile(dir string) { profile.Remove(dir) }

// Open opens an existing profile.
func Open(ctx context.Context, opts Options) (*Client, error) {
	st, err := profile.Open(opts.Dir, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, store: st}
	var acct account
	err = st.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketAccount, keySelf, &acct) })
	if errors.Is(err, profile.ErrNotFound) {
		st.Close()
		return nil, ErrNoAccount
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	c.acct = &acct
	return c, nil
}

// Close closes the connection and the profile.
func (c *Client) Close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	return c.store.Close()
}

// Self describes this device.
type Self struct {
	Server   string `json:"server"`
	User     string `json:"user"`
	DeviceID string `json:"device"`
}

// Self returns this device's account and device id.
func (c *Client) Self() Self {
	return Self{Server: c.acct.Server, User: c.acct.User, DeviceID: c.acct.DeviceID}
}

// withLock runs fn holding the profile lock.
func (c *Client) withLock(ctx context.Context, fn func() error) error {
	timeout := c.opts.LockTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unlock, err := c.store.Lock(lctx)
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// connection returns the authenticated connection, dialling if needed.
func (c *Client) connection(ctx context.Context) (*transport.Conn, error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil && conn.Err() == nil {
		return conn, nil
	}
	if !c.acct.Linked {
		return nil, ErrNoAccount
	}
	conn, err := transport.Dial(ctx, c.acct.Server, &transport.Options{HTTPClient: c.opts.HTTPClient})
	if err != nil {
		return nil, err
	}
	sess, err := conn.AuthenticateAs(ctx, c.acct.deviceKey(), c.acct.User)
	if err != nil {
		conn.Close()
		if errors.Is(err, wire.ErrAccountDeleted) {
			return nil, fmt.Errorf("%w: %s on %s: nothing of it is left there; to use Parley again, register a new account (parley register)", ErrAccountDeleted, c.acct.User, c.acct.Server)
		}
		if errors.Is(err, wire.ErrUnauthenticated) {
			return nil, fmt.Errorf("this device is not (or no longer) registered on %s: %w", c.acct.Server, err)
		}
		return nil, err
	}
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn = conn
	c.mu.Unlock()
	if err := c.keepNotices(sess.Notices); err != nil {
		return nil, err
	}
	if sess.Barred != "" {
		// Suspended or banned by moderators: the server serves only an
		// appeal or the account's deletion, and every other request
		// fails with this text.
		return conn, fmt.Errorf("%w: %s", ErrBarred, sess.Barred)
	}
	if err := c.upgradeToSignedList(ctx, conn); err != nil {
		return nil, err
	}
	// Per suite: a batch if it runs low, and a first batch and
	// last-resort package for a suite the device has none of (the first
	// connection after an upgrade that added the suite).
	if err := c.replenishKeyPackages(ctx, sess.KeyPackageCounts, sess.KeyPackageLowThreshold, false); err != nil {
		return nil, err
	}
	return conn, nil
}

// redial drops the current connection and makes a new one.
func (c *Client) redial(ctx context.Context) (*transport.Conn, error) {
	c.mu.Lock()
	old := c.conn
	c.conn = nil
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return c.connection(ctx)
}

// maxRateLimitWait bounds how long a request waits out RATE_LIMITED.
const maxRateLimitWait = 30 * time.Second

// retryRateLimited runs fn, and again after the server's retry-after
// delay while it answers RATE_LIMITED (up to maxRateLimitWait in total).
func retryRateLimited[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	waited := time.Duration(0)
	for {
		v, err := fn()
		var we *wire.Error
		if err == nil || !errors.As(err, &we) || we.Code != wire.ErrRateLimited.Code {
			return v, err
		}
		d := max(we.RetryAfter, 100*time.Millisecond)
		if waited+d > maxRateLimitWait {
			return v, err
		}
		waited += d
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(d):
		}
	}
}

// Connect makes sure the device is connected and authenticated.
func (c *Client) Connect(ctx context.Context) error {
	return c.withLock(ctx, func() error { _, err := c.connection(ctx); return err })
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexID(b []byte) string { return hex.EncodeToString(b) }
