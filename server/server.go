// Package server implements parleyd, Parley's delivery service (RFC 9750
// §4): it stores and forwards MLS ciphertext it cannot read, routed by the
// fields clients declare in each envelope (conversation id, epoch, kind,
// and a commit's membership delta).
//
// Clients speak the protocol of package wire over a WebSocket at /v1/ws;
// attachments stream over plain HTTP at /v1/blobs. See docs/protocol.md.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleychat/parley/internal/sharedlimit"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Registration is the account registration policy.
type Registration string

const (
	RegistrationOpen   Registration = "open"
	RegistrationInvite Registration = "invite"
)

// Config configures a Server. Store and Blobs are required.
type Config struct {
	Store store.Store
	Blobs store.Blobs
	// Logger defaults to slog.Default(). Nothing identifying a person
	// beyond usernames and device ids is logged, and never a payload.
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil means a private
	// registry. Metrics are served at /metrics from Gatherer.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	Registration  Registration  // default open
	Retention     time.Duration // default 720h
	MaxAttachment int64         // default 100 MiB
	MaxFrame      int64         // default 1 MiB
	// AuthContext is the server-chosen string bound into every challenge
	// signature; default "parley delivery service".
	AuthContext string
	// KeyPackageLowThreshold: a device holding fewer non-last-resort key
	// packages than this is told to upload more (default 10).
	KeyPackageLowThreshold int
	// OutboundQueue bounds frames queued for one connection; a client that
	// falls further behind is disconnected (default 256).
	OutboundQueue int
	// WriteTimeout bounds each write of queued frames to a client: one
	// frame, or several queued frames of up to 16 KiB together (default
	// 10s; a write may get up to half as long again, as writes share a
	// socket deadline). A client that cannot take them in time is
	// disconnected.
	WriteTimeout  time.Duration
	SweepInterval time.Duration // retention sweeper, default 1m
	// SessionCheck is how often every device connected to this node is
	// looked up in the store again, so that a device removed, an account
	// deleted or a moderation decision taken elsewhere ends its sessions
	// here too (sessions.go; default 1m).
	SessionCheck time.Duration
	TokenTTL     time.Duration // blob bearer tokens, default 24h
	// OutboundBytes bounds the bytes queued for one connection (default
	// 8 MiB, at least 4 × MaxFrame + 64 KiB so one full Fetch response fits).
	OutboundBytes int
	// AuthTimeout closes connections that have not authenticated by then
	// (default 30s).
	AuthTimeout time.Duration
	// HeaderTimeout bounds the TLS handshake and the reading of a request's
	// headers (default 10s); IdleTimeout closes an HTTP keep-alive
	// connection that sends no next request (default 2m).
	HeaderTimeout, IdleTimeout time.Duration
	// MaxUnauthenticated caps connections that have not authenticated yet,
	// in total (default 10 000) and per source address (default 1 000):
	// WebSockets before Authenticate or Register (further upgrades get HTTP
	// 503) and sockets that have not sent a request yet, or are idle
	// between requests (further ones are closed at once).
	MaxUnauthenticated        int
	MaxUnauthenticatedPerAddr int
	// MaxDevices bounds an account's devices (default 32): approving one
	// more link is refused. One FetchKeyPackages names at most this many.
	MaxDevices int
	// MaxWelcome bounds the Welcome one commit may carry (default 512 KiB).
	MaxWelcome int
	// MaxGroupMembers bounds the accounts in a conversation (default
	// 1000): a commit adding devices past it gets GROUP_FULL. The server
	// counts the accounts of the member devices it routes to, which is
	// all it can see.
	MaxGroupMembers int
	// InboxLimits bound the unread invitations (Welcomes) in one device's
	// inbox: from one sending account (default 2 MiB, 50 Welcomes) and in
	// all (default 16 MiB, 500). A commit over them gets INBOX_FULL.
	InboxLimits store.InboxLimits
	// MaxConnsPerAccount caps the authenticated WebSockets of all of one
	// account's devices together (default 64).
	MaxConnsPerAccount int
	// MetricsToken, if set, serves /metrics on the main listener to
	// requests carrying "Authorization: Bearer <token>". If empty,
	// /metrics is not served there at all: serve MetricsHandler on a
	// listener of its own (parleyd --metrics-listen, loopback by default).
	MetricsToken string
	// TrustedProxies are the addresses of reverse proxies (a TLS
	// terminator on the same host, say) whose X-Forwarded-For header is
	// believed: limits per source address then count the client's address
	// it names, not the proxy's. Requests from other addresses are counted
	// by their own address, whatever their headers say.
	TrustedProxies []netip.Prefix
	// BodyTimeout and MinBodyRate bound how slowly a request body may
	// arrive, for every request with a body (blob uploads, channel posts,
	// mounted handlers too): the body may pause at most BodyTimeout
	// (default 30s), and must keep up MinBodyRate bytes per second
	// (default 4 KiB/s) over any longer stretch. A body that falls behind
	// is cut off and answered 408. A negative BodyTimeout turns this off.
	BodyTimeout time.Duration
	MinBodyRate int64
	// MaxUploadsPerAccount caps the blob uploads one account has in
	// progress at once (default 4); more are answered 429 at once, so one
	// account cannot hold every connection or file descriptor.
	MaxUploadsPerAccount int
	// BlobQuota is how many bytes of blobs one account may hold (default
	// 1 GiB); blobs count until deleted or expired. Negative: no quota.
	BlobQuota int64
	// Limits are the per-account and per-source-address rate limits; zero
	// fields take the defaults of DefaultLimits. They are counted in memory
	// only (never stored) and reset on restart.
	Limits    Limits
	TLSConfig *tls.Config // if set, Serve speaks TLS

	// Mount adds handlers beside the delivery service's own, keyed by
	// http.ServeMux pattern (public channels mount /v1/channels/ here).
	// They authenticate callers with Server.AuthenticateHTTP.
	Mount map[string]http.Handler
	// ForgetAccount, if set, runs when a user deletes their account,
	// before the account is deleted: it removes what mounted services
	// keep about the user (parleyd deletes their public channels and
	// posts). If it fails the account is kept and the user told to retry.
	ForgetAccount func(ctx context.Context, username string) error
	// Bus, if set, connects this node to the others sharing its database
	// (package natsbus): stored messages are announced on it, and its
	// notices pushed to this node's connected recipients.
	Bus Bus
	// FrankingKey franks messages for abuse reports (package franking);
	// nil makes a fresh one (tests: reports of messages franked before a
	// restart then fail to verify).
	FrankingKey ed25519.PrivateKey
	// BlobTokenKey (BlobTokenKeySize bytes) MACs the HTTP bearer tokens
	// (Session.blob_token). Nodes sharing a database must share it, so
	// that a token from one is good on all (parleyd: blob-token.key in
	// the data directory, copied like franking.key); nil makes a fresh
	// one, and tokens then end with the process.
	BlobTokenKey []byte
	// Report files a verified abuse report (parleyd: a moderation case)
	// and returns its case id; nil refuses reports.
	Report func(ctx context.Context, r Report) (string, error)
	// Sanction, if set, is asked at every authentication whether the
	// account is suspended or banned (a moderation decision); if so the
	// device is refused with the decision's message.
	Sanction func(ctx context.Context, username string) (barred bool, message string, err error)
	// Sanctions, if set, is Sanction for many accounts at once: the
	// barred ones among usernames, with their messages. The session
	// check uses it (else Sanction, once per account).
	Sanctions func(ctx context.Context, usernames []string) (map[string]string, error)
	// Notices, if set, returns the moderators' decisions an account is
	// told at every authentication (Session.notices).
	Notices func(ctx context.Context, username string) ([]*parleypb.ModerationNotice, error)
	// Appeal files the account's appeal of a decision on a case.
	Appeal func(ctx context.Context, username, caseID, text string) error
	// Transparency configures the key transparency directory every
	// client checks device lists against (docs/transparency.md). Nil
	// runs one with fresh keys (EphemeralTransparency), which is only
	// for tests: clients pin the keys.
	Transparency *TransparencyConfig
	// Now is the clock of the sweeps (disappearing messages, retention)
	// and of ephemeral messages' time; nil is time.Now. Tests move it.
	Now func() time.Time
	// beforeHubAdd, if set, runs in a sign-in after the device was found
	// and before the node would end its session (tests of a removal
	// landing in between; SetBeforeHubAdd).
	beforeHubAdd func()
}

