package hashlist

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

// Video signal types. The names are HMA's: python-threatexchange's vPDQ
// extension (threatexchange/extensions/vpdq) names its signal type "vpdq";
// TMK+PDQF has no signal type in current python-threatexchange, so the
// name is ThreatExchange's older one ("video_tmk_pdqf", indicator type
// HASH_TMK).
const (
	// VPDQ values are HMA's vPDQ signal string: a JSON array of
	// "pdq_hex,quality,timestamp" strings, one per frame
	// (vpdq_util.vpdq_to_json). They are stored re-serialised without
	// spaces and with 3-decimal timestamps.
	VPDQ SignalType = "vpdq"
	// TMK values are the reference binary .tmk file (tmk/cpp/io/tmkio.cpp)
	// in standard base64, checked by video.ReadTMK.
	TMK SignalType = "video_tmk_pdqf"
)

// MaxVPDQEntryFrames bounds the frames of one vPDQ list entry: 5 hours at
// the one frame a second lists are made at. A list claiming more is
// refused, not truncated.
const MaxVPDQEntryFrames = 18_000

// maxTMKBase64 bounds a TMK value before it is decoded: the reference
// parameters make 264 352-byte files; video.ReadTMK bounds the rest.
const maxTMKBase64 = 1 << 20

// IsVideo reports whether t is a perceptual video hash (vPDQ or TMK).
func (t SignalType) IsVideo() bool { return t == VPDQ || t == TMK }

// newVideoEntry validates and canonicalises a vPDQ or TMK value.
func newVideoEntry(t SignalType, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch t {
	case VPDQ:
		feats, err := ParseVPDQValue(v)
		if err != nil {
			return "", err
		}
		return FormatVPDQValue(feats), nil
	case TMK:
		h, err := ParseTMKValue(v)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		if err := video.WriteTMK(&b, h); err != nil {
			return "", fmt.Errorf("%w: tmk: %v", ErrBadHash, err)
		}
		return base64.StdEncoding.EncodeToString(b.Bytes()), nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownType, string(t))
}

// ParseVPDQValue parses HMA's vPDQ signal string (a JSON array of
// "pdq_hex,quality,timestamp" strings). An empty array, a malformed frame
// or more than MaxVPDQEntryFrames frames is an error.
func ParseVPDQValue(s string) ([]video.Feature, error) {
	if len(s) > MaxVPDQEntryFrames*96 {
		return nil, fmt.Errorf("%w: vpdq: value of %d bytes is over the %d-frame limit", ErrBadHash, len(s), MaxVPDQEntryFrames)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("%w: vpdq: want a JSON array of \"pdq_hex,quality,timestamp\" strings", ErrBadHash)
	}
	var feats []video.Feature
	for dec.More() {
		if len(feats) >= MaxVPDQEntryFrames {
			return nil, fmt.Errorf("%w: vpdq: more than %d frames", ErrBadHash, MaxVPDQEntryFrames)
		}
		var f string
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%w: vpdq: frame %d: not a string", ErrBadHash, len(feats)+1)
		}
		ft, err := parseCompactFeature(f)
		if err != nil {
			return nil, fmt.Errorf("%w: vpdq: frame %d: %v", ErrBadHash, len(feats)+1, err)
		}
		ft.Frame = len(feats)
		feats = append(feats, ft)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, fmt.Errorf("%w: vpdq: unterminated array", ErrBadHash)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: vpdq: data after the array", ErrBadHash)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: vpdq: data after the array", ErrBadHash)
	}
	if len(feats) == 0 {
		return nil, fmt.Errorf("%w: vpdq: no frames", ErrBadHash)
	}
	return feats, nil
}

// parseCompactFeature parses "pdq_hex,quality,timestamp"
// (vpdq_util.VpdqCompactFeature).
func parseCompactFeature(s string) (video.Feature, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return video.Feature{}, fmt.Errorf("want pdq_hex,quality,timestamp, got %d fields", len(parts))
	}
	h, err := pdq.ParseHash(strings.TrimSpace(parts[0]))
	if err != nil {
		return video.Feature{}, err
	}
	q, err := strconv.Atoi(strings.TrimSpace(parts[1]))
	if err != nil || q < 0 || q > 100 {
		return video.Feature{}, fmt.Errorf("quality %q is not 0-100", parts[1])
	}
	ts, err := strconv.ParseFloat(strings.TrimSpace(parts[2]), 64)
	if err != nil || !(ts >= 0) || ts > 1e9 {
		return video.Feature{}, fmt.Errorf("timestamp %q", parts[2])
	}
	return video.Feature{Quality: q, Hash: h, Timestamp: ts}, nil
}

// FormatVPDQValue writes feats as HMA's vPDQ signal string, without
// spaces and with timestamps to 3 decimals.
func FormatVPDQValue(feats []video.Feature) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, f := range feats {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\"%s,%d,%.3f\"", f.Hash, f.Quality, f.Timestamp)
	}
	b.WriteByte(']')
	return b.String()
}

// ParseTMKValue decodes a TMK list value: a .tmk file in standard base64.
func ParseTMKValue(s string) (*video.TMK, error) {
	if len(s) > maxTMKBase64 {
		return nil, fmt.Errorf("%w: tmk: value of %d bytes, more than a .tmk file can be", ErrBadHash, len(s))
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: tmk: not standard base64 of a .tmk file", ErrBadHash)
	}
	h, err := video.ReadTMK(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// TMKValue encodes a TMK hash as a list value.
func TMKValue(h *video.TMK) (string, error) {
	var b bytes.Buffer
	if err := video.WriteTMK(&b, h); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b.Bytes()), nil
}

// Fingerprint names an entry in logs and decisions: the hash itself for
// hex types; for the long video values, the type and the first 16 hex
// digits of the value's SHA-256 ("vpdq:sha256:0123456789abcdef").
func (e Entry) Fingerprint() string {
	if !e.Type.IsVideo() {
		return e.Value
	}
	sum := sha256.Sum256([]byte(e.Value))
	return fmt.Sprintf("%s:sha256:%x", e.Type, sum[:8])
}
