package moderation

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Moderation cases (docs/moderation.md): the one queue moderators work.
// A report case gathers the verified reports against one account's
// messages; reports naming a message that an open case already holds join
// that case. A hold case is a public channel post that matched a review
// list, waiting for a moderator to release or remove it. Every action on
// a case is also a Decision in the append-only log (RecordDecision), with
// its moderator and reason.

// Case kinds.
const (
	KindReport = "report" // abuse reports of private messages, with proof
	KindHold   = "hold"   // a channel post held by a review list
)

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

// Actions lists the actions on report cases.
var Actions = []string{ActionDismiss, ActionWarn, ActionSuspend, ActionBan}

// Actions on hold cases: they act on the channel (package channels does
// it, then records the action with ActOnCase). A hold case has no appeal:
// the decision closes it.
const (
	ActionRelease       = "release"        // publish the held post
	ActionRemovePost    = "remove_post"    // remove the post
	ActionRemoveChannel = "remove_channel" // delete the whole channel
)

// HoldActions lists the actions on hold cases.
var HoldActions = []string{ActionRelease, ActionRemovePost, ActionRemoveChannel}

// ValidHoldAction reports whether a is a hold case action.
func ValidHoldAction(a string) bool { return slices.Contains(HoldActions, a) }

// ActionsFor returns the actions that decide a case of kind.
func ActionsFor(kind string) []string {
	if kind == KindHold {
		return HoldActions
	}
	return Actions
}

