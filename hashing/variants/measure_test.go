package variants

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parleychat/parley/hashing/index"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/internal/shareddata"
)

// picture is one distinct shared image: its pixels (scaled so that the
// longer side is at most 512, as a chat client sends it) and its listed
// hash.
type picture struct {
	name   string
	img    image.Image
	listed pdq.Hash
}

// pictures decodes the shared PDQ images, keeps those of usable quality
// and, of images showing the same picture (the bridge in several formats,
// rotated or flipped), only the first: any other match is a false one.
func pictures(tb testing.TB) []picture {
	tb.Helper()
	dir := shareddata.Path(tb, "testdata", "pdq")
	f, err := os.Open(filepath.Join(dir, "expected", "cpp-reference.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatal(err)
	}
	var out []picture
	var kept []pdq.Dihedral
	var h pdq.Hasher
next:
	for _, r := range rows[1:] {
		if q, _ := strconv.Atoi(r[2]); q < pdq.QualityThreshold {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(r[0])))
		if err != nil {
			tb.Fatal(err)
		}
		img, _, err := pdq.DecodeBytes(data, nil)
		if err != nil {
			tb.Fatalf("decode %s: %v", r[0], err)
		}
		img = shrink(img, 512)
		d := h.ImageDihedral(img)
		if d.Quality < pdq.QualityThreshold {
			continue
		}
		for _, k := range kept {
			if ok, _ := Match([]pdq.Dihedral{d}, k.Hashes[pdq.Original], index.MatchThreshold); ok {
				continue next
			}
		}
		kept = append(kept, d)
		out = append(out, picture{name: r[0], img: img, listed: d.Hashes[pdq.Original]})
	}
	return out
}

// shrink scales img (nearest neighbour) so that its longer side is at most
// n, keeping its aspect ratio, into an RGBA image.
func shrink(img image.Image, n int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if s := max(w, h); s > n {
		w, h = max(1, w*n/s), max(1, h*n/s)
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			out.Set(x, y, img.At(b.Min.X+x*b.Dx()/w, b.Min.Y+y*b.Dy()/h))
		}
	}
	return out
}

// transform is a change a re-uploader makes to a listed image.
type transform struct {
	name  string
	class string // what the figures are grouped by
	apply func(image.Image) image.Image
}

// cropEdges cuts the given shares of each side off img.
func cropEdges(top, bottom, left, right float64) func(image.Image) image.Image {
	return func(img image.Image) image.Image {
		b := img.Bounds()
		r := image.Rect(b.Min.X+int(left*float64(b.Dx())), b.Min.Y+int(top*float64(b.Dy())),
			b.Max.X-int(right*float64(b.Dx())), b.Max.Y-int(bottom*float64(b.Dy())))
		out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
		draw.Draw(out, out.Bounds(), img, r.Min, draw.Src)
		return out
	}
}