// Server is a delivery server. Create it with New, run it with Serve and
// stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	http    *http.Server
	hub     *hub
	tokens  *tokens
	limits  *limiter
	shared  *sharedlimit.Limiter // per-account limits, across the nodes sharing the store
	slots   *sharedlimit.Slots   // what an account holds at once, across the nodes
	unauth  *unauthCounter
	uploads *unauthCounter // blob uploads in progress, per account
	waiting waitingConns
	// queuePeak is the most bytes ever queued for one connection (tests
	// check it against OutboundBytes).
	queuePeak atomic.Int64

	mu        sync.Mutex
	closing   bool
	links     map[string]*conn // "username/code" -> connection waiting for approval
	acctConns map[string]int   // username -> authenticated connections
	acctSlots map[string]int   // username -> of those, counted in the store (AcquireSlot)
	renewing  bool             // slots.Run started
	kpLow     kpLowNotices
	conns     map[*conn]struct{}
	connsWG   sync.WaitGroup
	sweepCtx  context.Context
	stopSwp   context.CancelFunc
	sweepWG   sync.WaitGroup
	// sweepAt is when the sweeper will next run (guarded by sweepMu);
	// sweepWake makes it look again when an earlier expiry arrives.
	sweepMu     sync.Mutex
	sweepAt     time.Time
	sweepWake   chan struct{}
	kt          *ktDirectory
	frankingKey ed25519.PrivateKey
	nodeID      string
	stopBus     func()
	owners      owners
	// seenDay and seenToday spare the store a write per authentication:
	// a device's last-seen day is written once a day at most.
	seenDay   time.Time
	seenToday map[string]bool
	// noIdlePoller keeps every connection on its own goroutine (tests of
	// that path, which other systems use); pollerWarning logs, once, that
	// the poller could not start or refused a connection.
	noIdlePoller  bool
	pollerWarning sync.Once
	// refuseArms, if set, is what arming the poller fails with (tests of
	// a refusal).
	refuseArms error
}

