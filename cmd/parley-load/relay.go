package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

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
	// log, if set, makes the relay durable: frames are appended to it,
	// group-committed with fdatasync, and only then forwarded and
	// acknowledged, as parleyd does with its SQLite group commit. It
	// measures what persisting before the ack costs without a database.
	log *relayLog
}

// relayLog is the durable relay's append-only file and its committer.
type relayLog struct {
	f       *os.File
	pending chan relayFrame
}

type relayFrame struct {
	data []byte
	from *websocket.Conn
}

// commit writes every waiting frame in one write, fdatasyncs, then
// forwards and acknowledges them in arrival order.
func (rl *relay) commit() {
	var batch []relayFrame
	var buf []byte
	for first := range rl.log.pending {
		batch, buf = append(batch[:0], first), buf[:0]
	fill:
		for len(batch) < 1024 {
			select {
			case fr := <-rl.log.pending:
				batch = append(batch, fr)
			default:
				break fill
			}
		}
		for _, fr := range batch {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(fr.data)))
			buf = append(buf, fr.data...)
		}
		if _, err := rl.log.f.Write(buf); err != nil {
			fatalRelay(err)
		}
		if err := syscall.Fdatasync(int(rl.log.f.Fd())); err != nil {
			fatalRelay(err)
		}
		for _, fr := range batch {
			rl.deliver(fr.data, fr.from)
		}
	}
}

// fatalRelay stops a durable relay that cannot persist: acknowledging
// unpersisted frames would make its figures a lie.
func fatalRelay(err error) {
	fmt.Fprintln(os.Stderr, "parley-load relay: log:", err)
	os.Exit(1)
}

// deliver forwards a frame to its destination and acknowledges it.
func (rl *relay) deliver(data []byte, from *websocket.Conn) {
	ctx := context.Background()
	rl.mu.RLock()
	dst := rl.conns[binary.BigEndian.Uint32(data)]
	rl.mu.RUnlock()
	if dst != nil {
		dst.Write(ctx, websocket.MessageBinary, data)
	}
	ack := make([]byte, 17)
	ack[0] = 'A'
	copy(ack[1:], data[4:20])
	from.Write(ctx, websocket.MessageBinary, ack)
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
	// "Registered": the client starts sending only after every client
	// got this, so that no frame reaches the relay before its recipient
	// is in conns (it would be acknowledged and dropped: a false loss).
	if err := ws.Write(context.Background(), websocket.MessageBinary, []byte{'R'}); err != nil {
		ws.CloseNow()
		return
	}
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
		if rl.log != nil {
			rl.log.pending <- relayFrame{data, ws}
			continue
		}
		rl.deliver(data, ws)
	}
}

// internalRelay serves the relay; with durable set it keeps its log in
// dir.
func internalRelay(dir string, durable bool) error {
	raiseFileLimit()
	rl := &relay{conns: make(map[uint32]*websocket.Conn)}
	if durable {
		f, err := os.OpenFile(filepath.Join(dir, "relay.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		// Not closed here: the WebSocket handlers (hijacked, so
		// Shutdown does not wait for them) and commit may still be
		// writing when Serve returns; the process exits right after,
		// and the kernel closes the file (a close here raced commit's
		// Fd under -race).
		rl.log = &relayLog{f: f, pending: make(chan relayFrame, 4096)}
		go rl.commit()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: rl}
	go stopOnSignal(func(ctx context.Context) { srv.Shutdown(ctx) })
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
