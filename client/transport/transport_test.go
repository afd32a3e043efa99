package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
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

// A server that takes a request and never answers it does not leave the
// caller waiting forever when its context has no deadline: the request
// fails with ErrNoAnswer (a context.DeadlineExceeded) after the default
// request timeout, and a caller's own deadline still wins.
func TestServerThatNeverAnswers(t *testing.T) {
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, b, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			f, err := wire.DecodeClientFrame(b)
			if err != nil || f.GetHello() == nil {
				continue // every other request goes unanswered
			}
			out, _ := wire.Encode(&parleypb.ServerFrame{RequestId: f.RequestId, Body: &parleypb.ServerFrame_Hello{
				Hello: &parleypb.HelloResponse{ProtocolVersion: wire.ProtocolVersion, MaxFrame: 1 << 20, Challenge: make([]byte, wire.ChallengeSize)}}})
			if ws.Write(r.Context(), websocket.MessageBinary, out) != nil {
				return
			}
		}
	}))
	defer silent.Close()
	defer transport.SetRequestTimeout(200 * time.Millisecond)()
	c, err := transport.Dial(context.Background(), silent.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	err = c.Ping(context.Background())
	if !errors.Is(err, transport.ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Ping request") {
		t.Fatalf("Ping to a server that never answers: %v; want ErrNoAnswer naming the Ping request", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before the request timeout", waited)
	}
	// The caller's own deadline is kept, longer or shorter.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, transport.ErrNoAnswer) {
		t.Fatalf("Ping with a deadline of its own: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("a caller's deadline of 1s ended after %v", waited)
	}
}
