// Package pdq computes Meta's PDQ perceptual image hash: a 256-bit hash and
// a 0-100 quality score, as specified by the reference implementation in
// facebook/ThreatExchange (pdq/cpp, pdq/README.md, hashing/hashing.pdf).
//
// The pipeline follows the reference step by step so that hashing the same
// decoded pixels gives bit-identical hashes:
//
//  1. Images wider or taller than 512 pixels are first resized to exactly
//     512x512 with CImg's nearest-neighbour rule (aspect ratio not kept).
//  2. Luma Y = 0.299 R + 0.587 G + 0.114 B in float32; greyscale input is
//     used as is; alpha is ignored, not composited; EXIF orientation is
//     ignored.
//  3. Two passes of Jarosz box filters (a tent filter) along rows then
//     columns, with a window of ceil(dimension/128), then decimation to
//     64x64 by sampling at the centres of the output cells.
//  4. Quality from the gradient energy of the 64x64 image.
//  5. A 2-D DCT keeping coefficients 1..16 of each axis (16x16), and each
//     bit set if its coefficient is strictly greater than the median.
//
// All arithmetic is float32 in the same order as the reference, with explicit
// conversions so that the Go compiler never fuses a multiply and an add.
//
// Decoding untrusted files (JPEG, PNG, GIF, WebP and binary PPM) goes
// through Decode, which refuses oversized, truncated and malformed input
// before allocating pixel buffers for it.
package pdq

import (
	"image"
	"math"
	"slices"
	"sync"
)

// Result is the PDQ hash of one image and its quality (0-100). Upstream
// advises discarding hashes of quality below 50 (see QualityThreshold).
type Result struct {
	Hash    Hash
	Quality int
}

// QualityThreshold is the lowest quality worth matching: python-threatexchange
// uses 50, and pdq/README.md says to discard quality 49 or below.
const QualityThreshold = 50

// MinDimension is the smallest width and height the reference hashes;
// smaller images get the all-zero hash with quality 0.
const MinDimension = 5

// PreResize is the side of the square that larger images are first resized
// to (pdqio.cpp DOWNSAMPLE_DIMS).
const PreResize = 512

// Transform names one of the 8 dihedral transforms of an image (the
// symmetries of a square), in the order of the reference's --pdqdih output.
type Transform int

const (
	Original Transform = iota
	Rotate90
	Rotate180
	Rotate270
	FlipX      // mirror about the horizontal axis (upside down)
	FlipY      // mirror about the vertical axis (left-right)
	FlipPlus1  // transpose about the main diagonal
	FlipMinus1 // transpose about the anti-diagonal
	NumTransforms
)

var transformNames = [NumTransforms]string{
	"orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1",
}

// String returns the reference's name for t, as in its --pdqdih output.
func (t Transform) String() string {
	if t < 0 || t >= NumTransforms {
		return "invalid"
	}
	return transformNames[t]
}

// Dihedral holds the hashes of all 8 dihedral transforms of one image,
// computed from a single DCT as the reference does, indexed by Transform.
type Dihedral struct {
	Hashes  [NumTransforms]Hash
	Quality int
}

// dctMatrix is the 16x64 DCT-II basis for frequencies 1..16 (frequency 0,
// the mean, carries no structure), row-major, as in the reference:
// D[i][j] = sqrt(2/64) * cos(pi/128 * (i+1) * (2j+1)), with the scale factor
// rounded to float32 and the product computed in float64.
var dctMatrix = func() (d [16 * 64]float32) {
	scale := float64(float32(math.Sqrt(2.0 / 64.0)))
	for i := 0; i < 16; i++ {
		for j := 0; j < 64; j++ {
			d[i*64+j] = float32(scale * math.Cos((math.Pi/2.0/64.0)*float64(i+1)*float64(2*j+1)))
		}
	}
	return d
}()

// A Hasher holds the scratch buffers for hashing, so that hashing many
// images allocates nothing after the first one of a given size. The zero
// value is ready to use. A Hasher is not safe for concurrent use; use one
// per goroutine.
type Hasher struct {
	luma    []float32 // the image's luma, after the pre-resize
	buf1    []float32
	buf2    []float32
	sums    []float32 // per-column running sums for the column passes
	keep    []bool    // which columns the final row pass must write
	blur    []float32 // final column pass input: ht x 64 sampled columns
	blurOut []float32 // final column pass output
	b64     [64 * 64]float32
	t16x64  [16 * 64]float32
	dct     [16 * 16]float32
	aux     [16 * 16]float32
	sorted  [16 * 16]float32
}

