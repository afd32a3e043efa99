// Package qr draws the web client's QR codes: the link code on the
// linking screen and a conversation's safety number. It encodes a short
// text with rsc.io/qr/coding and returns the dark modules as one SVG path, which
// the page sets as the d attribute of a <path> element it creates itself:
// no HTML, no inline script and no data: URL, so the page's strict
// Content-Security-Policy and Trusted Types stay as they are (docs/web.md).
//
// Pure: no DOM, no I/O; it builds for the browser (web/wasm) and for the
// tests, which decode what it draws with an independent decoder.
package qr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"rsc.io/qr/coding"
)

// MaxText bounds what Encode accepts: the page only draws link codes and
// safety numbers, both far shorter, and a bound keeps a caller from
// asking for a version-40 code of arbitrary bytes.
const MaxText = 256

// QuietZone is the blank border, in modules, every side of the code
// needs for a scanner to find it (ISO/IEC 18004 §7.3.8: four modules).
const QuietZone = 4

// ErrText means the text is empty, longer than MaxText or not UTF-8.
var ErrText = errors.New("qr: the text must be 1 to 256 bytes of UTF-8")

// Code is an encoded QR code.
type Code struct {
	// Modules is the number of modules on a side, without the quiet zone.
	Modules int
	dark    []bool
}

// Encode encodes text at error correction level M (about 15% of the
// code words recoverable: enough for a screen photographed at an angle,
// small enough that a 60-digit safety number fits a version-3 code), in
// the smallest version and mode (numeric, alphanumeric or bytes) that
// hold it, with the mask pattern of least penalty (ISO/IEC 18004
// §7.8.3; rsc.io/qr's own Encode always takes mask 0, which can leave
// patterns that look like finders and trouble scanners).
func Encode(text string) (*Code, error) {
	if len(text) == 0 || len(text) > MaxText || !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w (got %d)", ErrText, len(text))
	}
	var enc coding.Encoding = coding.String(text)
	if coding.Num(text).Check() == nil {
		enc = coding.Num(text)
	} else if coding.Alpha(text).Check() == nil {
		enc = coding.Alpha(text)
	}
	v := coding.Version(coding.MinVersion)
	for enc.Bits(v) > v.DataBytes(coding.M)*8 {
		if v++; v > coding.MaxVersion {
			return nil, fmt.Errorf("%w: too long for a QR code", ErrText)
		}
	}
	var best *Code
	bestPenalty := 0
	for mask := range coding.Mask(8) {
		p, err := coding.NewPlan(v, coding.M, mask)
		if err != nil {
			return nil, fmt.Errorf("qr: %w", err)
		}
		cc, err := p.Encode(enc)
		if err != nil {
			return nil, fmt.Errorf("qr: encoding %d bytes: %w", len(text), err)
		}
		c := &Code{Modules: cc.Size, dark: make([]bool, cc.Size*cc.Size)}
		for y := range cc.Size {
			for x := range cc.Size {
				c.dark[y*cc.Size+x] = cc.Black(x, y)
			}
		}
		if pen := c.penalty(); best == nil || pen < bestPenalty {
			best, bestPenalty = c, pen
		}
	}
	return best, nil
}

// penalty scores a masked symbol by the four rules of ISO/IEC 18004
// §7.8.3.1 (Table 11); the encoder keeps the mask with the lowest.
func (c *Code) penalty() int {
	n := c.Modules
	total := 0
	// N1: runs of five or more modules of one colour, in rows and columns.
	// N3: the finder-like 1:1:3:1:1 pattern with four light modules
	// on either side, in rows and columns.
	for _, transpose := range []bool{false, true} {
		at := func(i, j int) bool {
			if transpose {
				return c.Dark(j, i)
			}
			return c.Dark(i, j)
		}
		for j := range n {
			run := 1
			for i := 1; i <= n; i++ {
				if i < n && at(i, j) == at(i-1, j) {
					run++
					continue
				}
				if run >= 5 {
					total += 3 + run - 5
				}
				run = 1
			}
			for i := -4; i < n; i++ {
				// dark light dark dark dark light dark, then four light
				// (or four light before it); outside the symbol is light.
				core := at(i, j) && !at(i+1, j) && at(i+2, j) && at(i+3, j) && at(i+4, j) && !at(i+5, j) && at(i+6, j)
				if !core {
					continue
				}
				lightAfter := !at(i+7, j) && !at(i+8, j) && !at(i+9, j) && !at(i+10, j)
				lightBefore := !at(i-1, j) && !at(i-2, j) && !at(i-3, j) && !at(i-4, j)
				if lightAfter || lightBefore {
					total += 40
				}
			}
		}
	}
	// N2: 2×2 blocks of one colour.
	dark := 0
	for y := range n {
		for x := range n {
			if c.Dark(x, y) {
				dark++
			}
			if x+1 < n && y+1 < n {
				d := c.Dark(x, y)
				if c.Dark(x+1, y) == d && c.Dark(x, y+1) == d && c.Dark(x+1, y+1) == d {
					total += 3
				}
			}
		}
	}
	// N4: 10 points for every 5% the share of dark modules is off 50%.
	pct := dark * 100 / (n * n)
	dev := pct - 50
	if dev < 0 {
		dev = -dev
	}
	return total + dev/5*10
}

// Dark reports whether the module at column x, row y (from the top
// left, without the quiet zone) is dark.
func (c *Code) Dark(x, y int) bool {
	if x < 0 || y < 0 || x >= c.Modules || y >= c.Modules {
		return false
	}
	return c.dark[y*c.Modules+x]
}

// ViewBox is the side of the drawing in modules, quiet zone included:
// the SVG's viewBox is "0 0 ViewBox ViewBox".
func (c *Code) ViewBox() int { return c.Modules + 2*QuietZone }

// Path is the SVG path data of the dark modules in the ViewBox's
// coordinates: one rectangle per horizontal run of dark modules,
// "M{x} {y}h{n}v1h-{n}z", so a few hundred short commands rather than
// an element per module.
func (c *Code) Path() string {
	var b strings.Builder
	for y := range c.Modules {
		for x := 0; x < c.Modules; {
			if !c.Dark(x, y) {
				x++
				continue
			}
			n := 1
			for c.Dark(x+n, y) {
				n++
			}
			w := strconv.Itoa(n)
			b.WriteString("M" + strconv.Itoa(x+QuietZone) + " " + strconv.Itoa(y+QuietZone) + "h" + w + "v1h-" + w + "z")
			x += n
		}
	}
	return b.String()
}