// New checks cfg and returns a server; it does not listen yet.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Blobs == nil {
		return nil, errors.New("server: Config.Store and Config.Blobs are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Registration {
	case "":
		cfg.Registration = RegistrationOpen
	case RegistrationOpen, RegistrationInvite:
	default:
		return nil, fmt.Errorf("server: registration must be %q or %q, not %q", RegistrationOpen, RegistrationInvite, cfg.Registration)
	}
	setDefault(&cfg.Retention, 720*time.Hour)
	setDefault(&cfg.MaxAttachment, 100<<20)
	setDefault(&cfg.MaxFrame, 1<<20)
	setDefault(&cfg.AuthContext, "parley delivery service")
	setDefault(&cfg.KeyPackageLowThreshold, 10)
	setDefault(&cfg.OutboundQueue, 256)
	setDefault(&cfg.WriteTimeout, 10*time.Second)
	setDefault(&cfg.SweepInterval, time.Minute)
	if cfg.SessionCheck < 0 {
		return nil, fmt.Errorf("server: the session check interval must be positive, not %v", cfg.SessionCheck)
	}
	setDefault(&cfg.SessionCheck, time.Minute)
	setDefault(&cfg.TokenTTL, 24*time.Hour)
	setDefault(&cfg.OutboundBytes, 8<<20)
	cfg.OutboundBytes = max(cfg.OutboundBytes, int(4*cfg.MaxFrame)+64<<10)
	setDefault(&cfg.AuthTimeout, 30*time.Second)
	setDefault(&cfg.HeaderTimeout, 10*time.Second)
	setDefault(&cfg.IdleTimeout, 2*time.Minute)
	setDefault(&cfg.MaxUnauthenticated, 10_000)
	setDefault(&cfg.MaxUnauthenticatedPerAddr, 1_000)
	setDefault(&cfg.MaxDevices, 32)
	setDefault(&cfg.MaxWelcome, 512<<10)
	setDefault(&cfg.MaxGroupMembers, 1000)
	setDefault(&cfg.InboxLimits.PerSender, 2<<20)
	setDefault(&cfg.InboxLimits.Total, 16<<20)
	setDefault(&cfg.InboxLimits.PerSenderCount, 50)
	setDefault(&cfg.InboxLimits.TotalCount, 500)
	setDefault(&cfg.MaxConnsPerAccount, 64)
	setDefault(&cfg.BodyTimeout, 30*time.Second)
	setDefault(&cfg.MinBodyRate, 4<<10)
	setDefault(&cfg.MaxUploadsPerAccount, 4)
	setDefault(&cfg.BlobQuota, 1<<30)
	if cfg.MinBodyRate < 0 || cfg.MaxUploadsPerAccount < 0 {
		return nil, fmt.Errorf("server: min body rate (%d) and max uploads per account (%d) must not be negative", cfg.MinBodyRate, cfg.MaxUploadsPerAccount)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.MaxFrame < 1024 {
		return nil, fmt.Errorf("server: max frame %d is too small (minimum 1024)", cfg.MaxFrame)
	}
	if n := len(cfg.BlobTokenKey); n != 0 && n != BlobTokenKeySize {
		return nil, fmt.Errorf("server: the blob token key is %d bytes; it must be %d (a fresh blob-token.key)", n, BlobTokenKeySize)
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   m,
		hub:       newHub(),
		tokens:    newTokens(cfg.BlobTokenKey, cfg.Now),
		limits:    newLimiter(),
		unauth:    newUnauthCounter(),
		waiting:   waitingConns{count: unauthCounter{addr: make(map[string]int)}, m: make(map[net.Conn]string)},
		conns:     make(map[*conn]struct{}),
		links:     make(map[string]*conn),
		acctConns: make(map[string]int),
		acctSlots: make(map[string]int),
		kpLow:     kpLowNotices{told: make(map[kpLowKey]time.Time)},
		uploads:   newUnauthCounter(),
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.HeaderTimeout, // the TLS handshake's bound too
		IdleTimeout:       cfg.IdleTimeout,
		TLSConfig:         cfg.TLSConfig,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnState:         s.trackWaiting,
	}
	s.sweepCtx, s.stopSwp = context.WithCancel(context.Background())
	s.sweepWake = make(chan struct{}, 1)
	s.nodeID = newNodeID()
	s.shared = sharedlimit.New(s.sweepCtx, cfg.Store, nil, cfg.Logger)
	s.slots = sharedlimit.NewSlots(cfg.Store, s.nodeID, "connections and uploads in progress per account", cfg.Logger)
	s.frankingKey = cfg.FrankingKey
	if s.frankingKey == nil {
		_, s.frankingKey, _ = ed25519.GenerateKey(rand.Reader)
	}
	ktc := cfg.Transparency
	if ktc == nil {
		if ktc, err = EphemeralTransparency("parley.invalid/kt"); err != nil {
			return nil, err
		}
	}
	if s.kt, err = newKTDirectory(s.sweepCtx, s, *ktc); err != nil {
		return nil, err
	}
	return s, nil
}

