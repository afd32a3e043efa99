package pdq

import (
	"image"
	"os"
	"testing"
	"time"
)

// decodeTestImage reads and decodes file of the shared PDQ test data.
func decodeTestImage(tb testing.TB, file string) image.Image {
	tb.Helper()
	data, err := os.ReadFile(testDataPath(tb, file))
	if err != nil {
		tb.Fatal(err)
	}
	img, _, err := DecodeBytes(data, nil)
	if err != nil {
		tb.Fatalf("decode %s: %v", file, err)
	}
	return img
}

// BenchmarkHash512 hashes an already-decoded 512x512 RGB image (the
// reference's pre-resized buffer of aaa-orig.jpg) with a reused Hasher.
func BenchmarkHash512(b *testing.B) {
	img := decodeTestImage(b, "pixels/aaa-orig.ppm")
	if s := img.Bounds().Size(); s.X != 512 || s.Y != 512 {
		b.Fatalf("size %v", s)
	}
	var h Hasher
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPUTime()
	for b.Loop() {
		h.Image(img)
	}
	reportRates(b, cpu, "images")
}

// BenchmarkHash512Dihedral is BenchmarkHash512 for all 8 dihedral hashes.
func BenchmarkHash512Dihedral(b *testing.B) {
	img := decodeTestImage(b, "pixels/aaa-orig.ppm")
	var h Hasher
	b.ReportAllocs()
	cpu := processCPUTime()
	for b.Loop() {
		h.ImageDihedral(img)
	}
	reportRates(b, cpu, "images")
}

// reportRates reports b.N per wall-clock second and per CPU-second of the
// process since cpu (run with -cpu 1 so that the two agree on an idle
// machine).
func reportRates(b *testing.B, cpu time.Duration, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	if used := processCPUTime() - cpu; used > 0 && cpu > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), unit+"/cpu-s")
	}
}

// BenchmarkHashDecodedJPEG hashes an already-decoded YCbCr photo larger
// than 512x512, so it includes the pre-resize and libjpeg-style colour
// conversion.
func BenchmarkHashDecodedJPEG(b *testing.B) {
	img := decodeTestImage(b, "images/bridge-mods/aaa-orig.jpg")
	var h Hasher
	b.ReportAllocs()
	cpu := processCPUTime()
	for b.Loop() {
		h.Image(img)
	}
	reportRates(b, cpu, "images")
}
