package hashcmd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/shareddata"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (Debian package ffmpeg; .ci/run installs it): %v", err)
	}
}

// TestHashVPDQCommand: "parley hash vpdq --seconds-per-hash 0.5" prints the
// reference text format, for each frame it hashes (every 15th) what the
// reference printed for that frame (hash within distance 4, the same
// frame number and timestamp), and the default samples one frame a second.
func TestHashVPDQCommand(t *testing.T) {
	needFFmpeg(t)
	vid := shareddata.Path(t, "testdata", "video", "videos", "pattern-sd-grey-bar.mp4")
	refFile := shareddata.Path(t, "testdata", "video", "vpdq", "pattern-sd-grey-bar.txt")
	code, out, errs := run("vpdq", "--seconds-per-hash", "0.5", vid)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	raw, err := os.ReadFile(refFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := video.ParseVPDQ(strings.NewReader(out), 0)
	if err != nil {
		t.Fatalf("output does not parse as vPDQ: %v", err)
	}
	all, _ := video.ParseVPDQ(bytes.NewReader(raw), 0)
	var ref []video.Feature
	var refLines []string
	for i, line := range strings.Split(string(raw), "\n") {
		if i < len(all) && all[i].Frame%15 == 0 {
			ref = append(ref, all[i])
			refLines = append(refLines, line)
		}
	}
	if len(got) != len(ref) {
		t.Fatalf("%d lines, reference %d", len(got), len(ref))
	}
	outLines := strings.Split(out, "\n")
	for i := range ref {
		if d := pdq.Distance(got[i].Hash, ref[i].Hash); d > 4 || got[i].Frame != ref[i].Frame {
			t.Errorf("line %d: %q, reference %q", i+1, outLines[i], refLines[i])
		}
		// Apart from the hash, the line is the reference's text.
		if strings.Split(outLines[i], ",")[3] != strings.Split(refLines[i], ",")[3] {
			t.Errorf("line %d timestamp: %q, reference %q", i+1, outLines[i], refLines[i])
		}
	}
	code, out, _ = run("vpdq", vid, "--json")
	if code != 0 || strings.Count(out, "\n") != 7 || !strings.Contains(out, `"frame":30,`) || !strings.Contains(out, `"timestamp":1}`) {
		t.Errorf("default 1 frame a second, --json: exit %d\n%s", code, out)
	}
}

// TestHashTMKCommand: the tmkdump text, and --out writes a .tmk file that
// matches the reference's.
func TestHashTMKCommand(t *testing.T) {
	needFFmpeg(t)
	vid := shareddata.Path(t, "testdata", "video", "videos", "doorknob-hd-no-bar.mp4")
	refPath := shareddata.Path(t, "testdata", "video", "tmk", "doorknob-hd-no-bar.tmk")
	out := filepath.Join(t.TempDir(), "d.tmk")
	code, text, errs := run("tmk", "--out", out, vid)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4+1+2*4*32 || lines[2] != "frameFeatureCount           62" || lines[3] != "algorithm                   PDQF" {
		t.Fatalf("%d lines, header %q", len(lines), lines[:4])
	}
	if !strings.HasPrefix(lines[5], vid+":2731:0:cos,") || strings.Count(lines[4], ",") != 256 {
		t.Errorf("feature lines: %.80q / %.80q", lines[4], lines[5])
	}
	read := func(p string) *video.TMK {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tm, err := video.ReadTMK(f)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	r, err := video.MatchTMK(read(out), read(refPath), 0.7, 0.7)
	if err != nil || !r.Match || r.Level1 < 0.999 || r.Level2 < 0.999 {
		t.Errorf("written .tmk against the reference: %+v %v", r, err)
	}
	code, text, _ = run("tmk", "--avg-only", vid)
	if code != 0 || strings.Count(text, "\n") != 5 {
		t.Errorf("--avg-only: exit %d, %d lines", code, strings.Count(text, "\n"))
	}
}

func TestHashVideoErrors(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	notVideo := filepath.Join(dir, "x.mp4")
	os.WriteFile(notVideo, []byte("hello"), 0o600)
	if code, _, errs := run("vpdq", notVideo); code != 1 || !strings.Contains(errs, "invalid or corrupt video") {
		t.Errorf("not a video: exit %d, %q", code, errs)
	}
	if code, _, errs := run("tmk", notVideo, notVideo); code != 2 || !strings.Contains(errs, "one video at a time") {
		t.Errorf("two files: exit %d, %q", code, errs)
	}
	if code, _, _ := run("vpdq", "--seconds-per-hash", "-1", notVideo); code != 2 {
		t.Errorf("negative --seconds-per-hash: exit %d", code)
	}
	t.Setenv("PATH", dir) // no ffmpeg here
	if code, _, errs := run("vpdq", notVideo); code != 1 || !strings.Contains(errs, `Debian package "ffmpeg"`) {
		t.Errorf("without ffmpeg: exit %d, %q", code, errs)
	}
}
