// Package buildinfo says which build of Parley is running: the release
// version stamped at build time, or, for builds from a git checkout, the
// commit the Go toolchain recorded (go build stamps it; go run does not).
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Version is the release, set when building one:
//
//	go build -ldflags "-X github.com/parleychat/parley/internal/buildinfo.Version=v0.4.0" ./cmd/...
var Version = "devel"

// String describes the build: "v0.4.0 (commit 1a2b3c4d5e6f, 2026-12-05T04:00:00Z)",
// with "modified" when the checkout had uncommitted changes.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return describe(Version, info.Settings)
}

func describe(version string, settings []debug.BuildSetting) string {
	var rev, when string
	modified := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	parts := []string{"commit " + rev[:min(12, len(rev))]}
	if when != "" {
		parts = append(parts, when)
	}
	if modified {
		parts = append(parts, "modified")
	}
	return version + " (" + strings.Join(parts, ", ") + ")"
}
