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
}

// ErrExists is returned when creating something whose name is taken.
var ErrExists = errors.New("moderation: already exists")