// MetricsHandler serves the Prometheus metrics, unauthenticated: serve it
// on a listener only operators reach. The metrics carry no per-user
// labels, but request rates and connection counts are not for everyone.
func (s *Server) MetricsHandler() http.Handler {
	g := s.cfg.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// requireBearer passes on requests that carry the token.
func requireBearer(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley metrics"`)
			http.Error(w, "metrics need the operator's bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Handler returns the server's HTTP handler: /v1/ws, /v1/blobs, the
// mounted handlers and, with Config.MetricsToken, /metrics; every request
// body is under the BodyTimeout and MinBodyRate bounds.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathWebSocket, s.serveWebSocket)
	mux.HandleFunc("POST "+wire.PathBlobs, s.uploadBlob)
	mux.HandleFunc("GET "+wire.PathBlobs+"/{id}", s.downloadBlob)
	mux.HandleFunc("DELETE "+wire.PathBlobs+"/{id}", s.deleteBlob)
	mux.HandleFunc("POST "+wire.PathBlobUploads, s.startUpload)
	mux.HandleFunc("POST "+wire.PathBlobUploads+"/{id}", s.finishUpload)
	s.ktRoutes(mux)
	if s.cfg.MetricsToken != "" {
		mux.Handle("GET /metrics", requireBearer(s.cfg.MetricsToken, s.MetricsHandler()))
	}
	for pattern, h := range s.cfg.Mount {
		mux.Handle(pattern, h)
	}
	if s.cfg.BodyTimeout < 0 {
		return mux
	}
	return s.limitBodies(mux)
}

// Serve accepts connections on ln until Shutdown; it also runs the
// retention sweeper. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.sweepWG.Add(2)
	if !s.renewing { // once, however many listeners Serve gets
		s.renewing = true
		s.sweepWG.Add(2)
		go func() {
			defer s.sweepWG.Done()
			s.slots.Run(s.sweepCtx)
		}()
		go s.sessionChecker()
	}
	subscribe := s.cfg.Bus != nil && s.stopBus == nil
	if subscribe {
		s.stopBus = func() {} // once, however many listeners Serve gets
	}
	s.mu.Unlock()
	if subscribe {
		stop, err := s.cfg.Bus.Subscribe(s.onNotice)
		if err != nil {
			s.log.Error("subscribing to the cluster bus failed; devices on this node get other nodes' messages at their next fetch", "err", err)
		} else {
			s.mu.Lock()
			s.stopBus = stop
			s.mu.Unlock()
		}
	}
	go s.sweeper()
	go func() {
		defer s.sweepWG.Done()
		s.kt.run(s.sweepCtx)
	}()
	if s.cfg.TLSConfig != nil {
		return s.http.ServeTLS(ln, "", "")
	}
	return s.http.Serve(ln)
}

// Shutdown stops accepting connections, lets every in-flight request
// finish and its response reach the client, closes all WebSockets with
// StatusGoingAway and stops the sweeper. Every message acknowledged to a
// client was durably stored before its response was queued, so nothing
// acknowledged is lost. The caller closes the store afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go c.shutdown()
	}
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	s.stopSwp()
	s.sweepWG.Wait()
	s.mu.Lock()
	stopBus := s.stopBus
	s.mu.Unlock()
	if stopBus != nil {
		stopBus()
	}
	return err
}

