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

	wmu  sync.Mutex
	wbuf []byte // the frame being written, under wmu

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
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, DisableKeepAlives: true, TLSClientConfig: tlsConfig}})
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
	ws, _, err := websocket.Dial(ctx, wsURL(server), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	c := &wsClient{ws: ws, pending: make(map[uint64]chan *parleypb.ServerFrame), onPush: onPush, dead: make(chan struct{})}
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
	c.wmu.Lock()
	b, err := wireEncodeOpts.MarshalAppend(c.wbuf[:0], f)
	if err == nil {
		c.wbuf = b
		err = c.ws.Write(context.Background(), websocket.MessageBinary, b)
	}
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	return ch, nil
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
