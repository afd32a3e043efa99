package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"
)

// randomHex returns n random bytes in hex: device ids.
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
