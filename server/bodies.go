package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// ErrSlowBody is what reading a request body returns once the client has
// sent it more slowly than Config.MinBodyRate allows. It matches
// os.ErrDeadlineExceeded too, so mounted handlers can recognise it without
// importing this package.
var ErrSlowBody = errors.New("server: request body arrived too slowly")

// limitBodies puts a read deadline on every request body, for the
// server's own handlers and mounted ones alike, so that a client trickling
// a body cannot hold a connection, a file descriptor and whatever the
// handler holds (an upload slot) for as long as it likes. The deadline
// starts BodyTimeout after the first read and moves forward as bytes
// arrive, by 1/MinBodyRate seconds per byte but never more than
// BodyTimeout ahead: a slow but steady upload of any size goes through,
// while a body that falls below the rate over any stretch longer than
// BodyTimeout is cut off and answered 408.
func (s *Server) limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			// GET and friends, including WebSocket upgrades: nothing to read.
			h.ServeHTTP(w, r)
			return
		}
		b := &slowBody{
			body:   r.Body,
			rc:     http.NewResponseController(w),
			length: r.ContentLength,
			http1:  r.ProtoMajor == 1,
			grace:  s.cfg.BodyTimeout,
			rate:   s.cfg.MinBodyRate,
		}
		r.Body = b
		bw := &bodyWriter{ResponseWriter: w, b: b}
		h.ServeHTTP(bw, r)
		if !bw.wrote && b.timedOut() {
			bw.WriteHeader(http.StatusRequestTimeout)
		}
		b.handlerDone()
		// net/http looks at its own body type after the handler to decide
		// on a lingering close (FIN, then a pause before closing), which
		// lets a client still sending a refused body read the answer
		// instead of a connection reset.
		r.Body = b.body
	})
}

// slowBody is a request body under a moving read deadline.
type slowBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	length int64 // Content-Length, or -1
	http1  bool
	grace  time.Duration
	rate   int64 // bytes per second

	mu       sync.Mutex
	started  bool
	deadline time.Time
	read     int64
	done     bool // EOF, or all of Content-Length read
	slow     bool // the deadline passed
}

func (b *slowBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if !b.started {
		b.started = true
		b.deadline = time.Now().Add(b.grace)
		b.setDeadline(b.deadline)
	}
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += int64(n)
	if err != nil && isTimeout(err) {
		b.slow = true
		return n, fmt.Errorf("%w (%s): %w", ErrSlowBody, b.rule(), err)
	}
	if err == io.EOF || b.length >= 0 && b.read >= b.length {
		if !b.done {
			b.done = true
			// Lift the deadline: net/http reads ahead on an HTTP/1
			// connection once the body is consumed, to notice a client
			// going away, and a deadline firing there would cancel the
			// request's context while the handler is still working.
			b.setDeadline(time.Time{})
		}
		return n, err
	}
	if n > 0 {
		earned := b.deadline.Add(time.Duration(float64(n) / float64(b.rate) * float64(time.Second)))
		if limit := time.Now().Add(b.grace); earned.After(limit) {
			earned = limit
		}
		// Setting a deadline costs a system call; only move it when it
		// moves noticeably.
		if earned.Sub(b.deadline) >= 10*time.Millisecond {
			b.deadline = earned
			b.setDeadline(earned)
		}
	}
	return n, err
}

// rule says what a client must keep up, for the 408's message.
func (b *slowBody) rule() string {
	return fmt.Sprintf("send at least %d bytes per second, with no pause over %v", b.rate, b.grace)
}

func (b *slowBody) setDeadline(t time.Time) {
	// ErrNotSupported (a ResponseWriter that is not net/http's, as in
	// handler unit tests) leaves the body without a deadline.
	b.rc.SetReadDeadline(t)
}

func (b *slowBody) Close() error { return b.body.Close() }

func (b *slowBody) timedOut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slow
}

// unfinished reports whether the body was not read to its end.
func (b *slowBody) unfinished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.done
}

// refusedBodyGrace bounds how long net/http may go on reading a body that
// the handler never read (a refusal) after the answer: long enough for a
// client on a fair link to finish sending what it had under way, so it
// reads the answer rather than a connection reset; short, because every
// refused upload holds a socket meanwhile.
const refusedBodyGrace = 2 * time.Second

// handlerDone runs when the handler has returned. net/http reads up to
// 256 KiB of what the handler left unread, at the client's pace, before
// closing the connection; a body the handler never read has no deadline
// yet, so give it one.
func (b *slowBody) handlerDone() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.http1 && !b.done && !b.started {
		b.started = true
		b.deadline = time.Now().Add(min(b.grace, refusedBodyGrace))
		b.setDeadline(b.deadline)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// bodyWriter is the ResponseWriter of a request with a body. If the body
// was cut off for being too slow, it answers 408 whatever the handler was
// about to say (its "bad request" or "upload failed" would hide the
// reason); and a response that starts before the body was read to its end
// closes the connection rather than letting net/http read the rest first.
type bodyWriter struct {
	http.ResponseWriter
	b       *slowBody
	wrote   bool
	discard bool
}

func (w *bodyWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.b.timedOut() {
		h := w.ResponseWriter.Header()
		for k := range h {
			delete(h, k)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Connection", "close")
		w.ResponseWriter.WriteHeader(http.StatusRequestTimeout)
		fmt.Fprintf(w.ResponseWriter, "request body too slow: %s\n", w.b.rule())
		w.discard = true
		return
	}
	if w.b.http1 && w.b.unfinished() {
		w.ResponseWriter.Header().Set("Connection", "close")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's deadlines
// and flushing through the wrapper.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
