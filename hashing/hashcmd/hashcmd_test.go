package hashcmd

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// expected reads a shared expected/*.csv into file -> record.
func expected(t *testing.T, name string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(shareddata.Path(t, "testdata", "pdq", "expected", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, k := range recs[0] {
			m[k] = r[i]
		}
		out[r[0]] = m
	}
	return out
}

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHashSharedImages(t *testing.T) {
	exact := expected(t, "exact.csv")
	pixels := expected(t, "pixels.csv")
	ref := expected(t, "cpp-reference.csv")
	files := []string{
		"pixels/aaa-orig.ppm",
		"pixels/q0122.ppm",
		"images/misc-images/modes/L.png",
		"images/python-threatexchange/I16.png",
		"images/misc-images/small.jpg",
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, shareddata.Path(t, "testdata", "pdq", filepath.FromSlash(f)))
	}
	tests := []struct {
		algo string
		want func(file, path string) string
	}{
		{"md5", func(f, p string) string { return exact[f]["md5"] + "," + p }},
		{"sha256", func(f, p string) string { return exact[f]["sha256"] + "," + p }},
		{"pdq", func(f, p string) string {
			rec := pixels[f]
			if rec == nil {
				rec = ref[f] // PNGs and small.jpg hash exactly as the reference
			}
			return rec["pdq"] + "," + rec["quality"] + "," + p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.algo, func(t *testing.T) {
			code, out, errs := run(append([]string{tt.algo}, paths...)...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(files) {
				t.Fatalf("got %d lines", len(lines))
			}
			for i, f := range files {
				if want := tt.want(f, paths[i]); lines[i] != want {
					t.Errorf("%s:\n got %s\nwant %s", f, lines[i], want)
				}
			}
		})
	}
}

func TestJSONAndFlagsAnywhere(t *testing.T) {
	p := shareddata.Path(t, "testdata", "pdq", "pixels", "q0122.ppm")
	code, out, _ := run("pdq", p, "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Path    string `json:"path"`
		PDQ     string `json:"pdq"`
		Quality *int   `json:"quality"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Path != p || got.Quality == nil || *got.Quality != 100 ||
		got.PDQ != "cfb2009ddd21c6dab0046a7745b5984757a8a4535b3377aea2591d32b33ff940" {
		t.Errorf("json %q: %v", out, err)
	}
	code, out, _ = run("--json", "sha256", p)
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m["sha256"] != "9acd6eb1d107f911e08a4e9789422f565ca769e0b0cfc93a3969a135d06cc40b" || m["path"] != p {
		t.Errorf("sha256 json %q: %v", out, err)
	}
}

func TestFailuresDoNotStopTheRest(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.jpg")
	os.WriteFile(garbage, []byte("not an image"), 0o600)
	good := shareddata.Path(t, "testdata", "pdq", "pixels", "q0122.ppm")
	big := shareddata.Path(t, "testdata", "pdq", "pixels", "aaa-orig.ppm")
	missing := filepath.Join(dir, "missing.png")

	code, out, errs := run("pdq", "--max-pixels", "100000", garbage, good, missing, big, dir)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if lines := strings.Count(out, "\n"); lines != 1 || !strings.HasSuffix(out, ","+good+"\n") {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{garbage + ":", missing + ":", big + ": pdq: image has too many pixels", dir + ": is a directory"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if n := strings.Count(errs, "\n"); n != 4 {
		t.Errorf("%d error lines:\n%s", n, errs)
	}
	// md5 of a file over --max-bytes fails too.
	if code, _, errs := run("md5", "--max-bytes", "10", good); code != 1 || !strings.Contains(errs, "too large") {
		t.Errorf("max-bytes: %d %q", code, errs)
	}
}

func TestUsage(t *testing.T) {
	code, out, _ := run("--help")
	if code != 0 || !strings.Contains(out, "usage: parley hash pdq|md5|sha256") {
		t.Errorf("--help: %d %q", code, out)
	}
	for _, args := range [][]string{{}, {"phash", "x"}, {"pdq"}, {"pdq", "--bogus", "x"}, {"pdq", "--max-pixels", "-1", "x"}} {
		if code, _, errs := run(args...); code != 2 || !strings.Contains(errs, "parley hash:") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	// A file named like a flag, after "--".
	t.Chdir(t.TempDir())
	const f = "-x"
	os.WriteFile(f, []byte("abc"), 0o600)
	if code, out, errs := run("md5", "--", f); code != 0 || out != "900150983cd24fb0d6963f7d28e17f72,"+f+"\n" {
		t.Errorf("after --: %d %q %q", code, out, errs)
	}
}