// Image hashes img's pixels with the reference pipeline (pre-resize, luma,
// downsample, DCT). It never fails: images smaller than MinDimension on
// either side get the zero hash and quality 0.
func (h *Hasher) Image(img image.Image) Result {
	w, ht := h.fillLuma(img)
	return h.Luma(h.luma, w, ht)
}

// ImageDihedral is like Image but returns the hashes of all 8 dihedral
// transforms of img.
func (h *Hasher) ImageDihedral(img image.Image) Dihedral {
	w, ht := h.fillLuma(img)
	return h.LumaDihedral(h.luma, w, ht)
}

// Luma hashes a width x height row-major luma buffer (values 0..255). It
// only reads luma. This is the entry point for callers with their own
// decoder (for example video frames already scaled to 64x64); note that
// the 512x512 pre-resize is the caller's job here. Buffers smaller than
// width*height, like images under MinDimension, get the zero Result.
func (h *Hasher) Luma(luma []float32, width, height int) Result {
	if !h.downsample(luma, width, height) {
		return Result{}
	}
	q := quality(&h.b64)
	h.dct64To16()
	return Result{Hash: toBits(&h.dct, &h.sorted), Quality: q}
}

// LumaDihedral is like Luma but returns all 8 dihedral hashes.
func (h *Hasher) LumaDihedral(luma []float32, width, height int) Dihedral {
	var d Dihedral
	if !h.downsample(luma, width, height) {
		return d
	}
	d.Quality = quality(&h.b64)
	h.dct64To16()
	for t := Original; t < NumTransforms; t++ {
		transformDCT(t, &h.dct, &h.aux)
		d.Hashes[t] = toBits(&h.aux, &h.sorted)
	}
	return d
}

// hashers recycles Hashers (about 3 MiB of buffers each for a 512x512
// image) across calls of the package-level functions.
var hashers = sync.Pool{New: func() any { return new(Hasher) }}

// HashImage hashes img. It is safe for concurrent use.
func HashImage(img image.Image) Result {
	h := hashers.Get().(*Hasher)
	defer hashers.Put(h)
	return h.Image(img)
}

// HashImageDihedral returns the 8 dihedral hashes of img. It is safe for
// concurrent use.
func HashImageDihedral(img image.Image) Dihedral {
	h := hashers.Get().(*Hasher)
	defer hashers.Put(h)
	return h.ImageDihedral(img)
}

