package pdq

import "image"

// The reference decodes JPEGs with libjpeg(-turbo) through ImageMagick,
// whose defaults differ from Go's image/jpeg in two ways that move PDQ
// bits: chroma is upsampled with libjpeg's "fancy" triangle filter rather
// than by repeating samples, and YCbCr is converted to RGB with libjpeg's
// 16-bit fixed-point tables (jdcolor.c) rather than Go's. Both are
// reproduced here, at the pixels PDQ samples, from the arithmetic that
// libjpeg documents; inverse-DCT differences between the decoders remain.

const (
	jScaleBits = 16
	jOneHalf   = 1 << (jScaleBits - 1)
)

// jfix is libjpeg's FIX(x): x in 16.16 fixed point, rounded.
func jfix(x float64) int32 { return int32(x*(1<<jScaleBits) + 0.5) }

var jCrR, jCbB, jCrG, jCbG = func() (crr, cbb, crg, cbg [256]int32) {
	for i := range 256 {
		x := int32(i - 128)
		crr[i] = (jfix(1.40200)*x + jOneHalf) >> jScaleBits
		cbb[i] = (jfix(1.77200)*x + jOneHalf) >> jScaleBits
		crg[i] = -jfix(0.71414) * x
		cbg[i] = -jfix(0.34414)*x + jOneHalf
	}
	return
}()

func jclamp(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// jpegRGB converts like libjpeg's ycc_rgb_convert.
func jpegRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	return jclamp(yy + jCrR[cr]),
		jclamp(yy + (jCbG[cb]+jCrG[cr])>>jScaleBits),
		jclamp(yy + jCbB[cb])
}

// fancyChroma returns the chroma sample of plane c (stride cs, cw x ch
// samples) that libjpeg's fancy upsampling gives full-resolution pixel
// (x, y) for the subsampling ratio r (4:2:0 or 4:2:2; jdsample.c
// h2v2_fancy_upsample and h2v1_fancy_upsample). Rows beyond the image edge
// repeat the edge row, as libjpeg's context rows do.
func fancyChroma(c []uint8, cs, cw, ch, x, y int, r image.YCbCrSubsampleRatio) uint8 {
	cx := x / 2
	switch r {
	case image.YCbCrSubsampleRatio422:
		row := c[min(y, ch-1)*cs:]
		v := int32(row[cx])
		if x%2 == 0 {
			if cx == 0 {
				return uint8(v)
			}
			return uint8((3*v + int32(row[cx-1]) + 1) >> 2)
		}
		if cx == cw-1 {
			return uint8(v)
		}
		return uint8((3*v + int32(row[cx+1]) + 2) >> 2)
	case image.YCbCrSubsampleRatio420:
		cy := y / 2
		ny := cy - 1 // the nearer other row: above for even y, below for odd
		if y%2 == 1 {
			ny = cy + 1
		}
		ny = max(0, min(ny, ch-1))
		cy = min(cy, ch-1)
		near, far := c[cy*cs:], c[ny*cs:]
		colsum := func(i int) int32 { return 3*int32(near[i]) + int32(far[i]) }
		this := colsum(cx)
		if x%2 == 0 {
			if cx == 0 {
				return uint8((4*this + 8) >> 4)
			}
			return uint8((3*this + colsum(cx-1) + 8) >> 4)
		}
		if cx == cw-1 {
			return uint8((4*this + 7) >> 4)
		}
		return uint8((3*this + colsum(cx+1) + 7) >> 4)
	}
	return c[min(y, ch-1)*cs+cx] // not reached for other ratios
}

// fillRowYCbCr is fillRow for a JPEG-decoded image, converting as libjpeg
// does.
func fillRowYCbCr(m *image.YCbCr, row []float32, xs []int, y int) {
	b := m.Rect
	fancy := b.Min == (image.Point{}) &&
		(m.SubsampleRatio == image.YCbCrSubsampleRatio420 || m.SubsampleRatio == image.YCbCrSubsampleRatio422)
	if !fancy {
		for i, x := range xs {
			yi, ci := m.YOffset(b.Min.X+x, y), m.COffset(b.Min.X+x, y)
			r, g, bb := jpegRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			row[i] = rgbLuma(r, g, bb)
		}
		return
	}
	cw := (b.Dx() + 1) / 2
	ch := b.Dy()
	if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
		ch = (b.Dy() + 1) / 2
	}
	yrow := m.Y[y*m.YStride:]
	for i, x := range xs {
		cb := fancyChroma(m.Cb, m.CStride, cw, ch, x, y, m.SubsampleRatio)
		cr := fancyChroma(m.Cr, m.CStride, cw, ch, x, y, m.SubsampleRatio)
		r, g, bb := jpegRGB(yrow[x], cb, cr)
		row[i] = rgbLuma(r, g, bb)
	}
}
