package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// channelClient calls a server's channel API with a session token.
type channelClient struct {
	t     *testing.T
	url   string
	token string
}

func (c channelClient) do(method, path, contentType string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// post uploads a post with one image.
func (c channelClient) post(channel, text string, image []byte) (int, []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("text", text)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="image"`)
	h.Set("Content-Type", "application/octet-stream")
	w, err := mw.CreatePart(h)
	if err != nil {
		c.t.Fatal(err)
	}
	w.Write(image)
	mw.Close()
	return c.do("POST", "/v1/channels/"+channel+"/posts", mw.FormDataContentType(), &buf)
}

func sharedImage(t *testing.T, elem ...string) (data []byte, pdqHash string) {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, append([]string{"testdata", "pdq", "images"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pdq.HashReader(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return data, r.Hash.String()
}

// TestListImportInForceWhenCommandReturns runs a real parleyd child that
// polls for hash-list changes only once an hour, imports a list with the
// real "parleyd admin lists import" against its data directory from this
// process, and at once: reads a post published before the import that the
// list matches (no longer served) and uploads an image on the list
// (refused with 451, never published).
func TestListImportInForceWhenCommandReturns(t *testing.T) {
	srv := startCrashServer(t)
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
	early, earlyHash := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	listed, listedHash := sharedImage(t, "reg-test-input", "pen-and-coaster.png")
	code, b := api.post("news", "before the list", early)
	var pr channels.PostResponse
	if code != http.StatusCreated || json.Unmarshal(b, &pr) != nil {
		t.Fatalf("post before the list: HTTP %d: %s", code, b)
	}

	list := filepath.Join(t.TempDir(), "gifct.txt")
	if err := os.WriteFile(list, []byte("pdq "+earlyHash+"\npdq "+listedHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"admin", "lists", "import", "--data", srv.data, "--name", "gifct", list}, &out, &errb); code != 0 {
		t.Fatalf("admin lists import: exit %d: %s%s", code, out.String(), errb.String())
	}

	// The command has returned: the post published before it is not
	// served at the next read, whose check takes it down...
	if code, b := api.do("GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", pr.Post.ID), "", nil); code != http.StatusNotFound {
		t.Fatalf("media of the listed post right after the import: HTTP %d (%d bytes)", code, len(b))
	}
	code, b = api.do("GET", "/v1/channels/news/events?since=0", "", nil)
	var evs channels.EventsResponse
	if code != http.StatusOK || json.Unmarshal(b, &evs) != nil {
		t.Fatalf("events: HTTP %d: %s", code, b)
	}
	for _, ev := range evs.Events {
		if ev.Post != nil {
			t.Fatalf("the feed still serves a listed post: %+v", ev)
		}
	}
	// ...and the next upload is checked against the list.
	code, b = api.post("news", "right after the import", listed)
	var eb channels.ErrorBody
	if code != http.StatusUnavailableForLegalReasons || json.Unmarshal(b, &eb) != nil || eb.Code != "blocked" || eb.List != "gifct" {
		t.Fatalf("upload right after the import: HTTP %d: %s", code, b)
	}
	srv.stop()

	// On disk: the refused upload was never stored, the early post is
	// removed, and the refusal is in the decision log.
	cs, err := chansqlite.Open(ctx, filepath.Join(srv.data, channelsrv.ChannelsDB))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	posts, err := cs.Posts(ctx, 0, 100, channels.Published, channels.Held, channels.Removed, channels.Deleted)
	if err != nil || len(posts) != 1 || posts[0].ID != pr.Post.ID || posts[0].Status != channels.Removed {
		t.Fatalf("posts on disk: %+v, %v", posts, err)
	}
	ms, err := modsqlite.Open(ctx, filepath.Join(srv.data, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ds, err := ms.Decisions(ctx, "", 0)
	blocked := 0
	for _, d := range ds {
		if d.Kind == moderation.DecisionBlock && d.Bank == "gifct" && d.Hash == listedHash {
			blocked++
		}
	}
	if err != nil || blocked != 1 {
		t.Fatalf("decisions: %+v, %v", ds, err)
	}
}
