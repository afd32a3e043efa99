package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
)

// testKDF keeps profile creation cheap in tests.
var testKDF = profile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// testServer is a real parleyd on loopback with its data (database,
// blobs and log) under dataDir.
type testServer struct {
	url     string
	addr    string
	dataDir string
	store   *sqlitestore.Store
	srv     *server.Server
	stop    func()
	// configure, if set, adjusts the server's configuration.
	configure func(*server.Config)
	// kt is the directory's config, kept across restarts.
	kt *server.TransparencyConfig
}

func startServer(t testing.TB) *testServer { return startServerWith(t, nil) }

func startServerWith(t testing.TB, configure func(*server.Config)) *testServer {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "server")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &testServer{dataDir: dataDir, configure: configure}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(func() { s.stop() })
	return s
}

// start runs the server on addr with the data in s.dataDir.
func (s *testServer) start(t testing.TB, addr string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(s.dataDir, "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobstore.Open(filepath.Join(s.dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.OpenFile(filepath.Join(s.dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Store:  st,
		Blobs:  blobs,
		Logger: slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if s.kt == nil {
		// The same directory keys across restarts: clients pin them.
		if s.kt, err = server.EphemeralTransparency("parley.test/kt"); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Transparency = s.kt
	if s.configure != nil {
		s.configure(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for try := 0; ; try++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old listener may linger
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Logf("shutdown: %v", err)
			}
			st.Close()
			logFile.Close()
		})
	}
	s.addr = ln.Addr().String()
	s.url = "http://" + s.addr
	s.store = st
	s.srv = srv
}

// restart stops the server and starts it again on the same address and
// data.
func (s *testServer) restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t, s.addr)
}

func testOptions(t testing.TB, name string) Options {
	return Options{
		Dir:         filepath.Join(t.TempDir(), name),
		Passphrase:  []byte("passphrase of " + name),
		KDF:         &testKDF,
		LockTimeout: 20 * time.Second,
		// Tests check the own account at every sync.
		KTMonitorEvery: -1,
	}
}

// newUser registers a user with one device.
func (s *testServer) newUser(t testing.TB, name string) *Client {
	t.Helper()
	c, err := Init(context.Background(), testOptions(t, name), s.url, name, "")
	if err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	// Message requests are on by default (a stranger's first message
	// waits in Requests); the tests of everything else begin as a user
	// who turned them off, as "parley settings requests off" does. The
	// tests of requests use newUserDefault.
	if _, err := c.SetSetting(context.Background(), SettingMessageRequests, false); err != nil {
		t.Fatalf("%s: requests off: %v", name, err)
	}
	return c
}

// newUserDefault registers a user with one device and every setting at
// its default.
func (s *testServer) newUserDefault(t testing.TB, name string) *Client {
	t.Helper()
	c, err := Init(context.Background(), testOptions(t, name), s.url, name, "")
	if err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// linkDevice links a new device to existing's account and waits until
// existing has added it to its conversations.
func (s *testServer) linkDevice(t testing.TB, existing *Client, name string) *Client {
	t.Helper()
	ctx := context.Background()
	codes := make(chan string, 1)
	type result struct {
		c   *Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := LinkDevice(ctx, testOptions(t, name), s.url, existing.Self().User, func(code string, _ time.Time) { codes <- code })
		done <- result{c, err}
	}()
	var code string
	select {
	case code = <-codes:
	case r := <-done:
		t.Fatalf("link %s: %v", name, r.err)
	}
	if _, _, err := existing.ApproveDevice(ctx, code, 30*time.Second); err != nil {
		t.Fatalf("approve %s: %v", name, err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("link %s: %v", name, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

func mustSend(t testing.TB, c *Client, target, text string) Sent {
	t.Helper()
	s, err := c.SendText(context.Background(), target, text)
	if err != nil {
		t.Fatalf("%s: send to %s: %v", c.Self().User, target, err)
	}
	return s
}

func mustSync(t testing.TB, c *Client) []Message {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatalf("%s: sync: %v", c.Self().User, err)
	}
	for _, w := range c.Warnings() {
		t.Logf("%s/%s: warning: %+v", c.Self().User, c.Self().DeviceID, w)
	}
	return res.Messages
}

// texts returns "sender: text" for the text messages among msgs.
func texts(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		if m.Kind == KindText {
			out = append(out, fmt.Sprintf("%s: %s", m.Sender.User, m.Text))
		}
	}
	return out
}
