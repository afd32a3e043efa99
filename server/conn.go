package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// conn is one client WebSocket. Requests are handled one at a time in the
// order received (so responses come back in order). Responses and pushes
// go through a bounded queue drained by a writer (flush, on a pooled
// worker) that runs only while there is something to write, so an idle
// connection costs no queue memory; and an active one goroutine (the
// reader, with a minimal stack), an idle one on Linux none (poll.go).
type conn struct {
	s *Server
	// barred, if set, is the moderation decision that bars this account:
	// only appeals and account deletion are served.
	barred string
	ws     *websocket.Conn
	cork   *corkConn       // the socket under ws; flush corks it
	br     *bufio.Reader   // ws's read buffer
	raw    syscall.RawConn // the TCP socket the reader waits on (nil: it reads frames itself)
	sock   net.Conn        // that socket, for the reader's deadline (awaitInput)
	tls    *tls.Conn       // under TLS, the TLS connection over raw
	remote string          // source address (host only), for rate limits

	qmu        sync.Mutex
	queue      [][]byte // frames waiting for the writer
	queueBytes int
	writing    bool // a writer goroutine owns the socket
	stopping   bool // stop was called: flush, then close with code
	finished   bool // the socket is closing or closed; drop further frames, and the reader leaves br to the close handshake
	code       websocket.StatusCode
	reason     string
	closed     sync.WaitGroup // done once the socket is closed (no channel: 96 bytes per connection)

	// handling is held while a request is processed, so shutdown can wait
	// for the in-flight request before closing.
	handling sync.Mutex
	shutting bool

	authed atomic.Bool // set once Register/Authenticate succeeded

	// Owned by the reader goroutine (and the worker serving the frame it
	// waits for), or by whoever holds handling.
	lastSend chan struct{} // closed when the last pipelined send is answered
	pipeline chan struct{} // semaphore of pending pipelined sends
	hello    bool
	polled   bool // awaitInput is waiting for the poller (readable)
	// onAuth runs once the connection has authenticated (noteAuth), or
	// when it ends if it never did (readEnd).
	onAuth func()
	// With the idle poller (poll.go): parked is set (under qmu) while the
	// connection idles on the poller with no goroutine.
	poller *idlePoller
	pollID uint64
	parked bool
	// tlsInput: under TLS, the TLS connection held input already taken
	// off the socket when it was last read (noteTLSInput). Set by
	// whoever read last (the upgrade handler, then the worker that read
	// a frame), so that the long-lived reader never calls into
	// crypto/tls, whose read path would grow its stack to 4 KiB.
	tlsInput  bool
	challenge []byte
	dev       *store.Device
	// signedIn is dev as other goroutines read it (sessions.go): set
	// before the hub hands the connection out, never changed after.
	signedIn *store.Device
	// unwatch ends this connection's interest in its device's notices
	// on a DeviceBus (cluster.go).
	unwatch  func()
	failures int
	// refused counts RATE_LIMITED and BAD_REQUEST answers since the last
	// success: a client that keeps asking instead of waiting (or keeps
	// sending what is refused) is disconnected.
	refused  atomic.Int32
	linkKeys []string // pending links requested on this connection
	// closeReason, set by a handler, closes the connection (normal
	// closure) once the handler's response is queued: the response must
	// not race the close.
	closeReason string
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	remote := s.clientAddr(r)
	// Unauthenticated connections are capped (globally and per source
	// address) so that opening sockets and never authenticating cannot
	// exhaust the server.
	if !s.unauth.acquire(remote, s.cfg.MaxUnauthenticated, s.cfg.MaxUnauthenticatedPerAddr) {
		s.metrics.refusedConns.Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many unauthenticated connections", http.StatusServiceUnavailable)
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			s.unauth.release(remote)
		}
	}
	sb := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sb, r, &websocket.AcceptOptions{})
	if err != nil {
		release()
		// Accept already wrote an HTTP error.
		return
	}
	c := &conn{
		s:      s,
		ws:     ws,
		cork:   sb.cork,
		br:     sb.br,
		raw:    sb.raw,
		sock:   sb.sock,
		tls:    sb.tls,
		remote: remote,
	}
	c.closed.Add(1)
	// net/http read the upgrade request through TLS: the start of a
	// frame may be held there already. Checked here, on the handler's
	// goroutine, which is about to end.
	c.noteTLSInput()
	c.challenge = make([]byte, wire.ChallengeSize)
	rand.Read(c.challenge)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	// The connection runs on its own goroutine and this handler returns:
	// net/http then drops everything it kept for the request (its
	// buffers, the response writer, the request) and the serving
	// goroutine's stack, which would otherwise stay for the connection's
	// lifetime — most of an idle connection's memory.
	go s.runConn(c, release)
}

