//go:build !linux

package server

import "errors"

// idlePoller exists only on Linux (poller_linux.go); elsewhere every
// connection keeps its own goroutine (conn.reader).
type idlePoller struct{}

func (s *Server) idlePoller() *idlePoller { return nil }

func (p *idlePoller) add(*conn)                     {}
func (p *idlePoller) remove(*conn)                  {}
func (p *idlePoller) register(uintptr, *conn) error { return errNoPoller }
func (p *idlePoller) arm(uintptr, *conn) error      { return errNoPoller }

var errNoPoller = errors.New("no idle poller on this system")
