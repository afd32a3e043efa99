package main

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/shareddata"
)

// TestServeWithoutFFmpeg runs a real parleyd whose --ffmpeg and --ffprobe
// point at nothing: it starts, publishes images and refuses them by hash
// list as before, and refuses a video with 415 and an error that names
// the Debian package to install.
func TestServeWithoutFFmpeg(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-ffmpeg-here")
	srv := startCrashServerWith(t, t.TempDir(), []string{ffmpegEnv + "=" + missing})
	ctx := context.Background()
	conn, err := transport.Dial(ctx, srv.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.Register(ctx, "alice", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	api := channelClient{t: t, url: srv.url(), token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news","title":"News"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	img, _ := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	if code, b := api.post("news", "image", img); code != http.StatusCreated {
		t.Fatalf("image post: HTTP %d: %s", code, b)
	}
	vid, err := os.ReadFile(shareddata.Path(t, "testdata", "video", "videos", "doorknob-hd-no-bar.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="v.mp4"`)
	h.Set("Content-Type", "video/mp4")
	w, _ := mw.CreatePart(h)
	w.Write(vid)
	mw.Close()
	code, b := api.do("POST", "/v1/channels/news/posts", mw.FormDataContentType(), &buf)
	var eb channels.ErrorBody
	json.Unmarshal(b, &eb)
	if code != http.StatusUnsupportedMediaType || eb.Code != "video_unavailable" || !strings.Contains(eb.Error, `Debian package "ffmpeg"`) {
		t.Fatalf("video post without ffmpeg: HTTP %d: %s", code, b)
	}
	var evs channels.EventsResponse
	code, b = api.do("GET", "/v1/channels/news/events?since=0", "", nil)
	if code != http.StatusOK || json.Unmarshal(b, &evs) != nil || len(evs.Events) != 1 {
		t.Fatalf("feed: HTTP %d: %s", code, b)
	}
}
