package blobs3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7/pkg/cors"
)

// ErrCORSUnreadable means the endpoint did not serve the bucket's CORS
// rules (CheckBrowserAccess); ErrCORSRefuses that they leave the web
// client's direct transfers out.
var (
	ErrCORSUnreadable = errors.New("blobs3: the bucket's CORS rules could not be read")
	ErrCORSRefuses    = errors.New("blobs3: the bucket's CORS rules refuse the web client's direct transfers")
)

// ErrNoPresign means a use of pre-signed URLs on a store configured
// without them (Config.Presign).
var ErrNoPresign = errors.New("blobs3: pre-signed URLs are off (set presign=DURATION)")

// BrowserOrigin is the origin (scheme://host[:port]) of the store's
// pre-signed URLs: what a web page's Content-Security-Policy must name
// for the page to transfer attachments directly. It is read off a URL
// signed for the purpose, so it is right whether the endpoint addresses
// buckets by path or by host name.
func (s *Store) BrowserOrigin(ctx context.Context) (string, error) {
	if s.cfg.Presign <= 0 {
		return "", ErrNoPresign
	}
	u, err := s.c.PresignedGetObject(ctx, s.cfg.Bucket, s.key("origin-probe"), s.cfg.Presign, nil)
	if err != nil {
		return "", s3Error("pre-sign", err)
	}
	return u.Scheme + "://" + u.Host, nil
}

// CheckBrowserAccess reads the bucket's CORS rules and reports, as an
// error saying what to change, whether a page served from webOrigin
// ("" for any) would be refused the direct uploads (PUT with
// If-None-Match) and downloads (GET, after the server's redirect, with
// Parley-Follow-Redirect) that the web client makes. It also refuses
// rules that let the page send an Authorization header to the bucket:
// a browser that predates the Fetch standard's rule of dropping it on a
// cross-origin redirect would forward the client's token for its node
// there, and only the bucket's preflight answer stops it. An endpoint
// that does not serve the rules gives the error of asking.
func (s *Store) CheckBrowserAccess(ctx context.Context, webOrigin string) error {
	cfg, err := s.c.GetBucketCors(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrCORSUnreadable, describe(err))
	}
	if cfg == nil || len(cfg.CORSRules) == 0 {
		return fmt.Errorf("%w: the bucket has none; allow %s to GET and PUT with the headers if-none-match and parley-follow-redirect (docs/web.md)", ErrCORSRefuses, originName(webOrigin))
	}
	need := []struct {
		method  string
		headers []string
	}{
		{http.MethodPut, []string{"if-none-match"}},
		{http.MethodGet, []string{"parley-follow-redirect"}},
	}
	for _, n := range need {
		if !slices.ContainsFunc(cfg.CORSRules, func(r cors.Rule) bool { return ruleAllows(r, webOrigin, n.method, n.headers) }) {
			return fmt.Errorf("%w: no rule lets %s %s with the headers %s (docs/web.md)",
				ErrCORSRefuses, originName(webOrigin), n.method, strings.Join(n.headers, ", "))
		}
		if slices.ContainsFunc(cfg.CORSRules, func(r cors.Rule) bool { return ruleAllows(r, webOrigin, n.method, []string{"authorization"}) }) {
			return fmt.Errorf("%w: a rule lets %s %s with an Authorization header (AllowedHeader * does): name the headers instead, so that no browser can forward the client's token to the bucket (docs/web.md)",
				ErrCORSRefuses, originName(webOrigin), n.method)
		}
	}
	return nil
}

func originName(o string) string {
	if o == "" {
		return "every origin"
	}
	return o
}

// ruleAllows is S3's matching of a CORS request against one rule: the origin
// matches an AllowedOrigin, the method is an AllowedMethod, and every
// request header matches an AllowedHeader (case-insensitively). Origins
// and headers may hold one "*" standing for any text. An empty origin
// asks whether the rule allows every origin.
func ruleAllows(r cors.Rule, origin, method string, headers []string) bool {
	if !slices.Contains(r.AllowedMethod, method) {
		return false
	}
	if origin == "" {
		if !slices.Contains(r.AllowedOrigin, "*") {
			return false
		}
	} else if !slices.ContainsFunc(r.AllowedOrigin, func(p string) bool { return wildcardMatch(p, origin) }) {
		return false
	}
	for _, h := range headers {
		if !slices.ContainsFunc(r.AllowedHeader, func(p string) bool { return wildcardMatch(strings.ToLower(p), h) }) {
			return false
		}
	}
	return true
}

// wildcardMatch matches s against pattern, in which one "*" stands for
// any text (S3's CORS patterns allow at most one).
func wildcardMatch(pattern, s string) bool {
	before, after, found := strings.Cut(pattern, "*")
	if !found {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}
