package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacker its
// 4 KiB read and write buffers; for a server holding 100 000 mostly idle
// WebSockets that is 8 KiB each, so parleyd swaps them for smaller ones.
// Frames larger than a buffer are read and written around it, without
// copying. The write buffer only has to hold a control frame (at most
// 2+125 bytes) so that a pong or close goes out in one write: data frames
// are written with the connection corked (corkConn), which batches their
// bytes whatever this size.
const (
	connReadBuffer  = 512
	connWriteBuffer = 128
)

// smallBuffers wraps a ResponseWriter so that Hijack returns buffers of
// connReadBuffer and connWriteBuffer bytes, carrying over bytes the HTTP
// server had already read, and a connection the writer can cork
// (corkConn).
type smallBuffers struct {
	http.ResponseWriter
	// Set by Hijack: the connection's writer, read buffer and, on a
	// plain socket, its raw connection (see conn.reader).
	cork *corkConn
	br   *bufio.Reader
	raw  syscall.RawConn
	sock net.Conn  // the socket raw is (for deadlines)
	tls  *tls.Conn // set under TLS: raw is then its TCP socket
}

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("server: %T cannot hijack", w.ResponseWriter)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(nc, connReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// Move the bytes read ahead into the new buffer: the WebSocket
		// library looks for them there (Buffered, Peek).
		pending, _ := brw.Reader.Peek(n)
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), nc), max(connReadBuffer, n))
		if _, err := r.Peek(n); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	socket := nc
	if tc, ok := nc.(*tls.Conn); ok {
		// The reader waits on the TCP socket under TLS too; see
		// conn.tlsBuffered for the records TLS may hold already.
		socket, w.tls = tc.NetConn(), tc
	}
	if sc, ok := socket.(syscall.Conn); ok && rawWait {
		if w.raw, err = sc.SyscallConn(); err != nil {
			nc.Close()
			return nil, nil, err
		}
		w.sock = socket
	} else {
		w.tls = nil
	}
	w.cork, w.br = &corkConn{Conn: nc}, r
	return w.cork, bufio.NewReadWriter(r, bufio.NewWriterSize(w.cork, connWriteBuffer)), nil
}
