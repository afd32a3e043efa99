package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// wsClient is a minimal protocol client: it pipelines requests (many may
// be outstanding) and hands pushes to onPush. It is deliberately thinner
// than client/transport so the generator's own cost stays small.
type wsClient struct {
	ws        *websocket.Conn
	challenge []byte
	authCtx   string

	wmu     sync.Mutex
	wbuf    []byte      // the frame being written, under wmu
	cork    *corkedConn // the socket under ws (nil if the dialer made none)
	corking bool        // under wmu: a writer has corked the socket and will uncork it

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *parleypb.ServerFrame
	onPush  func(*parleypb.Push)
	dead    chan struct{}
	err     error
}

// dialers hands out HTTP clients bound to several loopback source
// addresses: one address has only ~28 000 ephemeral ports towards one
// server port.
type dialers struct {
	clients []*http.Client
	mu      sync.Mutex
	n       int
}

func newDialers(addrs int, tlsConfig *tls.Config) *dialers {
	d := &dialers{}
	for i := range addrs {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		nd := &net.Dialer{LocalAddr: local, Timeout: 30 * time.Second}
		dialContext := func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// A protocol client (dial) asks for its connection to be
			// corkable; the relay baseline's connections stay as they were.
			if slot, ok := ctx.Value(corkSlot{}).(**corkedConn); ok {
				cc := &corkedConn{Conn: conn}
				*slot = cc
				return cc, nil
			}
			return conn, nil
		}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{DialContext: dialContext, DisableKeepAlives: true, TLSClientConfig: tlsConfig}})
	}
	return d
}

func (d *dialers) pick() *http.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.clients[d.n%len(d.clients)]
}

func wsURL(base string) string {
	u := strings.TrimSuffix(base, "/")
	u = strings.Replace(u, "http://", "ws://", 1)
	u = strings.Replace(u, "https://", "wss://", 1)
	return u + wire.PathWebSocket
}

func dial(ctx context.Context, hc *http.Client, server string, onPush func(*parleypb.Push)) (*wsClient, error) {
	var cork *corkedConn
	ws, _, err := websocket.Dial(context.WithValue(ctx, corkSlot{}, &cork), wsURL(server), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	c := &wsClient{ws: ws, cork: cork, pending: make(map[uint64]chan *parleypb.ServerFrame), onPush: onPush, dead: make(chan struct{})}
	go c.read()
	r, err := c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: wire.ProtocolVersion}}})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	c.challenge, c.authCtx = r.GetHello().Challenge, r.GetHello().AuthContext
	return c, nil
}

func (c *wsClient) read() {
	defer close(c.dead)
	var buf bytes.Buffer
	var pushes pushDecoder
	for {
		_, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		c.handle(buf.Bytes(), &pushes)
		if buf.Cap() > maxKeptReadBuffer {
			buf = bytes.Buffer{} // a large Fetch answer: do not keep its buffer
		}
	}
}

// maxKeptReadBuffer bounds the read buffer a connection keeps between
// frames.
const maxKeptReadBuffer = 64 << 10

// handle dispatches one frame: a push to onPush (decoded in place, see
// pushDecoder), a response to the call waiting for it. data is reused
// after handle returns.
func (c *wsClient) handle(data []byte, pushes *pushDecoder) {
	if p, ok := pushes.decode(data); ok {
		if c.onPush != nil {
			c.onPush(p)
		}
		return
	}
	f, err := wire.DecodeServerFrame(data)
	if err != nil {
		return
	}
	if f.RequestId == 0 {
		if p := f.GetPush(); p != nil && c.onPush != nil {
			c.onPush(p)
		}
		return
	}
	c.mu.Lock()
	ch := c.pending[f.RequestId]
	delete(c.pending, f.RequestId)
	c.mu.Unlock()
	if ch != nil {
		ch <- f
	}
}

// replies recycles the channels calls wait on: a channel goes back once
// its one response was received, so it is empty and no longer pending.
var replies = sync.Pool{New: func() any { return make(chan *parleypb.ServerFrame, 1) }}

