package qr

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleychat/parley/web/qr/qrtest"
)

// What Path draws decodes, with an independent decoder, to the text:
// a link code, a 60-digit safety number, and bytes outside QR's
// alphanumeric set.
func TestPathDecodesToText(t *testing.T) {
	for _, text := range []string{
		"12345678-ABCD-EFGH-JKLM-NPQR",
		"123456789012345678901234567890123456789012345678901234567890",
		"parley: ünïcode & lower case",
		strings.Repeat("x", MaxText),
	} {
		c, err := Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		img, err := qrtest.Rasterize(c.Path(), c.ViewBox(), 4)
		if err != nil {
			t.Fatal(err)
		}
		got, err := qrtest.Decode(img)
		if err != nil {
			t.Fatalf("decoding the drawing of %q: %v", text, err)
		}
		if got != text {
			t.Fatalf("the drawing of %q decodes to %q", text, got)
		}
	}
}

// A safety number (digits only) is a small code: numeric mode keeps it
// at a size a phone reads off a screen.
func TestSafetyNumberIsSmall(t *testing.T) {
	c, err := Encode(strings.Repeat("0123456789", 6))
	if err != nil {
		t.Fatal(err)
	}
	if c.Modules > 29 { // version 3
		t.Fatalf("a 60-digit number takes %d modules a side", c.Modules)
	}
	if c.ViewBox() != c.Modules+8 || c.Dark(-1, 0) || c.Dark(c.Modules, 0) {
		t.Fatal("the quiet zone is not blank")
	}
	if !c.Dark(0, 0) || !c.Dark(6, 6) || c.Dark(7, 7) {
		t.Fatal("no finder pattern in the top left corner")
	}
}

func TestEncodeRejectsBadLength(t *testing.T) {
	for _, text := range []string{"", strings.Repeat("x", MaxText+1), "\xff not UTF-8"} {
		if _, err := Encode(text); !errors.Is(err, ErrText) {
			t.Fatalf("Encode of %d bytes: %v", len(text), err)
		}
	}
}

// Any UTF-8 text Encode accepts decodes back to itself; anything else is
// refused with ErrText.
func FuzzEncode(f *testing.F) {
	f.Add("12345678-ABCD")
	f.Add("0123456789")
	f.Add("\x00\xff")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Encode(text)
		if len(text) == 0 || len(text) > MaxText || !utf8.ValidString(text) {
			if !errors.Is(err, ErrText) {
				t.Fatalf("Encode of %d bytes: %v", len(text), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		img, err := qrtest.Rasterize(c.Path(), c.ViewBox(), 4)
		if err != nil {
			t.Fatal(err)
		}
		got, err := qrtest.DecodePure(img)
		if err != nil {
			t.Fatalf("decoding %q: %v", text, err)
		}
		if got != text {
			t.Fatalf("%q decodes to %q", text, got)
		}
	})
}
