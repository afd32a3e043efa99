package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// fakeCgroup writes a /proc/self/cgroup and the limit file it names under
// a temporary root.
func fakeCgroup(t *testing.T, cgroup, limitFile, limit string) string {
	t.Helper()
	root := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/self/cgroup", cgroup)
	if limitFile != "" {
		write(limitFile, limit+"\n")
	}
	return root
}

// keepMemoryLimit restores the test process's memory limit afterwards.
func keepMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	t.Setenv("GOMEMLIMIT", "") // restored afterwards
	os.Unsetenv("GOMEMLIMIT")
}

func TestMemoryLimitAuto(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name, cgroup, file, limit string
		want                      int64 // 0: no limit set
	}{
		{"v2 service", "0::/system.slice/parleyd.service\n", "sys/fs/cgroup/system.slice/parleyd.service/memory.max", "2147483648", 2 * gib * 9 / 10},
		{"v2 unlimited", "0::/user.slice\n", "sys/fs/cgroup/user.slice/memory.max", "max", 0},
		{"v2 root (no file)", "0::/\n", "", "", 0},
		{"v1", "4:memory:/docker/abc\n0::/\n", "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "1073741824", gib * 9 / 10},
		{"v1 unlimited", "9:cpu,memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712", 0},
		// A container without a cgroup namespace: its host's path is
		// listed, its own cgroup is mounted at the root.
		{"v1 no namespace", "4:memory:/docker/abc\n", "sys/fs/cgroup/memory/memory.limit_in_bytes", "536870912", 512 << 20 * 9 / 10},
		{"v2 no namespace", "0::/system.slice/docker-abc.scope\n", "sys/fs/cgroup/memory.max", "1073741824", gib * 9 / 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keepMemoryLimit(t)
			debug.SetMemoryLimit(math.MaxInt64)
			root := fakeCgroup(t, tc.cgroup, tc.file, tc.limit)
			desc, err := applyMemoryLimit("auto", root)
			if err != nil {
				t.Fatal(err)
			}
			got := debug.SetMemoryLimit(-1)
			if tc.want == 0 {
				if got != math.MaxInt64 || !strings.HasPrefix(desc, "none") {
					t.Fatalf("limit %d (%q), want none", got, desc)
				}
				return
			}
			if got < tc.want-1 || got > tc.want+1 || !strings.Contains(desc, tc.file) {
				t.Fatalf("limit %d (%q), want %d from %s", got, desc, tc.want, tc.file)
			}
		})
	}
}

// A cgroup file that does not hold a size is an error (the caller runs
// without a limit and says so), not a limit made up.
func TestMemoryLimitBadCgroup(t *testing.T) {
	keepMemoryLimit(t)
	debug.SetMemoryLimit(math.MaxInt64)
	root := fakeCgroup(t, "0::/x\n", "sys/fs/cgroup/x/memory.max", "lots")
	if _, err := applyMemoryLimit("auto", root); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Fatalf("err = %v, want one naming the file's content", err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d set from a bad file", got)
	}
}

func TestMemoryLimitExplicit(t *testing.T) {
	keepMemoryLimit(t)
	// GOMEMLIMIT wins over the cgroup for auto.
	t.Setenv("GOMEMLIMIT", "3GiB")
	root := fakeCgroup(t, "0::/x\n", "sys/fs/cgroup/x/memory.max", "1073741824")
	debug.SetMemoryLimit(12345 << 20)
	if desc, err := applyMemoryLimit("auto", root); err != nil || desc != "GOMEMLIMIT=3GiB" || debug.SetMemoryLimit(-1) != 12345<<20 {
		t.Fatalf("auto with GOMEMLIMIT: %q, %v", desc, err)
	}
	if desc, err := applyMemoryLimit("512MiB", root); err != nil || desc != "512 MiB" || debug.SetMemoryLimit(-1) != 512<<20 {
		t.Fatalf("512MiB: %q, %v", desc, err)
	}
	if _, err := applyMemoryLimit("none", root); err != nil || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("none: %v", err)
	}
}

func TestMemoryLimitFlag(t *testing.T) {
	for _, good := range []string{"auto", "none", "20GiB", "512MiB", "67108864", "3TiB"} {
		var m memoryLimitFlag
		if err := m.Set(good); err != nil {
			t.Errorf("Set(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "0", "-5MiB", "12XB", "1.5GiB", "99999999999TiB", "lots", "10MiB", "1000"} {
		var m memoryLimitFlag
		if err := m.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	// Through the CLI: refused with what to write instead, nothing started.
	var errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--memory-limit", "lots"}, &bytes.Buffer{}, &errb)
	if code != 2 || !strings.Contains(errb.String(), "such as 512MiB") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	code = run(context.Background(), []string{"serve", "--data", t.TempDir(), "--memory-limit", "8MiB"}, &bytes.Buffer{}, &errb)
	if code != 2 || !strings.Contains(errb.String(), "at least 64 MiB") {
		t.Fatalf("8MiB: exit %d, stderr %q", code, errb.String())
	}
}
