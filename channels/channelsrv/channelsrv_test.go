package channelsrv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/moderation"
)

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
	s, err := Open(ctx, dir, Config{Auth: auth, Registerer: reg})
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
	if _, err := Open(ctx, dir, Config{}); err == nil {
		t.Fatal("Open without Auth succeeded")
	}
}
