package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/parleychat/parley/internal/bytesize"
)

// The Go runtime's soft memory limit (runtime/debug.SetMemoryLimit).
//
// With memory to spare the collector lets the heap grow to twice what is
// live before it collects (GOGC=100): an idle TLS connection then costs
// about 20 KiB of RSS, though it needs about 12 (docs/benchmarks.md,
// "Idle connections"). With a limit, the collector works harder as the
// process nears it, so a node holds as many connections as its memory
// allows instead of being killed at half of them. parleyd sets one by
// default where it can tell how much memory it was given: in a cgroup
// with a memory limit (a container, or a systemd unit with MemoryMax=).

// memoryLimitFlag is --memory-limit: "auto", "none" or a size.
type memoryLimitFlag string

func (m *memoryLimitFlag) String() string { return string(*m) }

// minMemoryLimit is the smallest --memory-limit taken: below it an
// empty server is near the limit already, and the collector would run
// all the time.
const minMemoryLimit = 64 << 20

func (m *memoryLimitFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	switch v {
	case "auto", "none":
	default:
		n, err := bytesize.Parse(v)
		if err != nil {
			return fmt.Errorf("want auto, none or a size such as 512MiB or 20GiB, not %q", v)
		}
		if n < minMemoryLimit {
			return fmt.Errorf("%s is too little for the server (an empty one uses about 30 MiB): give at least %s, or none", bytesize.Format(n), bytesize.Format(minMemoryLimit))
		}
	}
	*m = memoryLimitFlag(v)
	return nil
}

// cgroupShare is the part of a cgroup's memory limit parleyd's own limit
// is set to: the rest is for what the cgroup also counts but the Go
// runtime does not manage (the kernel's socket buffers, the page cache
// of the data directory's files), and for the collector to catch up
// before the cgroup's limit kills the process.
const cgroupShare = 0.9

// applyMemoryLimit sets the runtime's memory limit as m says and
// describes what it did: a size sets it; "auto" leaves GOMEMLIMIT if set
// and otherwise takes cgroupShare of the cgroup's limit found under
// root ("/" in production), if any; "none" sets no limit.
func applyMemoryLimit(m memoryLimitFlag, root string) (string, error) {
	switch m {
	case "none":
		debug.SetMemoryLimit(math.MaxInt64)
		return "none", nil
	case "auto", "":
		if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
			return "GOMEMLIMIT=" + v, nil
		}
		limit, path, err := cgroupMemoryMax(root)
		if err != nil {
			return "", err
		}
		if limit == 0 {
			return "none (no cgroup memory limit)", nil
		}
		n := int64(float64(limit) * cgroupShare)
		debug.SetMemoryLimit(n)
		return fmt.Sprintf("%s (%.0f%% of %s in %s)", bytesize.Format(n), cgroupShare*100, bytesize.Format(limit), path), nil
	}
	n, err := bytesize.Parse(string(m))
	if err != nil {
		return "", err
	}
	debug.SetMemoryLimit(n)
	return bytesize.Format(n), nil
}

// cgroupMemoryMax returns the memory limit of this process's cgroup
// (v2's memory.max, or v1's memory.limit_in_bytes), 0 if it has none,
// and the file it read.
func cgroupMemoryMax(root string) (int64, string, error) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", nil // not Linux, or no /proc
	}
	if err != nil {
		return 0, "", fmt.Errorf("memory limit: %w", err)
	}
	defer f.Close()
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		// The cgroup's own directory, then the mount's root: without a
		// cgroup namespace a container sees its host's path for its
		// cgroup here, but its own cgroup mounted at the root.
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = append(candidates,
				filepath.Join(root, "sys/fs/cgroup", parts[2], "memory.max"),
				filepath.Join(root, "sys/fs/cgroup/memory.max"))
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			candidates = append(candidates,
				filepath.Join(root, "sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"),
				filepath.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", fmt.Errorf("memory limit: %w", err)
	}
	for _, path := range candidates {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // e.g. v2's root cgroup, which has no limit file
		}
		if err != nil {
			return 0, "", fmt.Errorf("memory limit: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, path, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("memory limit: %s holds %q, not a size", path, v)
		}
		if n >= 1<<62 {
			return 0, path, nil // cgroup v1's "unlimited"
		}
		return n, path, nil
	}
	return 0, "", nil
}
