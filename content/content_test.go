package content

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var salt16 = bytes.Repeat([]byte{7}, 16)

func textPart(s string) []any { return []any{1, "", 1, TypePlainText, []byte(s)} }

// top builds a mimiContent array with the given body and extensions.
func top(ext any, body any) []any {
	return []any{salt16, nil, []byte{}, nil, nil, ext, body}
}

func nest(depth int) []any {
	p := textPart("x")
	for i := 1; i < depth; i++ {
		p = []any{1, "", 3, 0, []any{p, textPart("y")}}
	}
	return p
}

// TestDecodeRefuses: ill-formed or out-of-bounds input is refused with
// ErrMalformed (and the specific error where there is one).
func TestDecodeRefuses(t *testing.T) {
	good := enc(t, top(map[any]any{}, textPart("hi")))
	if _, err := Decode(good); err != nil {
		t.Fatalf("the good base case: %v", err)
	}
	many := make([]any, MaxParts)
	for i := range many {
		many[i] = textPart("p")
	}
	id31 := bytes.Repeat([]byte{1}, 31)
	id2 := append([]byte{2}, bytes.Repeat([]byte{1}, 31)...)
	deepExt := []any{[]any{[]any{[]any{1}}}} // map(1) > 2 > 3 > 4 > 5
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not an array", enc(t, map[string]int{"a": 1}), ErrMalformed},
		{"six fields", enc(t, []any{salt16, nil, []byte{}, nil, nil, map[any]any{}}), ErrMalformed},
		{"short salt", enc(t, []any{salt16[:15], nil, []byte{}, nil, nil, map[any]any{}, textPart("x")}), ErrMalformed},
		{"31-octet replaces", enc(t, []any{salt16, id31, []byte{}, nil, nil, map[any]any{}, textPart("x")}), ErrMalformed},
		{"unknown hash in inReplyTo", enc(t, []any{salt16, nil, []byte{}, nil, id2, map[any]any{}, textPart("x")}), ErrMalformed},
		{"topicId too long", enc(t, []any{salt16, nil, make([]byte, MaxTopicID+1), nil, nil, map[any]any{}, textPart("x")}), ErrTooLarge},
		{"expiry over 32 bits", enc(t, []any{salt16, nil, []byte{}, []any{true, uint64(1) << 32}, nil, map[any]any{}, textPart("x")}), ErrMalformed},
		{"expiry not a bool", enc(t, []any{salt16, nil, []byte{}, []any{1, 5}, nil, map[any]any{}, textPart("x")}), ErrMalformed},
		{"unknown cardinality", enc(t, top(map[any]any{}, []any{1, "", 4})), ErrMalformed},
		{"single part missing content", enc(t, top(map[any]any{}, []any{1, "", 1, "text/plain"})), ErrMalformed},
		{"null part with extra field", enc(t, top(map[any]any{}, []any{1, "", 0, 0})), ErrMalformed},
		{"disposition over 255", enc(t, top(map[any]any{}, []any{256, "", 0})), ErrMalformed},
		{"multipart of one", enc(t, top(map[any]any{}, []any{1, "", 3, 0, []any{textPart("x")}})), ErrMalformed},
		{"unknown part semantics", enc(t, top(map[any]any{}, []any{1, "", 3, 3, []any{textPart("x"), textPart("y")}})), ErrMalformed},
		{"nested 5 deep", enc(t, top(map[any]any{}, nest(5))), ErrTooDeep},
		{"too many parts", enc(t, top(map[any]any{}, []any{1, "", 3, 2, many})), ErrTooManyParts},
		{"content is text", enc(t, top(map[any]any{}, []any{1, "", 1, "text/plain", "not bytes"})), ErrMalformed},
		{"tagged byte string", enc(t, top(map[any]any{}, []any{1, "", 1, "text/plain", cbor.Tag{Number: 24, Content: []byte("x")}})), ErrMalformed},
		{"extension map nested 5 deep", enc(t, top(map[any]any{-1: deepExt}, textPart("x"))), ErrTooDeep},
		{"extension key of bytes", enc(t, top(map[any]any{cbor.ByteString("k"): 1}, textPart("x"))), ErrMalformed},
		{"empty text extension key", enc(t, top(map[any]any{"": 1}, textPart("x"))), ErrMalformed},
		{"extension key past 2^53", enc(t, top(map[any]any{int64(1) << 54: 1}, textPart("x"))), ErrMalformed},
		{"bool map key inside an extension", enc(t, top(map[any]any{-1: map[any]any{true: 1}}, textPart("x"))), ErrMalformed},
		{"too large", append(enc(t, top(map[any]any{}, textPart("x"))), make([]byte, MaxSize)...), ErrTooLarge},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrMalformed},
	}
	// Hand-made encodings the encoder never produces.
	body := enc(t, textPart("hi"))
	pre := append([]byte{0x87, 0x50}, salt16...)
	pre = append(pre, 0xf6, 0x40, 0xf6, 0xf6)
	cases = append(cases,
		struct {
			name string
			b    []byte
			want error
		}{"extension keys out of order", cat(pre, []byte{0xa2, 0x02, 0x01, 0x01, 0x01}, body), ErrNotDeterministic},
		struct {
			name string
			b    []byte
			want error
		}{"repeated extension key", cat(pre, []byte{0xa2, 0x01, 0x01, 0x01, 0x02}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"integer not in shortest form", cat(pre, []byte{0xa1, 0x20, 0x18, 0x01}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"indefinite-length extension value", cat(pre, []byte{0xa1, 0x20, 0x9f, 0x01, 0xff}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"float64 that fits in half", cat(pre, []byte{0xa1, 0x20, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"a NaN not 0xf97e00", cat(pre, []byte{0xa1, 0x20, 0xf9, 0x7e, 0x01}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"text not UTF-8", cat(pre, []byte{0xa1, 0x20, 0x62, 0xc3, 0x28}, body), ErrMalformed},
		struct {
			name string
			b    []byte
			want error
		}{"length in a longer form", cat(pre[:len(pre)-1], []byte{0xf6, 0xa0, 0x85, 0x01, 0x60, 0x01, 0x78, 0x01, 'x', 0x41, 'y'}), ErrNotDeterministic},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode(tc.b)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// TestLimitsAccepted: exactly at the limits is accepted.
func TestLimitsAccepted(t *testing.T) {
	ext := map[any]any{-1: []any{[]any{[]any{1}}}, "x": map[any]any{cbor.ByteString("k"): 1.5}} // depth 4
	for name, b := range map[string][]byte{
		"nested 4 deep":         enc(t, top(map[any]any{}, nest(4))),
		"extension depth 4":     enc(t, top(ext, textPart("x"))),
		"topic of 4096":         enc(t, []any{salt16, nil, make([]byte, MaxTopicID), nil, nil, map[any]any{}, textPart("x")}),
		"undefined and null":    enc(t, top(map[any]any{-2: []any{nil, cbor.SimpleValue(23)}}, textPart("x"))),
		"a tag in an extension": enc(t, top(map[any]any{256: []any{cbor.Tag{Number: 32, Content: "http://example.com"}}}, textPart("x"))),
	} {
		c, err := Decode(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		again, err := c.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s: re-encoding differs (%v)", name, err)
		}
	}
}

// TestMessageIDBinding: the id changes with every input of §2.3.
func TestMessageIDBinding(t *testing.T) {
	c := Content{Salt: [16]byte{1}, Body: Part{Disposition: Render, Cardinality: SinglePart, ContentType: TypePlainText, Content: []byte("hi")}}
	base, b, err := c.MessageID("parley:alice", "parley:room")
	if err != nil {
		t.Fatal(err)
	}
	if base[0] != HashSHA256 {
		t.Fatalf("first octet %d", base[0])
	}
	// The length prefixes keep "ab"+"c" apart from "a"+"bc".
	a, _ := ComputeMessageID("parley:alicex", "parley:room", b)
	x, _ := ComputeMessageID("parley:alice", "xparley:room", b)
	if a == base || x == base {
		t.Fatal("sender or room not bound")
	}
	l, _ := ComputeMessageID("ab", "c", b)
	r, _ := ComputeMessageID("a", "bc", b)
	if l == r {
		t.Fatal("URI boundaries not bound")
	}
	c.Salt[0] = 2
	s, _, _ := c.MessageID("parley:alice", "parley:room")
	if s == base {
		t.Fatal("salt not bound")
	}
	if _, err := ComputeMessageID("a", "b", []byte{0x80}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("not a content: %v", err)
	}
}

// TestEncodeRefuses: the encoder does not produce what Decode refuses.
func TestEncodeRefuses(t *testing.T) {
	for name, c := range map[string]Content{
		"multipart of one":        {Body: Part{Cardinality: MultiPart, Parts: []Part{{Cardinality: NullPart}}}},
		"external without fields": {Body: Part{Cardinality: ExternalPart}},
		"duplicate extension": {Extensions: []Extension{{Key: IntKey(-1), Value: []byte{1}}, {Key: IntKey(-1), Value: []byte{2}}},
			Body: Part{Cardinality: NullPart}},
	} {
		if _, err := c.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Encode = %v", name, err)
		}
	}
	var c Content
	if err := c.SetExtension(IntKey(-5), []any{[]any{[]any{[]any{1}}}}); !errors.Is(err, ErrTooDeep) {
		t.Errorf("SetExtension too deep: %v", err)
	}
	if err := c.SetExtension(TextKey("k"), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.SetExtension(TextKey("k"), 2); err != nil || len(c.Extensions) != 1 {
		t.Fatalf("SetExtension twice: %v, %d entries", err, len(c.Extensions))
	}
	if v, ok := c.Extension(TextKey("k")); !ok || !bytes.Equal(v, []byte{2}) {
		t.Fatalf("Extension = %x, %v", v, ok)
	}
}

// TestRoundTrip decodes what the encoder makes of a content with every
// field set.
func TestRoundTrip(t *testing.T) {
	c := Content{Salt: [16]byte{9}, Replaces: mid(idReply), TopicID: []byte("t"), Expires: &Expiration{Relative: true, Time: 60},
		InReplyTo: mid(idOriginal), Body: Part{Disposition: Render, Language: "en", Cardinality: MultiPart, Semantics: SingleUnit,
			Parts: []Part{single(Render, "", TypePlainText, "a"), {Disposition: Attachment, Cardinality: ExternalPart, ContentType: "image/png",
				External: &External{URL: "/v1/blobs/x", Expires: 1, Size: 2, EncAlg: 3, Key: []byte{4}, Nonce: []byte{5}, AAD: []byte{6},
					HashAlg: 1, ContentHash: []byte{7}, Description: "d", Filename: "f"}}}}}
	if err := c.SetExtension(TextKey("parley.kt"), []any{uint64(5), []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetExtension(IntKey(-1), true); err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	sortExtensions(c.Extensions)
	if !reflect.DeepEqual(&c, back) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, &c)
	}
}
