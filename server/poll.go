package server

import (
	"errors"
	"log/slog"

	"github.com/coder/websocket"
)

// Connections waiting for input on the idle poller (poller_linux.go).
//
// An idle connection otherwise keeps one goroutine blocked on its socket
// (conn.reader): 2 KiB of stack, and as much again of collector headroom,
// for every device that is connected and silent — most devices, most of
// the time. Where the poller runs, a connection that has no input is
// "parked": registered with the poller, one-shot, and no goroutine of
// its own. When the socket becomes readable the poller hands the
// connection to a worker, which reads and handles one frame and then
// parks the connection again (or reads on, if input is buffered).
//
// The read side of a connection is always in exactly one place: a
// worker reading or handling a frame, or parked. Whoever takes a parked
// connection (the poller's wake-up, the writer closing the socket, or a
// failed re-arm) clears parked under qmu, so only one of them goes on.
// A socket closed by this side leaves the poller without a word (the
// kernel drops a closed socket's registration), so the writer, which
// closes every connection, takes a parked one itself and ends it.

// startPolled serves c from the idle poller p, or on a goroutine of its
// own if p cannot take it.
func (s *Server) startPolled(c *conn, p *idlePoller, release func()) {
	p.add(c)
	var regErr error
	err := c.raw.Control(func(fd uintptr) { regErr = p.register(fd, c) })
	if err = errors.Join(err, regErr); err != nil {
		p.remove(c)
		s.log.Warn("idle poller refused a connection; it keeps a goroutine", slog.Any("err", err))
		go s.runConn(c, release)
		return
	}
	c.poller = p
	c.onAuth = s.startConn(c, release)
	c.awaitPolled()
}

// awaitPolled goes on reading c: on a worker at once if input is
// buffered above the socket, else by parking c with the poller. If c is
// closing, its read side ends.
func (c *conn) awaitPolled() {
	c.qmu.Lock()
	if c.finished {
		c.qmu.Unlock()
		c.readEnded()
		return
	}
	if c.br.Buffered() > 0 || c.tlsInput {
		c.qmu.Unlock()
		runAsync(task{c: c, read: true})
		return
	}
	c.parked = true
	c.qmu.Unlock()
	var armErr error
	// Control holds the socket open while the callback runs, so fd is
	// this connection's socket (its number cannot have been reused).
	err := c.raw.Control(func(fd uintptr) { armErr = c.poller.arm(fd, c) })
	if err == nil && armErr == nil {
		return
	}
	// The socket is closed (or the poller refused it): take c back, unless
	// the writer's close took it already.
	if armErr != nil && err == nil {
		c.s.log.Warn("idle poller refused a connection; closing it", slog.Any("err", armErr))
	}
	if c.unpark() {
		c.stop(websocket.StatusInternalError, "server error")
		c.readEnded()
	}
}

// unpark takes c from the poller: true if c was parked (the caller then
// owns its read side).
func (c *conn) unpark() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	parked := c.parked
	c.parked = false
	return parked
}

// closeParked is the writer's, once it has closed the socket: a parked
// connection will hear nothing more from the poller, so its read side
// ends here.
func (c *conn) closeParked() {
	if c.unpark() {
		c.readEnded()
	}
}

// wake is the poller's: c's socket is readable (or failed).
func (c *conn) wake() {
	c.qmu.Lock()
	if !c.parked {
		// Taken already (the writer closed the socket after the poller
		// saw it ready).
		c.qmu.Unlock()
		return
	}
	c.parked = false
	finished := c.finished
	c.qmu.Unlock()
	if finished {
		// The writer's close handshake reads the socket now.
		c.readEnded()
		return
	}
	runAsync(task{c: c, read: true})
}

// readDone is called by the worker that read a frame, once the frame is
// handled (or could not be read: ok false). On the goroutine path it
// reports to conn.reader on more; polled, it goes on itself.
func (c *conn) readDone(more chan<- bool, ok bool) {
	if more != nil {
		more <- ok
		return
	}
	if !ok {
		c.readEnded()
		return
	}
	if c.onAuth != nil && c.dev != nil {
		c.authed.Store(true)
		c.onAuth()
		c.onAuth = nil
	}
	c.awaitPolled()
}

// readEnded ends a polled connection's read side: what runConn does
// after conn.reader returns, on a goroutine of its own, as that waits
// for the close handshake.
func (c *conn) readEnded() {
	go func() {
		if c.onAuth != nil {
			c.onAuth()
			c.onAuth = nil
		}
		c.s.endConn(c)
	}()
}