// startConn starts what every connection has: the metrics, the
// authentication deadline and the read limit. It returns what runs
// once the connection has authenticated (or ends before it has).
func (s *Server) startConn(c *conn, release func()) (onAuth func()) {
	s.metrics.connections.Inc()
	// A connection must authenticate within AuthTimeout.
	authTimer := time.AfterFunc(s.cfg.AuthTimeout, func() {
		if !c.authed.Load() {
			s.metrics.authTimeouts.Inc()
			c.stop(websocket.StatusPolicyViolation, "authentication timeout")
		}
	})
	// Frames a little over --max-frame are read and answered with
	// FRAME_TOO_LARGE; far larger ones close the connection (1009).
	c.ws.SetReadLimit(4 * s.cfg.MaxFrame)
	// Nothing keeps the timer once it has been stopped.
	return func() {
		authTimer.Stop()
		release()
	}
}

// runConn serves an upgraded connection: on this goroutine while it is
// active, parked on the idle poller while it idles (poll.go).
func (s *Server) runConn(c *conn, release func()) {
	if p := s.idlePoller(); p != nil && c.raw != nil {
		s.registerPolled(c, p)
	}
	// The read side runs onAuth once authenticated, or when it ends if
	// never.
	c.onAuth = s.startConn(c, release)
	c.reader()
}

// endConn closes the connection once nothing reads it any more, waits
// until the socket is closed and forgets the connection.
func (s *Server) endConn(c *conn) {
	c.stop(websocket.StatusNormalClosure, "")
	c.closed.Wait()
	if c.dev != nil {
		s.hub.remove(c.dev.ID, c)
		s.releaseAccountConn(c.dev.Username)
	}
	if c.unwatch != nil {
		c.unwatch()
	}
	if c.poller != nil {
		c.poller.remove(c)
	}
	s.metrics.connections.Dec()
	s.mu.Lock()
	for _, k := range c.linkKeys {
		if s.links[k] == c {
			delete(s.links, k)
		}
	}
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
}

// message is a client frame read whole (readFrame).
type message struct {
	typ      websocket.MessageType
	data     []byte
	tooLarge bool
	buf      *[]byte // data's pooled buffer (frameBufs), given back once the frame is handled
}

// frameBufs holds the buffers client frames are read into. A frame is
// decoded (protobuf copies what it keeps) and answered before its
// buffer goes back, so a connection holds one only while it handles a
// frame.
var frameBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// maxPooledFrame bounds the buffers kept in frameBufs: a rare large frame
// (key packages, a big Welcome) does not pin its buffer.
const maxPooledFrame = 64 << 10

// release gives m's buffer back; m.data must not be used afterwards.
func (m *message) release() {
	if m.buf != nil {
		if cap(*m.buf) <= maxPooledFrame {
			*m.buf = (*m.buf)[:0]
			frameBufs.Put(m.buf)
		}
		m.buf, m.data = nil, nil
	}
}

