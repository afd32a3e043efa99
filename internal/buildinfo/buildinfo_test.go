package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, "v1"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-05T04:00:00Z"}},
			"v1 (commit 0123456789ab, 2026-12-05T04:00:00Z)"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}, "v1 (commit abc, modified)"},
	} {
		if got := describe("v1", tc.settings); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}
