package video

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/pdq"
)

func hashWithBits(bits ...int) pdq.Hash {
	var h pdq.Hash
	for _, b := range bits {
		h[b/8] |= 1 << (b % 8)
	}
	return h
}

func bitsUpTo(n int) pdq.Hash {
	bits := make([]int, n)
	for i := range bits {
		bits[i] = i
	}
	return hashWithBits(bits...)
}

// TestMatchSemantics pins the published algorithm's edges: distance <= D
// matches (31 yes, 32 no), quality < F is left out, duplicate hashes count
// once, both percentages are required, and no frames means no match.
func TestMatchSemantics(t *testing.T) {
	zero := pdq.Hash{}
	f := func(h pdq.Hash, q int) Feature { return Feature{Hash: h, Quality: q} }
	cases := []struct {
		name   string
		q, c   []Feature
		o      MatchOptions
		qp, cp float64
		match  bool
	}{
		{"distance 31 matches", []Feature{f(zero, 100)}, []Feature{f(bitsUpTo(31), 100)}, DefaultMatch, 100, 100, true},
		{"distance 32 does not", []Feature{f(zero, 100)}, []Feature{f(bitsUpTo(32), 100)}, DefaultMatch, 0, 0, false},
		{"quality 49 left out", []Feature{f(zero, 49), f(bitsUpTo(100), 50)}, []Feature{f(zero, 100)}, DefaultMatch, 0, 0, false},
		{"quality 50 kept", []Feature{f(zero, 50)}, []Feature{f(zero, 100)}, DefaultMatch, 100, 100, true},
		{"no frames", nil, []Feature{f(zero, 100)}, DefaultMatch, 0, 0, false},
		// Query: zero (x3, counted once) and a far hash: 1 of 2 = 50 %.
		{"duplicates count once", []Feature{f(zero, 90), f(zero, 90), f(zero, 90), f(bitsUpTo(128), 90)}, []Feature{f(zero, 90)},
			DefaultMatch, 50, 100, false},
		{"compared percentage required", []Feature{f(zero, 90)}, []Feature{f(zero, 90), f(bitsUpTo(128), 90)},
			MatchOptions{Distance: 31, Quality: 50, QueryPct: 80, ComparedPct: 60}, 100, 50, false},
		{"query 80 % is enough", []Feature{f(zero, 90), f(bitsUpTo(2), 90), f(bitsUpTo(4), 90), f(bitsUpTo(6), 90), f(bitsUpTo(128), 90)},
			[]Feature{f(zero, 90)}, DefaultMatch, 80, 100, true},
	}
	for _, c := range cases {
		r := Match(c.q, c.c, c.o)
		if r.QueryPct != c.qp || r.ComparedPct != c.cp || r.Match != c.match {
			t.Errorf("%s: got %+v, want %v %% / %v %% match=%v", c.name, r, c.qp, c.cp, c.match)
		}
	}
}

