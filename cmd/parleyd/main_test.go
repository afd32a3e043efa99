package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
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
	for _, flag := range []string{"-data", "-listen", "-tls-cert", "-tls-key", "-registration", "-retention", "-max-attachment", "-max-frame", "-log-format", "PARLEY_"} {
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

// TestServeAndInvite runs the real command: admin invite on the data
// directory, then serve with --registration invite, then a client
// registers with the code; cancelling stops the server cleanly.
func TestServeAndInvite(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"admin", "invite", "--data", data}, &out, &errb); code != 0 {
		t.Fatalf("admin invite: %d %s", code, errb.String())
	}
	invite := strings.TrimSpace(out.String())
	if len(invite) < 16 {
		t.Fatalf("invite %q", invite)
	}
	fi, err := os.Stat(data)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode: %v, %v", fi, err)
	}

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
	c, err := transport.Dial(context.Background(), "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), "alice", newKey(t), invite); err != nil {
		t.Fatalf("register with invite: %v", err)
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