// now is the server's clock (Config.Now).
func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// sweeper runs Sweep every SweepInterval, and also at the next expiry
// of a disappearing message or blob if that comes sooner (but at most
// once a second), so that they are deleted no later than their time.
func (s *Server) sweeper() {
	defer s.sweepWG.Done()
	var last time.Time
	for {
		var next time.Time
		if time.Since(last) >= s.cfg.SweepInterval {
			last = time.Now()
			next = s.Sweep(s.sweepCtx)
		} else {
			// Woken for an expiry: retention can wait for its interval
			// (its sweep empties the store's conversation cache).
			next = s.sweepDisappearing(s.sweepCtx, s.now())
		}
		wait := s.cfg.SweepInterval - time.Since(last)
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.now()), time.Second))
		}
		s.sweepMu.Lock()
		s.sweepAt = time.Now().Add(wait)
		s.sweepMu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-s.sweepCtx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.sweepWake:
			t.Stop()
		}
	}
}

// expiryAdded wakes the sweeper if a message or blob just stored expires
// before it planned to run, so that it is deleted no later than its time.
func (s *Server) expiryAdded(at time.Time) {
	if at.IsZero() {
		return
	}
	due := time.Now().Add(at.Sub(s.now())) // on the sweeper's (real) clock
	s.sweepMu.Lock()
	earlier := !s.sweepAt.IsZero() && due.Before(s.sweepAt)
	s.sweepMu.Unlock()
	if earlier {
		select {
		case s.sweepWake <- struct{}{}:
		default:
		}
	}
}

