package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/selfsigned"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// testTLS returns a server config with a throwaway certificate for
// 127.0.0.1 and a client config that trusts it.
func testTLS(t *testing.T) (srv, cli *tls.Config) {
	t.Helper()
	c, err := selfsigned.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS13},
		&tls.Config{RootCAs: c.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
}

// holdConn sits under the client's TLS: while hold is set it collects
// what TLS writes (whole records) and sends it with one Write, so that
// several records reach the server in one TCP segment.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		return c.buf.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *holdConn) setHold() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

func (c *holdConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	_, err := c.Conn.Write(c.buf.Bytes())
	c.buf.Reset()
	return err
}

// Under TLS the idle reader waits on the TCP socket beneath; input that
// crypto/tls already took off the socket must not be stranded there. Two
// requests arrive as two TLS records in one TCP segment: crypto/tls reads
// both off the socket but decrypts only the first for the first read, so
// the second waits inside it while the first is handled. It is answered
// anyway.
func TestTLSRecordsInOneSegment(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.TLSConfig = srvTLS })
	addr := strings.TrimPrefix(ts.url, "http://")
	var hc *holdConn
	client := &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			hc = &holdConn{Conn: nc}
			tc := tls.Client(hc, cliTLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, err
			}
			return tc, nil
		},
	}}
	ws, _, err := websocket.Dial(bg, "wss://"+addr+wire.PathWebSocket, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	rc := &rawConn{ws: ws}
	rc.hello(t)
	ping := func() []byte {
		rc.id++
		b, _ := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}})
		return b
	}
	for round := 0; round < 3; round++ {
		hc.setHold()
		rc.writeRaw(t, websocket.MessageBinary, ping())
		rc.writeRaw(t, websocket.MessageBinary, ping())
		if err := hc.release(); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint64{rc.id - 1, rc.id} {
			f, err := readWithin(rc, 5*time.Second)
			if err != nil {
				t.Fatalf("round %d: no answer to ping %d: %v", round, id, err)
			}
			if f.RequestId != id || f.GetEmpty() == nil {
				t.Fatalf("round %d: ping %d answered with %v", round, id, f)
			}
		}
	}
}

func readWithin(rc *rawConn, d time.Duration) (*parleypb.ServerFrame, error) {
	ctx, cancel := context.WithTimeout(bg, d)
	defer cancel()
	_, b, err := rc.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.DecodeServerFrame(b)
}
