package server

import "time"

// Frames are read and handled, and queued frames written, on short-lived
// goroutines (conn.reader, conn.flush) whose stacks grow deep: the
// WebSocket library, protobuf, signature checks. A goroutine started for
// each would begin at the runtime's starting stack size, which idle
// connections keep at 2 KiB, and grow it by copying every time. So these
// goroutines, once done, wait a little for more work of any connection,
// with their stacks grown.

// workerIdle is how long a worker waits for more work before it exits.
const workerIdle = 2 * time.Second

// task is one piece of work for a worker: conn.flush if flush is set,
// else conn.serveFrame with the other fields.
type task struct {
	c     *conn
	flush bool
	m     message
	read  bool
	more  chan<- bool
}

func (t *task) run() {
	if t.flush {
		t.c.flush()
	} else {
		t.c.serveFrame(t.m, t.read, t.more)
	}
}

// tasks hands work to waiting workers; unbuffered, so a send succeeds
// only if a worker is waiting.
var tasks = make(chan task)

// runAsync runs t on a waiting worker, or a new one. It never blocks.
func runAsync(t task) {
	select {
	case tasks <- t:
	default:
		go worker(t)
	}
}

func worker(t task) {
	var idle *time.Timer
	for {
		t.run()
		t = task{} // keep nothing of the connection while waiting
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case t = <-tasks:
		case <-idle.C:
			return
		}
	}
}
