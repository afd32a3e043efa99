package channels_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/moderation"
)

// needFFmpeg fails (never skips) when ffmpeg is missing: scripts/test
// installs it, and a test that skipped itself would pass without testing.
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is required (Debian package ffmpeg; scripts/test installs it): %v", b, err)
		}
	}
}

// sampleVideo returns the bytes and path of one of Meta's sample videos.
func sampleVideo(t testing.TB, name string) ([]byte, string) {
	t.Helper()
	p := shareddata.Path(t, "testdata", "video", "videos", name+".mp4")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data, p
}

// ffmpegFile runs ffmpeg with args writing to dir/name and returns the
// output's bytes.
func ffmpegFile(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// clip encodes a short synthetic video from one of ffmpeg's lavfi sources
// (small, so that the tests stay quick on a loaded machine).
func clip(t testing.TB, dir, name, source string, extra ...string) ([]byte, string) {
	t.Helper()
	args := append([]string{"-f", "lavfi", "-i", source + "=size=192x144:rate=10", "-t", "5"}, extra...)
	if len(extra) == 0 {
		args = append(args, "-c:v", "libx264", "-pix_fmt", "yuv420p")
	}
	data := ffmpegFile(t, dir, name, args...)
	return data, filepath.Join(dir, name)
}

// tmkOf hashes the video at path with TMK+PDQF as a list entry.
func tmkOf(t testing.TB, path string) hashlist.Entry {
	t.Helper()
	var d video.Decoder
	h, _, err := d.HashTMK(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := hashlist.TMKValue(h)
	if err != nil {
		t.Fatal(err)
	}
	e, err := hashlist.NewEntry(hashlist.TMK, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// vpdqEntry hashes the video at path as a list maker would (one frame a
// second) and returns it as a vpdq list entry.
func vpdqEntry(t testing.TB, path string) hashlist.Entry {
	t.Helper()
	var d video.Decoder
	feats, _, err := d.HashVPDQ(context.Background(), path, video.VPDQOptions{SecondsPerHash: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := hashlist.NewEntry(hashlist.VPDQ, hashlist.FormatVPDQValue(feats), nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func errorBody(t testing.TB, b []byte) channels.ErrorBody {
	t.Helper()
	var eb channels.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	return eb
}

// A vPDQ block list refuses a re-encoded, rescaled WebM copy of a listed
// MP4 and lets unrelated videos through; the refusal names the list, not
// the hash. Followers download published videos like images.
func TestVideoVPDQBlockList(t *testing.T) {
	needFFmpeg(t)
	e := newEnv(t)
	dir := t.TempDir()
	_, listed := clip(t, dir, "listed.mp4", "testsrc2")
	e.importBank("gifct-video", hashlist.Block, vpdqEntry(t, listed))

	copyData := ffmpegFile(t, dir, "copy.webm", "-i", listed, "-vf", "scale=128:-2", "-c:v", "libvpx-vp9", "-crf", "50", "-b:v", "0", "-deadline", "realtime")
	movData := ffmpegFile(t, dir, "copy.mov", "-i", listed, "-c:v", "libx264", "-crf", "35", "-pix_fmt", "yuv420p")
	for name, data := range map[string][]byte{"re-encoded webm": copyData, "mov": movData} {
		code, body := e.post("alice", "news", name, file{"v", "", data})
		if code != http.StatusUnavailableForLegalReasons {
			t.Fatalf("%s: HTTP %d, want 451: %s", name, code, body)
		}
		if eb := errorBody(t, body); eb.List != "gifct-video" || eb.Code != "blocked" || strings.Contains(string(body), "vpdq") {
			t.Fatalf("%s: error body %s", name, body)
		}
	}
	ds, err := e.mstore.Decisions(e.ctx, "channel:news author:alice", 0)
	if err != nil || len(ds) != 2 || ds[0].Type != hashlist.VPDQ || !strings.Contains(ds[0].Note, "% of the upload's frames") {
		t.Fatalf("block decisions %+v, %v", ds, err)
	}
	other, _ := clip(t, dir, "other.mp4", "mandelbrot")
	p := e.mustPost("alice", "news", "other", file{"o.mp4", "video/mp4", other})
	if len(p.Media) != 1 || p.Media[0].ContentType != "video/mp4" {
		t.Fatalf("media %+v", p.Media)
	}
	// Followers get it like an image, as a download.
	req, _ := http.NewRequest("GET", e.srv.URL+p.Media[0].URL, nil)
	req.Header.Set("X-Test-User", "bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got.Bytes(), other) || resp.Header.Get("Content-Disposition") != "attachment" {
		t.Fatalf("download HTTP %d, %d bytes, %v", resp.StatusCode, got.Len(), resp.Header)
	}
}

// A TMK review list holds a copy of the listed video for a moderator, with
// the level-1 cosine and level-2 score in the hold and in the decision; a
// moderator's rejection confirms its hashes into a bank; an exact SHA-256
// list entry blocks any file with those bytes.
func TestVideoTMKReviewAndExact(t *testing.T) {
	needFFmpeg(t)
	e := newEnv(t)
	dir := t.TempDir()
	_, listed := clip(t, dir, "listed.mp4", "testsrc2")
	e.importBank("tmk-review", hashlist.Review, tmkOf(t, listed))
	copyData := ffmpegFile(t, dir, "copy.mp4", "-i", listed, "-vf", "scale=160:-2", "-c:v", "libx264", "-crf", "38", "-pix_fmt", "yuv420p")
	code, body := e.post("alice", "news", "copy", file{"c.mp4", "video/mp4", copyData})
	if code != http.StatusAccepted {
		t.Fatalf("HTTP %d, want 202: %s", code, body)
	}
	var pr channels.PostResponse
	json.Unmarshal(body, &pr)
	if pr.Post.Status != channels.Held || !strings.Contains(pr.Post.Reason, "tmk-review") || !strings.Contains(pr.Post.Reason, "level-1 cosine") {
		t.Fatalf("held post %+v", pr.Post)
	}
	ds, err := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", pr.Post.ID), 0)
	if err != nil || len(ds) != 1 || ds[0].Kind != moderation.DecisionHold || ds[0].Type != hashlist.TMK ||
		!strings.Contains(ds[0].Note, "level-2 score") || !strings.HasPrefix(ds[0].Hash, "video_tmk_pdqf:sha256:") {
		t.Fatalf("hold decisions %+v, %v", ds, err)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 0 {
		t.Fatalf("held video visible: %+v", evs)
	}
	other, _ := clip(t, dir, "other.mp4", "mandelbrot")
	e.mustPost("alice", "news", "other", file{"o.mp4", "video/mp4", other})

	// Rejecting with confirmation puts its MD5, SHA-256, vPDQ and TMK
	// hashes in a bank, which then blocks the file.
	if _, err := channels.Reject(e.ctx, e.cstore, e.mstore, pr.Post.ID, "mod", "confirmed"); err != nil {
		t.Fatal(err)
	}
	b, err := e.mstore.Bank(e.ctx, "confirmed")
	if err != nil || b.Entries != 4 {
		t.Fatalf("confirmed bank %+v, %v (want md5, sha256, vpdq, tmk)", b, err)
	}
	if code, body := e.post("alice", "news", "again", file{"c.mp4", "video/mp4", copyData}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("after confirmation: HTTP %d: %s", code, body)
	}

	sha, err := hashlist.NewEntry(hashlist.SHA256, fmt.Sprintf("%x", sha256Sum(other)), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.importBank("exact", hashlist.Block, sha)
	if code, body := e.post("alice", "news", "other", file{"o.mp4", "video/mp4", other}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("exact: HTTP %d: %s", code, body)
	}
}

// A known still inside a video matches the image PDQ list once at least
// MinFrameMatches sampled frames show it.
func TestVideoFramesMatchImageList(t *testing.T) {
	needFFmpeg(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	dir := t.TempDir()
	img := filepath.Join(dir, "still.jpg")
	os.WriteFile(img, orig, 0o600)
	// 3 seconds of the still between 4 seconds of test pattern.
	vid := ffmpegFile(t, dir, "v.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2",
		"-loop", "1", "-framerate", "10", "-t", "3", "-i", img,
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2",
		"-filter_complex", "[1:v]scale=320:240,setsar=1[s];[0:v][s][2:v]concat=n=3:v=1[v]", "-map", "[v]",
		"-c:v", "libx264", "-pix_fmt", "yuv420p")
	for _, tc := range []struct {
		min  int
		want int
	}{{1, http.StatusUnavailableForLegalReasons}, {3, http.StatusUnavailableForLegalReasons}, {5, http.StatusCreated}} {
		e := newEnvModWith(t, func(c *moderation.Config) { c.MinFrameMatches = tc.min }, nil)
		e.importBank("stills", hashlist.Block, pdqEntry(t, orig))
		code, body := e.post("alice", "news", "v", file{"v.mp4", "video/mp4", vid})
		if code != tc.want {
			t.Fatalf("min %d frames: HTTP %d, want %d: %s", tc.min, code, tc.want, body)
		}
		if code == http.StatusUnavailableForLegalReasons {
			ds, _ := e.mstore.Decisions(e.ctx, "channel:news author:alice", 0)
			if len(ds) != 1 || ds[0].Type != hashlist.PDQ || !strings.Contains(ds[0].Note, "sampled frames within PDQ distance") {
				t.Fatalf("decisions %+v", ds)
			}
		}
	}
}

// A log-only list publishes the video and records the match.
func TestVideoLogOnlyList(t *testing.T) {
	needFFmpeg(t)
	e := newEnv(t)
	data, path := clip(t, t.TempDir(), "v.mp4", "testsrc2")
	e.importBank("watch", hashlist.Log, vpdqEntry(t, path))
	p := e.mustPost("alice", "news", "v", file{"v.mp4", "video/mp4", data})
	ds, err := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", p.ID), 0)
	if err != nil || len(ds) != 1 || ds[0].Kind != moderation.DecisionLog || ds[0].Bank != "watch" {
		t.Fatalf("log decisions %+v, %v", ds, err)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 1 || evs.Events[0].Post == nil {
		t.Fatalf("logged video not published: %+v", evs)
	}
}

// A new list version, imported by another process, takes down videos
// already posted that it matches, by vPDQ and by TMK, before anything is
// served again; followers get takedowns and other posts stay up.
func TestVideoListUpdateTakesDown(t *testing.T) {
	needFFmpeg(t)
	e := newEnv(t)
	dir := t.TempDir()
	a, aPath := clip(t, dir, "a.mp4", "testsrc2")
	b, bPath := clip(t, dir, "b.mp4", "mandelbrot")
	c, _ := clip(t, dir, "c.mp4", "rgbtestsrc")
	pa := e.mustPost("alice", "news", "a", file{"a.mp4", "video/mp4", a})
	pb := e.mustPost("alice", "news", "b", file{"b.mp4", "video/mp4", b})
	pc := e.mustPost("alice", "news", "c", file{"c.mp4", "video/mp4", c})
	before := e.events("news", 0, 0)
	e.importElsewhere("gifct-video", hashlist.Block, vpdqEntry(t, aPath), tmkOf(t, bPath))
	// The next read applies the list first: the post is gone already.
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", pa.ID), "", http.StatusNotFound, nil)
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", pc.ID), "", http.StatusOK, nil)
	evs := e.events("news", before.Cursor, 0)
	down := map[int64]string{}
	for _, ev := range evs.Events {
		if ev.Kind == channels.EventTakedown {
			down[ev.PostID] = ev.Reason
		}
	}
	if len(down) != 2 || down[pa.ID] == "" || down[pb.ID] == "" {
		t.Fatalf("takedowns %v, want posts %d and %d", down, pa.ID, pb.ID)
	}
	for id, typ := range map[int64]hashlist.SignalType{pa.ID: hashlist.VPDQ, pb.ID: hashlist.TMK} {
		ds, _ := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", id), 0)
		if len(ds) != 1 || ds[0].Kind != moderation.DecisionTakedown || ds[0].Type != typ {
			t.Fatalf("post %d takedown %+v", id, ds)
		}
	}
}

// Without ffmpeg (the path points at nothing) the service still starts,
// refuses videos with 415 naming the Debian package, and keeps images:
// accepted, and blocked by an image list.
func TestNoFFmpegRefusesVideoKeepsImages(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-ffmpeg")
	e := newEnvWith(t, func(c *channels.Config) {
		c.Video = &video.Decoder{FFmpeg: missing, FFprobe: missing}
	})
	data, _ := sampleVideo(t, "doorknob-hd-no-bar")
	code, body := e.post("alice", "news", "v", file{"v.mp4", "video/mp4", data})
	eb := errorBody(t, body)
	if code != http.StatusUnsupportedMediaType || eb.Code != "video_unavailable" || !strings.Contains(eb.Error, "apt-get install ffmpeg") {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	img, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	e.mustPost("alice", "news", "pen", file{"p.png", "image/png", img})
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	e.importBank("gifct", hashlist.Block, pdqEntry(t, orig))
	if code, _ := e.post("alice", "news", "b", file{"b.jpg", "image/jpeg", orig}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("image list without ffmpeg: HTTP %d", code)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 1 {
		t.Fatalf("feed %+v", evs)
	}
}

// Hostile and oversized videos get a clear refusal and change nothing.
func TestHostileVideosRefused(t *testing.T) {
	needFFmpeg(t)
	e := newEnvWith(t, func(c *channels.Config) { c.MaxVideoBytes = 1 << 20 })
	door, _ := sampleVideo(t, "doorknob-hd-no-bar")
	big := append(slices.Clone(door), door...)
	big = append(big, door...)
	garbage := append([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00"), bytes.Repeat([]byte{0xab}, 5000)...)
	for name, tc := range map[string]struct {
		data []byte
		code int
		want string
	}{
		"truncated":    {door[:len(door)/3], http.StatusUnprocessableEntity, "malformed"},
		"garbage ftyp": {garbage, http.StatusUnprocessableEntity, "malformed"},
		"over limit":   {big, http.StatusRequestEntityTooLarge, "video larger than"},
	} {
		code, body := e.post("alice", "news", name, file{"v.mp4", "video/mp4", tc.data})
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: HTTP %d %s, want %d %q", name, code, body, tc.code, tc.want)
		}
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 0 {
		t.Fatalf("refused videos changed the feed: %+v", evs)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// With --video-remove-borders a letterboxed copy of a listed video (black
// bars added above and below, re-encoded) is refused, and the decision
// says the match needed the borders removed; without it the same copy is
// published. Unrelated videos pass either way.
func TestVideoLetterboxNeedsBorderRemoval(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	_, listed := clip(t, dir, "listed.mp4", "testsrc2")
	boxed := ffmpegFile(t, dir, "boxed.mp4", "-i", listed, "-vf", "pad=192:240:0:48:black", "-c:v", "libx264", "-crf", "28", "-pix_fmt", "yuv420p")
	other, _ := clip(t, dir, "other.mp4", "mandelbrot")
	for _, on := range []bool{false, true} {
		e := newEnvWith(t, func(c *channels.Config) { c.VideoRemoveBorders = on })
		e.importBank("gifct-video", hashlist.Block, vpdqEntry(t, listed))
		code, body := e.post("alice", "news", "boxed", file{"b.mp4", "video/mp4", boxed})
		switch {
		case on && code != http.StatusUnavailableForLegalReasons:
			t.Fatalf("borders removed: HTTP %d, want 451: %s", code, body)
		case !on && code != http.StatusCreated:
			t.Fatalf("borders kept: HTTP %d, want 201 (the published matcher misses a letterboxed copy): %s", code, body)
		}
		if on {
			ds, err := e.mstore.Decisions(e.ctx, "channel:news author:alice", 0)
			if err != nil || len(ds) != 1 || !strings.Contains(ds[0].Note, "borders removed") {
				t.Fatalf("decisions %+v, %v", ds, err)
			}
		}
		e.mustPost("alice", "news", "other", file{"o.mp4", "video/mp4", other})
	}
}
