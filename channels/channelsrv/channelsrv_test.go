package channelsrv

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

func anyAccount(context.Context, string) (bool, error) { return true, nil }

func TestOpenServesChannelsAndExchange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	auth := channels.AuthenticatorFunc(func(r *http.Request) (string, error) {
		if u := r.Header.Get("X-User"); u != "" {
			return u, nil
		}
		return "", channels.ErrUnauthorized
	})
	reg := prometheus.NewRegistry()
	s, err := Open(ctx, dir, Config{Auth: auth, AccountExists: anyAccount, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Run(ctx)
	mux := http.NewServeMux()
	mux.Handle(ExactPattern, s.Handler())
	mux.Handle(Pattern, s.Handler())
	mux.Handle(ExchangePattern, s.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/v1/channels", strings.NewReader(`{"id":"news","title":"N"}`))
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: HTTP %d", resp.StatusCode)
	}
	if _, err := moderation.Confirm(ctx, s.Moderation.Store(), "confirmed", nil, "m", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := moderation.Publish(ctx, s.Moderation.Store(), "confirmed")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"nope", 401}, {tok, 200}} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/exchange/confirmed", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("exchange with token %q: HTTP %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
	if _, err := Open(ctx, dir, Config{AccountExists: anyAccount}); err == nil {
		t.Fatal("Open without Auth succeeded")
	}
	if _, err := Open(ctx, dir, Config{Auth: auth}); err == nil {
		t.Fatal("Open without AccountExists succeeded")
	}
}

// A list imported while the server is stopped takes down matching posts
// when it starts.
func TestCatchUpAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	auth := channels.AuthenticatorFunc(func(*http.Request) (string, error) { return "alice", nil })
	s, err := Open(ctx, dir, Config{Auth: auth, AccountExists: anyAccount, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	req, _ := http.NewRequest("POST", srv.URL+"/v1/channels", strings.NewReader(`{"id":"news"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", resp, err)
	}
	data := []byte("a video that gets listed later")
	m, err := s.Channels.Analyse(data, "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Channels.Publish(ctx, channels.Post{Channel: "news", Author: "alice", Media: []channels.Media{m}}, [][]byte{data}, time.Now())
	if err != nil || p.Status != channels.Published {
		t.Fatalf("publish: %+v %v", p, err)
	}
	srv.Close()
	s.Close()

	// "parleyd admin lists import" while the server is down.
	ms, err := modsqlite.Open(ctx, filepath.Join(dir, ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := hashlist.NewEntry(hashlist.MD5, fmt.Sprintf("%x", m.MD5), nil)
	if _, _, err := ms.ImportBank(ctx, moderation.Bank{Name: "tat", Label: "terrorist content", Action: hashlist.Block}, []hashlist.Entry{e}); err != nil {
		t.Fatal(err)
	}
	ms.Close()

	s, err = Open(ctx, dir, Config{Auth: auth, AccountExists: anyAccount, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, ChannelsDB))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got, err := cs.Post(ctx, p.ID)
	if err != nil || got.Status != channels.Removed || !strings.Contains(got.Reason, "tat") {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	evs, _ := cs.Events(ctx, "news", 0, 0)
	if len(evs) != 2 || evs[1].Kind != channels.EventTakedown {
		t.Fatalf("events %+v", evs)
	}
	// A second start has nothing left to do.
	if cp, _ := cs.RescanCheckpoint(ctx); cp == 0 {
		t.Fatal("rescan checkpoint not stored")
	}
}
