package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/selfsigned"
	"github.com/parleychat/parley/store/sqlitestore"
)

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr string
		tls  bool
		ok   bool
	}{
		{"127.0.0.1:7867", false, true},
		{"[::1]:7867", false, true},
		{"localhost:7867", false, true},
		{"127.0.0.2:1", false, true},
		{"0.0.0.0:7867", false, false},
		{":7867", false, false},
		{"192.168.1.5:443", false, false},
		{"example.com:443", false, false},
		{":443", true, true},
		{"nonsense", false, false},
	} {
		if err := checkListen(tc.addr, tc.tls); (err == nil) != tc.ok {
			t.Errorf("checkListen(%q, tls=%v) = %v, want ok=%v", tc.addr, tc.tls, err, tc.ok)
		}
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "parleyd serve") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("serve --help exited %d", code)
	}
	for _, flag := range []string{"-data", "-listen", "-tls-cert", "-tls-key", "-registration", "-retention", "-max-attachment", "-max-frame", "-log-format", "PARLEY_",
		"-body-timeout", "-min-body-rate", "-max-uploads-per-account", "-max-post-uploads-per-account", "-blob-quota", "-upload-rate", "default 600/1h0m0s",
		"-ffmpeg", "-ffprobe", "-max-video-bytes", "-video-min-frames", "-session-check"} {
		if !strings.Contains(errb.String(), flag) {
			t.Errorf("serve --help does not explain %s", flag)
		}
	}
	if code := run(context.Background(), []string{"bogus"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command exited %d", code)
	}
}

func TestServeRefusesPlainHTTPOnPublicAddress(t *testing.T) {
	var errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--listen", "0.0.0.0:0"}, io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "--tls-cert") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestEnvFlags(t *testing.T) {
	t.Setenv("PARLEY_LISTEN", "0.0.0.0:0")
	t.Setenv("PARLEY_LOG_FORMAT", "xml")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data", t.TempDir()}, io.Discard, &errb)
	if code != 2 || !strings.Contains(errb.String(), "xml") {
		t.Fatalf("PARLEY_LOG_FORMAT ignored: exit %d, %q", code, errb.String())
	}
}

// A session check interval too short to be meant (or negative) is
// refused before anything starts, saying what to give.
func TestSessionCheckFlag(t *testing.T) {
	for _, bad := range []string{"10ms", "0s", "-1m"} {
		var errb bytes.Buffer
		code := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--session-check", bad}, io.Discard, &errb)
		if code != 2 || !strings.Contains(errb.String(), "--session-check must be at least 1s") {
			t.Errorf("--session-check %s: exit %d, %q", bad, code, errb.String())
		}
	}
}

func TestUploadRateFlag(t *testing.T) {
	var l limitFlag
	if err := l.Set("30/10m"); err != nil || l.N != 30 || l.Per != 10*time.Minute {
		t.Fatalf("Set(30/10m) = %v, %+v", err, l)
	}
	for _, bad := range []string{"30", "0/1h", "-1/1h", "x/1h", "30/", "30/0s", "30/soon"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	// Like every flag, it can come from the environment.
	t.Setenv("PARLEY_UPLOAD_RATE", "lots")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data", t.TempDir()}, io.Discard, &errb)
	if code != 2 || !strings.Contains(errb.String(), "PARLEY_UPLOAD_RATE") {
		t.Fatalf("bad PARLEY_UPLOAD_RATE: exit %d, %q", code, errb.String())
	}
}

// TestServeAndInvite runs the real command: serve with --registration
// invite (which creates the data directory), admin invite on the data
// directory while it runs, then a client registers with the code;
// cancelling stops the server cleanly.
func TestServeAndInvite(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "invite", retention: time.Hour,
			maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second}
		done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	fi, err := os.Stat(data)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode: %v, %v", fi, err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"admin", "invite", "--data", data}, &out, &errb); code != 0 {
		t.Fatalf("admin invite: %d %s", code, errb.String())
	}
	invite := strings.TrimSpace(out.String())
	if len(invite) < 16 {
		t.Fatalf("invite %q", invite)
	}
	c, err := transport.Dial(context.Background(), "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.Register(context.Background(), "alice", newKey(t), invite)
	if err != nil {
		t.Fatalf("register with invite: %v", err)
	}
	// Public channels are mounted and authenticate with the session token.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {sess.BlobToken, http.StatusOK}} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/channels", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /v1/channels with token %t: %d, want %d", tc.token != "", resp.StatusCode, tc.want)
		}
	}
	// Channel admins are looked up in the delivery store: a registered
	// account can be named, one that does not exist cannot.
	api := channelClient{t: t, url: "http://" + addr, token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	for user, want := range map[string]int{"alice": http.StatusNoContent, "ghost": http.StatusNotFound, "Alice": http.StatusBadRequest} {
		if code, b := api.do("PUT", "/v1/channels/news/admins/"+user, "", nil); code != want {
			t.Errorf("PUT admins/%s: HTTP %d, want %d: %s", user, code, want, b)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop")
	}
	<-c.Done()
	// The account is on disk.
	st, err := sqlitestore.Open(context.Background(), filepath.Join(data, "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if devs, err := st.Devices(context.Background(), "alice"); err != nil || len(devs) != 1 {
		t.Fatalf("after restart: %v, %v", devs, err)
	}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestServeTLS serves TLS on a non-loopback-capable configuration and
// connects with the client library trusting the test certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)

	// A key without a certificate is refused.
	f := serveFlags{data: filepath.Join(dir, "data"), listen: "0.0.0.0:0", tlsKey: keyFile, registration: "open",
		retention: time.Hour, maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second}
	if err := serveWith(context.Background(), f, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err == nil {
		t.Fatal("--tls-key without --tls-cert accepted")
	}

	f.tlsCert = certFile
	f.listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := transport.Dial(context.Background(), "https://"+addr, &transport.Options{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial over TLS: %v", err)
	}
	if _, err := c.Register(context.Background(), "alice", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	id, err := c.UploadBlob(context.Background(), strings.NewReader("x"), 1, nil)
	if err != nil || id == "" {
		t.Fatalf("blob over TLS: %v", err)
	}
	if _, err := transport.Dial(context.Background(), "http://"+addr, nil); err == nil {
		t.Fatal("plain HTTP accepted on the TLS listener")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	c, err := selfsigned.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c.CertPEM, c.KeyPEM, c.Pool
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "parleyd devel") {
		t.Fatalf("version: exit %d, %q", code, out.String())
	}
}
