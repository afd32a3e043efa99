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

// fancy returns the chroma that libjpeg's fancy upsampling gives
// full-resolution column x, from the chroma row near (and, for 4:2:0, the
// nearer other row far) of a plane cw samples wide (jdsample.c
// h2v1_fancy_upsample and h2v2_fancy_upsample).
func fancy420(near, far []uint8, cw, x int) uint8 {
	cx := x / 2
	this := 3*int32(near[cx]) + int32(far[cx])
	if x%2 == 0 {
		if cx == 0 {
			return uint8((4*this + 8) >> 4)
		}
		return uint8((3*this + 3*int32(near[cx-1]) + int32(far[cx-1]) + 8) >> 4)
	}
	if cx == cw-1 {
		return uint8((4*this + 7) >> 4)
	}
	return uint8((3*this + 3*int32(near[cx+1]) + int32(far[cx+1]) + 7) >> 4)
}

func fancy422(row []uint8, cw, x int) uint8 {
	cx := x / 2
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
}

// fillRowYCbCr is fillRow for a JPEG-decoded image, converting as libjpeg
// does. Rows beyond the image edge repeat the edge row, as libjpeg's
// context rows do.
func fillRowYCbCr(m *image.YCbCr, row []float32, xs []int, y int) {
	b := m.Rect
	yrow := m.Y[m.YOffset(b.Min.X, y):]
	if b.Min == (image.Point{}) && m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
		cw, ch := (b.Dx()+1)/2, (b.Dy()+1)/2
		cy := min(y/2, ch-1)
		ny := y/2 - 1 // the nearer other chroma row: above for even y
		if y%2 == 1 {
			ny = y/2 + 1
		}
		ny = max(0, min(ny, ch-1))
		cbN, cbF := m.Cb[cy*m.CStride:], m.Cb[ny*m.CStride:]
		crN, crF := m.Cr[cy*m.CStride:], m.Cr[ny*m.CStride:]
		for i, x := range xs {
			r, g, bb := jpegRGB(yrow[x], fancy420(cbN, cbF, cw, x), fancy420(crN, crF, cw, x))
			row[i] = rgbLuma(r, g, bb)
		}
		return
	}
	if b.Min == (image.Point{}) && m.SubsampleRatio == image.YCbCrSubsampleRatio422 {
		cw := (b.Dx() + 1) / 2
		cb, cr := m.Cb[y*m.CStride:], m.Cr[y*m.CStride:]
		for i, x := range xs {
			r, g, bb := jpegRGB(yrow[x], fancy422(cb, cw, x), fancy422(cr, cw, x))
			row[i] = rgbLuma(r, g, bb)
		}
		return
	}
	for i, x := range xs {
		ci := m.COffset(b.Min.X+x, y)
		r, g, bb := jpegRGB(yrow[x], m.Cb[ci], m.Cr[ci])
		row[i] = rgbLuma(r, g, bb)
	}
}