// downsample blurs and decimates luma into h.b64. It reports false for
// images too small to hash (or a buffer too short for the dimensions).
func (h *Hasher) downsample(luma []float32, w, ht int) bool {
	if w < MinDimension || ht < MinDimension || len(luma) < w*ht {
		return false
	}
	if w == 64 && ht == 64 {
		// The reference skips the filter when the input is already 64x64
		// (e.g. video frames scaled by ffmpeg); a window-1 box filter is
		// not an exact identity in floating point, so this matters.
		copy(h.b64[:], luma)
		return true
	}
	n := w * ht
	h.buf1 = grow(h.buf1, n)
	h.buf2 = grow(h.buf2, n)
	h.sums = grow(h.sums, max(w, 64))
	if cap(h.keep) < w {
		h.keep = make([]bool, w)
	}
	h.keep = h.keep[:w]

	// Window sizes (downscaling.cpp computeJaroszFilterWindowSize): half of
	// a 64th of the dimension, rounded up, because two passes are made.
	winRow := (w + 127) / 128 // along each row, so from the width
	winCol := (ht + 127) / 128

	// Decimation picks the centres of the 64x64 cells (decimateFloat).
	var rowIdx, colIdx [64]int
	for i := range 64 {
		rowIdx[i] = int(((float64(i) + 0.5) * float64(ht)) / 64)
		colIdx[i] = int(((float64(i) + 0.5) * float64(w)) / 64)
	}
	clear(h.keep)
	for _, c := range colIdx {
		h.keep[c] = true
	}

	// Pass 1: rows luma -> buf2, columns buf2 -> buf1.
	boxRows(luma, h.buf2, w, ht, winRow, nil)
	boxCols(h.buf2, h.buf1, w, ht, winCol, h.sums)
	// Pass 2: rows buf1 -> buf2, writing only the columns that the
	// decimation reads (the running sums still cover every column, so
	// every kept value is computed exactly as the reference computes it).
	boxRows(h.buf1, h.buf2, w, ht, winRow, h.keep)
	// Columns, only for the 64 sampled columns, into a ht x 64 buffer.
	h.blur = grow(h.blur, ht*64)
	for r := 0; r < ht; r++ {
		dst := h.blur[r*64 : r*64+64]
		src := h.buf2[r*w : r*w+w]
		for c, x := range colIdx {
			dst[c] = src[x]
		}
	}
	// The gathered columns are in blur; filter them into blurOut. (The
	// matrix is ht x 64, which can be larger than w x ht for narrow images.)
	h.blurOut = grow(h.blurOut, ht*64)
	boxCols(h.blur, h.blurOut, 64, ht, winCol, h.sums)
	for i, r := range rowIdx {
		copy(h.b64[i*64:i*64+64], h.blurOut[r*64:r*64+64])
	}
	return true
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// boxRows applies a 1-D box filter of the given window along each row of
// the w x ht matrix in, writing out. If keep is not nil, only the columns
// with keep[c] are written. The running sum, its order of additions and
// subtractions, and the shrinking windows at both ends follow the
// reference (downscaling.cpp box1DFloat) exactly.
//
// Each row's running sum is a chain of dependent float additions, so rows
// are filtered four at a time with independent sums, which lets the CPU
// overlap the chains; every row still sees exactly its own sequence of
// operations.
func boxRows(in, out []float32, w, ht, win int, keep []bool) {
	r := 0
	for ; r+4 <= ht; r += 4 {
		boxRows4(in[r*w:(r+4)*w], out[r*w:(r+4)*w], w, win, keep)
	}
	for ; r < ht; r++ {
		boxRow(in[r*w:r*w+w], out[r*w:r*w+w], win, keep)
	}
}

// boxPhases returns the lengths of the reference's four phases: sums
// without output, growing window, full window, shrinking window.
func boxPhases(n, win int) (p1, p2, p3, p4 int) {
	half := (win + 2) / 2
	return half - 1, win - half + 1, n - win, half - 1
}

func boxRow(src, dst []float32, win int, keep []bool) {
	p1, p2, p3, p4 := boxPhases(len(src), win)
	var sum float32
	cnt := 0
	ri, li, oi := 0, 0, 0
	for range p1 {
		sum += src[ri]
		cnt++
		ri++
	}
	for range p2 {
		sum += src[ri]
		cnt++
		if keep == nil || keep[oi] {
			dst[oi] = sum / float32(cnt)
		}
		ri++
		oi++
	}
	fcnt := float32(cnt)
	for range p3 {
		sum += src[ri]
		sum -= src[li]
		if keep == nil || keep[oi] {
			dst[oi] = sum / fcnt
		}
		ri++
		li++
		oi++
	}
	for range p4 {
		sum -= src[li]
		cnt--
		if keep == nil || keep[oi] {
			dst[oi] = sum / float32(cnt)
		}
		li++
		oi++
	}
}

// boxRows4 is boxRow on four consecutive rows of width w at once.
func boxRows4(in, out []float32, w, win int, keep []bool) {
	a, b, c, d := in[0:w], in[w:2*w], in[2*w:3*w], in[3*w:4*w]
	oa, ob, oc, od := out[0:w], out[w:2*w], out[2*w:3*w], out[3*w:4*w]
	p1, p2, p3, p4 := boxPhases(w, win)
	var sa, sb, sc, sd float32
	cnt := 0
	ri, li, oi := 0, 0, 0
	for range p1 {
		sa += a[ri]
		sb += b[ri]
		sc += c[ri]
		sd += d[ri]
		cnt++
		ri++
	}
	for range p2 {
		sa += a[ri]
		sb += b[ri]
		sc += c[ri]
		sd += d[ri]
		cnt++
		if keep == nil || keep[oi] {
			f := float32(cnt)
			oa[oi], ob[oi], oc[oi], od[oi] = sa/f, sb/f, sc/f, sd/f
		}
		ri++
		oi++
	}
	f := float32(cnt)
	if keep == nil {
		for range p3 {
			sa += a[ri]
			sb += b[ri]
			sc += c[ri]
			sd += d[ri]
			sa -= a[li]
			sb -= b[li]
			sc -= c[li]
			sd -= d[li]
			oa[oi], ob[oi], oc[oi], od[oi] = sa/f, sb/f, sc/f, sd/f
			ri++
			li++
			oi++
		}
	} else {
		for range p3 {
			sa += a[ri]
			sb += b[ri]
			sc += c[ri]
			sd += d[ri]
			sa -= a[li]
			sb -= b[li]
			sc -= c[li]
			sd -= d[li]
			if keep[oi] {
				oa[oi], ob[oi], oc[oi], od[oi] = sa/f, sb/f, sc/f, sd/f
			}
			ri++
			li++
			oi++
		}
	}
	for range p4 {
		sa -= a[li]
		sb -= b[li]
		sc -= c[li]
		sd -= d[li]
		cnt--
		if keep == nil || keep[oi] {
			f := float32(cnt)
			oa[oi], ob[oi], oc[oi], od[oi] = sa/f, sb/f, sc/f, sd/f
		}
		li++
		oi++
	}
}

// boxCols applies the same 1-D box filter along each column. It walks the
// rows in order and keeps one running sum per column, which performs, for
// every column, exactly the reference's sequence of float32 operations
// while reading memory row by row.
func boxCols(in, out []float32, w, ht, win int, sums []float32) {
	p1, p2, p3, p4 := boxPhases(ht, win)
	sums = sums[:w]
	clear(sums)
	cnt := 0
	ri, li, oi := 0, 0, 0
	for range p1 {
		src := in[ri*w : ri*w+w]
		for j := range sums {
			sums[j] += src[j]
		}
		cnt++
		ri++
	}
	for range p2 {
		src := in[ri*w : ri*w+w]
		dst := out[oi*w : oi*w+w]
		cnt++
		f := float32(cnt)
		for j := range sums {
			sums[j] += src[j]
			dst[j] = sums[j] / f
		}
		ri++
		oi++
	}
	f := float32(cnt)
	for range p3 {
		add := in[ri*w : ri*w+w]
		sub := in[li*w : li*w+w]
		dst := out[oi*w : oi*w+w]
		for j := range sums {
			s := sums[j] + add[j]
			s -= sub[j]
			sums[j] = s
			dst[j] = s / f
		}
		ri++
		li++
		oi++
	}
	for range p4 {
		sub := in[li*w : li*w+w]
		dst := out[oi*w : oi*w+w]
		cnt--
		f := float32(cnt)
		for j := range sums {
			sums[j] -= sub[j]
			dst[j] = sums[j] / f
		}
		li++
		oi++
	}
}

// quality is the reference's heuristic (pdqImageDomainQualityMetric): the
// sum of the absolute vertical and horizontal neighbour differences of the
// 64x64 image, each scaled to 0..100 and truncated, divided by 90 and
// capped at 100.
func quality(b *[64 * 64]float32) int {
	sum := 0
	step := func(u, v float32) {
		d := int(float32(float32(u-v)*100) / 255)
		if d < 0 {
			d = -d
		}
		sum += d
	}
	for i := 0; i < 63; i++ {
		for j := 0; j < 64; j++ {
			step(b[i*64+j], b[(i+1)*64+j])
		}
	}
	for i := 0; i < 64; i++ {
		for j := 0; j < 63; j++ {
			step(b[i*64+j], b[i*64+j+1])
		}
	}
	return min(sum/90, 100)
}

// dct64To16 computes B = D A Dt for the 64x64 image A and the 16x64 DCT
// matrix D, into h.dct. Each output is a float32 sum over k = 0..63 in
// increasing order, as in the reference; the loops are ordered so that the
// inner one runs along rows of memory, which does not change any sum.
func (h *Hasher) dct64To16() {
	d := &dctMatrix
	a := &h.b64
	t := &h.t16x64
	// T = D A: T[i][j] = sum_k D[i][k] A[k][j].
	clear(t[:])
	for i := 0; i < 16; i++ {
		ti := t[i*64 : i*64+64]
		for k := 0; k < 64; k++ {
			dik := d[i*64+k]
			ak := a[k*64 : k*64+64]
			for j := range ti {
				ti[j] += float32(dik * ak[j])
			}
		}
	}
	// B = T Dt: B[i][j] = sum_k T[i][k] D[j][k].
	for i := 0; i < 16; i++ {
		ti := t[i*64 : i*64+64]
		for j := 0; j < 16; j++ {
			dj := d[j*64 : j*64+64]
			var s float32
			for k := range ti {
				s += float32(ti[k] * dj[k])
			}
			h.dct[i*16+j] = s
		}
	}
}

// transformDCT writes into b the DCT of the dihedral transform t of the
// image whose DCT is a, without recomputing it. Mirroring an axis negates
// the coefficients of odd frequency along it (index 0, 2, ... here, since
// index i is frequency i+1); rotations and diagonal flips also transpose.
// The sign patterns are those of pdqhashing.cpp dct16OriginalTo*.
func transformDCT(t Transform, a, b *[16 * 16]float32) {
	for i := 0; i < 16; i++ {
		for j := 0; j < 16; j++ {
			v := a[i*16+j]
			switch t {
			case Original:
				b[i*16+j] = v
			case Rotate90:
				if j&1 == 0 {
					v = -v
				}
				b[j*16+i] = v
			case Rotate180:
				if (i+j)&1 == 1 {
					v = -v
				}
				b[i*16+j] = v
			case Rotate270:
				if i&1 == 0 {
					v = -v
				}
				b[j*16+i] = v
			case FlipX:
				if i&1 == 0 {
					v = -v
				}
				b[i*16+j] = v
			case FlipY:
				if j&1 == 0 {
					v = -v
				}
				b[i*16+j] = v
			case FlipPlus1:
				b[j*16+i] = v
			case FlipMinus1:
				if (i+j)&1 == 1 {
					v = -v
				}
				b[j*16+i] = v
			}
		}
	}
}

// toBits sets bit i*16+j when coefficient (i, j) is strictly greater than
// the median. The reference's median (Torben's method over 256 values) is
// the lower median, the 128th smallest value.
func toBits(c, scratch *[16 * 16]float32) Hash {
	*scratch = *c
	slices.Sort(scratch[:])
	median := scratch[127]
	var h Hash
	for k, v := range c {
		if v > median {
			h.setBit(k)
		}
	}
	return h
}

// RGBLuma writes the luma of len(dst) packed 8-bit RGB pixels (rgb holds
// 3*len(dst) bytes) into dst, with the reference's fillFloatLumaFromRGB
// arithmetic. It is the entry point for decoders that produce raw RGB24
// frames, such as video frames read from ffmpeg.
func RGBLuma(dst []float32, rgb []byte) {
	rgb = rgb[:3*len(dst)]
	for i := range dst {
		dst[i] = rgbLuma(rgb[3*i], rgb[3*i+1], rgb[3*i+2])
	}
}

// Float is PDQF, the float form of PDQ that TMK+PDQF hashes video frames
// with: the 16x16 DCT coefficients the hash bits are thresholded from,
// row-major (the reference's pdqFloat256FromFloatLuma output).
type Float [16 * 16]float32

// LumaFloat is like Luma but returns the PDQF coefficients instead of the
// thresholded hash. A buffer under MinDimension gives all zeros and
// quality 0.
func (h *Hasher) LumaFloat(luma []float32, width, height int) (Float, int) {
	if !h.downsample(luma, width, height) {
		return Float{}, 0
	}
	q := quality(&h.b64)
	h.dct64To16()
	return Float(h.dct), q
}

// PreResizedLuma returns the luma of img after the reference's pre-resize
// (what Image hashes), copied into dst (grown as needed), with its size.
// Callers that hash several variants of one image (hashing/variants: borders
// cut off, edges cropped) take the luma once and pass cut-outs to
// LumaDihedral.
func (h *Hasher) PreResizedLuma(dst []float32, img image.Image) ([]float32, int, int) {
	w, ht := h.fillLuma(img)
	dst = grow(dst, w*ht)
	copy(dst, h.luma[:w*ht])
	return dst, w, ht
}
