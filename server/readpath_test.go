package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/syncbuf"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
)

// opaqueListener hands out connections that hide their file descriptor
// (as a TLS connection does), so the server reads frames on its
// connection goroutine instead of waiting on the raw socket.
type opaqueListener struct{ net.Listener }

type opaqueConn struct{ net.Conn }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

// Requests, pipelined sends, pushes and fetches work the same on every
// read path of the server: parked on the idle poller, waiting on the raw
// socket on the connection's goroutine, and reading on that goroutine.
func TestReadPaths(t *testing.T) {
	for _, path := range []string{"poller", "goroutine", "opaque"} {
		t.Run(path, func(t *testing.T) {
			opaque := path == "opaque"
			if path != "poller" {
				connGoroutines = true
				defer func() { connGoroutines = false }()
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if opaque {
				ln = opaqueListener{ln}
			}
			ts := startServerOn(t, t.TempDir(), nil, ln)
			alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
			conv := group(t, "g", alice, bob)
			nextEvent(t, bob.conn, transport.EventInbox)

			// Concurrent sends on one connection are pipelined.
			const n = 50
			errs := make(chan error, n)
			for i := range n {
				go func() {
					_, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, fmt.Appendf(nil, "m%d", i))
					errs <- err
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for range n {
				nextEvent(t, bob.conn, transport.EventMessage)
			}
			if ms := fetchAll(t, bob, conv); len(ms) != n {
				t.Fatalf("bob fetched %d messages, want %d", len(ms), n)
			}
		})
	}
}

// Idle connections cost no goroutine of their own where the idle poller
// runs (poll.go): no server goroutine stays with a connection that has
// nothing to read, neither waiting on its socket nor inside the WebSocket
// library's read path. Without the poller, each connection's long-lived
// goroutine waits in awaitInput, a shallow call, not inside the library
// (whose depth would keep its stack at 4 KiB instead of 2).
func TestIdleConnectionsWaitShallow(t *testing.T) {
	t.Run("poller", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("the idle poller is Linux's (epoll)")
		}
		idleConnectionGoroutines(t, 0)
	})
	t.Run("goroutines", func(t *testing.T) {
		withConnGoroutines(t, func(t *testing.T) { idleConnectionGoroutines(t, 1) })
	})
}

// idleConnectionGoroutines checks that each of n idle connections keeps
// perConn goroutines, waiting in awaitInput, and none in the library.
func idleConnectionGoroutines(t *testing.T, perConn int) {
	ts := newServer(t)
	const n = 10
	var devs []*device
	for i := range n {
		devs = append(devs, register(t, ts, fmt.Sprintf("user%d", i)))
	}
	// Afterwards every connection is still served.
	defer func() {
		for _, d := range devs {
			if err := d.conn.Ping(context.Background()); err != nil {
				t.Errorf("%s: ping after idling: %v", d.user, err)
			}
		}
	}()
	var waiting, withConn, inLibrary int
	for try := 0; try < 500; try++ { // up to 5 s on a loaded machine
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		waiting, withConn, inLibrary = 0, 0, 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "parley/server.") {
				continue // the clients' goroutines
			}
			if strings.Contains(g, "server.(*conn).awaitInput") {
				waiting++
			}
			if strings.Contains(g, "server.(*conn)") || strings.Contains(g, "server.(*Server).runConn") {
				withConn++
			}
			if strings.Contains(g, "websocket.(*Conn).Reader") {
				inLibrary++
			}
		}
		if waiting == n*perConn && withConn == n*perConn && inLibrary == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // a response may still be on its way
	}
	t.Fatalf("%d idle connections: %d server goroutines with a connection (want %d), %d wait in awaitInput, %d in the library's reader",
		n, withConn, n*perConn, waiting, inLibrary)
}

// The tests of what reaches the read path at its edges (TLS records held
// above the socket, sockets that never speak or never read, hostile
// frames) again, with a goroutine per connection: the path of systems
// without the idle poller.
func TestEdgesWithConnGoroutines(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"TLSRecordsInOneSegment":      TestTLSRecordsInOneSegment,
		"TLSFrameWithUpgradeRequest":  TestTLSFrameWithUpgradeRequest,
		"HostileSilentSockets":        TestHostileSilentSockets,
		"HostileHugeAndEndlessFrames": TestHostileHugeAndEndlessFrames,
		"SlowReaderDisconnected":      TestSlowReaderDisconnected,
		"BadFrames":                   TestBadFrames,
	} {
		t.Run(name, func(t *testing.T) { withConnGoroutines(t, f) })
	}
}

// Connections that park and wake thousands of times, concurrently, with
// requests often already waiting when a connection parks (each client
// keeps several pings in flight), while others connect and leave: every
// request is answered, the poller never refuses a connection, and every
// connection that left is forgotten.
func TestPollerChurn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle poller is Linux's (epoll)")
	}
	logs := &syncbuf.Buffer{}
	ts := startServer(t, t.TempDir(), func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	const conns, rounds, inFlight = 20, 60, 4
	var wg sync.WaitGroup
	errs := make(chan error, conns*inFlight+conns)
	for i := range conns {
		d := register(t, ts, fmt.Sprintf("user%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				var round sync.WaitGroup
				for range inFlight {
					round.Add(1)
					go func() {
						defer round.Done()
						if err := d.conn.Ping(context.Background()); err != nil {
							errs <- fmt.Errorf("%s: ping: %w", d.user, err)
						}
					}()
				}
				round.Wait()
			}
		}()
		// A connection that authenticates and leaves at once.
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := transport.Dial(context.Background(), ts.url, nil)
			if err != nil {
				errs <- err
				return
			}
			if _, err := c.Authenticate(context.Background(), d.key); err != nil {
				errs <- fmt.Errorf("%s: second connection: %w", d.user, err)
			}
			c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if strings.Contains(logs.String(), "idle poller") {
		t.Errorf("the poller refused connections:\n%s", logs.String())
	}
	// The connections that left are gone from the server: only the 20
	// that stay are counted.
	deadline := time.Now().Add(5 * time.Second)
	for server.OpenConnections(ts.srv) != conns {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", server.OpenConnections(ts.srv), conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// If the poller refuses to take a connection that would park, the
// connection is not closed: it keeps its reader goroutine from then on,
// and the refusal is logged once.
func TestParkingRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle poller is Linux's (epoll)")
	}
	logs := &syncbuf.Buffer{}
	ts := startServer(t, t.TempDir(), func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	server.RefuseParking(ts.srv)
	const n = 3
	var devs []*device
	for i := range n {
		devs = append(devs, register(t, ts, fmt.Sprintf("user%d", i)))
	}
	for round := range 3 {
		time.Sleep(100 * time.Millisecond) // past parkAfter (20 ms in these tests)
		for _, d := range devs {
			if err := d.conn.Ping(context.Background()); err != nil {
				t.Fatalf("round %d: %s: %v", round, d.user, err)
			}
		}
	}
	waiting := 0
	for try := 0; try < 500 && waiting != n; try++ {
		time.Sleep(10 * time.Millisecond)
		buf := make([]byte, 1<<22)
		waiting = strings.Count(string(buf[:runtime.Stack(buf, true)]), "server.(*conn).awaitInput")
	}
	if waiting != n {
		t.Errorf("%d connections wait on their own goroutine, want %d", waiting, n)
	}
	if got := strings.Count(logs.String(), "idle poller refused"); got != 1 {
		t.Errorf("the refusal was logged %d times, want once:\n%s", got, logs.String())
	}
}
