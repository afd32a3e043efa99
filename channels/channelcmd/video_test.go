package channelcmd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A channel admin posts a WebM video with "parley channel post --media";
// a follower reads the post and downloads the video with get-media, with
// progress reported and the digest checked, byte for byte.
func TestPostAndGetVideo(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (Debian package ffmpeg; scripts/test installs it): %v", err)
	}
	dir := t.TempDir()
	vid := filepath.Join(dir, "clip.webm")
	cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "3",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "200k", vid)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	want, err := os.ReadFile(vid)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	s.run(t, "alice", 0, "create", "clips")
	s.run(t, "bob", 0, "follow", "clips")
	out := s.run(t, "alice", 0, "post", "clips", "a clip", "--media", vid)
	if !strings.Contains(out, "Published post 1") {
		t.Fatalf("post: %s", out)
	}
	read := s.run(t, "bob", 0, "read", "clips")
	if !strings.Contains(read, "video/webm") || !strings.Contains(read, "parley channel get-media clips 1 0") {
		t.Fatalf("read: %s", read)
	}
	dst := filepath.Join(dir, "got.webm")
	var stdout, stderr bytes.Buffer
	var progress, total int64
	code := RunWithOptions(context.Background(), s.url, as("bob"), []string{"get-media", "clips", "1", "0", "--out", dst}, &stdout, &stderr,
		Options{Progress: func(done, all int64) { progress, total = done, all }})
	got, err := os.ReadFile(dst)
	if code != 0 || err != nil || !bytes.Equal(got, want) || progress != int64(len(want)) || total != int64(len(want)) {
		t.Fatalf("get-media: exit %d, %v, %d of %d bytes, progress %d/%d: %s", code, err, len(got), len(want), progress, total, stderr.String())
	}
}
