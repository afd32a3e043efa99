// Package moderation keeps known terrorist and violent-extremist media out of
// Parley's public channels, which are broadcast and NOT end-to-end encrypted
// (private chats are MLS-encrypted and never scanned: the server cannot see
// them).
//
// It keeps persistent hash banks (industry lists such as GIFCT's or Tech
// Against Terrorism's, and the hashes this server's moderators confirmed),
// an in-memory matcher over them (hashing/index) that follows every bank
// change without a rebuild, a log of decisions, and the hash exchange: an
// HTTP feed of a bank's changes that another server syncs from a checkpoint.
//
// Every bank change is written to an append-only change log with a sequence
// number. Running servers apply the log to their index (Service.Refresh),
// the channel layer rescans published posts when hashes are added, and the
// exchange serves the same log to other servers, so deletions propagate.
package moderation

import (
	"context"
	"errors"
	"time"

	"github.com/parleychat/parley/hashing/hashlist"
)

// Errors that callers branch on with errors.Is.
var (
	ErrNotFound = errors.New("moderation: not found")
	ErrBadBank  = errors.New("moderation: invalid bank")
)

// Bank is one hash list as stored: its metadata and entry count.
type Bank struct {
	Name    string
	Source  string // where it comes from: a file name, a URL, "local"
	Label   string // e.g. "terrorist content"
	Tags    []string
	Action  hashlist.Action // block or review
	Version int64           // increases with every change to its entries
	Entries int
	// Checkpoint is where the next incremental sync of this bank resumes
	// (for banks synced from an exchange); empty otherwise.
	Checkpoint string
	Updated    time.Time
}

// Op is the kind of a change-log record.
type Op string

const (
	OpUpsert Op = "upsert" // an entry was added, or its tags changed
	OpDelete Op = "delete" // an entry was removed
)

// Change is one record of the bank change log.
type Change struct {
	Seq   int64
	Bank  string
	Op    Op
	Entry hashlist.Entry
	Time  time.Time
}

// Decision kinds.
const (
	DecisionBlock    = "block"    // an upload was refused
	DecisionHold     = "hold"     // an upload (or published post) was held for review
	DecisionLog      = "log"      // content matched a log-only list and stayed up
	DecisionTakedown = "takedown" // a published post was removed after a list change
	DecisionApprove  = "approve"  // a moderator released a held post
	DecisionReject   = "reject"   // a moderator removed a held post
	DecisionConfirm  = "confirm"  // a moderator confirmed a hash into a bank
	// DecisionRemoveChannel: a moderator deleted a channel (deciding a
	// held post's case).
	DecisionRemoveChannel = "remove_channel"
)

// Decision is one recorded moderation decision.
type Decision struct {
	ID       int64
	Time     time.Time
	Kind     string
	Bank     string
	Type     hashlist.SignalType
	Hash     string // the list's hash (lower-case hex; for vPDQ and TMK, hashlist.Entry.Fingerprint)
	Distance int    // PDQ Hamming distance; 0 for exact matches
	Subject  string // what it applies to, e.g. "post:42"
	Actor    string // moderator name; empty for automatic decisions
	Note     string
}

// Position says how far the banks have changed. A matcher that has applied
// a Position matches against every bank change committed before the store
// returned it.
type Position struct {
	// Change is the highest change-log Seq (as LastChange).
	Change int64
	// Meta moves whenever a bank is created or removed, or its label or
	// action changes: the change log records entries only, and a list
	// turned from review to block must refuse the next upload too.
	Meta int64
}

// Covers reports whether p is at or past q.
func (p Position) Covers(q Position) bool { return p.Change >= q.Change && p.Meta >= q.Meta }

