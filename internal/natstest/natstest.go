// Package natstest gives tests a NATS server of their own: an embedded
// github.com/nats-io/nats-server/v2 on a random loopback port, stopped
// when the test ends (as parleyd's own "parleyd nats" runs it).
package natstest

import (
	"net"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Server is a running NATS server; Restart replaces it with a new one
// on the same port (an outage and a recovery).
type Server struct {
	t    testing.TB
	port int

	mu sync.Mutex
	ns *natsserver.Server
}

// Start starts a NATS server and returns its client URL.
func Start(t testing.TB) string { return StartServer(t).ClientURL() }

// StartServer starts a NATS server, stopped when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, port: natsserver.RANDOM_PORT}
	s.start()
	s.port = s.ns.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: s.port, NoSigs: true, NoLog: true})
	if err != nil {
		s.t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		s.t.Fatal("natstest: the NATS server did not start")
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
}

// ClientURL is the server's nats:// URL (the same across restarts).
func (s *Server) ClientURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart starts a new server on the port of the stopped one.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}
