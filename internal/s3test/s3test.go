// Package s3test gives tests an S3-compatible server of their own: an
// in-memory github.com/johannesboyne/gofakes3 served on a loopback port
// over TLS (a certificate of its own, trusted through RootCAs or the
// PEM file CAFile) in the test process, with one bucket created.
//
// In front of it sits what the tests of store/blobs3 and parleyd need
// that the fake does not do itself: requests signed with another access
// key id are refused with 403 InvalidAccessKeyId (the fake does not
// verify header signatures, so only the key id is checked), and
// FailUploads makes object uploads break off mid-body, as a server or
// network failing during an upload does. Pre-signed URLs (query-string
// signatures) are checked as S3 checks them: the signature V4 under the
// secret key, the expiry, and no second credential beside it (an
// Authorization header too is 400, as on AWS). A PUT with
// If-None-Match: * (S3's conditional write) is refused with 412
// PreconditionFailed if the object exists.
package s3test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Server is a running fake S3 endpoint.
type Server struct {
	// Endpoint is host:port on 127.0.0.1, spoken to over TLS (plain
	// HTTP if started with StartPlain).
	Endpoint string
	// RootCAs and CAFile (PEM) hold the server's certificate.
	RootCAs *x509.CertPool
	CAFile  string
	// Bucket exists when Start returns.
	Bucket string
	// AccessKeyID and SecretAccessKey are the credentials it accepts.
	AccessKeyID, SecretAccessKey string

	backend *s3mem.Backend
	// dir, for a StartVersity server, is the directory its buckets are
	// directories of (backend is then nil).
	dir string
	// failAfter, when >= 0, cuts every object upload's connection after
	// that many bytes of its body.
	failAfter atomic.Int64
	// Uploads counts object upload requests (PUTs of an object or part).
	Uploads atomic.Int64
	// PresignedGets and PresignedPuts count requests with a valid
	// pre-signed URL.
	PresignedGets, PresignedPuts atomic.Int64
	// Now, if set, is the clock pre-signed URLs' expiry is checked
	// against (set it before the first request).
	Now func() time.Time

	// Conditions says what the server does with a PUT's If-None-Match
	// (ConditionsHonoured unless set): S3-compatible servers differ.
	Conditions atomic.Int32

	// conditional serialises conditional PUTs, so that of two racing
	// creations exactly one wins, as on S3.
	conditional sync.Mutex
}

// What a server does with a PUT's If-None-Match (Server.Conditions).
const (
	ConditionsHonoured       = iota // as AWS S3: 412 if the object exists
	ConditionsIgnored               // the PUT goes ahead (older servers)
	ConditionsNotImplemented        // 501 NotImplemented
	ConditionsFailing               // 503 SlowDown: a passing failure, which says nothing of the condition
)

// Start starts a server speaking TLS, stopped when the test ends.
func Start(t testing.TB) *Server { return start(t, true) }

