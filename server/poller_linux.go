//go:build linux

package server

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// idlePoller is one epoll instance, shared by every server of the
// process, with one goroutine waiting on it for the sockets of parked
// connections (poll.go). Registrations are one-shot: a connection is
// handed to a worker once per arm, and re-armed when it parks again.
type idlePoller struct {
	epfd int
	// file is epfd as a pollable file: the run loop waits for it on the
	// runtime's own poller (an epoll instance is readable when it has
	// events), so it never blocks a thread in epoll_wait.
	file *os.File

	mu    sync.Mutex
	conns map[uint64]*conn // by pollID, the key in the epoll event
	next  uint64
}

var sharedPoller = sync.OnceValues(func() (*idlePoller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &idlePoller{epfd: fd, file: os.NewFile(uintptr(fd), "idle-poller"), conns: make(map[uint64]*conn)}
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	go p.run(rc)
	return p, nil
})

// idlePoller returns the process's poller, or nil if there is none (its
// creation failed, or a test turned it off): connections then each keep
// a goroutine.
func (s *Server) idlePoller() *idlePoller {
	if s.noIdlePoller || !rawWait {
		return nil
	}
	p, err := sharedPoller()
	if err != nil {
		s.pollerWarning.Do(func() {
			s.log.Warn("idle poller unavailable; each connection keeps a goroutine", "err", err)
		})
		return nil
	}
	return p
}

// add gives c its key; remove forgets it once c has ended (the kernel
// dropped the registration when the socket was closed).
func (p *idlePoller) add(c *conn) {
	p.mu.Lock()
	p.next++
	c.pollID = p.next
	p.conns[c.pollID] = c
	p.mu.Unlock()
}

func (p *idlePoller) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.pollID)
	p.mu.Unlock()
}

// register adds c's socket fd to the poller, not armed yet (one-shot
// with no events: a hang-up it reports meanwhile finds c not parked and
// is ignored). Called from inside RawConn.Control, so fd stays c's
// socket meanwhile.
func (p *idlePoller) register(fd uintptr, c *conn) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLONESHOT}
	putPollID(&ev, c.pollID)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// pollEvents: readable, the peer's shutdown, and (always reported)
// errors and hang-up; one-shot, and level-triggered, so that arming a
// socket that already holds input reports it at once.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// arm re-arms c's registered socket fd, from inside RawConn.Control.
func (p *idlePoller) arm(fd uintptr, c *conn) error {
	ev := syscall.EpollEvent{Events: pollEvents}
	putPollID(&ev, c.pollID)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev); err != nil {
		return fmt.Errorf("epoll_ctl mod: %w", err)
	}
	return nil
}

// run hands every connection whose socket is ready to its wake. It
// collects events without waiting (epoll_wait with timeout 0) when the
// runtime's poller reports the epoll instance readable: a blocking
// epoll_wait would hold a thread outside the scheduler, and each wake-up
// would then wait for a processor, delaying every parked connection's
// next frame.
func (p *idlePoller) run(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 256)
	var n int
	var waitErr error
	// collect reports true when there are events to hand out, or an
	// error; false sends rc.Read back to wait.
	collect := func(fd uintptr) bool {
		for {
			n, waitErr = syscall.EpollWait(int(fd), events, 0)
			if !errors.Is(waitErr, syscall.EINTR) {
				break
			}
		}
		if waitErr != nil {
			n = 0 // the call returns -1 with its error
			return true
		}
		return n > 0
	}
	for {
		if err := rc.Read(collect); err != nil {
			panic(fmt.Sprintf("server: idle poller: %v", err)) // the file is never closed
		}
		if waitErr != nil {
			// Cannot happen with a valid epfd and buffer; do not spin.
			panic(fmt.Sprintf("server: epoll_wait: %v", waitErr))
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.conns[pollID(ev)]
			p.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// The epoll event's 64-bit user data is Fd and Pad in syscall's struct.
func putPollID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func pollID(ev syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
