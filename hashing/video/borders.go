package video

// Border removal ("beyond the reference"): vPDQ hashes whole frames, so a
// copy of a listed video with black bars added (letterboxed to 16:9,
// pillarboxed to 4:3) or cut away changes every frame's PDQ hash and the
// published matcher misses it. With VPDQOptions.RemoveBorders each sampled
// frame's uniform borders are found and a second vPDQ hash is made of the
// frames with them cut off (Hashes.VPDQBorderless); a matcher tries both.
// docs/benchmarks.md measures what it gains and costs on the reference
// samples.

// Borders are the widths, in pixels, of a frame's uniform borders.
type Borders struct{ Top, Bottom, Left, Right int }

// Any reports whether any border was found.
func (b Borders) Any() bool { return b != Borders{} }

// BorderCuts is how many ways Cuts lists.
const BorderCuts = 3

// Cuts lists the ways of cutting borders b off: the top and bottom ones
// only, the left and right ones only, and all four. Cutting one pair only
// matters when the listed video has bars of its own on the other sides
// (a portrait video with side bars, letterboxed to landscape: its own side
// bars merge with nothing, but cutting them too changes every frame).
func (b Borders) Cuts() [BorderCuts]Borders {
	return [BorderCuts]Borders{{Top: b.Top, Bottom: b.Bottom}, {Left: b.Left, Right: b.Right}, b}
}

// Border detection parameters. A border line (row or column) is one whose
// pixels are, all but borderOutliers of them, within borderTolerance luma
// levels (of 255) of the outermost line's mean: compression noise in a
// black bar stays within a few levels. Borders narrower than
// borderMinShare of the side are ignored, and no more than borderMaxShare
// of a side is cut on each edge, so a dark scene is not cut to nothing.
const (
	borderTolerance = 12
	borderOutliers  = 0.02
	borderMinShare  = 0.02
	borderMaxShare  = 0.35
)

// FindBorders returns the uniform borders of a w x h luma frame (values
// 0-255). A frame that is uniform all over has none.
func FindBorders(luma []float32, w, h int) Borders {
	if w < 8 || h < 8 || len(luma) < w*h {
		return Borders{}
	}
	// line(i) walks the pixels of the i-th line from an edge.
	scan := func(n, length int, at func(line, k int) float32) int {
		var ref float32
		for k := range length {
			ref += at(0, k)
		}
		ref /= float32(length)
		allowed := int(borderOutliers * float64(length))
		limit := int(borderMaxShare * float64(n))
		i := 0
		for ; i < limit; i++ {
			bad := 0
			for k := range length {
				if d := at(i, k) - ref; d > borderTolerance || d < -borderTolerance {
					if bad++; bad > allowed {
						break
					}
				}
			}
			if bad > allowed {
				break
			}
		}
		if i >= limit || float64(i) < borderMinShare*float64(n) {
			// Uniform past the limit (a plain frame, or a dark scene):
			// not a border. Too thin: noise, not a bar.
			return 0
		}
		return i
	}
	b := Borders{
		Top:    scan(h, w, func(i, k int) float32 { return luma[i*w+k] }),
		Bottom: scan(h, w, func(i, k int) float32 { return luma[(h-1-i)*w+k] }),
		Left:   scan(w, h, func(i, k int) float32 { return luma[k*w+i] }),
		Right:  scan(w, h, func(i, k int) float32 { return luma[k*w+w-1-i] }),
	}
	return b
}

// cropLuma copies the part of a w x h luma frame inside borders b into
// dst (grown as needed) and returns it with its size.
func cropLuma(dst, luma []float32, w, h int, b Borders) ([]float32, int, int) {
	cw, ch := w-b.Left-b.Right, h-b.Top-b.Bottom
	if cap(dst) < cw*ch {
		dst = make([]float32, cw*ch)
	}
	dst = dst[:cw*ch]
	for y := range ch {
		copy(dst[y*cw:(y+1)*cw], luma[(y+b.Top)*w+b.Left:])
	}
	return dst, cw, ch
}
