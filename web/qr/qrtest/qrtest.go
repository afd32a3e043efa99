// Package qrtest decodes QR codes for tests, with a decoder independent
// of the encoder (github.com/makiuchi-d/gozxing, a port of ZXing): what
// the web client draws is read back the way a phone's camera app would,
// from pixels. Only tests import it.
package qrtest

import (
	"fmt"
	"image"
	"image/color"
	"regexp"
	"strconv"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Decode finds and decodes the QR code in img (a screenshot, say), as a
// camera app would: locating the finder patterns first.
func Decode(img image.Image) (string, error) {
	return decode(img, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
}

// DecodePure decodes an image that is only the code and its quiet zone,
// upright, as Rasterize draws it: without ZXing's finder-pattern search,
// whose estimate of the module size sometimes misses at small scales, so
// that what is tested is the symbol's content rather than the detector.
func DecodePure(img image.Image) (string, error) {
	return decode(img, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
}

func decode(img image.Image, hints map[gozxing.DecodeHintType]any) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("qrtest: %w", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		return "", fmt.Errorf("qrtest: no QR code decoded: %w", err)
	}
	return res.GetText(), nil
}

var rect = regexp.MustCompile(`^M(\d+) (\d+)h(\d+)v1h-(\d+)z`)

// Rasterize draws SVG path data as web/qr's Path writes it (one
// "M{x} {y}h{n}v1h-{n}z" per run of dark modules) into a white image of
// viewBox×viewBox modules, scale pixels each: what the browser paints.
// It rejects any other path data, so a test sees a change of format.
func Rasterize(path string, viewBox, scale int) (*image.Gray, error) {
	img := image.NewGray(image.Rect(0, 0, viewBox*scale, viewBox*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for len(path) > 0 {
		m := rect.FindStringSubmatch(path)
		if m == nil {
			return nil, fmt.Errorf("qrtest: unexpected path data at %.20q", path)
		}
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		if m[3] != m[4] || x+n > viewBox || y >= viewBox {
			return nil, fmt.Errorf("qrtest: a run outside the code: %q", m[0])
		}
		for py := y * scale; py < (y+1)*scale; py++ {
			for px := x * scale; px < (x+n)*scale; px++ {
				img.SetGray(px, py, color.Gray{})
			}
		}
		path = path[len(m[0]):]
	}
	return img, nil
}
