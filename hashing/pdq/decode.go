package pdq

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"

	"github.com/parleychat/parley/hashing"

	// Register the formats PDQ accepts with image.Decode.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// Default limits for Decode.
const (
	// DefaultMaxPixels bounds width*height of an image before it is
	// decoded: 50 megapixels covers any camera photo while keeping a
	// decoded RGBA buffer under about 200 MiB.
	DefaultMaxPixels = 50_000_000
	// DefaultMaxBytes bounds how much of a file is read.
	DefaultMaxBytes = 64 << 20
)

// Errors from Decode. Callers can branch on them with errors.Is.
var (
	ErrTooManyPixels = errors.New("pdq: image has too many pixels")
	ErrTooLarge      = hashing.ErrTooLarge // file over Options.MaxBytes
	ErrFormat        = errors.New("pdq: unsupported or malformed image")
)

// Options limit what Decode accepts. The zero value (or nil) means the
// defaults.
type Options struct {
	// MaxPixels is the largest width*height accepted; 0 means
	// DefaultMaxPixels.
	MaxPixels int64
	// MaxBytes is the largest file accepted; 0 means DefaultMaxBytes.
	MaxBytes int64
}

func (o *Options) maxPixels() int64 {
	if o == nil || o.MaxPixels <= 0 {
		return DefaultMaxPixels
	}
	return o.MaxPixels
}

func (o *Options) maxBytes() int64 {
	if o == nil || o.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return o.MaxBytes
}

// Decode reads an image (JPEG, PNG, GIF first frame, WebP, or binary PPM)
// from r. It reads at most opts.MaxBytes bytes, then checks the dimensions
// declared in the header against opts.MaxPixels before decoding any pixels,
// so decompression bombs are refused without allocating their buffers.
// It returns the format name ("jpeg", "png", "gif", "webp", "ppm").
func Decode(r io.Reader, opts *Options) (image.Image, string, error) {
	data, err := readLimited(r, opts.maxBytes())
	if err != nil {
		return nil, "", err
	}
	return DecodeBytes(data, opts)
}

// DecodeBytes is Decode for an image already in memory; opts.MaxBytes is
// still enforced.
func DecodeBytes(data []byte, opts *Options) (image.Image, string, error) {
	if int64(len(data)) > opts.maxBytes() {
		return nil, "", fmt.Errorf("pdq: %w: more than %d bytes", ErrTooLarge, opts.maxBytes())
	}
	var (
		cfg    image.Config
		format string
		err    error
	)
	isPPM := bytes.HasPrefix(data, []byte("P6"))
	if isPPM {
		cfg, err = decodePPMConfig(bytes.NewReader(data))
		format = "ppm"
	} else {
		cfg, format, err = image.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, opts.maxPixels()); err != nil {
		return nil, format, err
	}
	var img image.Image
	if isPPM {
		img, err = decodePPM(bytes.NewReader(data))
	} else {
		img, _, err = image.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, format, fmt.Errorf("%w: %s: %v", ErrFormat, format, err)
	}
	// A decoder could in principle return more than it declared; check
	// again what is hashed.
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy(), opts.maxPixels()); err != nil {
		return nil, format, err
	}
	return img, format, nil
}

func checkSize(w, h int, max int64) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: empty image (%dx%d)", ErrFormat, w, h)
	}
	// Compare without overflow: w and h are each at most int max.
	if int64(w) > max || int64(h) > max || int64(w)*int64(h) > max {
		return fmt.Errorf("%w: %dx%d is more than %d pixels", ErrTooManyPixels, w, h, max)
	}
	return nil
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("pdq: read: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("pdq: %w: more than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// HashReader decodes an image from r under opts and hashes it.
func HashReader(r io.Reader, opts *Options) (Result, error) {
	img, _, err := Decode(r, opts)
	if err != nil {
		return Result{}, err
	}
	return HashImage(img), nil
}

// HashFile decodes the image file at path under opts and hashes it.
func HashFile(path string, opts *Options) (Result, error) {
	img, err := decodeFile(path, opts)
	if err != nil {
		return Result{}, err
	}
	return HashImage(img), nil
}

// HashFileDihedral decodes the image file at path under opts and returns
// its 8 dihedral hashes.
func HashFileDihedral(path string, opts *Options) (Dihedral, error) {
	img, err := decodeFile(path, opts)
	if err != nil {
		return Dihedral{}, err
	}
	return HashImageDihedral(img), nil
}

func decodeFile(path string, opts *Options) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := Decode(f, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
