package pdq

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// readCSV returns the records of a shared expected/*.csv file as maps
// keyed by the header's column names.
func readCSV(t *testing.T, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(shareddata.Path(t, "testdata", "pdq", "expected", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: no records", name)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := make(map[string]string)
		for i, k := range recs[0] {
			m[k] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func testDataPath(t testing.TB, file string) string {
	t.Helper()
	return shareddata.Path(t, append([]string{"testdata", "pdq"}, filepath.SplitList(filepath.FromSlash(file))...)...)
}

func mustParse(t *testing.T, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad integer %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// Upstream's first correctness rule: the same decoded pixels give exactly
// the reference hash. The PPMs are the reference's buffers after its
// decode and pre-resize.
func TestPixelsExact(t *testing.T) {
	for _, rec := range readCSV(t, "pixels.csv") {
		t.Run(rec["file"], func(t *testing.T) {
			got, err := HashFile(testDataPath(t, rec["file"]), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := mustParse(t, rec["pdq"])
			if got.Hash != want || got.Quality != atoi(t, rec["quality"]) {
				t.Errorf("got %v q%d, want %v q%s (distance %d)", got.Hash, got.Quality, want, rec["quality"], Distance(got.Hash, want))
			}
		})
	}
}

// Upstream's second rule asks that, decoded with our own decoders, hashes
// of quality 80 or more are within distance 10 of the C++ reference. The
// README promises more, and this holds it: every image, whatever its
// quality, within MaxReferenceDistance; and the quality on the same side
// of the 50 cut-off.
func TestReferenceImages(t *testing.T) {
	for _, rec := range readCSV(t, "cpp-reference.csv") {
		t.Run(rec["file"], func(t *testing.T) {
			got, err := HashFile(testDataPath(t, rec["file"]), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := mustParse(t, rec["pdq"])
			wantQ := atoi(t, rec["quality"])
			d := Distance(got.Hash, want)
			t.Logf("distance %3d  quality %3d (reference %3d)  %s", d, got.Quality, wantQ, rec["file"])
			if d > maxReferenceDistance {
				t.Errorf("distance %d > %d from the reference %v (got %v)", d, maxReferenceDistance, want, got.Hash)
			}
			if (got.Quality >= QualityThreshold) != (wantQ >= QualityThreshold) {
				t.Errorf("quality %d, reference %d: on different sides of %d", got.Quality, wantQ, QualityThreshold)
			}
		})
	}
}

// maxReferenceDistance is the README's promise: within 4 bits of the C++
// reference on every shared image and dihedral variant.
const maxReferenceDistance = 4

func TestReferenceDihedral(t *testing.T) {
	for _, rec := range readCSV(t, "cpp-reference-dihedral.csv") {
		t.Run(rec["file"], func(t *testing.T) {
			got, err := HashFileDihedral(testDataPath(t, rec["file"]), nil)
			if err != nil {
				t.Fatal(err)
			}
			single, err := HashFile(testDataPath(t, rec["file"]), nil)
			if err != nil {
				t.Fatal(err)
			}
			if single.Hash != got.Hashes[Original] || single.Quality != got.Quality {
				t.Errorf("dihedral original %v q%d differs from plain hash %v q%d", got.Hashes[Original], got.Quality, single.Hash, single.Quality)
			}
			for tr := Original; tr < NumTransforms; tr++ {
				want := mustParse(t, rec[tr.String()])
				d := Distance(got.Hashes[tr], want)
				t.Logf("%-10s distance %3d", tr, d)
				if d > maxReferenceDistance {
					t.Errorf("%s: distance %d > %d from the reference %v (got %v)", tr, d, maxReferenceDistance, want, got.Hashes[tr])
				}
			}
		})
	}
}