// reader handles requests until the connection ends, or until it idles
// with the idle poller running: it then parks the connection and
// returns, and the poller starts a reader again when input arrives.
// c.onAuth runs (on this goroutine) when the connection has
// authenticated, or when the connection ends if it never did.
//
// This goroutine lives as long as the connection is active, so its
// stack is most of such a connection's memory; it is kept at the 2 KiB
// minimum. The WebSocket library's read path, blocked in a socket read,
// needs about 2 KiB by itself, which would make the runtime grow the
// stack to 4 KiB and keep it there. So on a plain TCP socket this
// goroutine only waits until the client has sent something (awaitInput,
// a shallow call), and a short-lived goroutine reads the frame and
// handles it; under TLS it waits on the TCP socket beneath, unless TLS
// holds input already read (tlsInput, checked by the goroutine that
// read). Where there is no raw socket it reads the frame itself and
// hands only the handling over, whose stack grows deep (signature
// checks, SQLite). See workers.go.
func (c *conn) reader() {
	for {
		var m message
		if c.raw == nil {
			var err error
			if m, err = c.readMessage(); err != nil {
				c.readEnd()
				return
			}
		} else {
			switch c.awaitInput() {
			case inputClosed:
				c.readEnd()
				return
			case inputIdle:
				c.park()
				return
			}
		}
		more := make(chan bool, 1)
		runAsync(task{c: c, m: m, read: c.raw != nil, more: more})
		if !<-more {
			c.readEnd()
			return
		}
		c.noteAuth()
	}
}

// noteAuth runs onAuth once the connection has authenticated; the read
// side calls it after each frame.
func (c *conn) noteAuth() {
	if c.onAuth != nil && c.dev != nil {
		c.authed.Store(true)
		c.onAuth()
		c.onAuth = nil
	}
}

// readEnd ends the connection once its read side is done: what is left
// of onAuth, then the close and the server's records (endConn).
func (c *conn) readEnd() {
	if c.onAuth != nil {
		c.onAuth()
		c.onAuth = nil
	}
	c.s.endConn(c)
}

// What awaitInput found.
const (
	inputReady  = iota // the socket or the read buffer has input
	inputClosed        // the connection is closing or failed
	inputIdle          // nothing arrived for parkAfter: park (polled connections only)
)

// awaitInput waits until the socket is readable or the read buffer holds
// bytes. Once the writer has started the close handshake (finished), the
// WebSocket library reads the buffer on the writer's goroutine, so the
// reader stops touching it. A connection registered with the idle
// poller waits at most parkAfter.
func (c *conn) awaitInput() int {
	c.qmu.Lock()
	if c.finished {
		c.qmu.Unlock()
		return inputClosed
	}
	buffered := c.br.Buffered() > 0 || c.tlsInput
	idleAfter := c.poller != nil && !buffered
	if idleAfter {
		// Set and cleared under qmu, and only while finished is unset:
		// the close handshake's own deadlines are the library's.
		c.sock.SetReadDeadline(time.Now().Add(parkAfter))
	}
	c.qmu.Unlock()
	if buffered {
		return inputReady
	}
	c.polled = false
	err := c.raw.Read(c.readable)
	if idleAfter {
		c.qmu.Lock()
		if !c.finished {
			c.sock.SetReadDeadline(time.Time{})
		}
		c.qmu.Unlock()
	}
	switch {
	case err == nil:
		return inputReady
	case idleAfter && errors.Is(err, os.ErrDeadlineExceeded):
		return inputIdle
	}
	return inputClosed
}

// noteTLSInput sets tlsInput after a read of the connection, by the
// goroutine that read (so it happens before the reader next waits).
func (c *conn) noteTLSInput() {
	if c.tls == nil {
		return
	}
	c.qmu.Lock()
	c.tlsInput = !c.finished && c.tlsBuffered()
	c.qmu.Unlock()
}

// tlsBuffered reports whether the TLS connection holds input it already
// took from the socket (decrypted bytes, or whole records) that waiting
// on the socket would miss. It moves any into the read buffer with a read
// that cannot block: under a deadline in the past, a read that needs the
// network fails at once with a timeout, which crypto/tls does not treat
// as fatal (it keeps a partial record for the next read). Called with
// qmu held and finished unset, so the writer's close handshake is not
// reading the buffer at the same time.
func (c *conn) tlsBuffered() bool {
	c.tls.SetReadDeadline(time.Unix(1, 0))
	_, err := c.br.Peek(1)
	c.tls.SetReadDeadline(time.Time{})
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true // input, the end of the stream or an error: the read finds out
}

