package hashing

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

func TestDigestSharedFiles(t *testing.T) {
	f, err := os.Open(shareddata.Path(t, "testdata", "pdq", "expected", "exact.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 2 || recs[0][0] != "file" || recs[0][2] != "md5" || recs[0][3] != "sha256" {
		t.Fatalf("unexpected header %v", recs[0])
	}
	for _, r := range recs[1:] {
		file, err := os.Open(shareddata.Path(t, "testdata", "pdq", filepath.FromSlash(r[0])))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Digest(file, 0)
		file.Close()
		if err != nil {
			t.Fatalf("%s: %v", r[0], err)
		}
		if got := hex.EncodeToString(d.MD5[:]); got != r[2] {
			t.Errorf("%s: md5 %s, want %s", r[0], got, r[2])
		}
		if got := hex.EncodeToString(d.SHA256[:]); got != r[3] {
			t.Errorf("%s: sha256 %s, want %s", r[0], got, r[3])
		}
		if size, _ := strconv.ParseInt(r[1], 10, 64); d.Size != size {
			t.Errorf("%s: size %d, want %d", r[0], d.Size, size)
		}
	}
}

func TestDigestLimit(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	if _, err := Digest(bytes.NewReader(data), 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	d, err := Digest(bytes.NewReader(data), 100)
	if err != nil || d.Size != 100 {
		t.Errorf("at the limit: %v %d", err, d.Size)
	}
}
