package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/ratelimit"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tokens are the bearer tokens for /v1/blobs, handed out in Session. Only
// their SHA-256 is kept, in memory: a restart simply requires clients to
// authenticate again.
type tokens struct {
	mu sync.Mutex
	m  map[[32]byte]tokenInfo
}

type tokenInfo struct {
	device  string
	expires time.Time
}

func newTokens() *tokens { return &tokens{m: make(map[[32]byte]tokenInfo)} }

func (t *tokens) issue(device string, ttl time.Duration) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	t.m[sha256.Sum256([]byte(tok))] = tokenInfo{device, time.Now().Add(ttl)}
	t.mu.Unlock()
	return tok
}

// device returns the device a token belongs to. The map lookup is by
// hash, so the comparison does not leak the token through timing.
func (t *tokens) device(tok string) (string, bool) {
	h := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	defer t.mu.Unlock()
	info, ok := t.m[h]
	if !ok || time.Now().After(info.expires) {
		return "", false
	}
	return info.device, true
}

func (t *tokens) revokeDevice(device string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, info := range t.m {
		if info.device == device {
			delete(t.m, h)
		}
	}
}

func (t *tokens) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, info := range t.m {
		if now.After(info.expires) {
			delete(t.m, h)
		}
	}
}

// limiter adapts ratelimit.Limiter to the handlers' calls.
type limiter struct{ l *ratelimit.Limiter }

func newLimiter() *limiter { return &limiter{ratelimit.New()} }

// allow counts one event for key and reports whether at most max events
// happened in the current window of length per.
func (l *limiter) allow(key string, max int, per time.Duration) (ok bool, retryAfter time.Duration) {
	return l.l.Allow(key, ratelimit.Limit{N: max, Per: per})
}

// blocked reports whether key already used up max events in its window,
// without counting one.
func (l *limiter) blocked(key string, max int) (bool, time.Duration) { return l.l.Blocked(key, max) }

func (l *limiter) expire(now time.Time) { l.l.Expire(now) }

// hub tracks which devices are online, for pushes.
type hub struct {
	mu sync.RWMutex
	m  map[string]map[*conn]struct{}
}

func newHub() *hub { return &hub{m: make(map[string]map[*conn]struct{})} }

func (h *hub) add(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[device] == nil {
		h.m[device] = make(map[*conn]struct{})
	}
	h.m[device][c] = struct{}{}
}

func (h *hub) remove(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m[device], c)
	if len(h.m[device]) == 0 {
		delete(h.m, device)
	}
}

func (h *hub) conns(device string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*conn, 0, len(h.m[device]))
	for c := range h.m[device] {
		out = append(out, c)
	}
	return out
}
