package server

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// conn is one client WebSocket. Requests are handled one at a time in the
// order received (so responses come back in order); a separate writer
// drains a bounded queue of responses and pushes.
type conn struct {
	s  *Server
	ws *websocket.Conn

	out      chan []byte
	done     chan struct{} // closed by stop
	stopOnce sync.Once
	code     websocket.StatusCode
	reason   string

	// handling is held while a request is processed, so shutdown can wait
	// for the in-flight request before closing.
	handling sync.Mutex
	shutting bool

	// Owned by the reader goroutine.
	hello     bool
	challenge []byte
	dev       *store.Device
	failures  int
	linkKeys  []string // pending links requested on this connection
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{})
	if err != nil {
		// Accept already wrote an HTTP error.
		return
	}
	c := &conn{
		s:    s,
		ws:   ws,
		out:  make(chan []byte, s.cfg.OutboundQueue),
		done: make(chan struct{}),
	}
	c.challenge = make([]byte, wire.ChallengeSize)
	rand.Read(c.challenge)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connsWG.Done()
	}()

	s.metrics.connections.Inc()
	defer s.metrics.connections.Dec()

	// Frames a little over --max-frame are read and answered with
	// FRAME_TOO_LARGE; far larger ones close the connection (1009).
	ws.SetReadLimit(4 * s.cfg.MaxFrame)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writer()
	}()
	c.reader()
	c.stop(websocket.StatusNormalClosure, "")
	<-writerDone
	if c.dev != nil {
		s.hub.remove(c.dev.ID, c)
	}
	s.mu.Lock()
	for _, k := range c.linkKeys {
		if s.links[k] == c {
			delete(s.links, k)
		}
	}
	s.mu.Unlock()
}

func (c *conn) reader() {
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return
		}
		data, tooLarge, err := readFrame(r, c.s.cfg.MaxFrame)
		if err != nil {
			return
		}
		// Frames refused unread are answered to their request if its id
		// can be read from the first field, else at connection level.
		peekID := wire.PeekRequestID(data)
		c.handling.Lock()
		if c.shutting {
			c.handling.Unlock()
			return
		}
		switch {
		case tooLarge:
			c.s.metrics.requests.WithLabelValues("oversized", parleypb.ErrorCode_FRAME_TOO_LARGE.String()).Inc()
			c.sendError(peekID, &wire.Error{Code: parleypb.ErrorCode_FRAME_TOO_LARGE, Message: "frame exceeds the server's limit"})
		case typ != websocket.MessageBinary:
			c.sendError(peekID, &wire.Error{Code: parleypb.ErrorCode_BAD_FRAME, Message: "frames must be binary protobuf"})
		default:
			c.handleFrame(data)
		}
		c.handling.Unlock()
	}
}

// readFrame reads one message of at most max bytes; a longer one is
// drained and reported as too large (data then holds its first bytes).
func readFrame(r io.Reader, max int64) (data []byte, tooLarge bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > max {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, false, err
		}
		return data[:min(len(data), 16)], true, nil
	}
	return data, false, nil
}

func (c *conn) writer() {
	write := func(b []byte) bool {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
		defer cancel()
		return c.ws.Write(ctx, websocket.MessageBinary, b) == nil
	}
	for {
		select {
		case b := <-c.out:
			if !write(b) {
				c.stop(websocket.StatusInternalError, "write failed")
				c.ws.CloseNow()
				return
			}
		case <-c.done:
			// Flush what is queued (responses to requests already handled),
			// then close.
			for {
				select {
				case b := <-c.out:
					if !write(b) {
						c.ws.CloseNow()
						return
					}
				default:
					c.ws.Close(c.code, c.reason)
					return
				}
			}
		}
	}
}

// stop makes the writer flush and close the connection with code.
func (c *conn) stop(code websocket.StatusCode, reason string) {
	c.stopOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

// shutdown waits for the in-flight request, then closes the connection.
func (c *conn) shutdown() {
	c.handling.Lock()
	c.shutting = true
	c.handling.Unlock()
	c.stop(websocket.StatusGoingAway, "server shutting down")
}

// enqueue queues a frame without blocking. A client whose queue is full
// is too slow: it is disconnected and catches up from its cursors later.
func (c *conn) enqueue(f *parleypb.ServerFrame) {
	b, err := wire.Encode(f)
	if err != nil {
		c.s.log.Error("encode frame", "err", err)
		return
	}
	select {
	case <-c.done:
		// Stopping: still try to queue (responses are flushed on close).
		select {
		case c.out <- b:
		default:
		}
	case c.out <- b:
	default:
		c.s.metrics.slowClients.Inc()
		c.stop(websocket.StatusTryAgainLater, "outbound queue full")
	}
}

func (c *conn) sendError(id uint64, e *wire.Error) {
	c.enqueue(&parleypb.ServerFrame{RequestId: id, Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
		Code: e.Code, Message: e.Message, Conflict: e.Conflict}}})
}

func (c *conn) push(p *parleypb.Push) {
	c.s.metrics.pushes.Inc()
	c.enqueue(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Push{Push: p}})
}

// handleFrame decodes and answers one request.
func (c *conn) handleFrame(data []byte) {
	f, err := wire.DecodeClientFrame(data)
	if err != nil {
		c.s.metrics.requests.WithLabelValues("invalid", parleypb.ErrorCode_BAD_FRAME.String()).Inc()
		c.sendError(wire.PeekRequestID(data), &wire.Error{Code: parleypb.ErrorCode_BAD_FRAME, Message: err.Error()})
		return
	}
	typ := requestType(f)
	start := time.Now()
	body, err := c.dispatch(f)
	code := "OK"
	if err != nil {
		werr := c.s.toWireError(typ, err)
		code = werr.Code.String()
		c.sendError(f.RequestId, werr)
		if werr.Code == parleypb.ErrorCode_UNSUPPORTED_VERSION {
			c.stop(websocket.StatusPolicyViolation, "unsupported protocol version")
		}
	} else {
		c.enqueue(&parleypb.ServerFrame{RequestId: f.RequestId, Body: body})
	}
	c.s.metrics.requests.WithLabelValues(typ, code).Inc()
	c.s.metrics.requestSeconds.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	c.s.log.Debug("request", "type", typ, "code", code, "duration", time.Since(start))
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
	}
	s.log.Error("request failed", "type", typ, "err", err)
	return &wire.Error{Code: parleypb.ErrorCode_INTERNAL, Message: "internal error"}
}
