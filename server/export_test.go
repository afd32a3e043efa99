package server

import dto "github.com/prometheus/client_model/go"

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
