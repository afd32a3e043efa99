package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// testServer is a real parleyd on 127.0.0.1:0 with its data in a
// temporary directory.
type testServer struct {
	t     testing.TB
	dir   string
	url   string
	srv   *server.Server
	st    *sqlitestore.Store
	serve chan error
	down  bool
}

func startServer(t testing.TB, dir string, mod func(*server.Config)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, dir, mod, ln)
}

// startServerOn is startServer serving on ln.
func startServerOn(t testing.TB, dir string, mod func(*server.Config), ln net.Listener) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobstore.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	cfg := server.Config{
		Store:  st,
		Blobs:  blobs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if connGoroutines {
		server.KeepConnGoroutines(srv)
	}
	ts := &testServer{t: t, dir: dir, url: "http://" + ln.Addr().String(), srv: srv, st: st, serve: make(chan error, 1)}
	serve := ts.serve
	go func() { serve <- srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// connGoroutines makes the servers tests start keep a goroutine per
// connection instead of parking idle ones with the idle poller (see
// withConnGoroutines).
var connGoroutines bool

// withConnGoroutines runs f with servers that keep a goroutine per
// connection, the read path of systems without the idle poller.
func withConnGoroutines(t *testing.T, f func(t *testing.T)) {
	connGoroutines = true
	defer func() { connGoroutines = false }()
	f(t)
}

func newServer(t testing.TB) *testServer { return startServer(t, t.TempDir(), nil) }

// stop shuts the server down gracefully and closes the store.
func (ts *testServer) stop() {
	if ts.down {
		return
	}
	ts.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		ts.t.Errorf("Shutdown: %v", err)
	}
	if err := <-ts.serve; !errors.Is(err, http.ErrServerClosed) {
		ts.t.Errorf("Serve: %v", err)
	}
	if err := ts.st.Close(); err != nil {
		ts.t.Errorf("store Close: %v", err)
	}
}

func dial(t testing.TB, ts *testServer) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newKey() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

type device struct {
	conn *transport.Conn
	key  ed25519.PrivateKey
	id   string
	user string
}

func register(t testing.TB, ts *testServer, user string) *device {
	t.Helper()
	c := dial(t, ts)
	k := newKey()
	s, err := c.Register(context.Background(), user, k, "")
	if err != nil {
		t.Fatalf("Register(%s): %v", user, err)
	}
	return &device{conn: c, key: k, id: s.DeviceID, user: user}
}

// reconnect opens a new authenticated connection for d.
func (d *device) reconnect(t *testing.T, ts *testServer) {
	t.Helper()
	c := dial(t, ts)
	if _, err := c.Authenticate(context.Background(), d.key); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	d.conn = c
}

var bg = context.Background()

func wantCode(t *testing.T, what string, err error, code parleypb.ErrorCode) {
	t.Helper()
	if !errors.Is(err, &wire.Error{Code: code}) {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
}

// nextEvent waits for an event of the given type, skipping others.
func nextEvent(t *testing.T, c *transport.Conn, typ transport.EventType) transport.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed waiting for event %d: %v", typ, c.Err())
			}
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event of type %d", typ)
		}
	}
}

// fetchAll fetches everything pending for d in conv (without acking).
func fetchAll(t *testing.T, d *device, conv []byte) []transport.Message {
	t.Helper()
	ms, more, err := d.conn.Fetch(bg, conv, 0)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if more {
		t.Fatalf("more than one page pending")
	}
	return ms
}

func payloads(ms []transport.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

// group creates a conversation by a.conn and adds the others' devices in
// one commit (epoch 0 -> 1), delivering the Welcome.
func group(t testing.TB, id string, a *device, others ...*device) []byte {
	t.Helper()
	conv := []byte(id)
	if err := a.conn.CreateConversation(bg, conv); err != nil {
		t.Fatal(err)
	}
	if len(others) == 0 {
		return conv
	}
	var added []string
	for _, o := range others {
		added = append(added, o.id)
	}
	commit := transport.NewMessageID()
	r, err := a.conn.SendCommit(bg, transport.Commit{ID: commit, ConversationID: conv, Epoch: 0,
		Payload: []byte("commit-add"), Added: added, Welcome: []byte("welcome-" + id)})
	if err != nil {
		t.Fatalf("add commit: %v", err)
	}
	if r.Epoch != 1 {
		t.Fatalf("epoch after add = %d", r.Epoch)
	}
	// Each joiner accepts its Welcome, as clients do (docs/protocol.md
	// §14, "Verdicts"): no one else had a say on the additions.
	for _, o := range others {
		if o.user != a.user {
			if err := o.conn.Ack(bg, conv, 0, transport.Verdict{CommitID: commit}); err != nil {
				t.Fatalf("verdict of %s: %v", o.user, err)
			}
		}
	}
	return conv
}

func signAuth(d *device, h *parleypb.HelloResponse) *parleypb.AuthenticateRequest {
	return &parleypb.AuthenticateRequest{
		PublicKey: d.key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(d.key, wire.ChallengeMessage(h.Challenge, h.AuthContext, wire.PurposeAuthenticate)),
	}
}

// forwardedFor sets X-Forwarded-For on every request, as a reverse proxy
// in front of the server would.
type forwardedFor string

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(f))
	return http.DefaultTransport.RoundTrip(r)
}

// dialFrom connects as a client at addr behind a trusted proxy on
// 127.0.0.1 (the server must trust it: Config.TrustedProxies), so that
// tests can act from many source addresses on loopback.
func dialFrom(t testing.TB, ts *testServer, addr string) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(bg, ts.url, &transport.Options{HTTPClient: &http.Client{Transport: forwardedFor(addr)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pendingEvent returns an event of type typ already received, if any,
// without waiting (other events are dropped).
func pendingEvent(c *transport.Conn, typ transport.EventType) (transport.Event, bool) {
	time.Sleep(200 * time.Millisecond) // let an in-flight push arrive
	for {
		select {
		case ev := <-c.Events():
			if ev.Type == typ {
				return ev, true
			}
		default:
			return transport.Event{}, false
		}
	}
}
