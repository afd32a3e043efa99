package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// recordConn is a net.Conn that records its writes and its closing.
type recordConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	writes   [][]byte
	deadline time.Time
	closed   bool
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, net.ErrClosed
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recordConn) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadline = t
	return nil
}

func (r *recordConn) writeDeadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadline
}

func (r *recordConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordConn) got() (writes int, all string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes), string(bytes.Join(r.writes, nil))
}

func TestCorkConn(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}

	// Not corked: each write goes straight through.
	c.Write([]byte("a"))
	c.Write([]byte("b"))
	if n, all := rc.got(); n != 2 || all != "ab" {
		t.Fatalf("uncorked: %d writes %q, want 2 writes \"ab\"", n, all)
	}

	// Corked: writes collect and go out in one write on uncork, with a
	// deadline of at least the timeout given.
	start := time.Now()
	c.cork(time.Minute)
	d := rc.writeDeadline()
	if d.Before(start.Add(time.Minute)) || d.After(time.Now().Add(90*time.Second)) {
		t.Fatalf("batch deadline %v after corking, want between 1 and 1.5 minutes from %v", d, start)
	}
	for i := range 10 {
		c.Write(fmt.Appendf(nil, "%d", i))
	}
	if n, _ := rc.got(); n != 2 {
		t.Fatalf("corked writes reached the socket: %d writes", n)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if n, all := rc.got(); n != 3 || all != "ab0123456789" {
		t.Fatalf("after uncork: %d writes %q, want 3 writes \"ab0123456789\"", n, all)
	}

	// The next batch keeps the deadline, which still leaves it its
	// timeout; a write outside a batch (a pong) clears it.
	c.cork(time.Minute / 2)
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if got := rc.writeDeadline(); !got.Equal(d) {
		t.Fatalf("deadline moved from %v to %v though it left the batch its timeout", d, got)
	}
	c.Write(nil)
	if got := rc.writeDeadline(); !got.IsZero() {
		t.Fatalf("pass-through write left the batch deadline %v set", got)
	}

	// A write larger than the batch buffer goes out with what is
	// collected, in order, and the batch goes on.
	c.cork(time.Minute)
	c.Write([]byte("x"))
	big := bytes.Repeat([]byte("B"), corkLimit+1)
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("big write: %d, %v", n, err)
	}
	c.Write([]byte("y"))
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if _, all := rc.got(); all != "ab0123456789x"+string(big)+"y" {
		t.Fatal("bytes reordered or lost around a large write")
	}

	// Close writes a pending batch before closing (the library closes
	// right after replying to a peer's close frame).
	c.cork(time.Minute)
	c.Write([]byte("close-reply"))
	c.Close()
	if _, all := rc.got(); !bytes.HasSuffix([]byte(all), []byte("y"+"close-reply")) {
		t.Fatalf("Close dropped the pending batch: %q", all[len(all)-20:])
	}
	if !rc.closed {
		t.Fatal("Close did not close the socket")
	}
	if err := c.uncork(); err == nil {
		t.Fatal("uncork after Close succeeded")
	}
}

// countingListener counts the writes to the connections it accepts.
type countingListener struct {
	net.Listener
	conns chan *countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: nc}
	l.conns <- cc
	return cc, nil
}

type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// SyscallConn keeps the server on its plain-socket read path.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// wsPair returns a server-side conn (not yet running a reader or writer)
// over a real socket whose writes are counted, and the client end.
func wsPair(t testing.TB) (*conn, *countingConn, *websocket.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln, conns: make(chan *countingConn, 1)}
	s := &Server{cfg: Config{WriteTimeout: 10 * time.Second, OutboundQueue: 1000, OutboundBytes: 1 << 24, MaxFrame: 1 << 20}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	conns := make(chan *conn, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb := &smallBuffers{ResponseWriter: w}
		ws, err := websocket.Accept(sb, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		c := &conn{s: s, ws: ws, cork: sb.cork, br: sb.br, raw: sb.raw}
		c.closed.Add(1)
		conns <- c
	})}
	go hs.Serve(cl)
	t.Cleanup(func() { hs.Close() })
	client, _, err := websocket.Dial(context.Background(), "ws://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetReadLimit(-1)
	t.Cleanup(func() { client.CloseNow() })
	c := <-conns
	if rawWait && c.raw == nil {
		t.Fatal("no raw connection on a plain socket")
	}
	return c, <-cl.conns, client
}