// readable is the RawConn.Read callback of awaitInput. Its first call
// peeks (without blocking) for a byte: if there is none it returns false,
// and RawConn.Read waits for the socket to become readable and calls it
// again, which returns true. It never consumes anything. (The peek cannot
// be skipped: RawConn.Read forgets a readiness the poller reported before
// it was called.)
func (c *conn) readable(fd uintptr) bool {
	if c.polled {
		c.polled = false
		return true
	}
	if !peekByte(fd) {
		c.polled = true
		return false
	}
	return true // a byte, the end of the stream or an error: the read finds out
}

// readMessage reads the next client message.
func (c *conn) readMessage() (message, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return message{}, err
	}
	buf := frameBufs.Get().(*[]byte)
	data, tooLarge, err := readFrame(*buf, r, c.s.cfg.MaxFrame)
	if err != nil {
		frameBufs.Put(buf)
		return message{}, err
	}
	*buf = data
	return message{typ: typ, data: data, tooLarge: tooLarge, buf: buf}, nil
}

// serveFrame reads a message (if read is set; else m was read) and
// handles it. It reports on more whether the reader goes on, then waits
// for a pipelined send's commit and answers it.
func (c *conn) serveFrame(m message, read bool, more chan<- bool) {
	if read {
		var err error
		if m, err = c.readMessage(); err != nil {
			c.readDone(more, false)
			return
		}
	}
	defer m.release()
	c.pace(len(m.data))
	// Frames refused unread are answered to their request if its id
	// can be read from the first field, else at connection level.
	peekID := wire.PeekRequestID(m.data)
	c.handling.Lock()
	if c.shutting {
		c.handling.Unlock()
		c.readDone(more, false)
		return
	}
	var finish func()
	switch {
	case m.tooLarge:
		c.s.metrics.requests.WithLabelValues("oversized", parleypb.ErrorCode_FRAME_TOO_LARGE.String()).Inc()
		c.sendError(peekID, &wire.Error{Code: parleypb.ErrorCode_FRAME_TOO_LARGE, Message: "frame exceeds the server's limit"})
	case m.typ != websocket.MessageBinary:
		c.sendError(peekID, &wire.Error{Code: parleypb.ErrorCode_BAD_FRAME, Message: "frames must be binary protobuf"})
	default:
		// A pipelined send lets the reader go on once it is queued for
		// the group commit; this goroutine then waits for the commit.
		finish = c.handleFrame(m.data)
	}
	c.handling.Unlock()
	if read {
		c.noteTLSInput()
	}
	c.readDone(more, true)
	if finish != nil {
		finish()
	}
}

// readFrame reads one message of at most max bytes into buf's capacity
// (data starts at buf[:0], and grows from there as io.ReadAll would); a
// longer one is drained and reported as too large (data then holds its
// first bytes).
func readFrame(buf []byte, r io.Reader, max int64) (data []byte, tooLarge bool, err error) {
	data = buf[:0]
	for int64(len(data)) <= max {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // grow, as io.ReadAll does
		}
		room := min(int64(cap(data)), max+1)
		n, rerr := r.Read(data[len(data):room])
		data = data[:len(data)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, false, rerr
		}
	}
	if int64(len(data)) > max {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, false, err
		}
		return data[:min(len(data), 16)], true, nil
	}
	return data, false, nil
}

