package server_test

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
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

// Requests, pipelined sends, pushes and fetches work the same on both
// read paths of the server: waiting on the raw socket, and reading on the
// connection's goroutine.
func TestReadPaths(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		t.Run(fmt.Sprintf("opaque=%v", opaque), func(t *testing.T) {
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

// An idle connection's long-lived goroutine waits in awaitInput, not
// inside the WebSocket library's read path (whose depth would keep its
// stack at 4 KiB instead of 2), and no other goroutine of the server
// stays blocked reading for it.
func TestIdleConnectionsWaitShallow(t *testing.T) {
	ts := newServer(t)
	const n = 10
	for i := range n {
		register(t, ts, fmt.Sprintf("user%d", i))
	}
	var waiting, inLibrary int
	for try := 0; try < 100; try++ {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		waiting, inLibrary = 0, 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "parley/server.") {
				continue // the clients' goroutines
			}
			if strings.Contains(g, "server.(*conn).awaitInput") {
				waiting++
			}
			if strings.Contains(g, "websocket.(*Conn).Reader") {
				inLibrary++
			}
		}
		if waiting == n && inLibrary == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // a response may still be on its way
	}
	t.Fatalf("%d idle connections: %d wait in awaitInput, %d server goroutines in the library's reader", n, waiting, inLibrary)
}
