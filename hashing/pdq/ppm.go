package pdq

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
)

// The binary PPM (P6) format, as written by netpbm and ImageMagick: the
// magic "P6", then width, height and maxval as decimal numbers separated by
// whitespace (with '#' comments to the end of a line), exactly one
// whitespace byte, then width*height RGB triples of one byte each (maxval
// < 256) or two big-endian bytes each (maxval >= 256).

const ppmMaxDimension = 1 << 20

func decodePPMConfig(r io.Reader) (image.Config, error) {
	w, h, _, err := readPPMHeader(bufio.NewReader(r))
	if err != nil {
		return image.Config{}, err
	}
	return image.Config{ColorModel: nil, Width: w, Height: h}, nil
}

func readPPMHeader(br *bufio.Reader) (w, h, maxval int, err error) {
	var magic [2]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil || magic != [2]byte{'P', '6'} {
		return 0, 0, 0, errors.New("ppm: not a binary PPM (P6)")
	}
	var v [3]int
	for i := range v {
		n, err := ppmNumber(br)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("ppm: header: %w", err)
		}
		v[i] = n
	}
	w, h, maxval = v[0], v[1], v[2]
	if w <= 0 || h <= 0 || w > ppmMaxDimension || h > ppmMaxDimension {
		return 0, 0, 0, fmt.Errorf("ppm: bad dimensions %dx%d", w, h)
	}
	if maxval <= 0 || maxval > 65535 {
		return 0, 0, 0, fmt.Errorf("ppm: bad maxval %d", maxval)
	}
	// Exactly one whitespace byte separates the header from the raster.
	c, err := br.ReadByte()
	if err != nil || !ppmSpace(c) {
		return 0, 0, 0, errors.New("ppm: header not followed by whitespace")
	}
	return w, h, maxval, nil
}

func ppmSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// ppmNumber skips whitespace and comments, then reads a decimal number,
// leaving the byte after it unread.
func ppmNumber(br *bufio.Reader) (int, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c == '#' {
			if _, err := br.ReadString('\n'); err != nil {
				return 0, err
			}
			continue
		}
		if ppmSpace(c) {
			continue
		}
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("unexpected byte %q", c)
		}
		n := int(c - '0')
		for {
			c, err := br.ReadByte()
			if err != nil {
				return 0, err
			}
			if c < '0' || c > '9' {
				return n, br.UnreadByte()
			}
			n = n*10 + int(c-'0')
			if n > 1<<24 {
				return 0, errors.New("number too large")
			}
		}
	}
}

// decodePPM decodes a P6 image into an *image.NRGBA (opaque), scaling
// other maxvals to 0..255 as netpbm does, with rounding.
func decodePPM(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	w, h, maxval, err := readPPMHeader(br)
	if err != nil {
		return nil, err
	}
	bps := 1
	if maxval > 255 {
		bps = 2
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	line := make([]byte, w*3*bps)
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(br, line); err != nil {
			return nil, fmt.Errorf("ppm: raster row %d: %w", y, err)
		}
		dst := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				var v int
				if bps == 1 {
					v = int(line[3*x+c])
				} else {
					v = int(line[6*x+2*c])<<8 | int(line[6*x+2*c+1])
				}
				if v > maxval {
					return nil, fmt.Errorf("ppm: sample %d above maxval %d", v, maxval)
				}
				if maxval != 255 {
					v = (v*255 + maxval/2) / maxval
				}
				dst[4*x+c] = uint8(v)
			}
			dst[4*x+3] = 0xff
		}
	}
	return img, nil
}