// flush is the writer: it drains the queue and exits when it is empty;
// after stop it also closes the socket.
//
// It writes the queued frames in batches of up to corkLimit bytes (or one
// larger frame) with the connection corked, so a batch costs one write
// system call rather than one per frame, and each batch must be written
// within WriteTimeout (up to 1.5 × WriteTimeout: batches share a socket
// deadline, see corkConn.cork). Frames stay in the queue, counted against
// its bounds, until their batch is written.
func (c *conn) flush() {
	// Let the goroutines woken with this one queue their frames first:
	// a group commit answers many sends at once, and a connection's
	// response and the push from its peer's send usually arrive within
	// microseconds of each other. One write(2) then carries both
	// (BenchmarkWriterWokenTogether).
	if writerYields {
		runtime.Gosched()
	}
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			if !c.stopping {
				c.writing = false
				c.qmu.Unlock()
				return
			}
			// Stopping and flushed: close. writing stays true so no
			// other writer starts.
			c.finished = true
			code, reason := c.code, c.reason
			c.qmu.Unlock()
			c.ws.Close(code, reason)
			c.closed.Done()
			c.closeParked()
			return
		}
		n, size := 1, len(c.queue[0])
		for n < len(c.queue) && size+len(c.queue[n]) <= corkLimit {
			size += len(c.queue[n])
			n++
		}
		// Enqueuers only append, so these n stay at the queue's head.
		batch := c.queue[:n:n]
		c.qmu.Unlock()

		c.cork.cork(c.s.cfg.WriteTimeout)
		var err error
		for _, b := range batch {
			// The socket's deadline bounds the write, not a context:
			// no timer per frame.
			if err = c.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
				break
			}
		}
		if uerr := c.cork.uncork(); err == nil {
			err = uerr
		}
		if err != nil {
			c.qmu.Lock()
			c.finished, c.stopping = true, true
			c.queue, c.queueBytes = nil, 0
			c.qmu.Unlock()
			c.ws.CloseNow()
			c.closed.Done()
			c.closeParked()
			return
		}

		c.qmu.Lock()
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.queueBytes -= size
		if len(c.queue) == 0 {
			c.queue = nil // an idle connection keeps no queue memory
		}
		c.qmu.Unlock()
	}
}

// writerYields is whether flush yields before its first write; only
// BenchmarkWriterWokenTogether turns it off, to compare.
var writerYields = true

// startWriterLocked starts the writer if none runs. c.qmu must be held.
func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		runAsync(task{c: c, flush: true})
	}
}

// stop makes the writer flush what is queued and close the connection
// with code.
func (c *conn) stop(code websocket.StatusCode, reason string) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.stopping {
		return
	}
	c.stopping = true
	c.code, c.reason = code, reason
	c.startWriterLocked()
}

// shutdown waits for the in-flight request, then closes the connection.
func (c *conn) shutdown() {
	c.handling.Lock()
	c.shutting = true
	c.waitSends()
	c.handling.Unlock()
	c.stop(websocket.StatusGoingAway, "server shutting down")
}

// enqueue queues a frame without blocking. A client whose queue is full
// (in frames or bytes) is too slow: it is disconnected and catches up
// from its cursors later.
func (c *conn) enqueue(f *parleypb.ServerFrame) {
	b, err := wire.Encode(f)
	if err != nil {
		c.s.log.Error("encode frame", "err", err)
		return
	}
	c.enqueueBytes(b)
}

// enqueueBytes queues an encoded frame; b must not be modified later (a
// push is encoded once and shared by every recipient connection).
func (c *conn) enqueueBytes(b []byte) {
	c.qmu.Lock()
	if c.finished {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= c.s.cfg.OutboundQueue || c.queueBytes+len(b) > c.s.cfg.OutboundBytes {
		stopping := c.stopping
		c.qmu.Unlock()
		if !stopping {
			c.s.metrics.slowClients.Inc()
			c.stop(websocket.StatusTryAgainLater, "outbound queue full")
		}
		return
	}
	c.queue = append(c.queue, b)
	c.queueBytes += len(b)
	for q := int64(c.queueBytes); ; {
		peak := c.s.queuePeak.Load()
		if q <= peak || c.s.queuePeak.CompareAndSwap(peak, q) {
			break
		}
	}
	c.startWriterLocked()
	c.qmu.Unlock()
}

func (c *conn) sendError(id uint64, e *wire.Error) {
	c.enqueue(&parleypb.ServerFrame{RequestId: id, Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
		Code: e.Code, Message: e.Message, Conflict: e.Conflict, RetryAfterSeconds: retrySeconds(e.RetryAfter)}}})
}

