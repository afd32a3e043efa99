// Package store defines the storage interface of parleyd, the Parley
// delivery server. Backends (store/sqlitestore now; PostgreSQL and NATS
// later) implement Store and must pass the contract suite in
// store/storetest.
//
// The store keeps only what delivery needs (RFC 9750 §4): accounts and
// their device identity keys, opaque key packages, and per conversation
// the member device ids, the current epoch and a log of opaque messages
// that is trimmed as soon as every member has acknowledged it.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors; backends wrap them so callers use errors.Is.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrInvalidInvite = errors.New("store: invalid or used invite code")
	ErrNotMember     = errors.New("store: device is not a member of the conversation")
	ErrUnknownDevice = errors.New("store: unknown device")
	ErrWrongEpoch    = errors.New("store: wrong epoch")
	ErrBadRequest    = errors.New("store: invalid request")
	ErrClosed        = errors.New("store: closed")
	// ErrInboxFull is returned by Append when a commit's Welcome would
	// take an added device's inbox over Append.InboxLimits.
	ErrInboxFull = errors.New("store: the added device's inbox is full")
)

// EpochConflictError is returned by Append when a commit was made in an
// epoch that an earlier commit already closed. Winner is that commit.
// errors.Is(err, ErrEpochConflict) is true for it.
type EpochConflictError struct {
	Winner Message
}

// ErrEpochConflict matches any *EpochConflictError.
var ErrEpochConflict = errors.New("store: epoch conflict")

func (e *EpochConflictError) Error() string {
	return fmt.Sprintf("store: epoch %d already has a commit (seq %d)", e.Winner.Epoch, e.Winner.Seq)
}

func (e *EpochConflictError) Is(target error) bool { return target == ErrEpochConflict }

// Kind is the MLS content type a client declares for a message.
type Kind uint8

