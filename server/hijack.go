package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacker its
// 4 KiB read and write buffers; for a server holding 100 000 mostly idle
// WebSockets that is 8 KiB each, so parleyd swaps them for smaller ones.
// Frames larger than a buffer are read and written around it, without
// copying.
const (
	connReadBuffer  = 512
	connWriteBuffer = 512
)

// smallBuffers wraps a ResponseWriter so that Hijack returns buffers of
// connReadBuffer and connWriteBuffer bytes, carrying over bytes the HTTP
// server had already read.
type smallBuffers struct {
	http.ResponseWriter
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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
	return nc, bufio.NewReadWriter(r, bufio.NewWriterSize(nc, connWriteBuffer)), nil
}