func (c *conn) push(p *parleypb.Push) {
	c.s.metrics.pushes.Inc()
	c.enqueue(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Push{Push: p}})
}

// encodePush encodes a push once for many connections (pushEncoded).
func (s *Server) encodePush(p *parleypb.Push) []byte {
	b, err := wire.Encode(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Push{Push: p}})
	if err != nil {
		s.log.Error("encode push", "err", err)
		return nil
	}
	return b
}

func (c *conn) pushEncoded(b []byte) {
	if b != nil {
		c.s.metrics.pushes.Inc()
		c.enqueueBytes(b)
	}
}

// maxRefusedInARow is how many RATE_LIMITED or BAD_REQUEST answers in a
// row close a connection. Each refused request is cheap, but a client that loops on
// them still takes the server's CPU from everyone else; an honest client
// waits for retry_after_seconds (a burst of pipelined sends refused
// together stays well under this).
const maxRefusedInARow = 200

// maxPipelined bounds the sends of one connection waiting for their
// group commit; the reader stops reading while that many are pending.
const maxPipelined = 64

// handleFrame decodes and answers one request. Sends are pipelined when
// the store can (store.AppendStarter): each is validated and queued for
// the group commit in order, and its response is sent, in order, once
// durable, while the next requests are read; for those handleFrame
// returns finish, which waits for the commit and answers. Any other
// request first waits for the pending sends, so it sees their effects.
func (c *conn) handleFrame(data []byte) (finish func()) {
	f, err := wire.DecodeClientFrame(data)
	if err != nil {
		c.s.metrics.requests.WithLabelValues("invalid", parleypb.ErrorCode_BAD_FRAME.String()).Inc()
		c.sendError(wire.PeekRequestID(data), &wire.Error{Code: parleypb.ErrorCode_BAD_FRAME, Message: err.Error()})
		return nil
	}
	if send := f.GetSend(); send != nil && c.dev != nil && c.barred == "" && f.RequestId != 0 && !send.Ephemeral {
		if starter, ok := c.s.cfg.Store.(store.AppendStarter); ok {
			return c.startSend(f.RequestId, send, starter)
		}
	}
	c.waitSends()
	typ := requestType(f)
	start := time.Now()
	body, err := c.dispatch(f)
	c.respond(typ, f.RequestId, start, body, err)
	return nil
}

// waitSends waits until every pipelined send has been answered.
func (c *conn) waitSends() {
	if c.lastSend != nil {
		<-c.lastSend
		c.lastSend = nil
	}
}

// startSend validates a send and queues it for the group commit; the
// returned finish waits for the commit and for the previous send's
// response, then answers. finish must be called, on any goroutine.
func (c *conn) startSend(id uint64, r *parleypb.SendRequest, starter store.AppendStarter) (finish func()) {
	start := time.Now()
	a, err := c.checkSend(r)
	if err == nil {
		err = c.checkAdds(context.Background(), a)
	}
	var wait func() (store.AppendResult, error)
	if err == nil {
		wait, err = starter.StartAppend(context.Background(), a)
	}
	if c.pipeline == nil {
		c.pipeline = make(chan struct{}, maxPipelined)
	}
	c.pipeline <- struct{}{}
	prev, done := c.lastSend, make(chan struct{})
	c.lastSend = done
	return func() {
		defer func() {
			<-c.pipeline
			close(done)
		}()
		var res store.AppendResult
		if err == nil {
			res, err = wait()
		}
		if err != nil {
			err = sendError(err)
		}
		if prev != nil {
			<-prev // answer in request order
		}
		var body parleypb.ServerFrameBody
		if err == nil {
			body = c.sent(a, res)
		}
		c.respond("send", id, start, body, err)
	}
}

