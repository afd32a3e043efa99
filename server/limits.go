package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/ratelimit"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Limit allows N events per window Per.
type Limit = ratelimit.Limit

// Limits are the server's rate limits. Limits per device are counted in
// this node's memory; limits per account and per source address are
// counted across every node sharing the store (sharedlimit.Limiter:
// leases of the budget from store.Store.CountLimit), so that a client
// spreading its connections over nodes does not get each limit once per
// node. Either kind resets when the server (or, for PostgreSQL, the
// database) restarts. A source address is the TCP peer's IP: behind a
// proxy every client shares one.
type Limits struct {
	RegisterPerAddr        Limit // account registrations from one address
	SendPerAccount         Limit // SendRequests by all devices of an account
	SendPerAddr            Limit // SendRequests from one address
	KeyPackageFetchPerDev  Limit // FetchKeyPackages by one device
	KeyPackageFetchPerAcct Limit // FetchKeyPackages by all devices of an account
	KeyPackageFetchPerAddr Limit // FetchKeyPackages from one address
	// Key package limits count packages handed out, not requests.
	LinkRequestPerAddr    Limit // RequestLink from one address
	LinkRequestPerAccount Limit // RequestLink naming one account, from anywhere
	// Other writes: CreateConversation, UploadKeyPackages, AckInbox,
	// Privacy, ApproveLink and RemoveDevice each cost a transaction with
	// an fsync, so an account looping them would hold the store's writer.
	WritesPerAccount Limit
	WritesPerAddr    Limit
	UploadPerAccount Limit // blob uploads by all devices of an account
	// EphemeralPerDevice bounds the ephemeral messages (typing
	// indicators) one device relays; over it they are refused with
	// RATE_LIMITED, and nothing else of the device is slowed.
	EphemeralPerDevice Limit
	// RequestsPerAccount paces every request of an account's connections
	// together (each costs one plus one per KiB): over it, the server
	// stops reading them until the window ends (nothing is refused), so a
	// flood of requests, however cheap each is to refuse, cannot take the
	// server's CPU from everyone else.
	RequestsPerAccount Limit
}

// DefaultLimits are generous for people and tight for scripts.
var DefaultLimits = Limits{
	RegisterPerAddr:        Limit{N: 100, Per: 10 * time.Minute},
	SendPerAccount:         Limit{N: 1000, Per: time.Second},
	SendPerAddr:            Limit{N: 5000, Per: time.Second},
	KeyPackageFetchPerDev:  Limit{N: keyPackageFetches, Per: time.Minute},
	KeyPackageFetchPerAcct: Limit{N: 300, Per: time.Minute},
	KeyPackageFetchPerAddr: Limit{N: 600, Per: time.Minute},
	LinkRequestPerAddr:     Limit{N: 10, Per: 10 * time.Minute},
	LinkRequestPerAccount:  Limit{N: 100, Per: 10 * time.Minute},
	WritesPerAccount:       Limit{N: 300, Per: time.Minute},
	WritesPerAddr:          Limit{N: 1200, Per: time.Minute},
	UploadPerAccount:       Limit{N: 600, Per: time.Hour},
	EphemeralPerDevice:     Limit{N: 60, Per: time.Minute},
	RequestsPerAccount:     Limit{N: 1000, Per: time.Second},
}

// Unlimited disables a Limit (for benchmarks).
var Unlimited = Limit{N: math.MaxInt, Per: time.Second}

func (l Limits) withDefaults() Limits {
	def := func(v *Limit, d Limit) {
		if v.N <= 0 || v.Per <= 0 {
			*v = d
		}
	}
	def(&l.RegisterPerAddr, DefaultLimits.RegisterPerAddr)
	def(&l.SendPerAccount, DefaultLimits.SendPerAccount)
	def(&l.SendPerAddr, DefaultLimits.SendPerAddr)
	def(&l.KeyPackageFetchPerDev, DefaultLimits.KeyPackageFetchPerDev)
	def(&l.KeyPackageFetchPerAcct, DefaultLimits.KeyPackageFetchPerAcct)
	def(&l.KeyPackageFetchPerAddr, DefaultLimits.KeyPackageFetchPerAddr)
	def(&l.LinkRequestPerAddr, DefaultLimits.LinkRequestPerAddr)
	def(&l.LinkRequestPerAccount, DefaultLimits.LinkRequestPerAccount)
	def(&l.WritesPerAccount, DefaultLimits.WritesPerAccount)
	def(&l.WritesPerAddr, DefaultLimits.WritesPerAddr)
	def(&l.RequestsPerAccount, DefaultLimits.RequestsPerAccount)
	def(&l.UploadPerAccount, DefaultLimits.UploadPerAccount)
	def(&l.EphemeralPerDevice, DefaultLimits.EphemeralPerDevice)
	return l
}