// Store is the persistent state of package moderation. Implementations must
// make every method atomic: a failed call changes nothing. The contract
// suite is in package modtest.
type Store interface {
	// ImportBank creates or updates the bank named meta.Name (its Source,
	// Label, Tags and Action) and replaces its entries with entries, which
	// must be valid and unique. Hashes not in entries are removed. If the
	// entries are unchanged the version is not bumped and nothing is
	// logged, so importing the same file twice changes nothing.
	ImportBank(ctx context.Context, meta Bank, entries []hashlist.Entry) (Bank, hashlist.Delta, error)
	// ApplyDelta creates or updates the bank's metadata, applies d (adds,
	// retags and removals; removals of absent entries are ignored) and
	// stores checkpoint, all at once.
	ApplyDelta(ctx context.Context, meta Bank, d hashlist.Delta, checkpoint string) (Bank, error)
	// RemoveBank deletes a bank, logging the removal of each entry.
	RemoveBank(ctx context.Context, name string) error
	Bank(ctx context.Context, name string) (Bank, error)
	Banks(ctx context.Context) ([]Bank, error)
	// Entries returns a bank's entries sorted by type and value.
	Entries(ctx context.Context, bank string) ([]hashlist.Entry, error)
	// Changes returns up to limit (<= 0: 1000) change-log records with
	// Seq > since, in order; bank "" means every bank.
	Changes(ctx context.Context, bank string, since int64, limit int) ([]Change, error)
	// LastChange returns the highest Seq in the change log (0 if empty).
	LastChange(ctx context.Context) (int64, error)
	// Position returns where the banks are. The server asks before it
	// checks an upload and before it serves channel content, so that a
	// change "parleyd admin lists ..." committed in another process is in
	// force at once: it must be cheap (index lookups, no scan).
	Position(ctx context.Context) (Position, error)

	// SetPublishToken makes a bank available on the exchange to holders of
	// a token whose SHA-256 is tokenHash; nil stops publishing it.
	SetPublishToken(ctx context.Context, bank string, tokenHash []byte) error
	// PublishToken returns the token hash of a published bank, or
	// ErrNotFound.
	PublishToken(ctx context.Context, bank string) ([]byte, error)

	// RecordDecision appends d (ID is assigned) and returns its ID.
	RecordDecision(ctx context.Context, d Decision) (int64, error)
	// Decisions returns the most recent decisions first; subject "" means
	// all. limit <= 0 means 100.
	Decisions(ctx context.Context, subject string, limit int) ([]Decision, error)

	// FileReport adds a verified report of messages (all sent by one
	// account) to the open case that already holds one of them, or opens
	// a case; it returns the case's id. Messages already in the case are
	// not added twice.
	FileReport(ctx context.Context, r CaseReport, reported string, msgs []CaseMessage) (int64, error)
	// Case returns a case with its reports, messages and events.
	Case(ctx context.Context, id int64) (Case, error)
	// Cases lists up to limit (<= 0: 100) cases in a state ("" for all),
	// newest first, without their messages.
	Cases(ctx context.Context, state string, limit int) ([]Case, error)
	// ActOnCase records an action: a decision on an open case, an appeal
	// of a decided one (action "appeal"), or a decision on an appealed one
	// (which closes it); anything else is ErrCaseState. A hold case takes
	// the HoldActions only (anything else is ErrAction), and its decision
	// closes it (it has no appeal). The action also
	// goes to the decisions log (Kind "case:ACTION", Subject "case:ID").
	ActOnCase(ctx context.Context, id int64, e CaseEvent) (Case, error)
	// CasesAbout returns the report cases against account, newest first,
	// with their events but not their messages; at most limit (<= 0:
	// 100).
	CasesAbout(ctx context.Context, account string, limit int) ([]Case, error)
	// PurgeCases applies case retention: every decided or closed case
	// whose last event is before before loses what reporters sent (its
	// messages' content and proof, the reports' notes, a held post's
	// text). A case whose decision is still in force at now (a ban, a
	// suspension not ended) keeps its decision so that the sanction
	// stays; any other is deleted whole. Open and appealed cases are
	// kept. The decisions log keeps its entries (who decided what, when
	// and why), which carry no reported content. It returns how many
	// cases it purged.
	PurgeCases(ctx context.Context, before, now time.Time) (int, error)
	// FileHold opens a hold case for a channel post held by a review
	// list, unless the post has an open one already; it returns the
	// case's id either way.
	FileHold(ctx context.Context, h Hold, opened time.Time) (int64, error)
	// OpenHold returns the id of the post's open hold case, or
	// ErrNotFound.
	OpenHold(ctx context.Context, post int64) (int64, error)
	// Sanction returns the sanction in force against an account at now
	// (from its cases' latest decisions, in force while an appeal waits),
	// or the zero Sanction.
	Sanction(ctx context.Context, account string, now time.Time) (Sanction, error)
	// Sanctions is Sanction for many accounts at once: those of accounts
	// with a sanction in force, keyed by account (the server's session
	// check asks for every signed-in account each minute).
	Sanctions(ctx context.Context, accounts []string, now time.Time) (map[string]Sanction, error)

	// AddModerator creates a console account; a taken name is ErrExists.
	AddModerator(ctx context.Context, m Moderator) error
	// Moderator returns the account named name, or ErrNotFound.
	Moderator(ctx context.Context, name string) (Moderator, error)
	// Moderators lists the accounts by name, removed ones included.
	Moderators(ctx context.Context) ([]Moderator, error)
	// RemoveModerator deactivates an account (ErrNotFound if there is no
	// active one by that name; ErrLastLead for the last active lead) and
	// records it in the decisions log (Kind "moderator:remove", Subject
	// "moderator:NAME", Actor by), at once.
	RemoveModerator(ctx context.Context, name, by string, at time.Time) error

	// UseTOTPStep records that the active moderator name signed in with
	// the TOTP time step step (RFC 6238 §4), if step is later than the
	// last one recorded; else ErrTOTPUsed (ErrNotFound for no active
	// account). The check and the write are one conditional statement, so
	// of two nodes presenting the same code at once exactly one succeeds.
	UseTOTPStep(ctx context.Context, name string, step uint64) error

	// AddLoginFailure counts a failed console sign-in under subject
	// ("name:NAME" or "addr:ADDRESS") at at and returns the count in the
	// subject's current window: a window opens at the first failure after
	// the last one closed and lasts window. One statement, so failures on
	// every node add up; rows of closed windows are deleted.
	AddLoginFailure(ctx context.Context, subject string, at time.Time, window time.Duration) (int, error)
	// LoginFailures returns the count of subject's failures in its window
	// if that window is still open at now, else 0.
	LoginFailures(ctx context.Context, subject string, now time.Time, window time.Duration) (int, error)

	// AddConsoleSession stores a signed-in moderator's console session
	// (its TokenHash must be new) and deletes the sessions expired at
	// s.Created, at once.
	AddConsoleSession(ctx context.Context, s ConsoleSession) error
	// ConsoleSession returns the session whose token hashes to tokenHash
	// if it has not expired at now and its moderator is active; else
	// ErrNotFound. RemoveModerator ends the moderator's sessions.
	ConsoleSession(ctx context.Context, tokenHash []byte, now time.Time) (ConsoleSession, error)
	// EndConsoleSession deletes a session (signing out); an unknown one is
	// not an error.
	EndConsoleSession(ctx context.Context, tokenHash []byte) error

	Close() error
}

// PageLimit is what a Store method does with its limit argument: limit, or
// def when limit <= 0 (the default each method's doc states).
func PageLimit(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}