// Frames queued while the writer is busy go out in one write per batch,
// each frame intact and in order; a pong, written by the library outside
// any batch, still goes out; and the close handshake still completes.
func TestWriterCoalescesFrames(t *testing.T) {
	c, nc, client := wsPair(t)

	var frames [][]byte
	for i := range 60 {
		frames = append(frames, fmt.Appendf(nil, "frame %03d %s", i, bytes.Repeat([]byte{'.'}, 100)))
	}
	frames = append(frames, bytes.Repeat([]byte("L"), 3*corkLimit)) // larger than a batch
	frames = append(frames, []byte("last"))

	// Queue everything as if a writer were busy, then run the writer.
	c.qmu.Lock()
	c.writing = true
	c.qmu.Unlock()
	for _, f := range frames {
		c.enqueueBytes(f)
	}
	before := nc.count()
	c.flush()
	writes := nc.count() - before
	// 60 small frames (6.7 KiB) make one batch and one write. The large
	// frame makes a batch of its own: its header and first bytes pass
	// through the library's write buffer, the rest is written from the
	// frame itself (one writev, two writes on this counting conn). The
	// last frame makes a third batch.
	if writes != 4 {
		t.Errorf("%d frames took %d writes, want 4", len(frames), writes)
	}
	for i, want := range frames {
		typ, got, err := client.Read(context.Background())
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes %.20q, want %d bytes %.20q", i, len(got), got, len(want), want)
		}
	}
	c.qmu.Lock()
	if c.writing || c.queue != nil || c.queueBytes != 0 {
		t.Errorf("after flush: writing %v, queue %d frames, %d bytes", c.writing, len(c.queue), c.queueBytes)
	}
	c.qmu.Unlock()

	// A ping is answered by the server's reader through the uncorked
	// socket.
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ws.Read(context.Background()); err != nil {
				readErr <- err
				return
			}
		}
	}()
	clientCtx := client.CloseRead(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}

	// stop flushes and closes with the code given.
	c.stop(websocket.StatusGoingAway, "test over")
	closed := make(chan struct{})
	go func() {
		c.closed.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not close the connection")
	}
	<-clientCtx.Done()
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("server reader ended with %v, want the client's reply to StatusGoingAway", err)
	}
}

// BenchmarkWriter measures the writer per frame (ns/op is per frame) for
// batches of queued frames, against writing each frame on its own as the
// writer did before corking (one write and one context timer per frame).
func BenchmarkWriter(b *testing.B) {
	for _, batch := range []int{1, 4, 16} {
		for _, mode := range []string{"corked", "per-frame"} {
			b.Run(fmt.Sprintf("frames=%d/%s", batch, mode), func(b *testing.B) {
				c, nc, client := wsPair(b)
				go func() {
					for {
						if _, _, err := client.Read(context.Background()); err != nil {
							return
						}
					}
				}()
				frame := bytes.Repeat([]byte{'f'}, 100) // fits the write buffer: one write per frame uncorked
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					if mode == "per-frame" {
						for range batch {
							ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
							if err := c.ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
								b.Fatal(err)
							}
							cancel()
						}
						continue
					}
					c.qmu.Lock()
					c.writing = true
					c.qmu.Unlock()
					for range batch {
						c.enqueueBytes(frame)
					}
					c.flush()
				}
				b.StopTimer()
				b.ReportMetric(float64(nc.count())/float64(b.N), "writes/frame")
			})
		}
	}
}

// BenchmarkWriterWokenTogether is what a group commit does to a
// connection in a 1:1 chat: the goroutine answering its send and the one
// pushing its peer's message are woken by the same commit, and each
// queues one frame. writes/frame is how many write system calls each
// frame cost (0.5: the two always shared one), with the writer yielding
// before its first write (as it does) and without.
func BenchmarkWriterWokenTogether(b *testing.B) {
	for _, yield := range []bool{true, false} {
		b.Run(fmt.Sprintf("yield=%v", yield), func(b *testing.B) {
			defer func(old bool) { writerYields = old }(writerYields)
			writerYields = yield
			c, nc, client := wsPair(b)
			got := make(chan struct{}, 2)
			go func() {
				for {
					if _, _, err := client.Read(context.Background()); err != nil {
						return
					}
					got <- struct{}{}
				}
			}()
			frame := bytes.Repeat([]byte{'f'}, 100)
			before := nc.count()
			b.ResetTimer()
			for range b.N {
				commit := make(chan struct{})
				var wg sync.WaitGroup
				for range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-commit
						c.enqueueBytes(frame)
					}()
				}
				close(commit)
				wg.Wait()
				<-got
				<-got
			}
			b.StopTimer()
			b.ReportMetric(float64(nc.count()-before)/float64(2*b.N), "writes/frame")
		})
	}
}
