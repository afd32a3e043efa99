// Package variants hashes normalised variants of an image with PDQ, for
// matching copies that PDQ alone misses ("beyond the reference", issue 17).
//
// PDQ tolerates re-encoding, resizing and (with dihedral hashes) rotations
// and flips, but not geometry that moves the picture inside the frame:
// uniform bars added around it (letterbox, pillarbox, a plain frame) or a
// few percent cut from an edge. A matcher can only see the upload, never
// the listed original, so the variants are made of the upload:
//
//   - Borders: its uniform borders cut off (video.FindBorders, the same
//     detector as --video-remove-borders), undoing added bars.
//   - Crops: a few percent cut from each edge in turn, undoing a thin
//     non-uniform strip added on one side.
//   - Pads: each edge in turn extended by a few percent (its outer line
//     repeated), undoing a crop from that edge: the picture's content goes
//     back to where it was in the original, and only the thin padded band
//     differs.
//
// Every variant is hashed with all 8 dihedral transforms; the upload
// matches a list if any variant's hash does. docs/moderation.md gives the
// measured recall, false matches and cost of each set.
package variants

import (
	"errors"
	"fmt"
	"image"
	"strings"

	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

// Options selects the variants Hashes makes besides the whole image.
type Options struct {
	// RemoveBorders adds the image with its uniform borders cut off
	// (top and bottom, left and right, all four), where it has any.
	RemoveBorders bool
	// Crops adds the image with EdgeShare of its height or width cut
	// from each edge in turn (4 variants).
	Crops bool
	// Pads adds the image with each edge in turn extended by EdgeShare
	// (4 variants).
	Pads bool
}

// Any reports whether o asks for any variant.
func (o Options) Any() bool { return o.RemoveBorders || o.Crops || o.Pads }

// EdgeShare is the share of a side that Crops cuts and Pads adds: 5 %
// undoes crops of about 2 to 8 % (docs/moderation.md).
const EdgeShare = 0.05

// Hashes returns the dihedral PDQ hashes of img (first) and of the
// variants opts asks for. Variants smaller than pdq.MinDimension are left
// out. h is scratch; Hashes is as safe for concurrent use as h.
func Hashes(h *pdq.Hasher, img image.Image, opts Options) []pdq.Dihedral {
	luma, w, ht := h.PreResizedLuma(nil, img)
	out := []pdq.Dihedral{h.LumaDihedral(luma, w, ht)}
	if !opts.Any() || w < pdq.MinDimension || ht < pdq.MinDimension {
		return out
	}
	var buf []float32
	add := func(l []float32, cw, ch int) {
		if cw >= pdq.MinDimension && ch >= pdq.MinDimension {
			out = append(out, h.LumaDihedral(l, cw, ch))
		}
	}
	if opts.RemoveBorders {
		if b := video.FindBorders(luma, w, ht); b.Any() {
			seen := map[video.Borders]bool{}
			for _, c := range b.Cuts() {
				if !c.Any() || seen[c] {
					continue
				}
				seen[c] = true
				var cw, ch int
				buf, cw, ch = crop(buf, luma, w, ht, c)
				add(buf, cw, ch)
			}
		}
	}
	dx, dy := edge(w), edge(ht)
	if opts.Crops {
		for _, c := range []video.Borders{{Top: dy}, {Bottom: dy}, {Left: dx}, {Right: dx}} {
			var cw, ch int
			buf, cw, ch = crop(buf, luma, w, ht, c)
			add(buf, cw, ch)
		}
	}
	if opts.Pads {
		for _, p := range []video.Borders{{Top: dy}, {Bottom: dy}, {Left: dx}, {Right: dx}} {
			var pw, ph int
			buf, pw, ph = pad(buf, luma, w, ht, p)
			add(buf, pw, ph)
		}
	}
	return out
}

// edge is EdgeShare of a side of n pixels, at least one pixel.
func edge(n int) int { return max(1, int(EdgeShare*float64(n)+0.5)) }

// crop copies the part of a w x h luma buffer inside b into dst.
func crop(dst, luma []float32, w, h int, b video.Borders) ([]float32, int, int) {
	cw, ch := w-b.Left-b.Right, h-b.Top-b.Bottom
	if cw <= 0 || ch <= 0 {
		return dst, 0, 0
	}
	dst = grow(dst, cw*ch)
	for y := range ch {
		copy(dst[y*cw:(y+1)*cw], luma[(y+b.Top)*w+b.Left:])
	}
	return dst, cw, ch
}

// pad copies a w x h luma buffer into dst with p pixels added on each
// side, each added pixel repeating the nearest pixel of the image.
func pad(dst, luma []float32, w, h int, p video.Borders) ([]float32, int, int) {
	pw, ph := w+p.Left+p.Right, h+p.Top+p.Bottom
	dst = grow(dst, pw*ph)
	for y := range ph {
		sy := min(max(y-p.Top, 0), h-1)
		row := dst[y*pw : (y+1)*pw]
		src := luma[sy*w : (sy+1)*w]
		for x := range p.Left {
			row[x] = src[0]
		}
		copy(row[p.Left:], src)
		for x := p.Left + w; x < pw; x++ {
			row[x] = src[w-1]
		}
	}
	return dst, pw, ph
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Match reports whether any hash of any variant in vs is within threshold
// of target, and the smallest distance found.
func Match(vs []pdq.Dihedral, target pdq.Hash, threshold int) (bool, int) {
	best := 257
	for _, v := range vs {
		for _, hh := range v.Hashes {
			best = min(best, pdq.Distance(hh, target))
		}
	}
	return best <= threshold, best
}

// ErrBadOptions is wrapped by ParseOptions for a name it does not know.
var ErrBadOptions = errors.New("variants: unknown image variant")

// ParseOptions parses a comma-separated list of variant names, as given to
// "parleyd serve --image-variants": "borders", "pads", "crops", or "none"
// (or empty) for none.
func ParseOptions(s string) (Options, error) {
	var o Options
	for name := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(strings.ToLower(name)) {
		case "", "none":
		case "borders":
			o.RemoveBorders = true
		case "pads":
			o.Pads = true
		case "crops":
			o.Crops = true
		default:
			return Options{}, fmt.Errorf("%w %q: use a comma-separated list of borders, pads and crops, or none", ErrBadOptions, strings.TrimSpace(name))
		}
	}
	return o, nil
}