// respond records a request's result and sends it (metrics first, so a
// client that has its response sees it counted).
func (c *conn) respond(typ string, id uint64, start time.Time, body parleypb.ServerFrameBody, err error) {
	code := "OK"
	var werr *wire.Error
	if err != nil {
		werr = c.s.toWireError(typ, err)
		code = werr.Code.String()
	}
	c.s.metrics.requests.WithLabelValues(typ, code).Inc()
	tooManyRefused := false
	if werr != nil && (werr.Code == parleypb.ErrorCode_RATE_LIMITED || werr.Code == parleypb.ErrorCode_BAD_REQUEST) {
		tooManyRefused = c.refused.Add(1) >= maxRefusedInARow
	} else if werr == nil {
		c.refused.Store(0)
	}
	c.s.metrics.requestSeconds.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) { // skip building the record per request
		c.s.log.Debug("request", "type", typ, "code", code, "duration", time.Since(start))
	}
	if werr != nil {
		c.sendError(id, werr)
		if werr.Code == parleypb.ErrorCode_UNSUPPORTED_VERSION {
			c.stop(websocket.StatusPolicyViolation, "unsupported protocol version")
		}
		if tooManyRefused {
			c.s.metrics.rateLimited.WithLabelValues("disconnected").Inc()
			c.stop(websocket.StatusPolicyViolation, "too many refused requests: wait as retry_after_seconds says")
		}
		if c.closeReason != "" {
			c.stop(websocket.StatusPolicyViolation, c.closeReason)
		}
		return
	}
	c.enqueue(&parleypb.ServerFrame{RequestId: id, Body: body})
	if c.closeReason != "" {
		c.stop(websocket.StatusNormalClosure, c.closeReason)
	}
}

// requestType names the request for metrics and logs ("send", "fetch").
func requestType(f *parleypb.ClientFrame) string {
	m := f.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("body"))
	if fd == nil {
		return "none"
	}
	return string(fd.Name())
}

// toWireError maps store and protocol errors to wire error codes.
func (s *Server) toWireError(typ string, err error) *wire.Error {
	var we *wire.Error
	var ce *store.EpochConflictError
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &ce):
		return &wire.Error{Code: parleypb.ErrorCode_EPOCH_CONFLICT, Message: "another commit won this epoch", Conflict: messageToWire(ce.Winner)}
	case errors.Is(err, store.ErrNotFound):
		return &wire.Error{Code: parleypb.ErrorCode_NOT_FOUND, Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		return &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS, Message: err.Error()}
	case errors.Is(err, store.ErrInvalidInvite):
		return &wire.Error{Code: parleypb.ErrorCode_INVALID_INVITE, Message: err.Error()}
	case errors.Is(err, store.ErrNotMember):
		return &wire.Error{Code: parleypb.ErrorCode_NOT_MEMBER, Message: err.Error()}
	case errors.Is(err, store.ErrUnknownDevice):
		return &wire.Error{Code: parleypb.ErrorCode_UNKNOWN_DEVICE, Message: err.Error()}
	case errors.Is(err, store.ErrWrongEpoch):
		return &wire.Error{Code: parleypb.ErrorCode_WRONG_EPOCH, Message: err.Error()}
	case errors.Is(err, store.ErrBadRequest):
		return &wire.Error{Code: parleypb.ErrorCode_BAD_REQUEST, Message: err.Error()}
	case errors.Is(err, store.ErrClosed):
		return &wire.Error{Code: parleypb.ErrorCode_SHUTTING_DOWN, Message: "server shutting down"}
	case errors.Is(err, store.ErrUnavailable):
		// Disk full, read-only or failing: nothing was written; reads
		// keep working. Logged once per request so operators see it.
		s.metrics.storageErrors.Inc()
		s.log.Error("storage unavailable", "type", typ, "err", err)
		return &wire.Error{Code: parleypb.ErrorCode_STORAGE_UNAVAILABLE, Message: "the server cannot store data right now; retry later", RetryAfter: storageRetryAfter}
	}
	s.log.Error("request failed", "type", typ, "err", err)
	return &wire.Error{Code: parleypb.ErrorCode_INTERNAL, Message: "internal error"}
}
