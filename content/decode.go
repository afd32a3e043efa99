package content

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Errors. Every error Decode returns wraps ErrMalformed; the others say
// which limit was hit.
var (
	ErrMalformed        = errors.New("content: malformed MIMI content")
	ErrTooLarge         = fmt.Errorf("%w: too large", ErrMalformed)
	ErrTooDeep          = fmt.Errorf("%w: nested too deeply", ErrMalformed)
	ErrTooManyParts     = fmt.Errorf("%w: too many parts", ErrMalformed)
	ErrNotDeterministic = fmt.Errorf("%w: not in deterministic encoding", ErrMalformed)
)

// Limits on what Decode accepts. The draft's (§7.3, §10.1) and, where it
// leaves a limit to local policy, Parley's.
const (
	// MaxSize bounds an encoded content (a Parley message's plaintext
	// fits in a server frame of 1 MiB).
	MaxSize = 1 << 20
	// MaxPartDepth is how deeply NestedParts may nest: the body is at
	// depth 1 (§7.3).
	MaxPartDepth = 4
	// MaxParts bounds the number of NestedParts in a body, containers
	// included (§10.1: "more than 1024" is suspect).
	MaxParts = 1024
	// MaxTopicID bounds topicId (§10.1).
	MaxTopicID = 4096
	// MaxExtensionDepth bounds the nesting of maps, arrays and tags in
	// mimiExtensions, the map itself at level 1 (§7.3).
	MaxExtensionDepth = 4
	// MaxExtensions bounds the entries of mimiExtensions (local policy).
	MaxExtensions = 256
	// MaxExtensionKey bounds a text extension key (§3.3).
	MaxExtensionKey = 255
	// MaxShortText bounds a language, content type, description or file
	// name (local policy).
	MaxShortText = 1024
	// MaxURL bounds an ExternalPart's URL (local policy).
	MaxURL = 8192
	// maxSafeInt is 2^53-1: integer map keys must fit a double (§7.2).
	maxSafeInt = 1<<53 - 1
)

var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  4*MaxPartDepth + MaxExtensionDepth + 4,
		MaxArrayElements: MaxParts + 16,
		MaxMapPairs:      MaxExtensions,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// Decode parses an encoded mimiContent from an untrusted source.
func Decode(b []byte) (*Content, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(b), MaxSize)
	}
	f, err := array(b, "mimiContent")
	if err != nil {
		return nil, err
	}
	if len(f) != 7 {
		return nil, fmt.Errorf("%w: mimiContent has %d fields, not 7", ErrMalformed, len(f))
	}
	c := new(Content)
	salt, err := bstr(f[0], "salt")
	if err != nil {
		return nil, err
	}
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("%w: salt of %d octets", ErrMalformed, len(salt))
	}
	copy(c.Salt[:], salt)
	if c.Replaces, err = messageID(f[1], "replaces"); err != nil {
		return nil, err
	}
	if c.TopicID, err = bstr(f[2], "topicId"); err != nil {
		return nil, err
	}
	if len(c.TopicID) > MaxTopicID {
		return nil, fmt.Errorf("%w: topicId of %d octets", ErrTooLarge, len(c.TopicID))
	}
	if !isNull(f[3]) {
		e, err := array(f[3], "expires")
		if err != nil {
			return nil, err
		}
		if len(e) != 2 {
			return nil, fmt.Errorf("%w: expires has %d fields", ErrMalformed, len(e))
		}
		c.Expires = new(Expiration)
		if c.Expires.Relative, err = boolean(e[0], "expires.relative"); err != nil {
			return nil, err
		}
		t, err := uintN(e[1], 32, "expires.time")
		if err != nil {
			return nil, err
		}
		c.Expires.Time = uint32(t)
	}
	if c.InReplyTo, err = messageID(f[4], "inReplyTo"); err != nil {
		return nil, err
	}
	if c.Extensions, err = extensions(f[5]); err != nil {
		return nil, err
	}
	parts := 0
	if err := decodePart(f[6], 1, &parts, &c.Body); err != nil {
		return nil, err
	}
	// Only the deterministic encoding is accepted (§7.1): then the bytes
	// a message id is computed over are the only encoding of the content.
	again, err := c.encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, ErrNotDeterministic
	}
	return c, nil
}