// check counts one event against each named limit and returns a
// RATE_LIMITED error carrying retry-after for the first one exceeded.
func (s *Server) check(what string, keys ...limitKey) error {
	return s.checkN(what, 1, keys...)
}

// checkN is check for a request that counts as n events (one per key
// package it hands out, say).
func (s *Server) checkN(what string, n int, keys ...limitKey) error {
	for _, k := range keys {
		allow := s.limits.l.AllowN
		if k.shared {
			allow = s.shared.AllowN
		}
		if ok, after := allow(k.key, n, k.l); !ok {
			s.metrics.rateLimited.WithLabelValues(k.name).Inc()
			return rateLimited(fmt.Sprintf("too many %s (%s); retry in %ds", what, k.name, retrySeconds(after)), after)
		}
	}
	return nil
}

type limitKey struct {
	name, key string
	l         Limit
	// shared: counted across the nodes (internal/sharedlimit): limits
	// per account and per source address, which a client reaches from
	// every node. Per-device limits are counted by each node alone.
	shared bool
}

func rateLimited(msg string, after time.Duration) *wire.Error {
	return &wire.Error{Code: parleypb.ErrorCode_RATE_LIMITED, Message: msg, RetryAfter: after}
}

// retrySeconds rounds a retry-after up to whole seconds (at least 1).
func retrySeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(max(1, (d+time.Second-1)/time.Second))
}

// storageRetryAfter is what STORAGE_UNAVAILABLE suggests.
const storageRetryAfter = 5 * time.Second

func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// unauthCounter counts connections that have not authenticated yet, in
// total and per source address.
type unauthCounter struct {
	mu    sync.Mutex
	total int
	addr  map[string]int
}

func newUnauthCounter() *unauthCounter { return &unauthCounter{addr: make(map[string]int)} }

func (u *unauthCounter) acquire(addr string, maxTotal, maxAddr int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.total >= maxTotal || u.addr[addr] >= maxAddr {
		return false
	}
	u.total++
	u.addr[addr]++
	return true
}

func (u *unauthCounter) release(addr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.total--
	if u.addr[addr]--; u.addr[addr] <= 0 {
		delete(u.addr, addr)
	}
}

// limiter adapts ratelimit.Limiter to the handlers' calls: the limits
// per source address and per device, which this node counts alone
// (sharedlimit.Limiter counts those per account).
type limiter struct{ l *ratelimit.Limiter }

func newLimiter() *limiter { return &limiter{ratelimit.New()} }

func (l *limiter) expire(now time.Time) { l.l.Expire(now) }

// waitingConns are the sockets that have not sent a request yet (new, or
// idle between keep-alive requests), with the source address each is
// counted under in count.
type waitingConns struct {
	count unauthCounter
	mu    sync.Mutex
	m     map[net.Conn]string
}

// trackWaiting is the HTTP server's ConnState hook. Sockets that have not
// sent a request are capped like unauthenticated WebSockets (the same
// numbers, counted apart), so that opening sockets and sending nothing (or
// holding keep-alive connections) cannot use up the server's file
// descriptors before the header and idle timeouts close them. Over a cap,
// the socket is closed at once.
func (s *Server) trackWaiting(c net.Conn, state http.ConnState) {
	w := &s.waiting
	switch state {
	case http.StateNew, http.StateIdle:
		addr := remoteHost(c.RemoteAddr().String())
		perAddr := s.cfg.MaxUnauthenticatedPerAddr
		if s.trustedProxy(addr) {
			// Every client behind the proxy shares its address here,
			// before any header is read: only the total cap applies.
			perAddr = s.cfg.MaxUnauthenticated
		}
		w.mu.Lock()
		if _, counted := w.m[c]; counted {
			w.mu.Unlock()
			return
		}
		if !w.count.acquire(addr, s.cfg.MaxUnauthenticated, perAddr) {
			w.mu.Unlock()
			s.metrics.refusedConns.Inc()
			c.Close()
			return
		}
		w.m[c] = addr
		w.mu.Unlock()
	default: // active, hijacked or closed: no longer waiting
		w.mu.Lock()
		addr, counted := w.m[c]
		delete(w.m, c)
		w.mu.Unlock()
		if counted {
			w.count.release(addr)
		}
	}
}

// checkWrite counts one of the account's writes that are not messages
// (Limits.WritesPerAccount).
func (c *conn) checkWrite() error {
	lim := c.s.cfg.Limits
	return c.s.check("writes",
		limitKey{"per_account", "write-acct:" + c.dev.Username, lim.WritesPerAccount, true},
		limitKey{"per_address", "write-addr:" + c.remote, lim.WritesPerAddr, true})
}

