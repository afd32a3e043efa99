package server

import (
	"errors"
	"log/slog"
	"time"
)

// Connections that idle on the idle poller (poller_linux.go).
//
// An active connection's reader goroutine (conn.reader) waits on its
// socket; that costs 2 KiB of stack, and as much again of collector
// headroom, which for a device that is connected and silent — most
// devices, most of the time — is most of what it costs. So where the
// poller runs, a reader that has waited parkAfter without input "parks"
// the connection: it arms the connection's one-shot registration with
// the poller and returns. When the socket becomes readable the poller
// hands the connection to a worker, which reads and handles the frame
// and starts a reader again. Active connections never touch the poller:
// their reads cost what they cost without it.
//
// The read side of a connection is always in exactly one place: its
// reader, a worker reading or handling a frame, or parked. Whoever takes
// a parked connection (the poller's wake-up, the writer closing the
// socket, or a failed arm) clears parked under qmu, so only one of them
// goes on. A socket closed by this side leaves the poller without a word
// (the kernel drops a closed socket's registration), so the writer,
// which closes every connection, takes a parked one itself and ends it.

// parkAfter is how long a reader waits for input before it parks the
// connection. Clients ping every few tens of seconds at most; a device
// in use sends more often than this.
var parkAfter = 5 * time.Second

// registerPolled registers c's socket with p, unarmed, before c has a
// read side anywhere else; if p cannot take it, c keeps its reader
// goroutine throughout.
func (s *Server) registerPolled(c *conn, p *idlePoller) {
	p.add(c)
	var regErr error
	err := c.raw.Control(func(fd uintptr) { regErr = p.register(fd, c) })
	if err = errors.Join(err, regErr); err != nil {
		p.remove(c)
		s.pollerRefused(err)
		return
	}
	c.poller = p
}

// pollerRefused logs, once per server, that the poller could not take a
// connection.
func (s *Server) pollerRefused(err error) {
	s.pollerWarning.Do(func() {
		s.log.Warn("idle poller refused a connection; it keeps a goroutine while idle", slog.Any("err", err))
	})
}

// park hands c's read side to the poller; its reader returns.
func (c *conn) park() {
	c.qmu.Lock()
	if c.finished {
		c.qmu.Unlock()
		c.readEnd()
		return
	}
	c.parked = true
	c.qmu.Unlock()
	var armErr error
	// Control holds the socket open while the callback runs, so fd is
	// this connection's socket (its number cannot have been reused).
	err := c.raw.Control(func(fd uintptr) {
		if armErr = c.s.refuseArms; armErr == nil {
			armErr = c.poller.arm(fd, c)
		}
	})
	if err == nil && armErr == nil {
		return
	}
	// The socket is closed, or the poller refused it: take c back, unless
	// the writer's close took it already.
	if !c.unpark() {
		return
	}
	if err != nil {
		c.readEnd() // closed
		return
	}
	// Refused: c leaves the poller (no event can find it any more) and
	// keeps a reader goroutine from now on.
	c.s.pollerRefused(armErr)
	c.poller.remove(c)
	c.poller = nil
	go c.reader()
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
// ends here, on a goroutine of its own (endConn waits for the close).
func (c *conn) closeParked() {
	if c.unpark() {
		go c.readEnd()
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
		go c.readEnd()
		return
	}
	runAsync(task{c: c, read: true})
}

// readDone is called by the worker that read a frame, once the frame is
// handled (or could not be read: ok false). It reports to the reader on
// more; for a frame the poller woke it for (more nil), it starts a
// reader again.
func (c *conn) readDone(more chan<- bool, ok bool) {
	if more != nil {
		more <- ok
		return
	}
	if !ok {
		go c.readEnd()
		return
	}
	c.noteAuth()
	go c.reader()
}
