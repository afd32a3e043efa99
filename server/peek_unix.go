//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package server

import (
	"syscall"
	"unsafe"
)

// rawWait reports whether conn.reader can wait for input on the raw
// socket (awaitInput).
const rawWait = true

// peekByte reports whether a read of fd would not block: a byte is
// waiting, the stream ended, or the socket failed. It consumes nothing.
func peekByte(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK
}
