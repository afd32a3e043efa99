//go:build unix

package main

import "syscall"

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit: every
// connected device holds a socket, and the default soft limit (often
// 1024) would cap the server far below what memory allows.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}
