package legal

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/wire"
)

// Instruments a request can be made under.
var Instruments = []string{"subpoena", "court-order", "warrant", "emergency", "preservation"}

// Errors callers branch on.
var (
	ErrInvalid   = errors.New("legal: invalid request")
	ErrClosed    = errors.New("legal: the request is already answered")
	ErrTooEarly  = errors.New("legal: the request is still under non-disclosure")
	ErrPublished = errors.New("legal: the request is already published")
)

// Request is a lawful request as recorded, with what was done about it.
type Request struct {
	ID                 string    `json:"id"`
	Recorded           time.Time `json:"recorded"`
	Agency             string    `json:"agency"`
	Country            string    `json:"country"`
	Instrument         string    `json:"instrument"`
	Reference          string    `json:"reference"`
	Accounts           []string  `json:"accounts"`
	Asks               string    `json:"asks"`
	NondisclosureUntil time.Time `json:"nondisclosure_until,omitzero"`
	// Salt makes the log's commitments hiding; it is revealed only when
	// the request is published.
	Salt []byte `json:"salt"`

	Answer       *Answer       `json:"answer,omitempty"`
	Preservation *Preservation `json:"preservation,omitempty"`
	Published    time.Time     `json:"published,omitzero"`
	// Entries are the log records made for the request, in order.
	Entries []Entry `json:"entries"`
}

// Entry is one record of the legal log made for a request.
type Entry struct {
	Kind  Kind      `json:"kind"`
	Time  time.Time `json:"time"`
	Index int64     `json:"index,omitempty"` // set in publications only
	// Public is the public form the record commits to, as the exact JSON
	// text hashed (a string, so that no reformatting changes it); Private
	// the hash of the private form.
	Public  string `json:"public"`
	Private string `json:"private_sha256"`
}

var countryRE = regexp.MustCompile(`^[A-Z]{2}$`)

// NewRequest checks and makes a request recorded at now.
func NewRequest(now time.Time, agency, country, instrument, reference string, accounts []string, asks string, nondisclosureUntil time.Time) (*Request, error) {
	agency, reference, asks = strings.TrimSpace(agency), strings.TrimSpace(reference), strings.TrimSpace(asks)
	switch {
	case agency == "":
		return nil, fmt.Errorf("%w: --agency is required", ErrInvalid)
	case !countryRE.MatchString(country):
		return nil, fmt.Errorf("%w: --country must be a two-letter ISO 3166 code in capitals (e.g. GB), not %q", ErrInvalid, country)
	case !slices.Contains(Instruments, instrument):
		return nil, fmt.Errorf("%w: --instrument must be one of %s, not %q", ErrInvalid, strings.Join(Instruments, ", "), instrument)
	case reference == "":
		return nil, fmt.Errorf("%w: --reference (the agency's reference for the request) is required", ErrInvalid)
	case len(accounts) == 0:
		return nil, fmt.Errorf("%w: --accounts must name at least one account", ErrInvalid)
	case asks == "":
		return nil, fmt.Errorf("%w: --asks (what the request asks for) is required", ErrInvalid)
	case !nondisclosureUntil.IsZero() && !nondisclosureUntil.After(now):
		return nil, fmt.Errorf("%w: --nondisclosure-until %s is not in the future", ErrInvalid, nondisclosureUntil.Format(time.DateOnly))
	}
	seen := map[string]bool{}
	var names []string
	for _, a := range accounts {
		a = strings.TrimPrefix(strings.TrimSpace(a), "@")
		if err := wire.CheckUsername(a); err != nil {
			return nil, fmt.Errorf("%w: account %q: %v", ErrInvalid, a, err)
		}
		if !seen[a] {
			seen[a] = true
			names = append(names, a)
		}
	}
	id := make([]byte, 8)
	salt := make([]byte, 32)
	rand.Read(id)
	rand.Read(salt)
	return &Request{ID: "lr-" + hex.EncodeToString(id), Recorded: now.UTC().Truncate(time.Second), Agency: agency, Country: country,
		Instrument: instrument, Reference: reference, Accounts: names, Asks: asks, NondisclosureUntil: nondisclosureUntil.UTC(), Salt: salt}, nil
}

// UnderNondisclosure reports whether the request may not be disclosed at t.
func (r *Request) UnderNondisclosure(t time.Time) bool {
	return !r.NondisclosureUntil.IsZero() && t.Before(r.NondisclosureUntil)
}

// Kind is the kind of a legal log record.
type Kind uint8

// Kinds of legal log records.
const (
	KindRequest Kind = iota + 1
	KindAnswer
	KindPreservation
	KindRelease // preserved data deleted at the end of its period
	KindReport  // a transparency report
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindAnswer:
		return "answer"
	case KindPreservation:
		return "preservation"
	case KindRelease:
		return "release"
	case KindReport:
		return "report"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// MarshalText makes kinds readable in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (k *Kind) UnmarshalText(b []byte) error {
	for c := KindRequest; c <= KindReport; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("legal: unknown record kind %q", b)
}

// RecordSize is the size of a legal log record.
const RecordSize = 1 + 8 + 32

// Record is a legal log record: the kind, the time (milliseconds since
// 1970) and the commitment, big endian.
func Record(k Kind, t time.Time, commitment [32]byte) []byte {
	b := make([]byte, 0, RecordSize)
	b = append(b, byte(k))
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli()))
	return append(b, commitment[:]...)
}

// Commitment commits to an event's public form and to the hash of its
// private form, hidden by salt:
//
//	SHA-256("parley legal commitment v1" || 0x00 || salt || kind || SHA-256(public) || privateHash)
func Commitment(salt []byte, k Kind, public []byte, privateHash [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("parley legal commitment v1\x00"))
	h.Write(salt)
	h.Write([]byte{byte(k)})
	p := sha256.Sum256(public)
	h.Write(p[:])
	h.Write(privateHash[:])
	var c [32]byte
	h.Sum(c[:0])
	return c
}

// publicRequest is the form of a request that is published: no account
// names, no reference, no text of what was asked.
type publicRequest struct {
	ID                 string    `json:"id"`
	Recorded           time.Time `json:"recorded"`
	Agency             string    `json:"agency"`
	Country            string    `json:"country"`
	Instrument         string    `json:"instrument"`
	AccountsNamed      int       `json:"accounts_named"`
	NondisclosureUntil time.Time `json:"nondisclosure_until,omitzero"`
}

// event makes the log entry for an event of the request: its record, to
// append, and the Entry to keep (Index set by the caller).
func (r *Request) event(k Kind, t time.Time, public, private any) (Entry, []byte, error) {
	pub, err := json.Marshal(public)
	if err != nil {
		return Entry{}, nil, err
	}
	priv, err := json.Marshal(private)
	if err != nil {
		return Entry{}, nil, err
	}
	ph := sha256.Sum256(priv)
	t = t.UTC().Truncate(time.Millisecond)
	c := Commitment(r.Salt, k, pub, ph)
	return Entry{Kind: k, Time: t, Public: string(pub), Private: hex.EncodeToString(ph[:])}, Record(k, t, c), nil
}

// RecordEvent is the log entry for the request itself.
func (r *Request) RecordEvent() (Entry, []byte, error) {
	priv := *r
	priv.Salt, priv.Entries, priv.Answer, priv.Preservation = nil, nil, nil, nil
	return r.event(KindRequest, r.Recorded, publicRequest{ID: r.ID, Recorded: r.Recorded, Agency: r.Agency, Country: r.Country,
		Instrument: r.Instrument, AccountsNamed: len(r.Accounts), NondisclosureUntil: r.NondisclosureUntil}, priv)
}
