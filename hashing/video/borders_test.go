package video

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestFindBorders: black bars are found on the sides they are on; a frame
// whose content reaches the edges, a plain frame and bars thinner than 2 %
// have none; noise in a bar within the tolerance does not stop it.
func TestFindBorders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frame := func(w, h int, b Borders, noise float32) []float32 {
		l := make([]float32, w*h)
		for y := range h {
			for x := range w {
				if y < b.Top || y >= h-b.Bottom || x < b.Left || x >= w-b.Right {
					l[y*w+x] = 16 + noise*rng.Float32()
				} else {
					l[y*w+x] = 40 + 200*rng.Float32()
				}
			}
		}
		return l
	}
	for _, c := range []struct {
		name  string
		w, h  int
		b     Borders
		noise float32
		want  Borders
	}{
		{"letterbox", 160, 120, Borders{Top: 15, Bottom: 15}, 0, Borders{Top: 15, Bottom: 15}},
		{"pillarbox with noise", 160, 120, Borders{Left: 20, Right: 22}, 8, Borders{Left: 20, Right: 22}},
		{"windowbox", 160, 120, Borders{10, 12, 14, 16}, 4, Borders{10, 12, 14, 16}},
		{"no borders", 160, 120, Borders{}, 0, Borders{}},
		{"one-pixel line", 160, 120, Borders{Top: 1}, 0, Borders{}},
	} {
		got := FindBorders(frame(c.w, c.h, c.b, c.noise), c.w, c.h)
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	plain := make([]float32, 160*120)
	if b := FindBorders(plain, 160, 120); b.Any() {
		t.Errorf("plain frame: %+v", b)
	}
	if b := FindBorders(plain[:10], 160, 120); b.Any() {
		t.Errorf("short buffer: %+v", b)
	}
}

