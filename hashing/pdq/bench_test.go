package pdq

import (
	"os"
	"testing"
)

// BenchmarkHash512 hashes an already-decoded 512x512 RGB image (the
// reference's pre-resized buffer of aaa-orig.jpg) with a reused Hasher.
func BenchmarkHash512(b *testing.B) {
	data, err := os.ReadFile(testDataPath(&testing.T{}, "pixels/aaa-orig.ppm"))
	if err != nil {
		b.Fatal(err)
	}
	img, _, err := DecodeBytes(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	if s := img.Bounds().Size(); s.X != 512 || s.Y != 512 {
		b.Fatalf("size %v", s)
	}
	var h Hasher
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.Image(img)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkHash512Dihedral is BenchmarkHash512 for all 8 dihedral hashes.
func BenchmarkHash512Dihedral(b *testing.B) {
	data, err := os.ReadFile(testDataPath(&testing.T{}, "pixels/aaa-orig.ppm"))
	if err != nil {
		b.Fatal(err)
	}
	img, _, err := DecodeBytes(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	var h Hasher
	b.ReportAllocs()
	for b.Loop() {
		h.ImageDihedral(img)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
