package pdq

import (
	"image"
	"image/color"
)

// Luma coefficients (ITU-R BT.601), rounded to float32 as in the reference.
const (
	lumaR float32 = 0.299
	lumaG float32 = 0.587
	lumaB float32 = 0.114
)

// Products of each 8-bit channel value with its coefficient. Each is the
// float32 product the reference computes, so a table lookup changes nothing.
var lumaTabR, lumaTabG, lumaTabB = func() (r, g, b [256]float32) {
	for v := range 256 {
		r[v] = lumaR * float32(v)
		g[v] = lumaG * float32(v)
		b[v] = lumaB * float32(v)
	}
	return
}()

// rgbLuma is the reference's fillFloatLumaFromRGB: (R*cr + G*cg) + B*cb,
// each step rounded to float32.
func rgbLuma(r, g, b uint8) float32 {
	return float32(lumaTabR[r]+lumaTabG[g]) + lumaTabB[b]
}

// preResized returns the size the reference hashes an image of size w x h
// at: 512x512 if either side exceeds 512, otherwise its own size.
func preResized(w, h int) (int, int) {
	if w > PreResize || h > PreResize {
		return PreResize, PreResize
	}
	return w, h
}

// sampleIndex returns CImg's nearest-neighbour source index for output
// index i when resizing from n to m samples: floor(i*n/m). (CImg advances a
// pointer by floor((i+1)*n/m) - floor(i*n/m), computed in double precision,
// which is exact for these sizes.)
func sampleIndex(i, n, m int) int {
	if n == m {
		return i
	}
	return i * n / m
}

// fillLuma writes the luma of img, after the pre-resize, into h.luma and
// returns its size. Channels are 8-bit, non-premultiplied: alpha is dropped,
// and greyscale images use their grey value directly, as CImg does for a
// one-channel image.
//
// 16-bit channels keep their LOW byte (the sample modulo 256). That is what
// the reference does in practice: ImageMagick hands CImg a 16-bit PNM and
// CImg casts each sample to uint8. It is surprising, but matching the
// reference is the point: on upstream's I16.png it gives distance 0, while
// scaling to the high byte gives distance 130.
func (h *Hasher) fillLuma(img image.Image) (int, int) {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	if sw <= 0 || sh <= 0 {
		return 0, 0
	}
	w, ht := preResized(sw, sh)
	h.luma = grow(h.luma, w*ht)
	var pal *[256]float32
	if p, ok := img.(*image.Paletted); ok {
		// Convert the palette once; a palette holds at most 256 colours.
		pal = new([256]float32)
		for k, c := range p.Palette {
			if k < 256 {
				pal[k] = nrgbaLuma(c)
			}
		}
	}
	var xs [PreResize]int
	for x := range w {
		xs[x] = sampleIndex(x, sw, w)
	}
	for y := range ht {
		sy := b.Min.Y + sampleIndex(y, sh, ht)
		row := h.luma[y*w : y*w+w]
		fillRow(img, pal, row, b.Min.X, xs[:w], sy)
	}
	return w, ht
}

// fillRow fills row with the luma of pixels (x0+xs[i], y) of img, with
// fast paths for the types the standard decoders return.
func fillRow(img image.Image, pal *[256]float32, row []float32, x0 int, xs []int, y int) {
	switch m := img.(type) {
	case *image.Gray:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			row[i] = float32(p[x])
		}
	case *image.Gray16:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			row[i] = float32(p[2*x+1]) // low byte, see fillLuma
		}
	case *image.NRGBA64:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			q := p[8*x : 8*x+8]
			row[i] = rgbLuma(q[1], q[3], q[5])
		}
	case *image.RGBA64:
		for i, x := range xs {
			c := m.RGBA64At(x0+x, y)
			if c.A != 0xffff {
				c = color.RGBA64(color.NRGBA64Model.Convert(c).(color.NRGBA64))
			}
			row[i] = rgbLuma(uint8(c.R), uint8(c.G), uint8(c.B))
		}
	case *image.YCbCr:
		fillRowYCbCr(m, row, xs, y)
	case *image.NYCbCrA:
		for i, x := range xs {
			yi, ci := m.YOffset(x0+x, y), m.COffset(x0+x, y)
			r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			row[i] = rgbLuma(r, g, b)
		}
	case *image.NRGBA:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			q := p[4*x : 4*x+3]
			row[i] = rgbLuma(q[0], q[1], q[2])
		}
	case *image.RGBA:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			q := p[4*x : 4*x+4]
			if q[3] == 0xff {
				row[i] = rgbLuma(q[0], q[1], q[2])
			} else {
				row[i] = nrgbaLuma(m.RGBAAt(x0+x, y))
			}
		}
	case *image.Paletted:
		p := m.Pix[m.PixOffset(x0, y):]
		for i, x := range xs {
			row[i] = pal[p[x]]
		}
	default:
		for i, x := range xs {
			row[i] = nrgbaLuma(img.At(x0+x, y))
		}
	}
}

// nrgbaLuma is the luma of c's non-premultiplied 8-bit colour.
func nrgbaLuma(c color.Color) float32 {
	switch c := c.(type) {
	case color.Gray:
		return float32(c.Y)
	case color.Gray16:
		return float32(uint8(c.Y)) // low byte, see fillLuma
	case color.NRGBA:
		return rgbLuma(c.R, c.G, c.B)
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return rgbLuma(uint8(n.R>>8), uint8(n.G>>8), uint8(n.B>>8))
}