// Sweep deletes at once the disappearing messages and blobs whose expiry
// passed (docs/protocol.md, "Disappearing messages"), then enforces
// retention: messages, welcomes and blobs older than the retention period
// are deleted whether or not they were fetched. The sweeper runs it; it
// returns the next expiry of a disappearing message or blob (zero if
// none).
func (s *Server) Sweep(ctx context.Context) (next time.Time) {
	now := s.now()
	next = s.sweepDisappearing(ctx, now)
	s.sweep(ctx, now)
	return next
}

// sweepDisappearing deletes the disappearing messages and blobs due by
// now and returns the next expiry.
func (s *Server) sweepDisappearing(ctx context.Context, now time.Time) (next time.Time) {
	dm, nextMsg, err := s.cfg.Store.DeleteDisappeared(ctx, now)
	if err != nil && ctx.Err() == nil {
		s.log.Error("disappearing messages sweep", "err", err)
	}
	db, nextBlob, err := s.cfg.Blobs.DeleteDisappeared(ctx, now)
	if err != nil && ctx.Err() == nil {
		s.log.Error("disappearing blobs sweep", "err", err)
	}
	if dm+db > 0 {
		s.log.Debug("disappearing sweep", "messages", dm, "blobs", db)
		s.metrics.disappeared.Add(float64(dm + db))
	}
	next = nextMsg
	if next.IsZero() || (!nextBlob.IsZero() && nextBlob.Before(next)) {
		next = nextBlob
	}
	return next
}

// sweep enforces retention.
func (s *Server) sweep(ctx context.Context, now time.Time) {
	before := now.Add(-s.cfg.Retention)
	n, err := s.cfg.Store.DeleteExpired(ctx, before, now)
	if err != nil && ctx.Err() == nil {
		s.log.Error("retention sweep", "err", err)
	}
	b, err := s.cfg.Blobs.DeleteExpired(ctx, before)
	if err != nil && ctx.Err() == nil {
		s.log.Error("blob retention sweep", "err", err)
	}
	s.limits.expire(now)
	s.kpLow.expire(now)
	s.shared.Expire(ctx, now)
	s.metrics.expired.Add(float64(n + b))
	if n+b > 0 {
		s.log.Debug("retention sweep", "records", n, "blobs", b)
	}
}

// seen records the day a device authenticated (only the day: what the
// server can produce for a lawful request, docs/lawful-requests.md).
// Failures only log: signing in does not depend on it.
func (s *Server) seen(ctx context.Context, deviceID string) {
	day := time.Now().UTC().Truncate(24 * time.Hour)
	s.mu.Lock()
	if !day.Equal(s.seenDay) {
		s.seenDay, s.seenToday = day, map[string]bool{}
	}
	done := s.seenToday[deviceID]
	s.seenToday[deviceID] = true
	s.mu.Unlock()
	if done {
		return
	}
	if err := s.cfg.Store.SeenDevice(ctx, deviceID, day); err != nil {
		s.log.Warn("recording the day a device was last seen", "device", deviceID, "err", err)
		s.mu.Lock()
		delete(s.seenToday, deviceID)
		s.mu.Unlock()
	}
}