// CheckCaseEvent is what every Store's ActOnCase does before its
// transaction: an action no kind of case takes is ErrAction (whether the
// case's kind and state take it is NextCaseState's to say), and a zero
// Time is now.
func CheckCaseEvent(e CaseEvent) (CaseEvent, error) {
	if e.Action != "appeal" && !ValidAction(e.Action) && !ValidHoldAction(e.Action) {
		return e, fmt.Errorf("%w %q", ErrAction, e.Action)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return e, nil
}

// NextCaseState is the case state machine every store applies, in the
// transaction that records action: a report case goes open → decided by
// a decision, decided → appealed by the reported account's one appeal,
// appealed → closed by the lead's decision on it; a hold case goes open →
// closed by its one decision and has no appeal. It returns the state after
// action, or an error wrapping ErrAction (an action the kind does not
// take) or ErrCaseState (not now).
func NextCaseState(kind, state, action string) (string, error) {
	if action != "appeal" && !slices.Contains(ActionsFor(kind), action) {
		return "", fmt.Errorf("%w %q for a %s case (it takes %v)", ErrAction, action, kind, ActionsFor(kind))
	}
	switch {
	case kind == KindHold:
		if action == "appeal" || state != CaseOpen {
			return "", fmt.Errorf("%w: %s a hold case that is %s", ErrCaseState, action, state)
		}
		return CaseClosed, nil
	case action == "appeal" && state == CaseDecided:
		return CaseAppealed, nil
	case action != "appeal" && state == CaseOpen:
		return CaseDecided, nil
	case action != "appeal" && state == CaseAppealed:
		return CaseClosed, nil
	}
	return "", fmt.Errorf("%w: %s a case that is %s", ErrCaseState, action, state)
}

// Hold is what a hold case is about: a channel post and the list entries
// its media matched.
type Hold struct {
	Post    int64       `json:"post"`
	Channel string      `json:"channel"`
	Author  string      `json:"author"`
	Text    string      `json:"text,omitempty"`
	Matches []HoldMatch `json:"matches"`
}

// HoldMatch is one list entry a held post's media matched. It is generic
// over signal types: Type names the hash (pdq, md5, sha256, or a video
// signal such as vpdq or tmk), Distance is that type's distance (0 for
// exact hashes), and Detail carries what a type has beyond one distance
// (for a video, which frames matched), in words for the moderator.
type HoldMatch struct {
	Media    int    `json:"media"` // index of the post's file
	List     string `json:"list"`
	Label    string `json:"label,omitempty"`
	Type     string `json:"type"`
	Hash     string `json:"hash"`
	Distance int    `json:"distance"`
	Detail   string `json:"detail,omitempty"`
}

// HoldMatchOf describes match m of the post's file media.
func HoldMatchOf(media int, m Match) HoldMatch {
	return HoldMatch{Media: media, List: m.Bank, Label: m.Label, Type: string(m.Type), Hash: m.Hash, Distance: m.Distance}
}

// Case is a moderation case.
type Case struct {
	ID     int64     `json:"id"`
	Kind   string    `json:"kind"` // KindReport or KindHold
	Opened time.Time `json:"opened"`
	// Reported is the reported account, or the held post's author.
	Reported string        `json:"reported"`
	State    string        `json:"state"`
	Hold     *Hold         `json:"hold,omitempty"` // hold cases`
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
	Action    string    `json:"action"` // dismiss, warn, suspend, ban, appeal; release, remove_post, remove_channel
	Moderator string    `json:"moderator,omitempty"`
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until,omitzero"` // suspensions
}

// Notice is a decision the reported account is told of.
type Notice struct {
	Case       int64
	Action     string // warn, suspend, ban; or dismiss, deciding an appeal
	Reason     string
	Until      time.Time
	Decided    time.Time
	Appeal     bool // it decides the account's appeal
	Appealable bool // the account may still appeal it
}

// NoticesOf returns what the reported account of each case is told, newest
// first: every decision that acts against it (warn, suspend, ban) and the
// decision on its appeal, whatever it is. A first decision that dismisses
// the reports is not told (as WhatsApp and Signal tell users of actions
// against them only): telling it would tell the account that someone
// reported it, and whom to suspect.
func NoticesOf(cases []Case) []Notice {
	var out []Notice
	for _, c := range cases {
		if c.Kind == KindHold {
			continue
		}
		appealed := false
		var told []Notice
		for _, e := range c.Events {
			if e.Action == "appeal" {
				appealed = true
				continue
			}
			if !appealed && e.Action == ActionDismiss {
				continue
			}
			told = append(told, Notice{Case: c.ID, Action: e.Action, Reason: e.Reason, Until: e.Until, Decided: e.Time,
				Appeal: appealed, Appealable: !appealed && c.State == CaseDecided})
		}
		// Newest first within the case too, so that equal times keep
		// that order in the sort below.
		slices.Reverse(told)
		out = append(out, told...)
	}
	slices.SortStableFunc(out, func(a, b Notice) int { return b.Decided.Compare(a.Decided) })
	return out
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

// With folds one case's latest decision (action, until for a suspension,
// in milliseconds since 1970) into the sanction in force at now: a ban
// wins, then the suspension that ends last; a suspension that has ended,
// and any other action, adds nothing. Every Store's Sanction and
// Sanctions fold their cases with it.
func (s Sanction) With(caseID int64, action string, untilMs int64, reason string, now time.Time) Sanction {
	switch {
	case action == ActionBan && !s.Banned:
		return Sanction{Case: caseID, Banned: true, Reason: reason}
	case action == ActionSuspend && !s.Banned && untilMs > now.UnixMilli() && time.UnixMilli(untilMs).After(s.Until):
		return Sanction{Case: caseID, Until: time.UnixMilli(untilMs).UTC(), Reason: reason}
	}
	return s
}

// Errors of the case methods.
var (
	ErrCaseState = errors.New("moderation: the case is not in a state that allows this")
	ErrAction    = errors.New("moderation: unknown action")
	// ErrHoldGone: a held post cannot be released because it is no
	// longer held (removed, or deleted with its channel); removing it
	// closes its case.
	ErrHoldGone = errors.New("moderation: the held post is no longer held, so it cannot be released; remove it to close the case")
)

// ValidAction reports whether a is a case action.
func ValidAction(a string) bool { return slices.Contains(Actions, a) }
