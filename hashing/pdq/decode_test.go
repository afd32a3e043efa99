package pdq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"testing"
	"time"
)

// pngBomb builds a small PNG whose header declares w x h pixels.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		b.Write(n[:])
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.BigEndian.PutUint32(n[:], c.Sum32())
		b.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// gifBomb builds a GIF whose logical screen and first frame declare w x h.
func gifBomb(w, h uint16) []byte {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	binary.Write(&b, binary.LittleEndian, w)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write([]byte{0x80, 0, 0}) // global colour table of 2 entries
	b.Write([]byte{0, 0, 0, 255, 255, 255})
	b.WriteByte(',')
	binary.Write(&b, binary.LittleEndian, uint32(0))
	binary.Write(&b, binary.LittleEndian, w)
	binary.Write(&b, binary.LittleEndian, h)
	b.WriteByte(0)
	b.Write([]byte{2, 2, 0x44, 0x01, 0}) // a tiny LZW stream
	b.WriteByte(';')
	return b.Bytes()
}

func TestDecompressionBombRefused(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"png 100000x100000", pngBomb(100000, 100000)},
		{"png 1x4000000000", pngBomb(1, 2_000_000_000)},
		{"gif 65535x65535", gifBomb(65535, 65535)},
		{"ppm 100000x100000", []byte("P6\n100000 100000\n255\n\x00\x00\x00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, _, err := DecodeBytes(tt.data, nil)
			if !errors.Is(err, ErrTooManyPixels) {
				t.Fatalf("got %v, want ErrTooManyPixels", err)
			}
			t.Logf("refused in %v: %v", time.Since(start), err)
		})
	}
}

func TestDecodeRefusesBadInput(t *testing.T) {
	good, err := os.ReadFile(testDataPath(t, "images/bridge-mods/square-128x128.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	goodPNG, err := os.ReadFile(testDataPath(t, "images/python-threatexchange/I16.png"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		opts *Options
		want error
	}{
		{"empty", nil, nil, ErrFormat},
		{"garbage", []byte("this is not an image at all"), nil, ErrFormat},
		{"truncated jpeg", good[:len(good)/2], nil, ErrFormat},
		{"truncated png", goodPNG[:len(goodPNG)/2], nil, ErrFormat},
		{"header only jpeg", good[:200], nil, ErrFormat},
		{"over byte limit", good, &Options{MaxBytes: 1000}, ErrTooLarge},
		{"over pixel limit", good, &Options{MaxPixels: 128*128 - 1}, ErrTooManyPixels},
		{"short ppm raster", []byte("P6 2 2 255\n\x00\x01\x02"), nil, ErrFormat},
		{"ppm sample above maxval", []byte("P6 1 1 100\n\xff\x00\x00"), nil, ErrFormat},
		{"ppm zero width", []byte("P6 0 2 255\n"), nil, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(bytes.NewReader(tt.data), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Exactly at the limits is accepted.
	if _, _, err := DecodeBytes(good, &Options{MaxPixels: 128 * 128, MaxBytes: int64(len(good))}); err != nil {
		t.Errorf("image at the limits refused: %v", err)
	}
}

func TestTooSmallIsZeroQuality(t *testing.T) {
	for _, size := range []image.Point{{4, 100}, {100, 4}, {1, 1}, {0, 0}} {
		img := image.NewGray(image.Rect(0, 0, size.X, size.Y))
		for i := range img.Pix {
			img.Pix[i] = uint8(i * 37)
		}
		r := HashImage(img)
		if !r.Hash.IsZero() || r.Quality != 0 {
			t.Errorf("%v: got %v q%d, want zero hash, quality 0", size, r.Hash, r.Quality)
		}
	}
	// 5x5 is hashable.
	img := image.NewGray(image.Rect(0, 0, 5, 5))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 53)
	}
	if r := HashImage(img); r.Hash.IsZero() {
		t.Errorf("5x5: got the zero hash")
	}
}

// Alpha is dropped, not composited: an NRGBA image hashes like its RGB.
func TestAlphaDropped(t *testing.T) {
	opaque := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	clear := image.NewNRGBA(opaque.Rect)
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			c := color.NRGBA{uint8(x * 6), uint8(y * 8), uint8(x * y), 255}
			opaque.SetNRGBA(x, y, c)
			c.A = uint8(x * y)
			clear.SetNRGBA(x, y, c)
		}
	}
	if a, b := HashImage(opaque), HashImage(clear); a != b {
		t.Errorf("alpha changed the hash: %v vs %v", a, b)
	}
}