func decodePart(raw cbor.RawMessage, depth int, count *int, p *Part) error {
	if depth > MaxPartDepth {
		return fmt.Errorf("%w: parts nested over %d levels", ErrTooDeep, MaxPartDepth)
	}
	if *count++; *count > MaxParts {
		return fmt.Errorf("%w: over %d", ErrTooManyParts, MaxParts)
	}
	f, err := array(raw, "NestedPart")
	if err != nil {
		return err
	}
	if len(f) < 3 {
		return fmt.Errorf("%w: NestedPart of %d fields", ErrMalformed, len(f))
	}
	d, err := uintN(f[0], 8, "disposition")
	if err != nil {
		return err
	}
	p.Disposition = Disposition(d)
	if p.Language, err = shortText(f[1], "language"); err != nil {
		return err
	}
	card, err := uintN(f[2], 8, "cardinality")
	if err != nil {
		return err
	}
	p.Cardinality = Cardinality(card)
	want := map[Cardinality]int{NullPart: 3, SinglePart: 5, ExternalPart: 15, MultiPart: 5}
	n, ok := want[p.Cardinality]
	if !ok {
		return fmt.Errorf("%w: unknown cardinality %d", ErrMalformed, card)
	}
	if len(f) != n {
		return fmt.Errorf("%w: part of cardinality %d has %d fields, not %d", ErrMalformed, card, len(f), n)
	}
	switch p.Cardinality {
	case SinglePart:
		if p.ContentType, err = shortText(f[3], "contentType"); err != nil {
			return err
		}
		p.Content, err = bstr(f[4], "content")
		return err
	case ExternalPart:
		return decodeExternal(f[3:], p)
	case MultiPart:
		s, err := uintN(f[3], 8, "partSemantics")
		if err != nil {
			return err
		}
		if s > uint64(ProcessAll) {
			return fmt.Errorf("%w: unknown partSemantics %d", ErrMalformed, s)
		}
		p.Semantics = Semantics(s)
		subs, err := array(f[4], "parts")
		if err != nil {
			return err
		}
		if len(subs) < 2 {
			return fmt.Errorf("%w: a MultiPart has at least 2 parts, not %d", ErrMalformed, len(subs))
		}
		p.Parts = make([]Part, len(subs))
		for i := range subs {
			if err := decodePart(subs[i], depth+1, count, &p.Parts[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeExternal(f []cbor.RawMessage, p *Part) error {
	var err error
	x := new(External)
	if p.ContentType, err = shortText(f[0], "contentType"); err != nil {
		return err
	}
	if x.URL, err = text(f[1], "url"); err != nil {
		return err
	}
	if len(x.URL) > MaxURL {
		return fmt.Errorf("%w: url of %d octets", ErrTooLarge, len(x.URL))
	}
	exp, err := uintN(f[2], 32, "expires")
	if err != nil {
		return err
	}
	x.Expires = uint32(exp)
	if x.Size, err = uintN(f[3], 64, "size"); err != nil {
		return err
	}
	alg, err := uintN(f[4], 16, "encAlg")
	if err != nil {
		return err
	}
	x.EncAlg = uint16(alg)
	if x.Key, err = bstr(f[5], "key"); err != nil {
		return err
	}
	if x.Nonce, err = bstr(f[6], "nonce"); err != nil {
		return err
	}
	if x.AAD, err = bstr(f[7], "aad"); err != nil {
		return err
	}
	h, err := uintN(f[8], 8, "hashAlg")
	if err != nil {
		return err
	}
	x.HashAlg = uint8(h)
	if x.ContentHash, err = bstr(f[9], "contentHash"); err != nil {
		return err
	}
	if x.Description, err = shortText(f[10], "description"); err != nil {
		return err
	}
	if x.Filename, err = shortText(f[11], "filename"); err != nil {
		return err
	}
	p.External = x
	return nil
}

// extensions parses the mimiExtensions map (§3.3, §7.2, §7.3).
func extensions(raw cbor.RawMessage) ([]Extension, error) {
	r := &reader{b: raw}
	major, n, err := r.head()
	if err != nil {
		return nil, err
	}
	if major != majorMap {
		return nil, fmt.Errorf("%w: mimiExtensions is not a map", ErrMalformed)
	}
	if n > MaxExtensions {
		return nil, fmt.Errorf("%w: %d extensions, over %d", ErrTooLarge, n, MaxExtensions)
	}
	var out []Extension
	for i := uint64(0); i < n; i++ {
		km, karg, err := r.head()
		if err != nil {
			return nil, err
		}
		var k ExtensionKey
		switch km {
		case majorUint, majorNeg:
			if karg > maxSafeInt || (km == majorNeg && karg >= maxSafeInt) {
				return nil, fmt.Errorf("%w: extension key out of range", ErrMalformed)
			}
			k.Int = int64(karg)
			if km == majorNeg {
				k.Int = -1 - int64(karg)
			}
		case majorText:
			s, err := r.take(karg)
			if err != nil {
				return nil, err
			}
			if len(s) == 0 || len(s) > MaxExtensionKey || !utf8.Valid(s) {
				return nil, fmt.Errorf("%w: bad extension key", ErrMalformed)
			}
			k = TextKey(string(s))
		default:
			return nil, fmt.Errorf("%w: extension key of major type %d", ErrMalformed, km)
		}
		vstart := r.off
		if err := r.item(2); err != nil {
			return nil, err
		}
		out = append(out, Extension{Key: k, Value: cbor.RawMessage(bytes.Clone(raw[vstart:r.off]))})
	}
	if r.off != len(raw) {
		return nil, fmt.Errorf("%w: trailing bytes after mimiExtensions", ErrMalformed)
	}
	for i := 1; i < len(out); i++ {
		for j := 0; j < i; j++ {
			if out[i].Key == out[j].Key {
				return nil, fmt.Errorf("%w: extension %s twice", ErrMalformed, out[i].Key)
			}
		}
	}
	sortExtensions(out)
	return out, nil
}

// checkExtensionValue checks one extension value as extensions does.
func checkExtensionValue(b []byte) error {
	r := &reader{b: b}
	if err := r.item(2); err != nil {
		return err
	}
	if r.off != len(b) {
		return fmt.Errorf("%w: trailing bytes after an extension value", ErrMalformed)
	}
	return nil
}

func array(raw []byte, field string) ([]cbor.RawMessage, error) {
	if len(raw) == 0 || raw[0]>>5 != majorArray {
		return nil, fmt.Errorf("%w: %s is not an array", ErrMalformed, field)
	}
	var a []cbor.RawMessage
	if err := decMode.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return a, nil
}

func isNull(raw []byte) bool { return len(raw) == 1 && raw[0] == 0xf6 }

func bstr(raw []byte, field string) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != majorBytes {
		return nil, fmt.Errorf("%w: %s is not a byte string", ErrMalformed, field)
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

func text(raw []byte, field string) (string, error) {
	if len(raw) == 0 || raw[0]>>5 != majorText {
		return "", fmt.Errorf("%w: %s is not a text string", ErrMalformed, field)
	}
	var s string
	if err := decMode.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return s, nil
}

func shortText(raw []byte, field string) (string, error) {
	s, err := text(raw, field)
	if err == nil && len(s) > MaxShortText {
		err = fmt.Errorf("%w: %s of %d octets", ErrTooLarge, field, len(s))
	}
	return s, err
}

func boolean(raw []byte, field string) (bool, error) {
	switch {
	case len(raw) == 1 && raw[0] == 0xf4:
		return false, nil
	case len(raw) == 1 && raw[0] == 0xf5:
		return true, nil
	}
	return false, fmt.Errorf("%w: %s is not a boolean", ErrMalformed, field)
}

// uintN decodes an unsigned integer of at most bits bits (CDDL "uint
// .size n").
func uintN(raw []byte, bits int, field string) (uint64, error) {
	if len(raw) == 0 || raw[0]>>5 != majorUint {
		return 0, fmt.Errorf("%w: %s is not an unsigned integer", ErrMalformed, field)
	}
	var v uint64
	if err := decMode.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	if bits < 64 && v >= 1<<bits {
		return 0, fmt.Errorf("%w: %s %d does not fit %d bits", ErrMalformed, field, v, bits)
	}
	return v, nil
}

// messageID decodes null or a MessageId (§2.3): 32 octets whose first is
// a known hash algorithm (§10.1: an unknown one is suspect).
func messageID(raw []byte, field string) (*MessageID, error) {
	if isNull(raw) {
		return nil, nil
	}
	b, err := bstr(raw, field)
	if err != nil {
		return nil, err
	}
	if len(b) != MessageIDSize {
		return nil, fmt.Errorf("%w: %s of %d octets", ErrMalformed, field, len(b))
	}
	if b[0] != HashSHA256 {
		return nil, fmt.Errorf("%w: %s with unknown hash algorithm %d", ErrMalformed, field, b[0])
	}
	id := new(MessageID)
	copy(id[:], b)
	return id, nil
}
