package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
	"github.com/parleychat/parley/wire"
)

func start(t *testing.T) (url string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobstore.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		st.Close()
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

func TestConnectAndConnectionEnd(t *testing.T) {
	url, stop := start(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c, err := transport.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Session() != nil {
		t.Fatal("session before authentication")
	}
	if _, err := c.UploadBlob(context.Background(), nil, 0, nil); !errors.Is(err, transport.ErrNotAuthenticated) {
		t.Fatalf("blob upload before auth: %v", err)
	}
	if _, err := c.Register(context.Background(), "alice", key, ""); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c2, s, err := transport.Connect(context.Background(), url, key, nil)
	if err != nil || s.Username != "alice" || c2.Session() != s {
		t.Fatalf("Connect: %+v, %v", s, err)
	}
	if err := c2.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c2.Err() != nil {
		t.Fatalf("Err on open connection: %v", c2.Err())
	}
	stop()
	select {
	case <-c2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after server shutdown")
	}
	if !errors.Is(c2.Err(), transport.ErrClosed) {
		t.Fatalf("Err = %v", c2.Err())
	}
	if _, ok := <-c2.Events(); ok {
		t.Fatal("Events not closed")
	}
	if err := c2.Ping(context.Background()); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("request on closed connection: %v", err)
	}
	_, _, err = transport.Connect(context.Background(), url, key, nil)
	if err == nil {
		t.Fatal("Connect to stopped server succeeded")
	}
}

func TestDialErrors(t *testing.T) {
	for _, u := range []string{"ftp://x", "://", "localhost:1"} {
		if _, err := transport.Dial(context.Background(), u, nil); err == nil {
			t.Errorf("Dial(%q) succeeded", u)
		}
	}
}

func TestContextCancelsCall(t *testing.T) {
	url, _ := start(t)
	c, err := transport.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with cancelled context: %v", err)
	}
	// A request whose context ends while waiting leaves the connection
	// usable.
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	c.Ping(ctx)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("connection broken by a cancelled request: %v", err)
	}
}

func TestWrongKeyIsUnauthenticated(t *testing.T) {
	url, _ := start(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, _, err := transport.Connect(context.Background(), url, key, nil)
	if !errors.Is(err, wire.ErrUnauthenticated) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestNewMessageID(t *testing.T) {
	a, b := transport.NewMessageID(), transport.NewMessageID()
	if len(a) != wire.MessageIDSize || string(a) == string(b) || a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Fatalf("ids %x %x are not distinct UUIDv4s", a, b)
	}
}