func TestPrune(t *testing.T) {
	in := []Feature{
		{Frame: 0, Hash: pdq.Hash{}},
		{Frame: 1, Hash: bitsUpTo(2)},  // 2 from frame 0: pruned
		{Frame: 2, Hash: bitsUpTo(3)},  // 3 from frame 0: kept
		{Frame: 3, Hash: bitsUpTo(3)},  // 0: pruned
		{Frame: 4, Hash: bitsUpTo(10)}, // kept
	}
	out := Prune(in, 2)
	var got []int
	for _, f := range out {
		got = append(got, f.Frame)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 2 || got[2] != 4 {
		t.Errorf("Prune kept frames %v, want [0 2 4]", got)
	}
	if n := len(Prune(in, 0)); n != 4 { // distance 0 still drops exact repeats
		t.Errorf("Prune(0) kept %d, want 4", n)
	}
}

func TestParseVPDQErrors(t *testing.T) {
	good := "0,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,0.000\n"
	bad := map[string]string{
		"empty":          "",
		"three fields":   "0,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54\n",
		"five fields":    strings.TrimSpace(good) + ",1\n",
		"short hash":     "0,100,25ad,0.000\n",
		"not hex":        "0,100,zzad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,0.000\n",
		"quality 101":    "0,101,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,0.000\n",
		"negative frame": "-1,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,0.000\n",
		"NaN time":       "0,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,NaN\n",
		"negative time":  "0,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,-1\n",
		"long line":      strings.Repeat("1", 300) + "\n",
		"good then bad":  good + "x\n",
	}
	for name, in := range bad {
		feats, err := ParseVPDQ(strings.NewReader(in), 0)
		if err == nil || !errors.Is(err, ErrBadVPDQ) || feats != nil {
			t.Errorf("%s: got %d features, err %v; want ErrBadVPDQ and nothing", name, len(feats), err)
		}
	}
	// A list claiming more frames than the limit stops at the limit.
	if _, err := ParseVPDQ(strings.NewReader(strings.Repeat(good, 11)), 10); err == nil || !strings.Contains(err.Error(), "more than 10 frames") {
		t.Errorf("11 frames with a limit of 10: %v", err)
	}
	feats, err := ParseVPDQ(strings.NewReader(good+"\n"+good), 0)
	if err != nil || len(feats) != 2 {
		t.Errorf("two good lines: %d, %v", len(feats), err)
	}
}

func TestReadTMKErrors(t *testing.T) {
	needSamples(t)
	raw, err := os.ReadFile(samplePath("tmk", "chair-orig-22-sd-bar", ".tmk"))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	put := func(off int, v uint32) []byte {
		return mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b })
	}
	bad := map[string][]byte{
		"empty":            {},
		"header only":      raw[:32],
		"truncated":        raw[:len(raw)-1],
		"trailing byte":    append(append([]byte(nil), raw...), 0),
		"bad magic":        mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"bad algorithm":    mod(func(b []byte) []byte { copy(b[8:], "PDQX"); return b }),
		"zero fps":         put(12, 0),
		"1000000 periods":  put(16, 1_000_000),
		"negative coeffs":  put(20, 0xffffffff),
		"dimension 255":    put(24, 255),
		"negative count":   put(28, 0x80000000),
		"zero period":      put(32, 0),
		"NaN feature":      put(32+16+128+8, math.Float32bits(float32(math.NaN()))),
		"infinite feature": put(len(raw)-4, math.Float32bits(float32(math.Inf(1)))),
	}
	for name, b := range bad {
		tm, err := ReadTMK(bytes.NewReader(b))
		if err == nil || !errors.Is(err, ErrBadTMK) || tm != nil {
			t.Errorf("%s: got %v, %v; want ErrBadTMK", name, tm != nil, err)
		}
	}
	// Incompatible hashes are refused by the matcher, not compared.
	a, _ := ReadTMK(bytes.NewReader(raw))
	b, _ := ReadTMK(bytes.NewReader(put(12, 30)))
	if _, err := MatchTMK(a, b, 0.7, 0.7); err == nil {
		t.Error("matching 15 fps against 30 fps hashes: no error")
	}
}