// addBorders puts img on a canvas of colour c with the given shares of
// its size added on each side.
func addBorders(c color.Color, top, bottom, left, right float64) func(image.Image) image.Image {
	return func(img image.Image) image.Image {
		b := img.Bounds()
		t, l := int(top*float64(b.Dy())), int(left*float64(b.Dx()))
		w := b.Dx() + l + int(right*float64(b.Dx()))
		h := b.Dy() + t + int(bottom*float64(b.Dy()))
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(out, out.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
		draw.Draw(out, image.Rect(l, t, l+b.Dx(), t+b.Dy()), img, b.Min, draw.Src)
		return out
	}
}

func transforms() []transform {
	ts := []transform{{"unchanged", "unchanged", func(img image.Image) image.Image { return img }}}
	for _, p := range []float64{0.02, 0.05, 0.10} {
		class := fmt.Sprintf("crop %.0f%% one edge", p*100)
		ts = append(ts,
			transform{class + " (top)", class, cropEdges(p, 0, 0, 0)},
			transform{class + " (bottom)", class, cropEdges(0, p, 0, 0)},
			transform{class + " (left)", class, cropEdges(0, 0, p, 0)},
			transform{class + " (right)", class, cropEdges(0, 0, 0, p)},
			transform{fmt.Sprintf("crop %.0f%% all edges", p*100), fmt.Sprintf("crop %.0f%% all edges", p*100), cropEdges(p, p, p, p)})
	}
	black, white := color.Black, color.White
	ts = append(ts,
		transform{"letterbox (black bars top and bottom, 12%)", "borders", addBorders(black, 0.12, 0.12, 0, 0)},
		transform{"pillarbox (black bars left and right, 12%)", "borders", addBorders(black, 0, 0, 0.12, 0.12)},
		transform{"white frame 5%", "borders", addBorders(white, 0.05, 0.05, 0.05, 0.05)},
		transform{"grey frame 10%", "borders", addBorders(color.Gray{128}, 0.10, 0.10, 0.10, 0.10)},
	)
	return ts
}

// variantSets are the sets measured, the first the baseline.
var variantSets = []struct {
	name string
	opts Options
}{
	{"none", Options{}},
	{"borders", Options{RemoveBorders: true}},
	{"borders+crops", Options{RemoveBorders: true, Crops: true}},
	{"borders+pads", Options{RemoveBorders: true, Pads: true}},
	{"borders+crops+pads", Options{RemoveBorders: true, Crops: true, Pads: true}},
}

// TestVariantRecall measures, for each variant set, how many transformed
// copies of the shared images match their original's listed hash (recall)
// and how many match another picture's (false matches), and asserts what
// the sets are for: border removal recovers every copy with bars added,
// padding recovers most small crops, and no set makes a false match among
// the shared images. Run with -v for the table (docs/moderation.md).
func TestVariantRecall(t *testing.T) {
	pics := pictures(t)
	if len(pics) < 5 {
		t.Fatalf("only %d distinct usable shared images", len(pics))
	}
	ts := transforms()
	type tally struct{ hit, n, falses int }
	res := make([]map[string]*tally, len(variantSets))
	var classes []string
	seen := map[string]bool{}
	for si := range variantSets {
		res[si] = map[string]*tally{}
	}
	var h pdq.Hasher
	for _, tr := range ts {
		if !seen[tr.class] {
			seen[tr.class] = true
			classes = append(classes, tr.class)
		}
		for pi, p := range pics {
			// Each kind of variant is hashed once per copy (the whole
			// image first in each group) and the sets are put together
			// from them, which gives what Hashes returns for the set.
			img := tr.apply(p.img)
			withBorders := Hashes(&h, img, Options{RemoveBorders: true})
			crops := Hashes(&h, img, Options{Crops: true})[1:]
			pads := Hashes(&h, img, Options{Pads: true})[1:]
			for si, set := range variantSets {
				vs := withBorders[:1]
				if set.opts.RemoveBorders {
					vs = withBorders
				}
				if set.opts.Crops {
					vs = append(vs[:len(vs):len(vs)], crops...)
				}
				if set.opts.Pads {
					vs = append(vs[:len(vs):len(vs)], pads...)
				}
				tl := res[si][tr.class]
				if tl == nil {
					tl = &tally{}
					res[si][tr.class] = tl
				}
				tl.n++
				if ok, _ := Match(vs, p.listed, index.MatchThreshold); ok {
					tl.hit++
				} else if tr.class == "unchanged" || (tr.class == "borders" && set.opts.RemoveBorders) {
					t.Errorf("set %s: %s of %s not matched", set.name, tr.name, p.name)
				}
				for qi, q := range pics {
					if qi == pi {
						continue
					}
					if ok, d := Match(vs, q.listed, index.MatchThreshold); ok {
						tl.falses++
						t.Errorf("set %s: %s of %s matches %s (distance %d)", set.name, tr.name, p.name, q.name, d)
					}
				}
			}
		}
	}
	t.Logf("%d distinct shared images, threshold %d; recall (matched/copies) and false matches:", len(pics), index.MatchThreshold)
	head := fmt.Sprintf("| %-22s |", "transform")
	for _, s := range variantSets {
		head += fmt.Sprintf(" %-18s |", s.name)
	}
	t.Log(head)
	for _, c := range classes {
		line := fmt.Sprintf("| %-22s |", c)
		for si := range variantSets {
			tl := res[si][c]
			line += fmt.Sprintf(" %3d/%-3d (%d false)   |", tl.hit, tl.n, tl.falses)
		}
		t.Log(line)
	}
	// Padding is there for small crops: it must recover more of the 5 %
	// one-edge crops than border removal alone.
	if b, p := res[1]["crop 5% one edge"].hit, res[3]["crop 5% one edge"].hit; p <= b {
		t.Errorf("pads recover %d of the 5%% one-edge crops, borders alone %d: pads do not pay", p, b)
	}
}

// BenchmarkVariants times hashing one decoded upload (at most 512 pixels
// a side) with each variant set, for a picture without borders and the
// same letterboxed; compare each to "none" of the same picture. Decoding,
// which a real upload also pays, is left out, so the ratios are upper
// bounds.
func BenchmarkVariants(b *testing.B) {
	pics := pictures(b)
	for _, in := range []struct {
		name string
		img  image.Image
	}{{"plain", pics[0].img}, {"letterboxed", addBorders(color.Black, 0.12, 0.12, 0, 0)(pics[0].img)}} {
		for _, set := range variantSets {
			b.Run(in.name+"/"+set.name, func(b *testing.B) {
				var h pdq.Hasher
				for b.Loop() {
					Hashes(&h, in.img, set.opts)
				}
			})
		}
	}
}
