package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminCommandsNeverCreateData runs the admin commands the way an
// operator gets them wrong: from another directory without --data, with
// --data or PARLEY_DATA naming a directory that does not exist, and naming
// an empty one. Each must fail, say which directory it looked in and how
// to point at the right one, print no invite code, and leave nothing on
// disk.
func TestAdminCommandsNeverCreateData(t *testing.T) {
	// The working directory is where the default ./parley-data is looked
	// for; it is a fresh one, so that nothing can land in the source tree.
	cwd := t.TempDir()
	t.Chdir(cwd)
	t.Setenv("PARLEY_DATA", "")
	os.Unsetenv("PARLEY_DATA")
	elsewhere := t.TempDir() // for the list file, outside every directory checked
	list := filepath.Join(elsewhere, "gifct.txt")
	if err := os.WriteFile(list, []byte("md5 "+strings.Repeat("ab", 16)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")

	for _, tc := range []struct {
		name   string
		env    string // PARLEY_DATA
		args   []string
		lookIn string // the directory the error must name
	}{
		{"invite, default directory", "", []string{"admin", "invite"}, filepath.Join(cwd, "parley-data")},
		{"invite, --data", "", []string{"admin", "invite", "--data", missing}, missing},
		{"invite, PARLEY_DATA", missing, []string{"admin", "invite"}, missing},
		{"invite, empty directory", "", []string{"admin", "invite", "--data", empty}, empty},
		{"lists import, default directory", "", []string{"admin", "lists", "import", "--name", "gifct", list}, filepath.Join(cwd, "parley-data")},
		{"lists import, --data", "", []string{"admin", "lists", "import", "--data", missing, "--name", "gifct", list}, missing},
		{"lists import, PARLEY_DATA", missing, []string{"admin", "lists", "import", "--name", "gifct", list}, missing},
		{"lists import, empty directory", "", []string{"admin", "lists", "import", "--data", empty, "--name", "gifct", list}, empty},
		{"lists list", "", []string{"admin", "lists", "list", "--data", missing}, missing},
		{"lists confirm", "", []string{"admin", "lists", "confirm", "--data", empty, "--type", "md5", strings.Repeat("cd", 16)}, empty},
		{"takedowns", "", []string{"admin", "takedowns", "--data", missing}, missing},
		{"takedowns approve", "", []string{"admin", "takedowns", "approve", "--data", empty, "1"}, empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PARLEY_DATA", tc.env)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			msg := errb.String()
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q, stderr %q", code, out.String(), msg)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q although it failed (an invite code the server would never accept?)", out.String())
			}
			for _, want := range []string{tc.lookIn, "--data DIR", "PARLEY_DATA", "never create"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
	// Nothing was created: not the default directory, not the missing
	// one, nothing in the empty one or beside the list.
	for _, dir := range []string{cwd, empty, elsewhere} {
		var found []string
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if path != dir && path != list {
				found = append(found, path)
			}
			return nil
		})
		if len(found) != 0 {
			t.Errorf("admin commands created %v", found)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("admin commands created %s (%v)", missing, err)
	}
	// Help needs no data directory.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"admin", "lists", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--data") {
		t.Errorf("admin lists --help: exit %d, %q %q", code, out.String(), errb.String())
	}
}