// TestHostileVideos: every kind of bad file gets a clear error of the
// right kind, promptly, and nothing hangs.
func TestHostileVideos(t *testing.T) {
	needFFmpeg(t)
	needSamples(t)
	dir := t.TempDir()
	chair := samplePath("videos", "chair-orig-22-sd-bar", ".mp4")
	raw, err := os.ReadFile(chair)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := append([]byte(nil), raw...)
	for i := len(corrupt) / 20; i < len(corrupt)/5; i += 97 {
		corrupt[i] ^= 0x5a
	}
	huge := makeVideo(t, dir, "huge.mkv", "-f", "lavfi", "-i", "color=c=black:s=4096x4096:d=0.04", "-c:v", "ffv1")
	playlist := write("list.mp4", []byte("#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:1/x.ts\n"))

	cases := []struct {
		name string
		path string
		lim  Limits
		want error
		msg  string
	}{
		{"zero-length", write("empty.mp4", nil), Limits{}, ErrInvalid, "empty file"},
		{"missing", filepath.Join(dir, "nope.mp4"), Limits{}, ErrInvalid, "no such file"},
		{"directory", dir, Limits{}, ErrInvalid, "not a regular file"},
		{"truncated", write("trunc.mp4", raw[:len(raw)/6]), Limits{}, ErrInvalid, ""},
		{"corrupt", write("corrupt.mp4", corrupt), Limits{}, ErrInvalid, ""},
		{"garbage", write("garbage.mp4", bytes.Repeat([]byte("not a video "), 1000)), Limits{}, ErrInvalid, ""},
		{"playlist", playlist, Limits{}, ErrInvalid, ""},
		{"enormous resolution", huge, Limits{}, ErrTooLarge, "4096x4096"},
		{"over MaxBytes", chair, Limits{MaxBytes: 1000}, ErrTooLarge, "bytes"},
		{"over MaxFrames (endless)", chair, Limits{MaxFrames: 50}, ErrTooLong, "more than 50 frames"},
		{"over MaxDuration", chair, Limits{MaxDuration: 5 * time.Second}, ErrTooLong, ""},
		{"over Timeout", chair, Limits{Timeout: 300 * time.Millisecond}, ErrTimeout, ""},
		{"memory limit too small to start", chair, Limits{MemoryBytes: 24 << 20}, ErrDecoder, "memory limit"},
		{"format not allowed", chair, Limits{Formats: []string{"matroska"}}, ErrInvalid, ""},
	}
	for _, c := range cases {
		d := Decoder{Limits: c.lim}
		start := time.Now()
		// The decoder is what faces hostile bytes: frames are read and
		// dropped (hashing them under the race detector would only slow
		// the test; HashVPDQ and HashTMK go through the same code).
		_, err := d.Frames(context.Background(), c.path, FrameRequest{Scaler: VPDQScaler}, func(Frame) error { return nil })
		el := time.Since(start)
		if err == nil || !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %q does not say %q", c.name, err, c.msg)
		}
		if el > 60*time.Second { // far below the 5-minute default timeout: no hang

			t.Errorf("%s: took %v", c.name, el)
		}
		t.Logf("%s: %v (%v)", c.name, err, el.Round(time.Millisecond))
	}
	// An address-space limit that lets ffmpeg start but not decode: an
	// error (ffmpeg's malloc failures surface as decoding errors), not a
	// crash or a hang.
	if _, _, err := (&Decoder{Limits: Limits{MemoryBytes: 300 << 20}}).HashVPDQ(context.Background(), chair, VPDQOptions{SecondsPerHash: 1}); err == nil ||
		!(errors.Is(err, ErrInvalid) || errors.Is(err, ErrDecoder)) {
		t.Errorf("300 MiB address space: %v", err)
	} else {
		t.Logf("300 MiB address space: %v", err)
	}
	// The TMK path has the same limits.
	if _, _, err := (&Decoder{Limits: Limits{MaxFrames: 10}}).HashTMK(context.Background(), chair); !errors.Is(err, ErrTooLong) {
		t.Errorf("TMK over MaxFrames: %v", err)
	}
}