// Images that do not start at the origin hash like their copy at the
// origin, and a Hasher reused across sizes gives the same results as a
// fresh one.
func TestBoundsAndReuse(t *testing.T) {
	var hs Hasher
	for _, size := range []image.Point{{700, 300}, {64, 64}, {33, 90}, {512, 512}, {1000, 1000}} {
		img := image.NewRGBA(image.Rect(10, 20, 10+size.X, 20+size.Y))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*31 + i/size.X)
		}
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = 255
		}
		moved := *img
		moved.Rect = image.Rect(0, 0, size.X, size.Y)
		a, b, c := HashImage(img), HashImage(&moved), hs.Image(img)
		if a != b || a != c {
			t.Errorf("%v: %v / %v / %v differ", size, a, b, c)
		}
	}
}

func TestParseHash(t *testing.T) {
	const s = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != s {
		t.Errorf("round trip: %v", h)
	}
	if h.Word(15) != 0xd8f8 || h.Word(0) != 0x9b22 {
		t.Errorf("words: %04x %04x", h.Word(15), h.Word(0))
	}
	if !h.Bit(255) || h.Bit(0) || !h.Bit(1) {
		t.Errorf("bits wrong")
	}
	if u, err := ParseHash("D8F8F0CEE0F4A84F0637022A078F67F0B36E2ED596621E1D33E6339C4E9C9B22"); err != nil || u != h {
		t.Errorf("upper case: %v %v", u, err)
	}
	for _, bad := range []string{"", s[:63], s + "0", s[:63] + "g"} {
		if _, err := ParseHash(bad); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("ParseHash(%q) = %v", bad, err)
		}
	}
	var z Hash
	if Distance(h, z) != 0+countBits(h) || Distance(h, h) != 0 {
		t.Errorf("distance")
	}
}

func countBits(h Hash) int {
	n := 0
	for k := 0; k < 256; k++ {
		if h.Bit(k) {
			n++
		}
	}
	return n
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"images/misc-images/small.jpg", "images/reg-test-input/labelme-subset/q0003.jpg"} {
		b, err := os.ReadFile(testDataPath(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(pngBomb(100000, 100000))
	f.Add(gifBomb(300, 200))
	f.Add([]byte("P6 3 2 255\n012345678901234567"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	var buf bytes.Buffer
	small := image.NewNRGBA(image.Rect(0, 0, 9, 7))
	for i := range small.Pix {
		small.Pix[i] = uint8(i * 7)
	}
	png.Encode(&buf, small)
	f.Add(buf.Bytes())
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := DecodeBytes(data, &Options{MaxPixels: maxPixels, MaxBytes: 1 << 20})
		if err != nil {
			if img != nil {
				t.Fatal("image returned with an error")
			}
			return
		}
		b := img.Bounds()
		if int64(b.Dx())*int64(b.Dy()) > maxPixels {
			t.Fatalf("decoded %v, over the limit", b)
		}
		r := HashImage(img)
		if r.Quality < 0 || r.Quality > 100 {
			t.Fatalf("quality %d", r.Quality)
		}
	})
}

// The four-rows-at-once filter performs exactly the single-row operations.
func TestBoxRowsMatchesSingleRow(t *testing.T) {
	const w, ht = 301, 7
	in := make([]float32, w*ht)
	for i := range in {
		in[i] = float32((i*7919)%256) + 0.25
	}
	keep := make([]bool, w)
	for i := 0; i < w; i += 5 {
		keep[i] = true
	}
	for _, win := range []int{1, 2, 3, 4} {
		for _, k := range [][]bool{nil, keep} {
			got := make([]float32, w*ht)
			want := make([]float32, w*ht)
			boxRows(in, got, w, ht, win, k)
			for r := 0; r < ht; r++ {
				boxRow(in[r*w:r*w+w], want[r*w:r*w+w], win, k)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("win %d keep %v: index %d: %v != %v", win, k != nil, i, got[i], want[i])
				}
			}
		}
	}
}

func TestHashImageConcurrent(t *testing.T) {
	var imgs []image.Image
	var want []Result
	for i, size := range []image.Point{{600, 400}, {64, 64}, {300, 700}, {50, 20}} {
		img := image.NewGray(image.Rect(0, 0, size.X, size.Y))
		for j := range img.Pix {
			img.Pix[j] = uint8(j*(i+3) + j/size.X)
		}
		imgs = append(imgs, img)
		want = append(want, HashImage(img))
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for k := range 20 {
				i := (g + k) % len(imgs)
				if got := HashImage(imgs[i]); got != want[i] {
					done <- fmt.Errorf("image %d: %v, want %v", i, got, want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
