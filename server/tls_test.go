package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
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
// anyway, also when the records wake a parked connection.
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
	for round := 0; round < 6; round++ {
		if round >= 3 {
			// Then while the connection is parked on the idle poller
			// (the server tests park after 20 ms): the records wake it,
			// and the second must not be stranded in TLS then either.
			time.Sleep(100 * time.Millisecond)
		}
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

// The client's first frame can reach the server in the same TCP segment
// as its upgrade request, as a TLS record of its own: crypto/tls holds
// that record while net/http reads the request from the first, so the
// connection must check for it before its reader first waits on the
// socket (the upgrade handler does, conn.noteTLSInput). The Hello is
// answered anyway.
func TestTLSFrameWithUpgradeRequest(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.TLSConfig = srvTLS })
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hc := &holdConn{Conn: nc}
	tc := tls.Client(hc, cliTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	hello, _ := wire.Encode(&parleypb.ClientFrame{RequestId: 1, Body: &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: wire.ProtocolVersion}}})
	if len(hello) >= 126 {
		t.Fatalf("the hello needs a longer frame header: %d bytes", len(hello))
	}
	// A masked binary frame (RFC 6455 section 5.2).
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x82, 0x80 | byte(len(hello))}, mask[:]...)
	for i, b := range hello {
		frame = append(frame, b^mask[i%4])
	}
	hc.setHold()
	req := "GET " + wire.PathWebSocket + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := tc.Write([]byte(req)); err != nil { // one TLS record
		t.Fatal(err)
	}
	if _, err := tc.Write(frame); err != nil { // another
		t.Fatal(err)
	}
	if err := hc.release(); err != nil { // both in one segment
		t.Fatal(err)
	}
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("no answer to the hello sent with the upgrade request: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	f, err := wire.DecodeServerFrame(payload)
	if err != nil || f.RequestId != 1 || f.GetHello() == nil {
		t.Fatalf("the hello was answered with %v (%v)", f, err)
	}
}
