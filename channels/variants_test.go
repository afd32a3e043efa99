package channels_test

import (
	"image"
	"image/color"
	"image/draw"
	"net/http"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/variants"
)

// With --image-variants a letterboxed copy of a listed image (black bars
// added above and below) is refused once borders are removed, and a copy
// with 5 % cut from its top once edges are padded; with no variants both
// are published, as PDQ alone misses them. An unrelated image passes
// under every setting.
func TestImageVariantsCatchBordersAndCrops(t *testing.T) {
	orig, img := readImage(t, "bridge-mods", "aaa-orig.jpg")
	b := img.Bounds()
	bar := b.Dy() * 12 / 100
	boxed := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()+2*bar))
	draw.Draw(boxed, boxed.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
	draw.Draw(boxed, image.Rect(0, bar, b.Dx(), bar+b.Dy()), img, b.Min, draw.Src)
	cut := b.Dy() * 5 / 100
	cropped := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()-cut))
	draw.Draw(cropped, cropped.Bounds(), img, image.Pt(b.Min.X, b.Min.Y+cut), draw.Src)
	other, _ := readImage(t, "reg-test-input", "labelme-subset", "q0122.jpg")
	copies := map[string][]byte{"letterboxed": encodeJPEG(t, boxed, 85), "cropped": encodeJPEG(t, cropped, 85)}
	for _, tc := range []struct {
		flag    string
		refused map[string]bool
	}{
		{"none", map[string]bool{}},
		{"borders", map[string]bool{"letterboxed": true}},
		{"borders,pads", map[string]bool{"letterboxed": true, "cropped": true}},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			opts, err := variants.ParseOptions(tc.flag)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnvWith(t, func(c *channels.Config) { c.ImageVariants = opts })
			e.importBank("gifct", hashlist.Block, pdqEntry(t, orig))
			for name, data := range copies {
				code, body := e.post("alice", "news", name, file{name + ".jpg", "image/jpeg", data})
				want := http.StatusCreated
				if tc.refused[name] {
					want = http.StatusUnavailableForLegalReasons
				}
				if code != want {
					t.Errorf("%s: HTTP %d, want %d: %s", name, code, want, body)
				}
			}
			e.mustPost("alice", "news", "other", file{"o.jpg", "image/jpeg", other})
		})
	}
}