const (
	KindCommit      Kind = 1
	KindProposal    Kind = 2
	KindApplication Kind = 3
	KindWelcome     Kind = 4
	// KindRefused is an inbox entry only: the members' verdicts undid
	// the device's addition by the commit of the entry's ID
	// (Store.Verdict).
	KindRefused Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindCommit:
		return "commit"
	case KindProposal:
		return "proposal"
	case KindApplication:
		return "application"
	case KindWelcome:
		return "welcome"
	case KindRefused:
		return "refused"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Device is one of an account's devices.
type Device struct {
	ID        string
	Username  string
	PublicKey []byte // Ed25519
	Created   time.Time
	// LastSeen is the day (UTC midnight) the device last authenticated;
	// zero if never since it was recorded. Only the day is kept.
	LastSeen time.Time
}

// Link is a pending request of a new device to join an account.
type Link struct {
	Username  string
	Code      string
	PublicKey []byte
	Expires   time.Time
	// MLSKey and MAC are the new device's MLS signature key and its
	// end-to-end link MAC (opaque to the server; see docs/transparency.md).
	MLSKey, MAC []byte
}

// DeviceList is an account's signed device list as the server keeps it:
// Signed is opaque here (the server parses and checks it before storing).
type DeviceList struct {
	Username   string
	AccountKey []byte
	Version    uint64
	Signed     []byte
	// ResetKey lets the list bind a new account key (the primary device
	// was lost); the version must still go up.
	ResetKey bool
}

// Sentinel errors of PublishDeviceList.
var (
	// ErrAccountKey: the list is signed by another key than the one the
	// account's first list bound.
	ErrAccountKey = errors.New("store: device list signed by another account key")
	// ErrStaleVersion: the list's version is not above the stored one.
	ErrStaleVersion = errors.New("store: device list version not newer")
)

// KTState is the key transparency directory's stored state.
type KTState struct {
	Records   [][]byte // every epoch's log record, in order
	Labels    []KTLabel
	Published []byte // the served checkpoint, nil if none stored
}

// KTLabel is a label's current state in the directory.
type KTLabel struct {
	Label    string
	Index    []byte
	VRFProof []byte
	Leaf     []byte
	Epoch    uint64 // of its current version
	Version  uint32
}

// KTVersion is one version of a label, as published in Epoch.
type KTVersion struct {
	Label   string
	Epoch   uint64
	Version uint32
	Prev    []byte
	Opening []byte
	Value   []byte
}

// KTEpoch is one epoch of the directory, to store atomically.
type KTEpoch struct {
	Epoch    uint64
	Record   []byte
	Changes  []byte
	Labels   []KTLabel   // new state of the labels updated
	Versions []KTVersion // their new versions
	Removed  []string    // labels removed
}

// LegalRequest is a lawful request as recorded, with what was done about
// it. The package legal gives the fields their meaning; the store keeps
// them.
type LegalRequest struct {
	ID       string
	Recorded time.Time
	// Data is the request with its answer, preservation and publication,
	// encoded by package legal (JSON). It holds the account names and the
	// answer package: it never leaves the server but in an answer.
	Data []byte
	// PreservedUntil is when preserved data must be deleted (zero: none).
	PreservedUntil time.Time
}

// KeyPackage is an opaque MLS KeyPackage with its client-declared ref
// and cipher suite.
type KeyPackage struct {
	Ref  []byte
	Data []byte
	// Suite is the MLS cipher suite the client declared; 0 is stored as
	// 1 (the suite of every key package from before suites were declared).
	Suite uint16
}

// DeviceKeyPackage is a key package handed out for a device.
type DeviceKeyPackage struct {
	DeviceID   string
	KeyPackage KeyPackage
	LastResort bool
	// Remaining is how many non-last-resort packages of the fetched
	// suite the device has left.
	Remaining int
}

// Message is an entry of a conversation log or of a device inbox.
type Message struct {
	ID             []byte
	ConversationID []byte
	Seq            uint64 // log or inbox sequence number, from 1
	Epoch          uint64
	Kind           Kind
	Sender         string // device id
	Payload        []byte
	Stored         time.Time
}

// Append is a message to add to a conversation log.
type Append struct {
	ID             []byte
	ConversationID []byte
	Epoch          uint64
	Kind           Kind // commit, proposal or application
	Sender         string
	Payload        []byte
	// Commit only.
	Added   []string
	Removed []string
	Welcome []byte // delivered to the inbox of every added device
	// InboxLimits bound what the Welcome may add to each added device's
	// inbox (zero fields: no bound).
	InboxLimits InboxLimits
	// Expires, for application messages only (ErrBadRequest otherwise),
	// is when the message disappears (zero: never): DeleteDisappeared
	// removes it then, fetched or not. Only the client's say; the store
	// keeps it to the second.
	Expires time.Time
	// FirstSent is when the client first tried to send the message, in
	// milliseconds since 1970 (SendRequest.first_sent_unix_ms), 0 if it
	// did not say. With ID it keys the idempotency record: a retry is a
	// duplicate when it repeats both. A store may key by ID alone (then a
	// retry with another FirstSent is a duplicate too); SQLite and
	// PostgreSQL key by both, so that the records of new messages, whose
	// FirstSent is about now, are written side by side at the end of the
	// index instead of at random places in it (docs/protocol.md,
	// "Idempotency").
	FirstSent int64
}

// InboxLimits bound the bytes of unacknowledged Welcomes in one device's
// inbox, so that no one can fill another person's inbox (a device that
// cannot fetch its inbox cannot sync). Payload bytes are counted.
type InboxLimits struct {
	// PerSender bounds the bytes from all devices of the sender's account.
	PerSender int64
	// Total bounds the bytes from everyone.
	Total int64
	// PerSenderCount and TotalCount bound the number of Welcomes the
	// same way: small Welcomes must not add a device to unbounded numbers
	// of conversations between two of its syncs.
	PerSenderCount, TotalCount int
}

// AppendResult describes a stored message.
type AppendResult struct {
	Message   Message // as stored (the original if Duplicate)
	Duplicate bool
	Epoch     uint64 // the conversation epoch after the append
	// Recipients are the devices that should be told about the message:
	// the active members after the append plus the devices it removed.
	Recipients []string
	// Welcomes are the inbox entries created for added devices.
	Welcomes []InboxEntry
}

// InboxEntry is a message in a device's inbox.
type InboxEntry struct {
	DeviceID string
	Message  Message
}

// Conversation is what the server knows about an MLS group.
type Conversation struct {
	ID      []byte
	Epoch   uint64
	Members []string // active member device ids, sorted
	HeadSeq uint64   // seq of the last appended message
}

// Membership is a device's view of one conversation.
type Membership struct {
	Conversation
	Cursor uint64 // last acknowledged seq
	// RemovedAt is non-zero when the device was removed by the commit with
	// that seq; it may still fetch up to and including it.
	RemovedAt uint64
}

// VerdictOutcome is what Store.Verdict did.
type VerdictOutcome uint8

const (
	// VerdictIgnored: the device has no say on the commit (or gave its
	// verdict already), or nothing of the commit is pending.
	VerdictIgnored VerdictOutcome = iota
	// VerdictCounted: counted; nothing was decided by it yet.
	VerdictCounted
	// VerdictDecided: counted, and some of the commit's pending changes
	// were decided by it (took effect, were undone, or were kept).
	VerdictDecided
)

func (v VerdictOutcome) String() string {
	switch v {
	case VerdictIgnored:
		return "ignored"
	case VerdictCounted:
		return "counted"
	case VerdictDecided:
		return "decided"
	}
	return fmt.Sprintf("VerdictOutcome(%d)", uint8(v))
}

// ErrLookalike is returned by CreateAccount for a username that looks
// like an existing one (the same wire.UsernameSkeleton).
var ErrLookalike = errors.New("store: username looks like an existing one")

// GroupInvites is who may add an account's devices to group
// conversations (direct conversations are open to anyone not blocked).
type GroupInvites uint8

const (
	GroupInvitesEveryone GroupInvites = 1 // the default
	// GroupInvitesContacts: only accounts the account has a direct
	// conversation with.
	GroupInvitesContacts GroupInvites = 2
)

// Privacy is what an account has said about who may add its devices to
// conversations.
type Privacy struct {
	Blocked      []string // usernames, sorted; they may add it to nothing
	GroupInvites GroupInvites
}

// MaxBlocked bounds an account's block list.
const MaxBlocked = 1000

// Store is the storage of a delivery server. All methods are safe for
// concurrent use. Errors wrap the sentinels above.
type Store interface {
	// CreateInvite stores a registration invite code.
	CreateInvite(ctx context.Context, code string, expires time.Time) error
	// CreateAccount creates an account with its first device. If invite is
	// not empty it must name an unexpired invite, which is consumed.
	// ErrExists if the username or key is taken; ErrLookalike if another
	// account's name has the same wire.UsernameSkeleton.
	CreateAccount(ctx context.Context, dev Device, invite string) error
	Device(ctx context.Context, id string) (Device, error)
	// DevicesByID returns those of ids that are devices, keyed by id
	// (absent ids are left out; no error for them). The server's session
	// check looks every connected device up with it, many per query.
	DevicesByID(ctx context.Context, ids []string) (map[string]Device, error)
	DeviceByKey(ctx context.Context, publicKey []byte) (Device, error)
	// Devices lists an account's devices; ErrNotFound for no account.
	Devices(ctx context.Context, username string) ([]Device, error)
	// RemoveDevice deletes a device, its key packages, inbox and
	// conversation cursors.
	RemoveDevice(ctx context.Context, id string) error
	// DeleteAccount deletes every device of the account (as RemoveDevice)
	// and its pending links, and returns the deleted device ids. The
	// username stays taken, with nothing else kept, so that no one can
	// register it again and pass for the deleted user in old
	// conversations. ErrNotFound for no account.
	DeleteAccount(ctx context.Context, username string) ([]string, error)

	// Privacy returns an account's settings (GroupInvitesEveryone and no
	// one blocked until it changes them); ErrNotFound for no account.
	Privacy(ctx context.Context, username string) (Privacy, error)
	// UpdatePrivacy blocks and unblocks accounts (ErrNotFound if one of
	// block does not exist, ErrBadRequest for blocking oneself or going
	// over MaxBlocked; nothing changes then) and, if invites is not zero,
	// sets GroupInvites. It returns the settings as they now are.
	// DeleteAccount removes them.
	UpdatePrivacy(ctx context.Context, username string, block, unblock []string, invites GroupInvites) (Privacy, error)

	// CreateLink stores a pending device link; ErrExists if the code is
	// in use for that account, ErrNotFound if there is no such account.
	CreateLink(ctx context.Context, l Link) error
	// ApproveLink consumes the unexpired link (username, code) and creates
	// the device dev with the link's key. If dev.PublicKey is set it must
	// be that key (ErrBadRequest, nothing changes): the approver checked
	// it. confirmation, if not empty, is kept for TakeLinkConfirmation.
	ApproveLink(ctx context.Context, username, code string, dev Device, confirmation []byte, now time.Time) (Device, error)
	// Link returns the unexpired pending link (username, code);
	// ErrNotFound if there is none.
	Link(ctx context.Context, username, code string, now time.Time) (Link, error)
	// TakeLinkConfirmation returns and forgets the confirmation stored by
	// ApproveLink for the device (nil if none).
	TakeLinkConfirmation(ctx context.Context, deviceID string) ([]byte, error)

	// PublishDeviceList stores an account's signed device list: the first
	// binds l.AccountKey to the account, later ones must carry the same key
	// (ErrAccountKey) and a higher version (ErrStaleVersion); ErrNotFound
	// for no account. DeleteAccount removes it.
	PublishDeviceList(ctx context.Context, l DeviceList) error
	// DeviceList returns the account's latest list; ErrNotFound if it has
	// none (or no account).
	DeviceList(ctx context.Context, username string) (DeviceList, error)

	// Key transparency directory (package transparency/directory). The
	// directory's state is its log records, its labels and their
	// versions; KTCommitEpoch stores an epoch atomically, so what is
	// loaded always matches a signed checkpoint.

	// KTLoad returns the directory's stored state.
	KTLoad(ctx context.Context) (KTState, error)
	// KTPending returns up to limit accounts whose latest device list is
	// not the version in the directory: a new list (Signed set) or a
	// deleted account's (Signed nil, to remove).
	KTPending(ctx context.Context, limit int) ([]DeviceList, error)
	// KTCommitEpoch stores an epoch: its record and changes (ErrExists if
	// the epoch is stored already, ErrBadRequest if it is not the next),
	// its labels' new state and versions, and its removals (which delete
	// the label's versions too).
	KTCommitEpoch(ctx context.Context, e KTEpoch) error
	// KTSetPublished stores the checkpoint (with its cosignatures) the
	// directory serves.
	KTSetPublished(ctx context.Context, note []byte) error
	// KTVersion returns the version of label published in epoch;
	// ErrNotFound if there is none.
	KTVersion(ctx context.Context, label string, epoch uint64) (KTVersion, error)
	// KTVersions returns up to limit versions of label published after
	// epoch after (from the first if fromStart), oldest first.
	KTVersions(ctx context.Context, label string, after uint64, fromStart bool, limit int) ([]KTVersion, error)
	// KTEpoch returns an epoch's log record and encoded changes;
	// ErrNotFound if it is not stored.
	KTEpoch(ctx context.Context, epoch uint64) (record, changes []byte, err error)

	// AccountCreated returns when an account was registered (deleted
	// accounts keep their name and this time); ErrNotFound for none.
	AccountCreated(ctx context.Context, username string) (time.Time, error)
	// SeenDevice records that a device authenticated on day (UTC
	// midnight); only the day is kept.
	SeenDevice(ctx context.Context, deviceID string, day time.Time) error

	// Lawful requests (package legal): requests with their answers and
	// preservations, and the legal log's records. LegalPut stores r
	// (inserting or replacing it by ID) and appends record to the legal
	// log in one transaction, returning the record's index (-1 for a nil
	// record: nothing appended).
	LegalPut(ctx context.Context, r LegalRequest, record []byte) (int64, error)
	// LegalGet returns a request; ErrNotFound if there is none.
	LegalGet(ctx context.Context, id string) (LegalRequest, error)
	// LegalList returns every request, oldest first.
	LegalList(ctx context.Context) ([]LegalRequest, error)
	// LegalLog returns every record of the legal log, in order.
	LegalLog(ctx context.Context) ([][]byte, error)
	// LegalAppend appends a record that belongs to no request (a
	// transparency report) and returns its index.
	LegalAppend(ctx context.Context, record []byte) (int64, error)

	// AddKeyPackages stores key packages for a device; lastResort, if not
	// nil, replaces the device's last-resort package of the same suite (a
	// device has one per suite). Returns the number of non-last-resort
	// packages now held, of all suites.
	AddKeyPackages(ctx context.Context, deviceID string, kps []KeyPackage, lastResort *KeyPackage) (int, error)
	// ConsumeKeyPackages atomically takes one key package of suite (0
	// means 1) for each listed device (or every device of username if
	// devices is empty): the oldest non-last-resort package of that suite,
	// else the suite's last-resort one, which is kept. Devices without any
	// package of the suite are left out. A device listed twice is
	// ErrBadRequest, and nothing is taken.
	ConsumeKeyPackages(ctx context.Context, username string, devices []string, suite uint16) ([]DeviceKeyPackage, error)
	// CountKeyPackages counts a device's non-last-resort packages, of all
	// suites.
	CountKeyPackages(ctx context.Context, deviceID string) (int, error)
	// KeyPackageCounts counts a device's non-last-resort packages per
	// suite, for every suite it holds any package of (a suite with only a
	// last-resort package counts 0).
	KeyPackageCounts(ctx context.Context, deviceID string) (map[uint16]int, error)

	// CreateConversation creates a conversation at epoch 0 with creator
	// as its only member.
	CreateConversation(ctx context.Context, id []byte, creator string) error
	Conversation(ctx context.Context, id []byte) (Conversation, error)
	// Memberships lists the conversations a device belongs to (or was
	// removed from and has not yet caught up with).
	Memberships(ctx context.Context, deviceID string) ([]Membership, error)
	// Append adds a message to a conversation log, durably, in this order
	// of checks (each failure changes nothing):
	//   - ID 16 bytes, kind commit/proposal/application, delta and Welcome
	//     only on commits, no repeated device ids (ErrBadRequest);
	//   - the conversation exists (ErrNotFound) and Sender is an active
	//     member (ErrNotMember);
	//   - an ID already stored in the conversation by the same sender
	//     returns the original with Duplicate set (ErrExists if another
	//     sender used it);
	//   - Epoch > current: ErrWrongEpoch. A commit for a past epoch:
	//     *EpochConflictError with that epoch's winning commit (or
	//     ErrWrongEpoch if it expired). A proposal must be for the current
	//     epoch; an application message may be for a past one;
	//   - a commit's Added devices must exist (ErrUnknownDevice) and not be
	//     active members (ErrBadRequest); Removed ones must be active
	//     members (ErrNotMember) unless the device no longer exists;
	//   - its Welcome must fit in every added device's inbox under
	//     InboxLimits (ErrInboxFull).
	// On success the message gets seq = head+1; a commit advances the epoch,
	// starts added devices' cursors at its seq, lets removed devices read
	// up to and including it, and puts Welcome into each added device's
	// inbox. A sender whose cursor was seq-1 is moved to seq. Changes to
	// devices of another account than the sender's are pending until
	// Verdict decides them: such a removed device stays an active member
	// until then.
	Append(ctx context.Context, a Append) (AppendResult, error)
	// Fetch returns up to limit messages after the device's cursor.
	Fetch(ctx context.Context, deviceID string, conversationID []byte, limit int) ([]Message, error)
	// Ack moves the device's cursor to seq (never backwards) and deletes
	// messages every member has acknowledged.
	Ack(ctx context.Context, deviceID string, conversationID []byte, seq uint64) error
	// Verdict records a member device's verdict on a commit it processed
	// (docs/protocol.md §14, "Verdicts"). A commit's Added and Removed
	// devices of another account than the committer's are pending until
	// the verdicts decide them: a removed device stays an active member
	// meanwhile, an added one is a member at once. The commit's voters
	// are the active members when it was appended, less the devices of
	// the committer's account, the devices it changed, and devices whose
	// own addition was still pending; each voter's first verdict counts.
	// A removal takes effect (as Append would have applied it: the device
	// may read up to and including the commit) once every voter accepted
	// it; an addition is undone (the device is no member; its Welcome
	// stays in its inbox) once every voter refused it and none accepted.
	// So a lone lying voter can neither cut a member off nor undo an
	// addition. A device that leaves the group (removed, its addition
	// undone, or deleted) stops being a voter, and what waited for it is
	// decided again. A commit with no voters is decided by each changed
	// device's own verdict on its own change. Other verdicts are ignored:
	// a commit already decided or never pending, a device with no say or
	// that gave its verdict already. ErrBadRequest for a commit id that
	// is not 16 bytes, ErrNotMember if the device is not a member at all.
	Verdict(ctx context.Context, deviceID string, conversationID, commitID []byte, refuse bool) (VerdictOutcome, error)

	FetchInbox(ctx context.Context, deviceID string, limit int) ([]Message, error)
	AckInbox(ctx context.Context, deviceID string, seq uint64) error

	// DeleteExpired removes messages, inbox entries, idempotency records
	// and epoch commits stored before the given time, and links and
	// invites that expired before now. It returns how many were removed.
	DeleteExpired(ctx context.Context, before, now time.Time) (int, error)
	// DeleteDisappeared removes every message whose Append.Expires is at
	// or before now, with its idempotency record, so that nothing of it
	// stays on disk (the backend overwrites the freed space: SQLite's
	// secure_delete and a truncated WAL; PostgreSQL's VACUUM of the
	// table). It returns how many it removed and the earliest expiry
	// still stored (zero if none), for the caller to come back then.
	DeleteDisappeared(ctx context.Context, now time.Time) (n int, next time.Time, err error)

	// Rate-limit counters shared by every node using the store (the
	// server's per-account limits, docs/abuse.md "Across nodes"). They
	// are for stopping floods, not metering: a backend may lose them in
	// a crash, and one owned by a single process (SQLite) keeps them in
	// memory.

	// CountLimit adds n (0 to read) to key's counter in its current
	// window and returns the window's total and end. A window begins at
	// the first count after the previous one ended (at or before now) and
	// lasts per; counts from every node add up in the same window.
	CountLimit(ctx context.Context, key string, n int, per time.Duration, now time.Time) (total int, ends time.Time, err error)
	// DeleteEndedLimits forgets the windows that ended at or before now.
	DeleteEndedLimits(ctx context.Context, now time.Time) error

	// Slots count what is held at once across the nodes (an account's
	// open connections), each node's share under a lease it renews, so
	// that the share of a node that died (SIGKILL: it released nothing)
	// stops counting when its lease ends.

	// AcquireSlot adds one to node's count for key if the counts of
	// every node whose lease has not ended at now (node's own always
	// counts) stay within max, and sets node's lease for key to
	// leaseEnds. It reports whether it added one. Acquisitions of one key
	// are serialised across nodes: max holds exactly.
	AcquireSlot(ctx context.Context, key, node string, max int, leaseEnds, now time.Time) (bool, error)
	// ReleaseSlot takes one from node's count for key (forgetting it at
	// zero); a count already zero stays so.
	ReleaseSlot(ctx context.Context, key, node string) error
	// RenewSlots sets every lease of node to leaseEnds and forgets other
	// nodes' counts whose leases ended at or before now.
	RenewSlots(ctx context.Context, node string, leaseEnds, now time.Time) error

	// Close flushes pending writes and releases resources.
	Close() error
}

// Blobs stores attachment ciphertext, and for each blob the account that
// uploaded it and its size, so that the server can enforce per-account
// quotas and let an account delete its own blobs. It is a seam like Store:
// store/blobstore keeps blobs in a directory; an object store (S3) with a
// PostgreSQL index would implement the same methods and pass the contract
// suite in store/blobtest. All methods are safe for concurrent use.
type Blobs interface {
	// Put streams r into a new blob owned by account owner (not empty:
	// ErrBadRequest). It fails with ErrTooLarge if r is longer than
	// lim.Max bytes, and with ErrQuotaExceeded if owner would then hold
	// more than lim.Quota bytes (quota checked atomically with storing,
	// so concurrent Puts cannot overshoot it together). A failed Put
	// stores nothing. The blob is durable when Put returns.
	Put(ctx context.Context, owner string, r io.Reader, lim PutLimits) (id string, size int64, err error)
	// Open returns the blob's contents and size; ErrNotFound if absent.
	Open(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// Delete removes blob id if owner uploaded it. ErrNotFound if there
	// is no such blob or another account owns it: the caller cannot tell
	// the two apart, so blob ids cannot be probed.
	Delete(ctx context.Context, owner, id string) error
	// DeleteOwner removes every blob of owner (account deletion) and
	// returns how many.
	DeleteOwner(ctx context.Context, owner string) (int, error)
	// Usage returns what owner holds now.
	Usage(ctx context.Context, owner string) (BlobUsage, error)
	// DeleteExpired removes blobs stored before the given time.
	DeleteExpired(ctx context.Context, before time.Time) (int, error)
	// DeleteDisappeared removes the blobs whose PutLimits.Expires is at
	// or before now, and returns how many and the earliest expiry still
	// stored (zero if none).
	DeleteDisappeared(ctx context.Context, now time.Time) (n int, next time.Time, err error)
}

// BlobURLs is implemented by a Blobs whose blobs can be downloaded from
// somewhere other than the server, such as an S3 bucket's pre-signed
// URLs: the server then answers a download with a redirect there, and
// the bytes do not pass through it. A blob's bytes are the client's
// ciphertext, checked by the client against the digest in the message
// that named it, so the URL's host learns nothing and can change nothing.
type BlobURLs interface {
	// DownloadURL returns a URL from which blob id's bytes can be
	// fetched without credentials for a short while, or ok false if
	// this store hands out none (not configured to); ErrNotFound if the
	// blob is absent.
	DownloadURL(ctx context.Context, id string) (url string, ok bool, err error)
}

// BlobDirectUploads is implemented by a Blobs whose blobs a client can
// upload somewhere other than the server, such as an S3 bucket's
// pre-signed PUT URLs: the bytes then do not pass through the server,
// which only hands out the URL and, once the client has uploaded,
// checks what arrived and indexes it.
type BlobDirectUploads interface {
	// UploadURL returns a new blob id and a URL to which exactly size
	// bytes can be PUT without credentials, for a short while, and (where
	// the store honours the condition in Header) not over an object that
	// exists; ok false if this store hands out none.
	UploadURL(ctx context.Context, size int64) (up DirectUpload, ok bool, err error)
	// FinishUpload records blob id, uploaded through its URL, as owner's
	// (lim as for Put, the quota checked atomically). ErrNotFound if
	// nothing was uploaded; ErrBadRequest if the upload is not size bytes,
	// ErrTooLarge over lim.Max, ErrQuotaExceeded over the quota: the
	// upload is then removed. Finishing an upload that is already owner's
	// succeeds again.
	FinishUpload(ctx context.Context, owner, id string, size int64, lim PutLimits) error
}

// DirectUpload is where a client PUTs a direct upload's bytes.
type DirectUpload struct {
	ID  string // the blob's id
	URL string // takes one PUT of exactly the size asked for
	// Header must be sent with the PUT as it is: the URL's signature
	// covers it (for S3, If-None-Match: * so that the URL can never
	// overwrite the object while it exists).
	Header map[string]string
}

// PutLimits bound one Blobs.Put.
type PutLimits struct {
	Max   int64 // the largest blob, in bytes
	Quota int64 // the most bytes the owner may hold, this blob included; 0: no quota
	// Expires bounds the blob's life (zero: retention alone): the
	// attachment of a disappearing message is deleted with it.
	Expires time.Time
}

// BlobUsage is what one account holds in blobs.
type BlobUsage struct {
	Bytes int64
	Blobs int
}

// ErrTooLarge is returned by Blobs.Put when the content exceeds max.
var ErrTooLarge = errors.New("store: blob too large")

// ErrQuotaExceeded is returned by Blobs.Put when the owner would hold more
// than its quota.
var ErrQuotaExceeded = errors.New("store: blob quota exceeded")

// ErrUnavailable means the backend cannot write right now (disk full,
// read-only file system, I/O error). Nothing was changed; reads may still
// work and the condition may clear. Backends wrap it.
var ErrUnavailable = errors.New("store: storage unavailable")

// AppendStarter is implemented by stores that can split Append in two:
// StartAppend fixes the append's place in the write order and returns at
// once; wait blocks until it is durable (or failed) and returns what
// Append would. The server uses it to pipeline one connection's sends
// (several in one group commit) while keeping their order.
type AppendStarter interface {
	StartAppend(ctx context.Context, a Append) (wait func() (AppendResult, error), err error)
}

// HasAccount reports whether username is an account that can sign in: it
// was registered and still has a device. A deleted account keeps its name,
// so that no one can take it, but has no devices.
func HasAccount(ctx context.Context, s Store, username string) (bool, error) {
	devs, err := s.Devices(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up account %q: %w", username, err)
	}
	return len(devs) > 0, nil
}
