// Package shareddata locates the project's shared test data (the MLS interop
// vectors and the PDQ reference images), which lives in a folder named
// "shared" beside the repository checkout, both for developers and in CI.
package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of the shared folder. It honours
// PARLEY_SHARED if set; otherwise it walks up from the working directory to
// the module root (the folder holding go.mod) and takes ../shared.
func Dir() (string, error) {
	if d := os.Getenv("PARLEY_SHARED"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			// Nested modules (interop/...) have their own go.mod; keep
			// walking until a shared folder sits beside one.
			s := filepath.Join(filepath.Dir(d), "shared")
			if st, err := os.Stat(s); err == nil && st.IsDir() {
				return s, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("shared test data not found above %s: check out the repository beside its shared/ folder or set PARLEY_SHARED", wd)
		}
	}
}

// Path joins elem onto the shared folder, failing the test if the folder or
// the file is missing. Tests never skip for missing data: CI has it.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(append([]string{d}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test data: %v", err)
	}
	return p
}