// TestNoFFmpeg: a decoder whose binaries are missing says which package to
// install.
func TestNoFFmpeg(t *testing.T) {
	d := Decoder{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"}
	err := d.Available()
	if !errors.Is(err, ErrNoFFmpeg) || !strings.Contains(err.Error(), `Debian package "ffmpeg"`) {
		t.Fatalf("Available: %v", err)
	}
	if _, _, err := d.HashVPDQ(context.Background(), "x.mp4", VPDQOptions{}); !errors.Is(err, ErrNoFFmpeg) {
		t.Errorf("HashVPDQ: %v", err)
	}
	if _, _, err := d.HashTMK(context.Background(), "x.mp4"); !errors.Is(err, ErrNoFFmpeg) {
		t.Errorf("HashTMK: %v", err)
	}
}

// TestSampling: the default for uploads is one frame a second (every 30th
// frame at 30 fps, as the reference's frameMod), with timestamps to match,
// and pruning drops near-identical neighbours.
func TestSampling(t *testing.T) {
	needFFmpeg(t)
	needSamples(t)
	var d Decoder
	path := samplePath("videos", "pattern-sd-grey-bar", ".mp4")
	feats, info, err := d.HashVPDQ(context.Background(), path, VPDQOptions{SecondsPerHash: 1})
	if err != nil {
		t.Fatal(err)
	}
	if info.FrameRate != 30 || len(feats) != 7 { // frames 0, 30, ..., 180 of 206
		t.Fatalf("rate %v, %d features, want 30 and 7", info.FrameRate, len(feats))
	}
	ref := refVPDQ(t, "pattern-sd-grey-bar")
	for i, f := range feats {
		if f.Frame != 30*i || math.Abs(f.Timestamp-float64(i)) > 1e-6 {
			t.Errorf("feature %d: frame %d at %v s", i, f.Frame, f.Timestamp)
		}
		if d := pdq.Distance(f.Hash, ref[f.Frame].Hash); d > 4 {
			t.Errorf("frame %d: distance %d from the reference", f.Frame, d)
		}
	}
	all, _, err := d.HashVPDQ(context.Background(), path, VPDQOptions{FrameStep: 2, PruneDistance: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) >= 103 || len(all) == 0 {
		t.Errorf("pruning at distance 10 kept %d of 103 frames", len(all))
	}
	if _, _, err := d.HashVPDQ(context.Background(), path, VPDQOptions{SecondsPerHash: -1}); err == nil {
		t.Error("negative seconds per hash accepted")
	}
}

func FuzzParseVPDQ(f *testing.F) {
	f.Add([]byte("0,100,25ad26b96f58d2491a79f80f07f2c9936fe6083dfb4983d8a4a36db40034df54,0.000\n"))
	f.Add([]byte("1,2,3,4\n\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		feats, err := ParseVPDQ(bytes.NewReader(b), 1000)
		if err != nil {
			if feats != nil {
				t.Fatal("features returned with an error")
			}
			return
		}
		// Whatever parses formats and parses back to the same hashes.
		var out bytes.Buffer
		if err := FormatVPDQ(&out, feats); err != nil {
			t.Fatal(err)
		}
		back, err := ParseVPDQ(&out, 1000)
		if err != nil || len(back) != len(feats) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range back {
			if back[i].Hash != feats[i].Hash || back[i].Quality != feats[i].Quality || back[i].Frame != feats[i].Frame {
				t.Fatalf("feature %d changed", i)
			}
		}
	})
}

func FuzzReadTMK(f *testing.F) {
	if raw, err := os.ReadFile(samplePath("tmk", "pattern-sd-grey-bar", ".tmk")); err == nil {
		f.Add(raw)
		f.Add(raw[:100])
	}
	// A small well-formed file: 1 period, 1 coefficient.
	var small bytes.Buffer
	small.WriteString("TMK1FVECPDQF")
	for _, v := range []int32{15, 1, 1, 256, 3, 100} {
		binary.Write(&small, binary.LittleEndian, v)
	}
	binary.Write(&small, binary.LittleEndian, make([]float32, 1+256*3))
	f.Add(small.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, err := ReadTMK(bytes.NewReader(b))
		if err != nil {
			if tm != nil {
				t.Fatal("hash returned with an error")
			}
			return
		}
		var out bytes.Buffer
		if err := WriteTMK(&out, tm); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatal("accepted file does not write back identically")
		}
		if len(tm.Periods) <= 4 { // keep the fuzzer fast: level 2 is O(sum of periods)
			r, err := MatchTMK(tm, tm, 0.7, 0.7)
			if err != nil || math.IsNaN(float64(r.Level1)) {
				t.Fatalf("self-match: %+v %v", r, err)
			}
		}
	})
}