// TestBorderRemovalMatchesLetterbox: re-encodes of listed videos with
// black bars added by ffmpeg (the chair sample letterboxed to 480x960, the
// doorknob sample letterboxed to 4:3 and pillarboxed to 1600x720) are
// missed by the published vPDQ matcher and caught with border removal; with
// border removal on, the chair videos still match each other and no chair
// video matches pattern or doorknob (both ways). The chair and pattern
// samples pillarboxed are measured, not asserted: their own black side bars
// merge with the added ones, so every cut differs from the listed frames
// (docs/benchmarks.md).
func TestBorderRemovalMatchesLetterbox(t *testing.T) {
	needFFmpeg(t)
	needSamples(t)
	dir := t.TempDir()
	chair := samplePath("videos", "chair-orig-22-sd-bar", ".mp4")
	pattern := samplePath("videos", "pattern-sd-grey-bar", ".mp4")
	enc := []string{"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-an"}
	if raceDetector {
		enc[3] = "ultrafast"
	}
	door := samplePath("videos", "doorknob-hd-no-bar", ".mp4")
	pad := func(name, in, filter string) string {
		return makeVideo(t, dir, name+".mp4", append([]string{"-i", in, "-vf", filter}, enc...)...)
	}
	uploads := map[string]string{
		"chair-letterbox":    pad("cl", chair, "pad=480:960:0:120:black"),
		"doorknob-letterbox": pad("dl", door, "pad=1280:960:0:120:black"),
		"doorknob-pillarbox": pad("dp", door, "pad=1600:720:160:0:black"),
		"chair-pillarbox":    pad("cp", chair, "pad=1280:720:400:0:black"),
		"pattern-pillarbox":  pad("pp", pattern, "pad=1280:720:400:0:black"),
	}
	// The variant's source: which listed videos it should match.
	source := map[string]string{"chair-letterbox": "chair", "doorknob-letterbox": "doorknob", "doorknob-pillarbox": "doorknob",
		"chair-pillarbox": "chair", "pattern-pillarbox": "pattern"}
	// Measured only: these samples have black side bars of their own,
	// which merge with the added ones.
	merged := map[string]bool{"chair-pillarbox": true, "pattern-pillarbox": true}
	secondsPerHash := 1.0
	if raceDetector {
		// Hashing full-size frames under -race is slow: fewer frames,
		// and only the copies whose decisions are asserted.
		secondsPerHash = 3
		for n := range merged {
			delete(uploads, n)
		}
	}
	lists := map[string][]Feature{}
	for _, n := range sampleNames {
		lists[n] = refVPDQ(t, n) // the reference files, every frame
		uploads[n] = samplePath("videos", n, ".mp4")
	}
	same := func(a, b string) bool {
		if s, ok := source[a]; ok {
			return strings.HasPrefix(b, s)
		}
		return a == b || strings.HasPrefix(a, "chair") && strings.HasPrefix(b, "chair")
	}
	var d Decoder
	for up, path := range uploads {
		h, _, err := d.Hash(context.Background(), path, VPDQOptions{SecondsPerHash: secondsPerHash, RemoveBorders: true})
		if err != nil {
			t.Fatalf("%s: %v", up, err)
		}
		_, variant := source[up]
		if variant && (h.VPDQBorderless == nil || h.BorderedFrames < len(h.VPDQ)*9/10) {
			t.Errorf("%s: borders found on %d of %d frames", up, h.BorderedFrames, len(h.VPDQ))
		}
		for _, listed := range sampleNames {
			off := Match(h.VPDQ, lists[listed], DefaultMatch)
			on := MatchVariants(append([][]Feature{h.VPDQ}, h.VPDQBorderless...), lists[listed], DefaultMatch)
			t.Logf("%-22s vs %-22s bordered %3d/%3d  without %5.1f%% %-5v  with %5.1f%% %v",
				up, listed, h.BorderedFrames, len(h.VPDQ), off.QueryPct, off.Match, on.QueryPct, on.Match)
			switch {
			case !same(up, listed):
				if off.Match || on.Match {
					t.Errorf("%s matches %s (without %v, with %v)", up, listed, off.Match, on.Match)
				}
			case merged[up]:
				// Measured only (see above).
			case variant:
				if off.Match {
					t.Errorf("%s matches %s without border removal: the test video is not a hard case", up, listed)
				}
				if !on.Match {
					t.Errorf("%s vs %s: no match with border removal (%.1f%%)", up, listed, on.QueryPct)
				}
			default:
				if !off.Match || !on.Match {
					t.Errorf("%s vs %s: should match (without %v, with %v)", up, listed, off.Match, on.Match)
				}
			}
		}
	}
}

// FuzzFindBorders: on any frame (the fuzzer's bytes as luma, a size from
// its first bytes) the borders found stay within the limits and every cut
// leaves a non-empty frame of the expected size.
func FuzzFindBorders(f *testing.F) {
	f.Add([]byte{20, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add(make([]byte, 400))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		w, h := 8+int(data[0])%40, 8+int(data[1])%40
		luma := make([]float32, w*h)
		for i := range luma {
			if 2+i < len(data) {
				luma[i] = float32(data[2+i])
			}
		}
		b := FindBorders(luma, w, h)
		for _, c := range []struct{ v, side int }{{b.Top, h}, {b.Bottom, h}, {b.Left, w}, {b.Right, w}} {
			if c.v < 0 || float64(c.v) > borderMaxShare*float64(c.side) {
				t.Fatalf("%dx%d: border %+v over the limit", w, h, b)
			}
		}
		for _, cut := range b.Cuts() {
			out, cw, ch := cropLuma(nil, luma, w, h, cut)
			if cw != w-cut.Left-cut.Right || ch != h-cut.Top-cut.Bottom || len(out) != cw*ch || cw <= 0 || ch <= 0 {
				t.Fatalf("%dx%d cut %+v: %dx%d, %d values", w, h, cut, cw, ch, len(out))
			}
		}
	})
}
