package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections    prometheus.Gauge
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	messages       *prometheus.CounterVec
	pushes         prometheus.Counter
	slowClients    prometheus.Counter
	blobBytes      *prometheus.CounterVec
	expired        prometheus.Counter
	disappeared    prometheus.Counter
	refusedConns   prometheus.Counter
	authTimeouts   prometheus.Counter
	rateLimited    *prometheus.CounterVec
	storageErrors  prometheus.Counter
	ktEpochs       prometheus.Counter
	sessionsEnded  *prometheus.CounterVec
	blobRedirects  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parleyd_websocket_connections", Help: "Open WebSocket connections."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_requests_total", Help: "Requests by type and result code."}, []string{"type", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parleyd_request_duration_seconds", Help: "Request handling time by type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"type"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_messages_stored_total", Help: "Messages appended to conversation logs, by kind."}, []string{"kind"}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_pushes_total", Help: "Push frames queued to online devices."}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_slow_client_disconnects_total", Help: "Connections closed because their outbound queue was full."}),
		blobBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_blob_bytes_total", Help: "Attachment bytes uploaded and downloaded."}, []string{"direction"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_retention_deleted_total", Help: "Records and blobs deleted by the retention sweeper."}),
		disappeared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_disappeared_deleted_total", Help: "Disappearing messages and blobs deleted at their expiry."}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_refused_connections_total", Help: "WebSocket upgrades refused because too many connections were unauthenticated."}),
		authTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_auth_timeouts_total", Help: "Connections closed for not authenticating in time."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_rate_limited_total", Help: "Requests refused with RATE_LIMITED by limit; limit=\"paced\" counts requests delayed (not refused) by the per-account pacing, limit=\"disconnected\" connections closed for refused requests in a row."}, []string{"limit"}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_storage_unavailable_total", Help: "Requests refused with STORAGE_UNAVAILABLE (disk full, read-only, I/O error)."}),
		ktEpochs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_kt_epochs_total", Help: "Key transparency epochs published."}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_sessions_ended_total", Help: "Authenticated connections ended (or requests refused) because the store no longer backs their session, by why: device_removed, account_deleted or sanction_changed, found by a request, a recheck notice or the periodic session check."}, []string{"why"}),
		blobRedirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parleyd_blob_download_redirects_total", Help: "Attachment downloads answered with a redirect to a pre-signed URL of the object store (their bytes are not in parleyd_blob_bytes_total)."}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.requests, m.requestSeconds, m.messages, m.pushes, m.slowClients, m.blobBytes, m.expired, m.disappeared, m.refusedConns, m.authTimeouts, m.rateLimited, m.storageErrors, m.ktEpochs, m.sessionsEnded, m.blobRedirects} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return m, nil
}
