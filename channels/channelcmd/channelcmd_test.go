package channelcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

type server struct {
	url string
	ms  *modsqlite.Store
	mod *moderation.Service
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ms, err := modsqlite.Open(ctx, filepath.Join(dir, "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, "channels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	mod, err := moderation.New(ctx, moderation.Config{Store: ms, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	auth := channels.AuthenticatorFunc(func(r *http.Request) (string, error) {
		if u, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && u != "" {
			return u, nil
		}
		return "", channels.ErrUnauthorized
	})
	exists := func(_ context.Context, user string) (bool, error) { return user == "alice" || user == "bob", nil }
	svc, err := channels.New(channels.Config{Store: cs, Moderation: mod, Auth: auth, AccountExists: exists})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &server{url: srv.URL, ms: ms, mod: mod}
}

func as(user string) func(*http.Request) error {
	return func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+user)
		return nil
	}
}

func (s *server) run(t *testing.T, user string, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Run(context.Background(), s.url, as(user), args, &out, &errb); code != want {
		t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func TestCommands(t *testing.T) {
	s := newServer(t)
	out := s.run(t, "alice", 0, "create", "news", "--title", "News")
	if !strings.Contains(out, "NOT end-to-end encrypted") || !strings.Contains(out, "public channel news") {
		t.Fatalf("create: %s", out)
	}
	out = s.run(t, "alice", 0, "post", "news", "first post\x1b[31m")
	if !strings.Contains(out, "NOT end-to-end encrypted") || !strings.Contains(out, "Published post 1") {
		t.Fatalf("post: %s", out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "clip.mp4")
	os.WriteFile(bad, []byte("known bad video bytes"), 0o600)
	sum := sha256.Sum256([]byte("known bad video bytes"))
	e, _ := hashlist.NewEntry(hashlist.SHA256, fmt.Sprintf("%x", sum), nil)
	ctx := context.Background()
	s.ms.ImportBank(ctx, moderation.Bank{Name: "tat", Label: "terrorist content", Action: hashlist.Block}, []hashlist.Entry{e})
	s.mod.Refresh(ctx)
	out = s.run(t, "alice", 1, "post", "news", "look", "--media", bad)
	if !strings.Contains(out, `matches the hash list "tat"`) || !strings.Contains(out, "451") {
		t.Fatalf("blocked post: %s", out)
	}
	good := filepath.Join(dir, "note.txt")
	os.WriteFile(good, []byte("hello"), 0o600)
	s.run(t, "alice", 0, "post", "news", "--media", good)
	s.run(t, "bob", 1, "post", "news", "not an admin")
	s.run(t, "alice", 0, "admin", "news", "bob")
	s.run(t, "bob", 0, "post", "news", "from bob")

	out = s.run(t, "carol", 0, "follow", "news")
	if !strings.Contains(out, "NOT end-to-end encrypted") {
		t.Fatalf("follow: %s", out)
	}
	out = s.run(t, "carol", 0, "read", "news")
	if !strings.Contains(out, "not end-to-end encrypted") || !strings.Contains(out, "first post[31m") || strings.Contains(out, "\x1b") ||
		!strings.Contains(out, "media 0: application/octet-stream, 5 bytes") || !strings.Contains(out, "from bob") || !strings.Contains(out, "(3 posts; continue with --since 3)") {
		t.Fatalf("read:\n%s", out)
	}
	out = s.run(t, "carol", 0, "read", "news", "--json", "--since", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("read --json:\n%s", out)
	}
	for _, l := range lines {
		var ev eventJSON
		if err := json.Unmarshal([]byte(l), &ev); err != nil || !ev.Public || ev.E2E || !strings.Contains(l, `"end_to_end_encrypted":false`) {
			t.Fatalf("json line %q: %v", l, err)
		}
	}
	s.run(t, "carol", 0, "unfollow", "news")
	s.run(t, "carol", 2, "read")
	s.run(t, "carol", 2, "frobnicate")
	if out := s.run(t, "carol", 0, "post", "--help"); strings.Contains(out, "NOTE:") || !strings.Contains(out, "NOT end-to-end encrypted") {
		t.Fatalf("help: %s", out)
	}
	s.run(t, "carol", 1, "read", "nope")
}

func TestReadFollowSeesTakedown(t *testing.T) {
	s := newServer(t)
	s.run(t, "alice", 0, "create", "news")
	dir := t.TempDir()
	f := filepath.Join(dir, "a.bin")
	os.WriteFile(f, []byte("soon listed"), 0o600)
	s.run(t, "alice", 0, "post", "news", "x", "--media", f)

	ctx, cancel := context.WithCancel(context.Background())
	var out syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- Run(ctx, s.url, as("carol"), []string{"read", "news", "--follow", "--json", "--wait", "5s"}, &out, &out)
	}()
	waitFor(t, &out, `"kind":"post"`)
	sum := sha256.Sum256([]byte("soon listed"))
	e, _ := hashlist.NewEntry(hashlist.SHA256, fmt.Sprintf("%x", sum), nil)
	s.ms.ImportBank(context.Background(), moderation.Bank{Name: "gifct", Label: "terrorist content", Action: hashlist.Block}, []hashlist.Entry{e})
	s.mod.Refresh(context.Background())
	waitFor(t, &out, `"kind":"takedown"`)
	s.run(t, "alice", 0, "post", "news", "later")
	waitFor(t, &out, `"text":"later"`)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("read --follow exit %d: %s", code, out.String())
	}
}

func waitFor(t *testing.T, b *syncbuf.Buffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in:\n%s", s, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The notice goes to stderr, never into the output (JSON above all), and
// only when the caller's Notice says so.
func TestNoticeOnStderrOnly(t *testing.T) {
	s := newServer(t)
	var out, errb bytes.Buffer
	if code := Run(context.Background(), s.url, as("alice"), []string{"create", "quiet", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("create: %d %s", code, errb.String())
	}
	if strings.Contains(out.String(), "NOTE") || !strings.Contains(errb.String(), "NOT end-to-end encrypted") {
		t.Fatalf("stdout %q, stderr %q", out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	never := Options{Notice: func() bool { return false }}
	if code := RunWithOptions(context.Background(), s.url, as("alice"), []string{"post", "quiet", "hello"}, &out, &errb, never); code != 0 {
		t.Fatalf("post: %d %s", code, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), "NOTE") {
		t.Fatalf("notice printed though the caller said no: %q %q", out.String(), errb.String())
	}
}

// TestGetMediaChecksDigest: a download that does not match the post's
// SHA-256 (a server or path that alters or truncates it) leaves no file.
func TestGetMediaChecksDigest(t *testing.T) {
	good := []byte("the real picture bytes")
	sum := sha256.Sum256(good)
	for _, tc := range []struct {
		name string
		body []byte
		ok   bool
	}{{"intact", good, true}, {"altered", []byte("the fake picture bytes"), false}, {"truncated", good[:10], false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/media/0") {
					w.Write(tc.body)
					return
				}
				json.NewEncoder(w).Encode(channels.PostResponse{Post: channels.PostView{ID: 3, Channel: "news", Media: []channels.MediaView{{
					Index: 0, ContentType: "image/png", Size: int64(len(good)), URL: channels.PathPrefix + "/news/posts/3/media/0", SHA256: fmt.Sprintf("%x", sum)}}}})
			}))
			defer srv.Close()
			out := filepath.Join(t.TempDir(), "pic.png")
			var stdout, stderr bytes.Buffer
			var progress int64
			code := RunWithOptions(context.Background(), srv.URL, nil, []string{"get-media", "news", "3", "0", "--out", out}, &stdout, &stderr,
				Options{Progress: func(done, total int64) { progress = done }})
			data, err := os.ReadFile(out)
			if tc.ok {
				if code != 0 || err != nil || !bytes.Equal(data, good) || progress != int64(len(good)) {
					t.Fatalf("exit %d, %v, %q, progress %d: %s", code, err, data, progress, stderr.String())
				}
				return
			}
			if code == 0 || err == nil || !strings.Contains(stderr.String(), "nothing saved") {
				t.Fatalf("exit %d, file %v: %s", code, err, stderr.String())
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Fatalf("left behind: %v", entries)
			}
		})
	}
}