// start sends f and returns the channel its response arrives on (closed
// if the connection dies first).
func (c *wsClient) start(ctx context.Context, f *parleypb.ClientFrame) (chan *parleypb.ServerFrame, error) {
	ch := replies.Get().(chan *parleypb.ServerFrame)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.next++
	f.RequestId = c.next
	c.pending[f.RequestId] = ch
	c.mu.Unlock()
	// The frame is encoded into the connection's buffer, which the
	// WebSocket library copies before Write returns. Writes are
	// serialised by the library anyway, so holding wmu costs nothing
	// more. The write does not take ctx: with a cancellable context the
	// library registers a context.AfterFunc for every frame. On loopback
	// with a few frames in flight a write does not block; a server that
	// stops reading is bounded by its own timeouts, which close the
	// connection.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//
	// The first writer corks the socket and yields once before it
	// uncorks: requests started together (the lanes of a device woken by
	// responses that arrived in one read) then leave in one write(2), as
	// parleyd's writer does (server/cork.go). Each is still its own frame.
	c.wmu.Lock()
	leader := c.cork != nil && !c.corking
	if leader {
		c.corking = true
		c.cork.cork()
	}
	b, err := wireEncodeOpts.MarshalAppend(c.wbuf[:0], f)
	if err == nil {
		c.wbuf = b
		err = c.ws.Write(context.Background(), websocket.MessageBinary, b)
	}
	c.wmu.Unlock()
	if leader {
		runtime.Gosched()
		c.wmu.Lock()
		c.corking = false
		uerr := c.cork.uncork()
		c.wmu.Unlock()
		if uerr != nil {
			// Frames of other callers were in the batch: end the
			// connection, so that their calls fail too.
			c.close()
			if err == nil {
				err = uerr
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// corkSlot is the context key under which dial asks the dialer for a
// corkable connection.
type corkSlot struct{}

// corkedConn is the TCP connection under a protocol client's WebSocket:
// while corked, writes collect in a buffer that uncork writes at once.
type corkedConn struct {
	net.Conn
	mu     sync.Mutex // held across every write, so batches keep their order
	corked bool
	buf    []byte
}

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *corkedConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *corkedConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	var err error
	if len(c.buf) > 0 {
		_, err = c.Conn.Write(c.buf)
	}
	c.buf = c.buf[:0]
	if cap(c.buf) > maxKeptReadBuffer {
		c.buf = nil
	}
	return err
}

// wireEncodeOpts is how wire.Encode marshals frames.
var wireEncodeOpts = proto.MarshalOptions{Deterministic: true}

var errClosed = errors.New("connection closed")

func result(f *parleypb.ServerFrame, ok bool) (*parleypb.ServerFrame, error) {
	if !ok || f == nil {
		return nil, errClosed
	}
	if e := f.GetError(); e != nil {
		return nil, &wire.Error{Code: e.Code, Message: e.Message, RetryAfter: time.Duration(e.RetryAfterSeconds) * time.Second}
	}
	return f, nil
}

func (c *wsClient) call(ctx context.Context, f *parleypb.ClientFrame) (*parleypb.ServerFrame, error) {
	ch, err := c.start(ctx, f)
	if err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if ok {
			replies.Put(ch)
		}
		return result(r, ok)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *wsClient) sign(key ed25519.PrivateKey, purpose string) []byte {
	return ed25519.Sign(key, wire.ChallengeMessage(c.challenge, c.authCtx, purpose))
}

func (c *wsClient) register(ctx context.Context, name string, key ed25519.PrivateKey) (*parleypb.Session, error) {
	r, err := c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Register{Register: &parleypb.RegisterRequest{
		Username: name, PublicKey: key.Public().(ed25519.PublicKey), Signature: c.sign(key, wire.PurposeRegister)}}})
	if err != nil {
		return nil, err
	}
	return r.GetSession(), nil
}

func (c *wsClient) authenticate(ctx context.Context, key ed25519.PrivateKey) (*parleypb.Session, error) {
	r, err := c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Authenticate{Authenticate: &parleypb.AuthenticateRequest{
		PublicKey: key.Public().(ed25519.PublicKey), Signature: c.sign(key, wire.PurposeAuthenticate)}}})
	if err != nil {
		return nil, err
	}
	return r.GetSession(), nil
}

func (c *wsClient) close() { c.ws.CloseNow() }
