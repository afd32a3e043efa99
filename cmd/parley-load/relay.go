package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// The baseline: a bare WebSocket relay on the same library as parleyd,
// with no storage, no authentication and no protobuf. A client connects
// to /relay?id=N; each binary frame it sends starts with a 4-byte
// destination id; the relay forwards the frame to that client and
// answers the sender with a 1-byte 'A' followed by bytes 4..20 of the
// frame (the message id), like parleyd's SendResponse plus push.

type relay struct {
	mu    sync.RWMutex
	conns map[uint32]*websocket.Conn
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id64, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 32)
	if err != nil {
		http.Error(w, "id", http.StatusBadRequest)
		return
	}
	id := uint32(id64)
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(64 << 20)
	rl.mu.Lock()
	rl.conns[id] = ws
	rl.mu.Unlock()
	defer func() {
		rl.mu.Lock()
		delete(rl.conns, id)
		rl.mu.Unlock()
		ws.CloseNow()
	}()
	ctx := context.Background()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if len(data) < 20 {
			continue
		}
		rl.mu.RLock()
		dst := rl.conns[binary.BigEndian.Uint32(data)]
		rl.mu.RUnlock()
		if dst != nil {
			dst.Write(ctx, websocket.MessageBinary, data)
		}
		ack := make([]byte, 17)
		ack[0] = 'A'
		copy(ack[1:], data[4:20])
		if ws.Write(ctx, websocket.MessageBinary, ack) != nil {
			return
		}
	}
}

func internalRelay() error {
	raiseFileLimit()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: &relay{conns: make(map[uint32]*websocket.Conn)}}
	go stopOnSignal(func(ctx context.Context) { srv.Shutdown(ctx) })
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