// StartPlain starts a server speaking plain HTTP. Clients then sign
// uploads with AWS's streaming (aws-chunked) signature, which the fake
// decodes only for single PUTs: use it for requests other than uploads.
func StartPlain(t testing.TB) *Server { return start(t, false) }

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	s := &Server{Bucket: "parley-test", AccessKeyID: "PARLEYTESTKEY", SecretAccessKey: "parley-test-secret", backend: s3mem.New()}
	s.failAfter.Store(-1)
	if err := s.backend.CreateBucket(s.Bucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(s.backend)
	hs := httptest.NewUnstartedServer(s.wrap(faker.Server()))
	if useTLS {
		hs.StartTLS()
		s.RootCAs = x509.NewCertPool()
		s.RootCAs.AddCert(hs.Certificate())
		s.CAFile = filepath.Join(t.TempDir(), "s3-ca.pem")
		pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
		if err := os.WriteFile(s.CAFile, pemData, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	_, s.Endpoint, _ = strings.Cut(hs.URL, "://")
	return s
}

func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("X-Amz-Signature") {
			now := time.Now()
			if s.Now != nil {
				now = s.Now()
			}
			if status, code := s.checkPresigned(r, now); status != 0 {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Resource>%s</Resource></Error>`, code, r.URL.Path)
				return
			}
			if r.Method == http.MethodPut {
				s.PresignedPuts.Add(1)
			} else {
				s.PresignedGets.Add(1)
			}
		}
		if key := accessKeyID(r); key != s.AccessKeyID {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><Resource>%s</Resource></Error>`, r.URL.Path)
			return
		}
		if s.Conditions.Load() == ConditionsIgnored {
			r.Header.Del("If-None-Match") // gofakes3 would honour it
		}
		if r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "" && !r.URL.Query().Has("partNumber") {
			s.conditional.Lock()
			defer s.conditional.Unlock()
			if s.Conditions.Load() == ConditionsFailing {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>%s</Resource></Error>`, r.URL.Path)
				return
			}
			if r.Header.Get("If-None-Match") != "*" || s.Conditions.Load() == ConditionsNotImplemented {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotImplemented)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Resource>%s</Resource></Error>`, r.URL.Path)
				return
			}
			_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			if _, err := s.backend.HeadObject(s.Bucket, key); err == nil {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusPreconditionFailed)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Resource>%s</Resource></Error>`, r.URL.Path)
				return
			}
		}
		if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1 {
			s.Uploads.Add(1)
			if n := s.failAfter.Load(); n >= 0 {
				io.CopyN(io.Discard, r.Body, n)
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// checkPresigned checks a query-string signature V4 (AWS "Authenticating
// Requests: Using Query Parameters") as S3 does, returning 0 if it holds
// or the HTTP status and S3 error code to refuse with.
func (s *Server) checkPresigned(r *http.Request, now time.Time) (int, string) {
	if r.Header.Get("Authorization") != "" {
		return http.StatusBadRequest, "InvalidArgument" // "Only one auth mechanism allowed"
	}
	q := r.URL.Query()
	signedHeaders := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || !slices.Contains(signedHeaders, "host") || !slices.IsSorted(signedHeaders) {
		return http.StatusBadRequest, "AuthorizationQueryParametersError"
	}
	key, scope, _ := strings.Cut(q.Get("X-Amz-Credential"), "/")
	if key != s.AccessKeyID {
		return http.StatusForbidden, "InvalidAccessKeyId"
	}
	parts := strings.Split(scope, "/") // date/region/s3/aws4_request
	if len(parts) != 4 || parts[2] != "s3" || parts[3] != "aws4_request" {
		return http.StatusBadRequest, "AuthorizationQueryParametersError"
	}
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	expires, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || err2 != nil || expires < 1 || expires > 7*24*3600 {
		return http.StatusBadRequest, "AuthorizationQueryParametersError"
	}
	if now.After(signed.Add(time.Duration(expires) * time.Second)) {
		return http.StatusForbidden, "AccessDenied" // "Request has expired"
	}
	var keys []string
	for k := range q {
		if k != "X-Amz-Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var query []string
	for _, k := range keys {
		query = append(query, awsEscape(k)+"="+awsEscape(q.Get(k)))
	}
	var headers strings.Builder
	for _, h := range signedHeaders {
		v := r.Header.Get(h)
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		}
		headers.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	canonical := strings.Join([]string{r.Method, r.URL.EscapedPath(), strings.Join(query, "&"),
		headers.String(), q.Get("X-Amz-SignedHeaders"), "UNSIGNED-PAYLOAD"}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + q.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+s.SecretAccessKey), parts[0])
	for _, p := range parts[1:] {
		k = hmacSHA256(k, p)
	}
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(q.Get("X-Amz-Signature"))) {
		return http.StatusForbidden, "SignatureDoesNotMatch"
	}
	return 0, ""
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// awsEscape is signature V4's URI encoding: every byte but A-Z a-z 0-9
// - _ . ~ as %XX.
func awsEscape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// accessKeyID is the key id of a request signed with AWS signature V4
// ("Authorization: AWS4-HMAC-SHA256 Credential=KEY/date/...").
func accessKeyID(r *http.Request) string {
	_, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		rest = r.URL.Query().Get("X-Amz-Credential")
	}
	key, _, _ := strings.Cut(rest, "/")
	return key
}

// FailUploads makes every object upload from now on break off after n
// bytes of its body (the connection is closed without an answer);
// negative n lets uploads through again.
func (s *Server) FailUploads(n int64) {
	if s.backend == nil {
		panic("s3test: FailUploads is the fake's (Start), not a real server's")
	}
	s.failAfter.Store(n)
}

// Keys lists the bucket's object keys, sorted.
func (s *Server) Keys(t testing.TB) []string {
	t.Helper()
	if s.backend == nil {
		return s.dirKeys(t)
	}
	list, err := s.backend.ListBucket(s.Bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	return keys
}

// Remove deletes an object behind the blob store's back.
func (s *Server) Remove(t testing.TB, key string) {
	t.Helper()
	if s.backend == nil {
		if err := os.Remove(filepath.Join(s.dir, s.Bucket, filepath.FromSlash(key))); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := s.backend.DeleteObject(s.Bucket, key); err != nil {
		t.Fatal(err)
	}
}

// Put stores an object behind the blob store's back.
func (s *Server) Put(t testing.TB, key string, data []byte) {
	t.Helper()
	if s.backend == nil {
		p := filepath.Join(s.dir, s.Bucket, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := s.backend.PutObject(s.Bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// Get returns an object's contents.
func (s *Server) Get(t testing.TB, key string) []byte {
	t.Helper()
	if s.backend == nil {
		data, err := os.ReadFile(filepath.Join(s.dir, s.Bucket, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	obj, err := s.backend.GetObject(s.Bucket, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Contents.Close()
	data, err := io.ReadAll(obj.Contents)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func tlsConfig(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }
