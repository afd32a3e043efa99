package server

import (
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
