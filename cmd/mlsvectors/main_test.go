package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a/deserialization.json", `[{"vlbytes_header":"00","length":0},{"vlbytes_header":"40ff","length":255}]`)
	writeFile(t, dir, "b/renamed.json", `[{"n_leaves":1,"n_nodes":1,"root":0,"left":[null],"right":[null],"parent":[null],"sibling":[null]}]`)

	var out, errOut bytes.Buffer
	if code := run([]string{dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"(deserialization): 2 passed, 0 failed, 0 skipped", "(tree-math): 1 passed", "3 passed, 0 failed\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A failing entry makes the exit status non-zero and is reported.
	bad := writeFile(t, dir, "c/deserialization.json", `[{"vlbytes_header":"00","length":1}]`)
	out.Reset()
	if code := run([]string{bad}, &out, &errOut); code != 1 {
		t.Errorf("failing vector: exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "0 passed, 1 failed\n") || !strings.Contains(out.String(), "entry 0") {
		t.Errorf("failing vector output:\n%s", out.String())
	}

	// Without -v only the first failures are listed.
	many := writeFile(t, dir, "e/deserialization.json", `[{"vlbytes_header":"00","length":1},{"vlbytes_header":"00","length":2},
		{"vlbytes_header":"00","length":3},{"vlbytes_header":"00","length":4},{"vlbytes_header":"00","length":5}]`)
	out.Reset()
	if code := run([]string{many}, &out, &errOut); code != 1 {
		t.Errorf("failing vectors: exit %d, want 1", code)
	}
	if got := strings.Count(out.String(), "\n  entry "); got != 3 || !strings.Contains(out.String(), "2 more failed") {
		t.Errorf("listed %d failures, want 3 and a note:\n%s", got, out.String())
	}
	out.Reset()
	run([]string{"-v", many}, &out, &errOut)
	if got := strings.Count(out.String(), "\n  entry "); got != 5 {
		t.Errorf("-v listed %d failures, want 5:\n%s", got, out.String())
	}

	// An unclassifiable file is an error.
	odd := writeFile(t, dir, "d/odd.json", `[{"x":1}]`)
	out.Reset()
	if code := run([]string{odd}, &out, &errOut); code != 1 {
		t.Errorf("unclassifiable file: exit %d, want 1", code)
	}

	// --json gives a machine-readable summary.
	out.Reset()
	if code := run([]string{"--json", filepath.Join(dir, "a")}, &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	var rep struct {
		Files []struct {
			Kind   string `json:"kind"`
			Passed int    `json:"passed"`
		} `json:"files"`
		Passed, Failed int
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if len(rep.Files) != 1 || rep.Files[0].Kind != "deserialization" || rep.Passed != 2 || rep.Failed != 0 {
		t.Errorf("--json report = %+v", rep)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	errOut.Reset()
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "usage: mlsvectors") {
		t.Errorf("--help: exit %d, output %q", code, errOut.String())
	}
	if code := run([]string{filepath.Join(t.TempDir(), "missing")}, &out, &errOut); code != 1 {
		t.Errorf("missing path: exit %d, want 1", code)
	}
}
