package video

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestHashDecodesOnceSameHashes: Hash, one ffmpeg process with two
// outputs, gives exactly the vPDQ and TMK hashes of HashVPDQ and HashTMK
// (two processes), on two of the reference samples.
func TestHashDecodesOnceSameHashes(t *testing.T) {
	needFFmpeg(t)
	needSamples(t)
	for _, name := range []string{"doorknob-hd-no-bar", "pattern-sd-grey-bar"} {
		path := samplePath("videos", name, ".mp4")
		var d Decoder
		opts := VPDQOptions{SecondsPerHash: 1}
		feats, _, err := d.HashVPDQ(context.Background(), path, opts)
		if err != nil {
			t.Fatal(err)
		}
		tmk, _, err := d.HashTMK(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		h, info, err := d.Hash(context.Background(), path, opts)
		if err != nil {
			t.Fatalf("%s: Hash: %v", name, err)
		}
		if info.FrameRate <= 0 {
			t.Errorf("%s: no info: %+v", name, info)
		}
		if !slices.Equal(h.VPDQ, feats) || len(feats) == 0 {
			t.Errorf("%s: vPDQ from the shared decode differs: %d frames vs %d", name, len(h.VPDQ), len(feats))
		}
		if h.TMK == nil || h.TMK.FrameCount != tmk.FrameCount || h.TMK.Average != tmk.Average ||
			!slices.Equal(h.TMK.Cos, tmk.Cos) || !slices.Equal(h.TMK.Sin, tmk.Sin) {
			t.Errorf("%s: TMK from the shared decode differs", name)
		}
	}
}

// TestHashLimits: the one process decoding for both hashes keeps every
// limit: frame count (per output), duration, time, memory and format, and a
// corrupt or empty file is refused.
func TestHashLimits(t *testing.T) {
	needFFmpeg(t)
	needSamples(t)
	chair := samplePath("videos", "chair-orig-22-sd-bar", ".mp4")
	for _, c := range []struct {
		name string
		lim  Limits
		want error
	}{
		// 338 TMK frames, 23 vPDQ frames: only the TMK output is over.
		{"over MaxFrames", Limits{MaxFrames: 100}, ErrTooLong},
		{"over MaxDuration", Limits{MaxDuration: 5e9}, ErrTooLong},
		{"over Timeout", Limits{Timeout: 3e8}, ErrTimeout},
		{"memory", Limits{MemoryBytes: 24 << 20}, ErrDecoder},
		{"format", Limits{Formats: []string{"matroska"}}, ErrInvalid},
	} {
		d := Decoder{Limits: c.lim}
		h, _, err := d.Hash(context.Background(), chair, VPDQOptions{SecondsPerHash: 1})
		if !errors.Is(err, c.want) || h.VPDQ != nil || h.TMK != nil {
			t.Errorf("%s: got %v (%d frames), want %v and no hashes", c.name, err, len(h.VPDQ), c.want)
		}
	}
	if _, _, err := (&Decoder{}).Hash(context.Background(), chair, VPDQOptions{SecondsPerHash: -1}); err == nil {
		t.Error("negative seconds per hash accepted")
	}
}
