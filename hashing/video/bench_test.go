package video

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// cpuTimes returns this process's and its waited-for children's (ffmpeg's)
// user+system CPU time.
func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	get := func(who int) time.Duration {
		if syscall.Getrusage(who, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return get(syscall.RUSAGE_SELF), get(syscall.RUSAGE_CHILDREN)
}

// benchHash reports video-seconds hashed per CPU-second (Go and ffmpeg
// together), and ffmpeg's share of the CPU time, for the 22.4 s chair
// video.
func benchHash(b *testing.B, run func(d *Decoder, path string) error) {
	needFFmpeg(b)
	needSamples(b)
	path := samplePath("videos", "chair-orig-22-sd-bar", ".mp4")
	var d Decoder
	info, err := d.Probe(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	s0, c0 := cpuTimes()
	b.ResetTimer()
	for b.Loop() {
		if err := run(&d, path); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s1, c1 := cpuTimes()
	cpu := (s1 - s0) + (c1 - c0)
	b.ReportMetric(info.Duration*float64(b.N)/cpu.Seconds(), "video-s/CPU-s")
	b.ReportMetric(100*(c1-c0).Seconds()/cpu.Seconds(), "%ffmpeg")
}

// BenchmarkDecodeOnly: ffmpeg decoding to RGB24 at full size, every frame,
// with the frames read and dropped.
func BenchmarkDecodeOnly(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, err := d.Frames(context.Background(), path, FrameRequest{Scaler: VPDQScaler}, func(Frame) error { return nil })
		return err
	})
}

func BenchmarkVPDQEveryFrame(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, _, err := d.HashVPDQ(context.Background(), path, VPDQOptions{})
		return err
	})
}

func BenchmarkVPDQOnePerSecond(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, _, err := d.HashVPDQ(context.Background(), path, VPDQOptions{SecondsPerHash: 1})
		return err
	})
}

func BenchmarkTMK(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, _, err := d.HashTMK(context.Background(), path)
		return err
	})
}

// BenchmarkUploadSeparate is how uploads were hashed before Hash: vPDQ at
// one frame a second and TMK, each with its own ffmpeg decode.
func BenchmarkUploadSeparate(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		if _, _, err := d.HashVPDQ(context.Background(), path, VPDQOptions{SecondsPerHash: 1}); err != nil {
			return err
		}
		_, _, err := d.HashTMK(context.Background(), path)
		return err
	})
}

// BenchmarkUploadShared is the same two hashes from one decode (Hash).
func BenchmarkUploadShared(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, _, err := d.Hash(context.Background(), path, VPDQOptions{SecondsPerHash: 1})
		return err
	})
}

// BenchmarkUploadSharedBorders is BenchmarkUploadShared with border
// removal (three more PDQ hashes per sampled frame that has borders).
func BenchmarkUploadSharedBorders(b *testing.B) {
	benchHash(b, func(d *Decoder, path string) error {
		_, _, err := d.Hash(context.Background(), path, VPDQOptions{SecondsPerHash: 1, RemoveBorders: true})
		return err
	})
}
