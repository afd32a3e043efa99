package franking

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Reported is one message in an abuse report, as the reporter's client
// kept it: the content exactly as it was encrypted, the salt and tag that
// commit to it, and the server's frank with its context.
type Reported struct {
	Context
	Content []byte
	Salt    []byte
	Tag     []byte
	Frank   []byte
}

// Limits on what one report may carry.
const (
	MaxMessages   = 50
	MaxContent    = 64 << 10
	MaxNote       = 2000
	DefaultMaxAge = 30 * 24 * time.Hour
)

// Reasons a report may give.
var Reasons = []string{"spam", "harassment", "terrorism", "csam", "other"}

// Why a reported message is refused.
var (
	ErrForged   = errors.New("franking: the server never franked this message (forged, or another server's)")
	ErrAltered  = errors.New("franking: the content is not the one the sender committed to (altered)")
	ErrTooOld   = errors.New("franking: the message is older than reports are accepted for")
	ErrInFuture = errors.New("franking: the message's time is in the future")
)

// Verify checks one reported message under the server's franking key at
// now: the frank covers the tag in its context (not forged, not
// re-attributed, not moved to another conversation or time), the tag opens
// to the content (not altered), and the message is at most maxAge old.
func Verify(pub ed25519.PublicKey, m Reported, now time.Time, maxAge time.Duration) error {
	if len(m.Content) > MaxContent {
		return fmt.Errorf("%w: content of %d bytes", ErrMalformed, len(m.Content))
	}
	if !VerifyFrank(pub, m.Frank, m.Tag, m.Context) {
		return ErrForged
	}
	if !Opens(m.Tag, m.Salt, m.Content) {
		return ErrAltered
	}
	switch {
	case m.Accepted.After(now.Add(time.Minute)):
		return ErrInFuture
	case now.Sub(m.Accepted) > maxAge:
		return fmt.Errorf("%w (%v, sent %s)", ErrTooOld, maxAge, m.Accepted.UTC().Format(time.DateTime))
	}
	return nil
}
