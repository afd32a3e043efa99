package blobs3

import (
	"errors"
	"testing"

	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/parleychat/parley/internal/s3test"
)

// A CORS rule is read as S3 applies it: the method exactly, the origin
// and each header against patterns with at most one "*", headers
// without regard to case.
func TestCORSRuleMatching(t *testing.T) {
	rule := cors.Rule{AllowedOrigin: []string{"https://*.example.org"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"Content-Type", "if-*"}}
	for _, c := range []struct {
		origin, method string
		headers        []string
		want           bool
	}{
		{"https://chat.example.org", "PUT", []string{"content-type", "if-none-match"}, true},
		{"https://chat.example.org", "GET", nil, true},
		{"https://chat.example.org", "DELETE", nil, false},
		{"https://chat.example.com", "GET", nil, false},
		{"http://chat.example.org", "GET", nil, false},
		{"https://chat.example.org", "GET", []string{"parley-follow-redirect"}, false},
		{"", "GET", nil, false}, // not every origin
	} {
		if got := ruleAllows(rule, c.origin, c.method, c.headers); got != c.want {
			t.Errorf("%s %s %v: %v, want %v", c.origin, c.method, c.headers, got, c.want)
		}
	}
	any := cors.Rule{AllowedOrigin: []string{"*"}, AllowedMethod: []string{"GET"}, AllowedHeader: []string{"*"}}
	if !ruleAllows(any, "", "GET", []string{"parley-follow-redirect"}) || !ruleAllows(any, "https://x.example", "GET", []string{"a"}) {
		t.Error("a rule for every origin and header refuses")
	}
}

// An endpoint that does not serve CORS rules (the fake) is told apart
// from rules that refuse: parleyd only warns then.
func TestBrowserAccessUnreadable(t *testing.T) {
	srv := s3test.Start(t)
	cfg := config(srv)
	s := open(t, cfg, sqliteIndex(t))
	if err := s.CheckBrowserAccess(ctx, "https://chat.example.org"); !errors.Is(err, ErrCORSUnreadable) {
		t.Fatalf("CheckBrowserAccess on an endpoint without CORS: %v, want ErrCORSUnreadable", err)
	}
}