// pace holds an authenticated connection's next request while its account
// is over Limits.RequestsPerAccount (at most one window): the connection
// is simply not read for a while, which costs the server nothing. A
// request costs one, plus one per KiB of frame, so that large frames
// (which take longer to decode) count for what they take.
func (c *conn) pace(frameBytes int) {
	if c.dev == nil {
		return
	}
	lim := c.s.cfg.Limits.RequestsPerAccount
	cost := min(1+frameBytes/1024, lim.N)
	// The request is counted in the window it is served in: a refused
	// batch counts nothing (AllowN), so after the wait it is asked again.
	for paced := false; ; paced = true {
		ok, after := c.s.shared.AllowN("req-acct:"+c.dev.Username, cost, lim)
		if ok {
			return
		}
		if !paced {
			c.s.metrics.rateLimited.WithLabelValues("paced").Inc()
		}
		time.Sleep(max(min(after, lim.Per), time.Millisecond))
	}
}

// acquireAccountConn counts an authenticated connection of user, unless
// the account already has MaxConnsPerAccount, on this node or across every
// node sharing the store (sharedlimit.Slots: store.Store.AcquireSlot,
// under this node's lease, which Slots.Run keeps alive: a node killed
// without releasing stops counting when its lease ends). releaseAccountConn undoes it. If
// the store fails, the connection is counted on this node only.
func (s *Server) acquireAccountConn(ctx context.Context, user string) bool {
	s.mu.Lock()
	if s.acctConns[user] >= s.cfg.MaxConnsPerAccount {
		s.mu.Unlock()
		return false
	}
	s.acctConns[user]++
	s.mu.Unlock()
	ok, counted := s.slots.Acquire(ctx, "conns:"+user, s.cfg.MaxConnsPerAccount)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !ok:
		if s.acctConns[user]--; s.acctConns[user] <= 0 {
			delete(s.acctConns, user)
		}
	case counted:
		s.acctSlots[user]++
	}
	return ok
}

func (s *Server) releaseAccountConn(user string) {
	s.mu.Lock()
	if s.acctConns[user]--; s.acctConns[user] <= 0 {
		delete(s.acctConns, user)
	}
	counted := s.acctSlots[user] > 0
	if counted {
		if s.acctSlots[user]--; s.acctSlots[user] <= 0 {
			delete(s.acctSlots, user)
		}
	}
	s.mu.Unlock()
	if counted {
		s.slots.Release("conns:" + user)
	}
}

// kpLowNotices remembers which devices were told their key packages of a
// cipher suite run low, so that each is told once per suite until it
// uploads more: someone fetching a device's packages in a loop must not
// flood it with notices. With several nodes each remembers what it told,
// and an upload through another node does not reach it: so a node tells
// again after kpLowRetell at the earliest, upload or not.
type kpLowNotices struct {
	mu   sync.Mutex
	told map[kpLowKey]time.Time
}

// kpLowRetell is how long a node waits before telling a device again that
// its key packages run low.
const kpLowRetell = 10 * time.Minute

type kpLowKey struct {
	device string
	suite  uint16
}

// first reports whether device has not been told about suite (since it
// last uploaded, and in the last kpLowRetell), and marks it told.
func (k *kpLowNotices) first(device string, suite uint16, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if at, ok := k.told[kpLowKey{device, suite}]; ok && now.Sub(at) < kpLowRetell {
		return false
	}
	k.told[kpLowKey{device, suite}] = now
	return true
}

// uploaded forgets device's suite: its next low count is news again.
func (k *kpLowNotices) uploaded(device string, suite uint16) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.told, kpLowKey{device, suite})
}

// expire forgets what was told before now - kpLowRetell (the sweeper
// calls it, so the map holds only recent notices).
func (k *kpLowNotices) expire(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, at := range k.told {
		if now.Sub(at) >= kpLowRetell {
			delete(k.told, key)
		}
	}
}

// clientAddr is the address a request is counted under for limits per
// source address: the TCP peer's, or, when the peer is a trusted proxy,
// the nearest address in X-Forwarded-For that is not itself a trusted
// proxy (proxies append the address they received from, so entries to
// the left of that one could be forged by the client).
func (s *Server) clientAddr(r *http.Request) string {
	peer := remoteHost(r.RemoteAddr)
	if !s.trustedProxy(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	var addrs []string
	for _, h := range hops {
		for _, a := range strings.Split(h, ",") {
			addrs = append(addrs, strings.TrimSpace(a))
		}
	}
	for i := len(addrs) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(addrs[i])
		if err != nil {
			return peer // a malformed header: count the proxy
		}
		if !s.trustedProxy(ip.String()) {
			return ip.Unmap().String()
		}
	}
	return peer
}

func (s *Server) trustedProxy(host string) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
