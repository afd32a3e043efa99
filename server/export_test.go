package server

import (
	"errors"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// OutboundQueuePeak returns the most bytes the server ever queued for one
// connection, for tests of the outbound bound (Config.OutboundBytes).
func (s *Server) OutboundQueuePeak() int64 { return s.queuePeak.Load() }

// SlowClientsDisconnected returns how many connections were closed
// because their outbound queue was full.
func (s *Server) SlowClientsDisconnected() int {
	var m dto.Metric
	if err := s.metrics.slowClients.Write(&m); err != nil {
		panic(err)
	}
	return int(m.GetCounter().GetValue())
}

// BlobTokenFor makes a blob token for device under key, expiring after
// ttl, as a node with that key would issue it (tests forge with it).
func BlobTokenFor(key []byte, device string, ttl time.Duration) string {
	return newTokens(key, nil).issue(device, ttl)
}

// KeepConnGoroutines makes s serve every connection on a goroutine of
// its own, as on systems without the idle poller; call before Serve.
func KeepConnGoroutines(s *Server) { s.noIdlePoller = true }

// OpenConnections returns how many WebSocket connections the server has
// not yet forgotten.
func OpenConnections(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// SetParkAfter sets how long a reader waits for input before it parks
// its connection on the idle poller, and returns the previous value.
func SetParkAfter(d time.Duration) time.Duration {
	old := parkAfter
	parkAfter = d
	return old
}

// RefuseParking makes every attempt of s to park a connection on the
// idle poller fail as a refusal by the kernel would; call before Serve.
func RefuseParking(s *Server) { s.refuseArms = errors.New("test: the poller refuses") }

// CheckSessions runs one session check now (sessions.go).
func CheckSessions(s *Server) { s.checkSessions(s.sweepCtx) }

// CheckSessionsOneByOne runs a session check that looks each device (and
// its account's sanction) up with a query of its own, as the check did
// before it was batched: the baseline of BenchmarkSessionCheck.
func CheckSessionsOneByOne(s *Server) {
	for _, id := range s.hub.devices() {
		s.endSessions(s.sweepCtx, id)
	}
}

// SetBeforeHubAdd makes every sign-in on a server made with cfg run f
// after its device was found and before the server would end its
// session.
func SetBeforeHubAdd(cfg *Config, f func()) { cfg.beforeHubAdd = f }
