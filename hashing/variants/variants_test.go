package variants

import (
	"errors"
	"testing"

	"github.com/parleychat/parley/hashing/pdq"
)

func TestParseOptions(t *testing.T) {
	for in, want := range map[string]Options{
		"":                   {},
		"none":               {},
		"borders":            {RemoveBorders: true},
		" Borders , pads ":   {RemoveBorders: true, Pads: true},
		"crops,pads,borders": {RemoveBorders: true, Pads: true, Crops: true},
	} {
		got, err := ParseOptions(in)
		if err != nil || got != want {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"border", "borders,zoom", "all"} {
		if got, err := ParseOptions(in); !errors.Is(err, ErrBadOptions) || got != (Options{}) {
			t.Errorf("ParseOptions(%q) = %+v, %v; want ErrBadOptions", in, got, err)
		}
	}
}

// Hashes returns the whole image's hash first, equal to pdq's, and only
// that without options; variants too small to hash are left out.
func TestHashesWholeImageFirst(t *testing.T) {
	pics := pictures(t)
	var h pdq.Hasher
	for _, p := range pics[:2] {
		plain := Hashes(&h, p.img, Options{})
		all := Hashes(&h, p.img, Options{RemoveBorders: true, Crops: true, Pads: true})
		if len(plain) != 1 || plain[0].Hashes[0] != p.listed || all[0] != plain[0] {
			t.Fatalf("%s: whole-image hash differs: %v vs %v", p.name, plain, all[0])
		}
		if len(all) != 9 { // 4 crops + 4 pads, no borders in these pictures
			t.Errorf("%s: %d variants, want 9", p.name, len(all))
		}
	}
}
