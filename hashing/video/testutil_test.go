package video

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The reference sample videos and hashes (see SOURCE.md there).
const sampleDir = "../../../shared/testdata/video"

var sampleNames = []string{
	"chair-22-sd-grey-bar", "chair-orig-22-sd-bar", "doorknob-hd-no-bar", "pattern-sd-grey-bar",
}

func samplePath(kind, name, ext string) string {
	return filepath.Join(sampleDir, kind, name+ext)
}

// needFFmpeg fails (never skips) a test when ffmpeg is missing: CI installs
// it (.ci/run), and a test that skipped itself would pass without testing.
func needFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (Debian package ffmpeg; .ci/run installs it): %v", err)
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is required (Debian package ffmpeg): %v", err)
	}
}

func needSamples(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(sampleDir); err != nil {
		t.Fatalf("reference samples missing: %v", err)
	}
}

// makeVideo encodes a synthetic test video with ffmpeg's lavfi source into
// dir and returns its path.
func makeVideo(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making %s: %v\n%s", name, err, b)
	}
	return out
}
