package conformance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// TestSharedVectors runs every vector file in the shared folder and
// requires every entry to pass: all suites are implemented, so nothing may
// be skipped either.
func TestSharedVectors(t *testing.T) {
	files, err := Files(shareddata.Path(t, "testdata", "mls"), "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 16 {
		t.Fatalf("found only %d vector files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			r, err := RunFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Results) == 0 {
				t.Fatal("no entries")
			}
			for _, res := range r.Results {
				if res.Status != Passed {
					t.Errorf("entry %d (suite %d): %s: %s", res.Index, res.Suite, res.Status, res.Reason)
				}
			}
			t.Logf("%s: %d passed, %d failed, %d skipped", r.Kind, r.Passed, r.Failed, r.Skipped)
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       Kind
	}{
		{"tree-math.json", `[]`, TreeMath},
		{"dir/treekem.json", `not even json`, TreeKEM},
		{"commit.json", `[{"cipher_suite":1,"welcome":"","initial_epoch_authenticator":"","epochs":[]}]`, PassiveClient},
		{"renamed.json", `[{"vlbytes_header":"00","length":0}]`, Deserialization},
		{"x.json", `[{"n_leaves":1,"n_nodes":1,"root":0}]`, TreeMath},
	} {
		got, err := Classify(tc.name, []byte(tc.data))
		if err != nil || got != tc.want {
			t.Errorf("Classify(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, data := range []string{`[]`, `{}`, `[{"foo":1}]`, `[1]`, ``} {
		if _, err := Classify("other.json", []byte(data)); !errors.Is(err, ErrUnclassified) {
			t.Errorf("Classify(%q) error = %v, want ErrUnclassified", data, err)
		}
	}
}

// TestRunReportsFailures checks that a wrong value fails its entry, with a
// reason, without affecting the others, and that an unknown suite skips.
func TestRunReportsFailures(t *testing.T) {
	data := `[
		{"vlbytes_header":"40ff","length":255},
		{"vlbytes_header":"40ff","length":256},
		{"vlbytes_header":"ff","length":1}
	]`
	res, err := Run(Deserialization, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{Passed, Failed, Failed}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("entry %d: %s (%s), want %s", i, r.Status, r.Reason, want[i])
		}
		if r.Status == Failed && r.Reason == "" {
			t.Errorf("entry %d failed without a reason", i)
		}
	}

	res, err = Run(CryptoBasics, []byte(`[{"cipher_suite": 65535}]`))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != Skipped || !strings.Contains(res[0].Reason, "unsupported cipher suite") {
		t.Errorf("unknown suite: %s (%s), want skip for an unsupported suite", res[0].Status, res[0].Reason)
	}

	// A malformed entry fails; it does not stop the run or panic.
	res, err = Run(TreeKEM, []byte(`[{"cipher_suite":1,"ratchet_tree":"zz"}, {"cipher_suite":1,"ratchet_tree":"00"}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != Failed {
			t.Errorf("malformed treekem entry %d: %s", r.Index, r.Status)
		}
	}
}

func TestRunFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "mystery.json")
	if err := os.WriteFile(bad, []byte(`[{"what":"is this"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RunFile(bad); !errors.Is(err, ErrUnclassified) {
		t.Errorf("RunFile(unclassifiable) = %v, want ErrUnclassified", err)
	}
	empty := filepath.Join(dir, "tree-math.json")
	if err := os.WriteFile(empty, []byte(`[]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RunFile(empty); err == nil {
		t.Error("RunFile(empty file) succeeded")
	}
	if _, err := Files(filepath.Join(dir, "missing")); err == nil {
		t.Error("Files(missing path) succeeded")
	}
}
