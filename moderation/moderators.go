package moderation

import (
	"errors"
	"time"
)

// Moderator is an account of the moderators' web console
// (moderation/console, docs/moderation.md "The web console"). The
// password is kept only as an argon2id hash (PasswordHash, in the PHC
// string format); the TOTP secret must be kept as it is, since the server
// computes the codes from it.
type Moderator struct {
	Name         string
	Lead         bool // a lead decides appeals and adds moderators
	PasswordHash string
	TOTPSecret   []byte
	Created      time.Time
	// Removed is when a lead removed (deactivated) the account; zero
	// while it is active. A removed account cannot sign in, its sessions
	// end, and its name is not given to anyone else, so the audit log's
	// names stay unambiguous.
	Removed time.Time
}

// Active reports whether the account may sign in.
func (m Moderator) Active() bool { return m.Removed.IsZero() }

// ConsoleSession is a moderator's signed-in session of the web console,
// as stored: every node of a deployment on one database accepts it, and
// it survives a restart. The store keeps only TokenHash, the SHA-256 of
// the session cookie's random 256-bit token, never the token: someone
// with a copy of the database cannot present a stored value as a cookie.
// (A plain hash suffices for a random 256-bit token: there is nothing to
// guess.)
type ConsoleSession struct {
	TokenHash []byte // 32 bytes
	Moderator string
	Created   time.Time
	Expires   time.Time
}

// ErrTOTPUsed refuses a TOTP time step that is not later than the last
// one the moderator signed in with (Store.UseTOTPStep): a code is good
// once, on every node of a deployment and after a restart.
var ErrTOTPUsed = errors.New("moderation: this TOTP code (or a later one) was already used; wait for the next code")

// ErrLastLead refuses to remove the last active lead: no one could
// manage moderators or decide appeals after.
var ErrLastLead = errors.New("moderation: the last active lead cannot be removed; make another lead first")

// ErrExists is returned when creating something whose name is taken.
var ErrExists = errors.New("moderation: already exists")
