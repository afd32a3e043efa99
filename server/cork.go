package server

import (
	"net"
	"sync"
	"time"
)

// corkLimit bounds the bytes a corked connection collects before it
// writes them out, and so the bytes of queued frames one writer batch
// takes (flush). Batches larger than that, or a frame larger than that,
// go out in several writes; a large frame is written from its own slice
// (writev), not copied.
const corkLimit = 16 << 10

// corkBufs holds the batch buffers of corked connections. A buffer is
// taken when a connection corks and returned when it uncorks, so an idle
// connection holds none.
var corkBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, corkLimit)
	return &b
}}

// corkConn is the network connection under a client WebSocket. The
// WebSocket library flushes its write buffer once per frame, so writing
// n queued frames would cost n write(2) calls. The connection's writer
// goroutine corks the connection while it writes a batch of frames: the
// bytes collect in a buffer and go out in one write when it uncorks.
//
// Writes while not corked (the library's pongs and close frames) pass
// straight through. Writes of another goroutine that land inside a batch
// (a pong, or the reply to a peer's close frame) go out with the batch,
// in the order written, and Close first writes whatever a batch holds.
type corkConn struct {
	net.Conn

	// mu orders the writes to Conn: it is held across every write, so a
	// batch and a pass-through write never interleave and never reorder.
	mu     sync.Mutex
	corked bool
	buf    *[]byte // bytes collected while corked; nil when not corked
	// deadline is the write deadline set on Conn, in Unix nanoseconds, or
	// 0 for none. Batches share one deadline while it leaves them their
	// timeout (cork), so that most batches set none.
	deadline int64
}

// Write writes p, or while corked appends it to the batch.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		// The library's pongs and close frames carry their own
		// timeouts: a batch's deadline must not cut them short.
		if c.deadline != 0 {
			c.Conn.SetWriteDeadline(time.Time{})
			c.deadline = 0
		}
		return c.Conn.Write(p)
	}
	b := c.buf
	if len(*b)+len(p) <= cap(*b) {
		*b = append(*b, p...)
		return len(p), nil
	}
	// The batch is full: write it and p together without copying p.
	var err error
	if len(*b) == 0 {
		_, err = c.Conn.Write(p)
	} else {
		bufs := net.Buffers{*b, p}
		_, err = bufs.WriteTo(c.Conn)
	}
	*b = (*b)[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// cork starts collecting writes. Everything written until uncork must
// reach the socket within timeout (and at most 1.5 × timeout): the
// deadline set on the socket is moved only when it leaves less.
func (c *corkConn) cork(timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.deadline == 0 || c.deadline-now.UnixNano() < int64(timeout) {
		d := now.Add(timeout + timeout/2)
		c.Conn.SetWriteDeadline(d)
		c.deadline = d.UnixNano()
	}
	c.corked = true
	c.buf = corkBufs.Get().(*[]byte)
}

// uncork writes the collected bytes in one write and passes later writes
// straight through again.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return net.ErrClosed // Close already wrote or dropped the batch
	}
	c.corked = false
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	*b = (*b)[:0]
	corkBufs.Put(b)
	return err
}

// Close writes what a batch holds, if no write is under way (a write
// stuck on a slow reader is exactly what Close must interrupt), and
// closes the connection. The WebSocket library closes the connection
// right after replying to a peer's close frame, and that reply may be
// sitting in a batch.
func (c *corkConn) Close() error {
	if c.mu.TryLock() {
		if c.corked {
			c.corked = false
			b := c.buf
			c.buf = nil
			if len(*b) > 0 {
				c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
				c.deadline = 0 // Conn is closed next
				c.Conn.Write(*b)
			}
			*b = (*b)[:0]
			corkBufs.Put(b)
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// closeFlushTimeout bounds how long Close waits to write a batch it
// found pending.
const closeFlushTimeout = time.Second
