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

// ErrLastLead refuses to remove the last active lead: no one could
// manage moderators or decide appeals after.
var ErrLastLead = errors.New("moderation: the last active lead cannot be removed; make another lead first")

// ErrExists is returned when creating something whose name is taken.
var ErrExists = errors.New("moderation: already exists")
