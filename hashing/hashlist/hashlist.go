// Package hashlist parses industry hash lists into validated entries and
// keeps them as versioned banks.
//
// Three formats are read, each all-or-nothing: a list with any invalid
// record is refused whole, with the line or record number in the error.
//
//   - HMA local files (python-threatexchange's "local_file" exchange, as
//     used by Hasher-Matcher-Actioner): one "<signal_type> <signal>" per
//     line. Upstream type names are pdq, video_md5 and video_sha256; md5
//     and sha256 are accepted too. ParseHMA can also be given a default
//     type for files of bare hashes, like upstream's signal_type option.
//   - CSV with a header row naming the columns signal_type and signal, and
//     optionally tags (tags separated by spaces, commas or semicolons).
//   - Tech Against Terrorism hash list pages (the TCAP "hash-list/v2"
//     API): see ParseTCAPPage for the assumed JSON shape.
//
// Hex digests are normalised to lower case and checked for their length:
// 64 digits for PDQ and SHA-256, 32 for MD5.
package hashlist

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SignalType is the kind of hash in an entry.
type SignalType string

const (
	PDQ    SignalType = "pdq"
	MD5    SignalType = "md5"
	SHA256 SignalType = "sha256"
)

// Errors that callers can branch on with errors.Is.
var (
	ErrUnknownType = errors.New("unknown signal type")
	ErrBadHash     = errors.New("malformed hash")
	ErrBadTag      = errors.New("malformed tag")
	ErrSyntax      = errors.New("syntax error")
	ErrTooMany     = errors.New("too many entries")
)

// MaxEntries bounds the entries accepted from one list, so that a
// malicious or corrupt feed cannot exhaust memory.
const MaxEntries = 20_000_000

// ParseSignalType maps a type name (case-insensitive; HMA's video_md5 and
// video_sha256 included) to a SignalType.
func ParseSignalType(s string) (SignalType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pdq":
		return PDQ, nil
	case "md5", "video_md5":
		return MD5, nil
	case "sha256", "sha-256", "video_sha256":
		return SHA256, nil
	case "vpdq", "video_vpdq":
		return VPDQ, nil
	case "video_tmk_pdqf":
		return TMK, nil
	}
	return "", fmt.Errorf("%w %q (want pdq, md5, sha256, vpdq or video_tmk_pdqf)", ErrUnknownType, s)
}

// HexLen returns the number of hex digits of a valid hash of type t, 0
// for the video types (whose values are not hex: see VPDQ and TMK).
func (t SignalType) HexLen() int {
	switch t {
	case PDQ, SHA256:
		return 64
	case MD5:
		return 32
	}
	return 0
}

// Entry is one hash of a list.
type Entry struct {
	Type  SignalType
	Value string   // lower-case hex, of t.HexLen() digits; VPDQ and TMK: see their types
	Tags  []string // sorted, without duplicates
}

// Key identifies an entry within a bank: type and value.
func (e Entry) Key() string { return string(e.Type) + ":" + e.Value }

// NewEntry validates and normalises a hash and its tags.
func NewEntry(t SignalType, value string, tags []string) (Entry, error) {
	var v string
	if t.IsVideo() {
		var err error
		if v, err = newVideoEntry(t, value); err != nil {
			return Entry{}, err
		}
	} else {
		n := t.HexLen()
		if n == 0 {
			return Entry{}, fmt.Errorf("%w %q", ErrUnknownType, string(t))
		}
		v = strings.ToLower(strings.TrimSpace(value))
		if len(v) != n {
			return Entry{}, fmt.Errorf("%w: %s needs %d hex digits, got %d", ErrBadHash, t, n, len(v))
		}
		if _, err := hex.DecodeString(v); err != nil {
			return Entry{}, fmt.Errorf("%w: %s: not hexadecimal", ErrBadHash, t)
		}
	}
	e := Entry{Type: t, Value: v}
	for _, tag := range tags {
		tag, err := normaliseTag(tag)
		if err != nil {
			return Entry{}, err
		}
		e.Tags = append(e.Tags, tag)
	}
	slices.Sort(e.Tags)
	e.Tags = slices.Compact(e.Tags)
	return e, nil
}

// Tags are short machine-readable labels such as "ideology:far-right":
// lower-case letters, digits and "_-.:/", 1 to 64 bytes.
func normaliseTag(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if len(t) == 0 || len(t) > 64 {
		return "", fmt.Errorf("%w: %q must be 1 to 64 characters", ErrBadTag, s)
	}
	for _, c := range []byte(t) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:/", c) >= 0
		if !ok {
			return "", fmt.Errorf("%w: %q has a character outside a-z 0-9 _-.:/", ErrBadTag, s)
		}
	}
	return t, nil
}

// splitTags splits a tags field on spaces, commas and semicolons.
func splitTags(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '\t'
	})
}

// ParseError reports where in a list a record is invalid.
type ParseError struct {
	Format string // "hma", "csv" or "tcap"
	Unit   string // "line" or "record"
	N      int    // 1-based
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("hashlist: %s: %s %d: %v", e.Format, e.Unit, e.N, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// collector merges duplicate entries (same type and value) by taking the
// union of their tags, keeping first-seen order.
type collector struct {
	entries []Entry
	byKey   map[string]int
}

func (c *collector) add(e Entry) error {
	if c.byKey == nil {
		c.byKey = make(map[string]int)
	}
	if i, ok := c.byKey[e.Key()]; ok {
		tags := append(c.entries[i].Tags, e.Tags...)
		slices.Sort(tags)
		c.entries[i].Tags = slices.Compact(tags)
		return nil
	}
	if len(c.entries) >= MaxEntries {
		return fmt.Errorf("%w: more than %d", ErrTooMany, MaxEntries)
	}
	c.byKey[e.Key()] = len(c.entries)
	c.entries = append(c.entries, e)
	return nil
}

// Bytes returns the hash as bytes: 32 for PDQ (in pdq.Hash order) and
// SHA-256, 16 for MD5. Entries from this package's parsers always decode.
func (e Entry) Bytes() ([]byte, error) {
	b, err := hex.DecodeString(e.Value)
	if err != nil || len(b)*2 != e.Type.HexLen() {
		return nil, fmt.Errorf("%w: %s %q", ErrBadHash, e.Type, e.Value)
	}
	return b, nil
}
