package moderation

import (
	"errors"
	"slices"
	"time"
)

// Abuse report cases (docs/moderation.md). A case gathers the verified
// reports against one account's messages; reports naming a message that
// an open case already holds join that case. Every action on a case is
// also a Decision in the append-only log (RecordDecision), with its
// moderator and reason.

// Case states.
const (
	CaseOpen     = "open"
	CaseDecided  = "decided"
	CaseAppealed = "appealed"
	CaseClosed   = "closed" // an appeal was decided
)

// Case actions moderators take.
const (
	ActionDismiss = "dismiss"
	ActionWarn    = "warn"
	ActionSuspend = "suspend"
	ActionBan     = "ban"
)

// Actions lists the case actions.
var Actions = []string{ActionDismiss, ActionWarn, ActionSuspend, ActionBan}

// Case is a moderation case.
type Case struct {
	ID       int64         `json:"id"`
	Opened   time.Time     `json:"opened"`
	Reported string        `json:"reported"` // the reported account
	State    string        `json:"state"`
	Reports  []CaseReport  `json:"reports"`
	Messages []CaseMessage `json:"messages"`
	Events   []CaseEvent   `json:"events,omitempty"`
}

// CaseReport is one report that joined the case.
type CaseReport struct {
	Reporter string    `json:"reporter"`
	Reason   string    `json:"reason"`
	Note     string    `json:"note,omitempty"`
	Received time.Time `json:"received"`
}

// CaseMessage is one verified message of the case: the content the
// reporter's client decrypted, and the proof that the reported account
// sent it (its franking tag, salt and the server's frank).
type CaseMessage struct {
	Tag          []byte    `json:"tag"`
	Conversation []byte    `json:"conversation"`
	SenderUser   string    `json:"sender_user"`
	SenderDevice string    `json:"sender_device"`
	Accepted     time.Time `json:"accepted"`
	Content      []byte    `json:"content"`
	Salt         []byte    `json:"salt"`
	Frank        []byte    `json:"frank"`
}

// CaseEvent is one action on a case.
type CaseEvent struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"` // dismiss, warn, suspend, ban, appeal
	Moderator string    `json:"moderator,omitempty"`
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until,omitzero"` // suspensions
}

// Sanction is a decision in force against an account.
type Sanction struct {
	Case   int64
	Banned bool
	Until  time.Time // suspensions
	Reason string
}

// Active reports whether the sanction bars the account.
func (s Sanction) Active() bool { return s.Banned || !s.Until.IsZero() }

// Errors of the case methods.
var (
	ErrCaseState = errors.New("moderation: the case is not in a state that allows this")
	ErrAction    = errors.New("moderation: unknown action")
)

// ValidAction reports whether a is a case action.
func ValidAction(a string) bool { return slices.Contains(Actions, a) }
