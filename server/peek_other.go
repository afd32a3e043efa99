//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package server

// rawWait is false: conn.reader reads on its own goroutine.
const rawWait = false

func peekByte(uintptr) bool { return true }
