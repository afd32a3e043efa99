package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/cliflag"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

type config struct {
	server                string
	spawn, baseline, json bool
	mls, durableBaseline  bool
	tls                   bool
	accounts, devices     int
	groups, groupSize     int
	rate                  float64
	size, attachSize      int
	duration              time.Duration
	ackEvery              time.Duration
	inflight              int
	mix                   map[string]float64
	idle                  int
	idleSettle            time.Duration
	offline               int
	addrs                 int
	db                    string // with spawn: PostgreSQL for the delivery store
	nodes                 int    // with spawn and db: server processes
	p99Under              time.Duration
	searchSteps           int
}

func parseMix(s string) (map[string]float64, error) {
	m := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--mix: %q is not kind=weight", part)
		}
		switch k {
		case "direct", "group", "attach":
		default:
			return nil, fmt.Errorf("--mix: unknown kind %q (direct, group, attach)", k)
		}
		w, err := strconv.ParseFloat(v, 64)
		if err != nil || w < 0 {
			return nil, fmt.Errorf("--mix: bad weight %q", v)
		}
		m[k] = w
	}
	return m, nil
}

const usageHeader = `parley-load: a load generator for parleyd. It simulates devices speaking the
real protocol over WebSockets on loopback and reports messages sent,
acknowledged, delivered, lost and duplicated, the delivered rate, end-to-end
latency (p50/p99/p99.9), and the server's memory and CPU (--json for scripts).

Usage:
  parley-load --spawn [flags]         start a server as a child process and load it
  parley-load --server URL [flags]    load a running parleyd on loopback

Examples (the figures in docs/benchmarks.md):
  parley-load --spawn --accounts 200 --inflight 2 --duration 15s --baseline
  parley-load --spawn --accounts 200 --mls --duration 15s
  parley-load --spawn --accounts 1000 --groups 1 --group-size 1000 --mix group=1 --rate 5
  parley-load --spawn --accounts 20 --idle 19000 --duration 5s [--tls]
  parley-load --spawn --accounts 200 --offline 10000 --duration 10s
  parley-load --spawn --accounts 200 --inflight 2 --duration 10s --p99-under 100ms --baseline

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	var mix string
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	cliflag.SetUsage(fs, usageHeader, stdout, stderr)
	fs.StringVar(&cfg.server, "server", "", "`URL` of a running parleyd (loopback only)")
	fs.BoolVar(&cfg.spawn, "spawn", false, "start a server as a child process with a temporary data directory")
	fs.BoolVar(&cfg.baseline, "baseline", false, "also run the 1:1 traffic through a bare WebSocket relay and report the ratio")
	fs.BoolVar(&cfg.durableBaseline, "baseline-durable", false, "also run the 1:1 traffic through the relay made durable (each frame appended to a file and fdatasync'd, group-committed, before it is forwarded and acknowledged): what persisting costs without a database")
	fs.BoolVar(&cfg.json, "json", false, "print the report as JSON")
	fs.BoolVar(&cfg.tls, "tls", false, "with --spawn: the server speaks TLS 1.3 (a throwaway self-signed P-256 certificate, as parleyd does off loopback), to measure what TLS costs")
	fs.BoolVar(&cfg.mls, "mls", false, "devices use real MLS (RFC 9420, suite 1) groups: messages are encrypted and recipients decrypt them (default: random ciphertext prepared in advance, to measure the server alone)")
	fs.IntVar(&cfg.accounts, "accounts", 100, "accounts (1:1 conversations pair account 2k with 2k+1)")
	fs.IntVar(&cfg.devices, "devices", 1, "devices per account (extra devices are linked)")
	fs.IntVar(&cfg.groups, "groups", 0, "group conversations")
	fs.IntVar(&cfg.groupSize, "group-size", 10, "accounts per group (all their devices are members)")
	fs.Float64Var(&cfg.rate, "rate", 0, "total messages per second (0: as fast as acknowledgements allow)")
	fs.IntVar(&cfg.size, "size", 256, "message payload `bytes`")
	fs.IntVar(&cfg.attachSize, "attach-size", 64<<10, "attachment `bytes` for --mix attach")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to send")
	fs.DurationVar(&cfg.ackEvery, "ack-every", 100*time.Millisecond, "during the run each device acks what it received at most this often, as clients do (0: no acks until the final catch-up)")
	fs.IntVar(&cfg.inflight, "inflight", 1, "requests one device keeps outstanding (pipelined)")
	fs.StringVar(&mix, "mix", "direct=1", "message mix: weights of direct, group and attach (direct message after uploading an attachment)")
	fs.IntVar(&cfg.idle, "idle", 0, "extra idle authenticated connections held open during the run")
	fs.DurationVar(&cfg.idleSettle, "idle-settle", 2*time.Second, "with --idle: how long the connections idle before the server's memory is read (parleyd parks a connection after 5s without input)")
	fs.IntVar(&cfg.offline, "offline", 0, "after the run, queue this many messages for an offline device and time its drain on reconnect")
	fs.StringVar(&cfg.db, "db", "", "with --spawn: the spawned server keeps its delivery store in this PostgreSQL database (`postgres://...`, as \"parleyd serve --db\") instead of SQLite")
	fs.IntVar(&cfg.nodes, "nodes", 1, "with --spawn and --db: start this many server processes on the database, joined by a NATS server (a child process too); accounts are spread over them round robin, so a 1:1 message usually crosses nodes")
	fs.DurationVar(&cfg.p99Under, "p99-under", 0, "search for the highest rate the server delivers with p99 send->push latency under this `duration` (one saturated run, then --search-steps paced runs bisecting --rate, each on a fresh server (with --db, on the same database: give it a fresh one per command); with --baseline the relay is searched the same way; latency is measured from when each message was actually sent, so a generator that falls behind its schedule fails the probe through the delivered-rate check rather than through p99)")
	fs.IntVar(&cfg.searchSteps, "search-steps", 6, "paced runs of the --p99-under search after the saturated one")
	fs.IntVar(&cfg.addrs, "source-addrs", 8, "spread connections over this many source addresses 127.0.0.1..N")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var err error
	if cfg.mix, err = parseMix(mix); err != nil {
		fmt.Fprintln(stderr, "parley-load:", err)
		return 2
	}
	if cfg.spawn == (cfg.server != "") {
		fmt.Fprintln(stderr, "parley-load: give exactly one of --server URL and --spawn")
		return 2
	}
	if (cfg.db != "" && !cfg.spawn) || cfg.nodes < 1 || (cfg.nodes > 1 && cfg.db == "") {
		fmt.Fprintln(stderr, "parley-load: --db needs --spawn, and --nodes N > 1 needs --db (nodes share one PostgreSQL database)")
		return 2
	}
	if cfg.ackEvery < 0 {
		fmt.Fprintln(stderr, "parley-load: --ack-every must not be negative")
		return 2
	}
	if cfg.tls && (!cfg.spawn || cfg.baseline || cfg.durableBaseline) {
		fmt.Fprintln(stderr, "parley-load: --tls needs --spawn, and the relay baselines are plain WebSocket: run them without --tls")
		return 2
	}
	if cfg.mls && (cfg.baseline || cfg.durableBaseline) {
		fmt.Fprintln(stderr, "parley-load: --baseline compares the server alone with a bare relay; run it without --mls")
		return 2
	}
	if cfg.accounts < 2 || cfg.devices < 1 || cfg.size < 16 {
		fmt.Fprintln(stderr, "parley-load: need --accounts >= 2, --devices >= 1, --size >= 16")
		return 2
	}
	raiseFileLimit()
	if cfg.p99Under > 0 {
		return runSearch(ctx, cfg, stdout, stderr)
	}
	rep, err := runLoad(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "parley-load:", err)
		return 1
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.print(stdout)
	}
	return 0
}

// Report is the outcome of a run.
type Report struct {
	Payloads    string  `json:"payloads"`
	Transport   string  `json:"transport"`
	Store       string  `json:"store,omitempty"` // of a spawned server
	Nodes       int     `json:"nodes,omitempty"` // spawned server processes
	Accounts    int     `json:"accounts"`
	Devices     int     `json:"devices"`
	Connections int     `json:"connections"`
	Duration    float64 `json:"duration_seconds"`
	Sent        int64   `json:"sent"`
	Acked       int64   `json:"acknowledged"`
	Errors      int64   `json:"errors"`
	Expected    int64   `json:"expected_deliveries"`
	Delivered   int64   `json:"delivered"`
	ByFetch     int64   `json:"delivered_by_fetch"`
	Lost        int64   `json:"lost"`
	Duplicated  int64   `json:"duplicated"`
	Reordered   int64   `json:"reordered"`
	Attachments int64   `json:"attachments"`
	AckEvery    float64 `json:"ack_every_ms"`
	AcksSent    int64   `json:"acks_sent"`
	// CatchUp is how many messages the devices fetched after the run:
	// what the server still held for them, unacknowledged. With acks on
	// it stays near one ack interval's worth; the rest was trimmed from
	// the server's log during the run, as it is for real clients.
	CatchUp     int64              `json:"fetched_at_catch_up"`
	AckedPerSec float64            `json:"acknowledged_per_second"`
	DelivPerSec float64            `json:"delivered_per_second"`
	P50, P99    float64            `json:"-"`
	P999        float64            `json:"-"`
	Latency     map[string]float64 `json:"latency_ms"`
	Server      *ServerStats       `json:"server,omitempty"`
	Idle        *IdleStats         `json:"idle,omitempty"`
	Drain       *DrainStats        `json:"drain,omitempty"`
	// GeneratorCPUPerMessageUs is this process's CPU time per message
	// delivered by push during the run: the load the generator itself
	// puts on the machine it shares with the server.
	GeneratorCPUPerMessageUs float64 `json:"generator_cpu_us_per_message,omitempty"`
	Baseline                 *Report `json:"baseline,omitempty"`
	// DurableBaseline is the relay that fsyncs a log before acking
	// (--baseline-durable), and DurableRatio parleyd's rate over its.
	DurableBaseline *Report  `json:"durable_baseline,omitempty"`
	DurableRatio    float64  `json:"delivered_ratio_vs_durable_baseline,omitempty"`
	Ratio           float64  `json:"delivered_ratio_vs_baseline,omitempty"`
	FirstErrors     []string `json:"first_errors,omitempty"`
}

// ServerStats are read from /proc for a spawned server.
type ServerStats struct {
	PID        int     `json:"pid"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
	// CPU time per message delivered by push during the run.
	CPUPerMessageUs float64 `json:"cpu_us_per_message"`
}

// IdleStats measure the memory an idle authenticated connection costs.
type IdleStats struct {
	Connections  int     `json:"connections"`
	Failed       int     `json:"failed"`
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSAfterMiB  float64 `json:"rss_after_mib"`
	KiBPerConn   float64 `json:"kib_per_connection"`
	OpenSeconds  float64 `json:"open_seconds"`
	// SettleSeconds is how long the connections idled before RSSAfterMiB.
	SettleSeconds float64 `json:"settle_seconds"`
}

// DrainStats time a device catching up after being offline.
type DrainStats struct {
	Queued    int     `json:"queued"`
	Drained   int     `json:"drained"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

func (r *Report) print(w io.Writer) {
	fmt.Fprintf(w, "payloads: %s\n", r.Payloads)
	if r.Transport != "" {
		fmt.Fprintf(w, "transport: %s\n", r.Transport)
	}
	if r.Store != "" {
		fmt.Fprintf(w, "store: %s, %d node(s)\n", r.Store, r.Nodes)
	}
	fmt.Fprintf(w, "accounts %d, devices %d, connections %d, %.1fs\n", r.Accounts, r.Devices, r.Connections, r.Duration)
	fmt.Fprintf(w, "sent %d  acknowledged %d  errors %d  attachments %d\n", r.Sent, r.Acked, r.Errors, r.Attachments)
	fmt.Fprintf(w, "deliveries expected %d  delivered %d (by push %d, by fetch %d)  lost %d  duplicated %d  reordered %d\n",
		r.Expected, r.Delivered, r.Delivered-r.ByFetch, r.ByFetch, r.Lost, r.Duplicated, r.Reordered)
	if r.AckEvery > 0 {
		fmt.Fprintf(w, "receiver acks: on, at most every %.0f ms per device, %d Ack requests sent during the run; %d messages left unacknowledged for the catch-up\n", r.AckEvery, r.AcksSent, r.CatchUp)
	} else {
		fmt.Fprintf(w, "receiver acks: off during the run (--ack-every 0; only the final catch-up acks)\n")
	}
	fmt.Fprintf(w, "rate: %.0f acknowledged/s, %.0f delivered/s\n", r.AckedPerSec, r.DelivPerSec)
	fmt.Fprintf(w, "latency send->push: p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms\n", r.P50, r.P99, r.P999)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server pid %d: RSS %.1f MiB (peak %.1f), CPU %.1fs (%.0f%% of one core)\n", s.PID, s.RSSMiB, s.PeakRSSMiB, s.CPUSeconds, s.CPUPercent)
	}
	if g := r.GeneratorCPUPerMessageUs; g > 0 {
		server := "?"
		if r.Server != nil {
			server = fmt.Sprintf("%.1f", r.Server.CPUPerMessageUs)
		}
		fmt.Fprintf(w, "CPU per delivered message: server %s µs, generator %.1f µs\n", server, g)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "idle: %d connections (%d failed) opened in %.1fs; server RSS %.1f -> %.1f MiB %.0fs later = %.2f KiB per connection\n",
			i.Connections, i.Failed, i.OpenSeconds, i.RSSBeforeMiB, i.RSSAfterMiB, i.SettleSeconds, i.KiBPerConn)
	}
	if d := r.Drain; d != nil {
		fmt.Fprintf(w, "offline drain: %d of %d queued messages fetched in %.2fs = %.0f/s\n", d.Drained, d.Queued, d.Seconds, d.PerSecond)
	}
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "\nbaseline (bare WebSocket relay, no storage, no auth, same pairs/in-flight/size):\n")
		fmt.Fprintf(w, "  %.0f delivered/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, lost %d\n", b.DelivPerSec, b.P50, b.P99, b.P999, b.Lost)
		if b.Server != nil {
			fmt.Fprintf(w, "  CPU per delivered message: relay %.1f µs, generator %.1f µs\n", b.Server.CPUPerMessageUs, b.GeneratorCPUPerMessageUs)
		}
		fmt.Fprintf(w, "parleyd / relay delivered rate: %.2f\n", r.Ratio)
	}
	if b := r.DurableBaseline; b != nil {
		fmt.Fprintf(w, "\ndurable baseline (the relay, each frame fdatasync'd to a log, group-committed, before forward and ack):\n")
		fmt.Fprintf(w, "  %.0f delivered/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, lost %d\n", b.DelivPerSec, b.P50, b.P99, b.P999, b.Lost)
		if b.Server != nil {
			fmt.Fprintf(w, "  CPU per delivered message: relay %.1f µs, generator %.1f µs\n", b.Server.CPUPerMessageUs, b.GeneratorCPUPerMessageUs)
		}
		fmt.Fprintf(w, "parleyd / durable relay delivered rate: %.2f\n", r.DurableRatio)
	}
}

// stats are shared counters.
type stats struct {
	sent, acked, errs, expected, delivered, byFetch, dups, reordered, attach, acks, catchUp atomic.Int64
	mu                                                                                      sync.Mutex
	lat                                                                                     []float64 // ms
	firstEr                                                                                 []string
}

func (s *stats) err(e error) {
	s.errs.Add(1)
	s.mu.Lock()
	if len(s.firstEr) < 5 {
		s.firstEr = append(s.firstEr, e.Error())
	}
	s.mu.Unlock()
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// payload header: 8 bytes send time (unix ns); the rest was prepared in
// advance.
func stamp(p []byte) { binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano())) }

func sinceStamp(p []byte) float64 {
	if len(p) < 8 {
		return 0
	}
	return float64(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(p))) / 1e6
}

type conversation struct {
	id      []byte
	members []*device
}

type device struct {
	srv    string // URL of the server (node) it uses
	acct   int
	name   string
	key    ed25519.PrivateKey
	id     string
	token  string
	c      *wsClient
	mls    *mlsDevice // nil unless --mls
	direct *conversation
	groups []*conversation
	st     *stats

	mu   sync.Mutex
	seen map[[16]byte]struct{}
	last map[string]map[string]uint64 // highest seq pushed per conversation, per sender
	wm   map[string]*watermark
}

// watermark tracks the highest seq below which everything was seen.
type watermark struct {
	next    uint64
	pending map[uint64]bool
	acked   uint64
}

func (w *watermark) mark(seq uint64) {
	if seq < w.next {
		return
	}
	w.pending[seq] = true
	for w.pending[w.next] {
		delete(w.pending, w.next)
		w.next++
	}
}

func newDevice(acct int, name string, st *stats) *device {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &device{acct: acct, name: name, key: key, st: st, seen: map[[16]byte]struct{}{}, last: map[string]map[string]uint64{}, wm: map[string]*watermark{}}
}

func (d *device) wmFor(conv string) *watermark {
	w := d.wm[conv]
	if w == nil {
		w = &watermark{next: 1, pending: map[uint64]bool{}}
		d.wm[conv] = w
	}
	return w
}

// receive records one message delivered to d by push or fetch.
func (d *device) receive(m *parleypb.Message, byPush bool) {
	if m.Kind != parleypb.Kind_APPLICATION {
		d.mu.Lock()
		d.wmFor(string(m.ConversationId)).mark(m.Seq)
		d.mu.Unlock()
		return
	}
	var id [16]byte
	copy(id[:], m.Id)
	d.mu.Lock()
	d.wmFor(string(m.ConversationId)).mark(m.Seq)
	if m.SenderDeviceId == d.id {
		d.mu.Unlock()
		return
	}
	_, dup := d.seen[id]
	if !dup {
		d.seen[id] = struct{}{}
	}
	if byPush {
		// Order is promised per sender (pushes of different senders may
		// interleave either way).
		// (Two levels rather than one key made of both: a lookup by
		// string(bytes) allocates nothing.)
		last := d.last[string(m.ConversationId)]
		if last == nil {
			last = map[string]uint64{}
			d.last[string(m.ConversationId)] = last
		}
		if m.Seq < last[m.SenderDeviceId] {
			d.st.reordered.Add(1)
		}
		last[m.SenderDeviceId] = max(last[m.SenderDeviceId], m.Seq)
	}
	d.mu.Unlock()
	body := m.Payload
	if !dup && d.mls != nil {
		var err error
		if body, err = d.mls.decrypt(m.ConversationId, m.Payload); err != nil {
			d.st.err(fmt.Errorf("message seq %d from %s: %w", m.Seq, m.SenderDeviceId, err))
			return
		}
	}
	switch {
	case dup && byPush:
		d.st.dups.Add(1)
	case !dup:
		d.st.delivered.Add(1)
		if byPush {
			lat := sinceStamp(body)
			d.st.mu.Lock()
			d.st.lat = append(d.st.lat, lat)
			d.st.mu.Unlock()
		} else {
			d.st.byFetch.Add(1)
		}
	}
}

func (d *device) onPush(p *parleypb.Push) {
	if m := p.GetMessage(); m != nil {
		d.receive(m, true)
	}
}

func (d *device) connect(ctx context.Context, dl *dialers, server string) error {
	c, err := dial(ctx, dl.pick(), server, d.onPush)
	if err != nil {
		return err
	}
	s, err := c.authenticate(ctx, d.key)
	if err != nil {
		c.close()
		return err
	}
	d.c, d.token = c, s.BlobToken
	return nil
}

// parallel runs fn(i) for i < n on up to workers goroutines and returns
// the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

type world struct {
	cfg     config
	server  string
	dl      *dialers
	st      *stats
	accts   [][]*device
	all     []*device
	convs   []*conversation
	proc    int // pid of a spawned server (the first, with --nodes), 0 if none
	servers []string
	procs   []int // every spawned server process
	payload []byte
	attach  []byte
}

func runLoad(ctx context.Context, cfg config, progress io.Writer) (*Report, error) {
	w := &world{cfg: cfg, server: cfg.server, dl: newDialers(cfg.addrs, nil), st: &stats{}}
	w.payload = randBytes(cfg.size)
	w.attach = randBytes(cfg.attachSize)
	if cfg.spawn {
		mode := "internal-serve"
		if cfg.tls {
			mode = "internal-serve-tls"
		}
		var env []string
		if cfg.db != "" {
			env = append(env, envDB+"="+cfg.db)
		}
		if cfg.nodes > 1 {
			nats, err := spawn("internal-nats", nil)
			if err != nil {
				return nil, err
			}
			defer nats.stop()
			env = append(env, envNATS+"=nats://"+strings.TrimPrefix(nats.url, "http://"))
			fmt.Fprintf(progress, "spawned NATS (pid %d) at %s\n", nats.pid(), nats.url)
		}
		for range cfg.nodes {
			ch, err := spawn(mode, env)
			if err != nil {
				return nil, err
			}
			defer ch.stop()
			w.servers, w.procs = append(w.servers, ch.url), append(w.procs, ch.pid())
			if ch.tls != nil {
				w.dl = newDialers(cfg.addrs, ch.tls)
			}
			fmt.Fprintf(progress, "spawned parleyd (pid %d, data %s) at %s\n", ch.pid(), ch.dir, ch.url)
		}
		w.server, w.proc = w.servers[0], w.procs[0]
	} else {
		w.servers = []string{w.server}
	}
	fmt.Fprintf(progress, "setting up %d accounts x %d devices...\n", cfg.accounts, cfg.devices)
	t0 := time.Now()
	if err := w.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(progress, "setup done in %.1fs\n", time.Since(t0).Seconds())
	payloads := "pre-generated random ciphertext (no MLS), 8-byte send timestamp"
	if cfg.mls {
		payloads = fmt.Sprintf("real MLS (RFC 9420, suite %d): %d-byte plaintexts encrypted per message, counted delivered once decrypted", mlsSuite, cfg.size)
	}
	rep := &Report{Payloads: payloads, Accounts: cfg.accounts, Devices: len(w.all), Transport: "WebSocket over plain TCP (loopback)"}
	if cfg.tls {
		rep.Transport = "WebSocket over TLS 1.3 (self-signed P-256 certificate, loopback)"
	}
	if cfg.spawn {
		rep.Store, rep.Nodes = "SQLite (group commit, synchronous=FULL)", len(w.procs)
		if cfg.db != "" {
			rep.Store = "PostgreSQL (pgstore)"
			if len(w.procs) > 1 {
				rep.Store += ", nodes joined by NATS"
			}
		}
	}
	var idleConns []*wsClient
	if cfg.idle > 0 {
		idle, conns, err := w.openIdle(ctx, progress)
		if err != nil {
			return nil, err
		}
		rep.Idle, idleConns = idle, conns
		defer func() {
			for _, c := range idleConns {
				c.close()
			}
		}()
	}
	rep.Connections = len(w.all) + len(idleConns)
	var before procStats
	if w.proc != 0 {
		before = readProcs(w.procs)
	}
	genBefore := selfCPU()
	elapsed := w.traffic(ctx, progress)
	genCPU := selfCPU() - genBefore
	// The server's CPU is read before the final catch-up, so that it
	// covers the traffic phase alone, as the generator's does.
	var after procStats
	if w.proc != 0 {
		after = readProcs(w.procs)
	}
	w.catchUp(ctx)
	w.st.fill(rep, elapsed)
	rep.GeneratorCPUPerMessageUs = perMessageUs(genCPU, rep)
	rep.AckEvery = float64(cfg.ackEvery) / float64(time.Millisecond)
	if w.proc != 0 {
		cpu := after.CPU - before.CPU
		rep.Server = &ServerStats{PID: w.proc, RSSMiB: float64(after.RSSKiB) / 1024, PeakRSSMiB: float64(after.HWMKiB) / 1024,
			CPUSeconds: cpu.Seconds(), CPUPercent: 100 * cpu.Seconds() / elapsed.Seconds(), CPUPerMessageUs: perMessageUs(cpu, rep)}
	}
	if cfg.offline > 0 {
		d, err := w.drain(ctx, progress)
		if err != nil {
			return nil, fmt.Errorf("offline drain: %w", err)
		}
		rep.Drain = d
	}
	for _, d := range w.all {
		d.c.close()
	}
	if cfg.baseline {
		b, err := runRelay(ctx, cfg, progress, false)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = b
		if b.DelivPerSec > 0 {
			rep.Ratio = rep.DelivPerSec / b.DelivPerSec
		}
	}
	if cfg.durableBaseline {
		b, err := runRelay(ctx, cfg, progress, true)
		if err != nil {
			return nil, fmt.Errorf("durable baseline: %w", err)
		}
		rep.DurableBaseline = b
		if b.DelivPerSec > 0 {
			rep.DurableRatio = rep.DelivPerSec / b.DelivPerSec
		}
	}
	return rep, nil
}

// perMessageUs divides a CPU time by the messages delivered by push.
func perMessageUs(cpu time.Duration, rep *Report) float64 {
	if n := rep.Delivered - rep.ByFetch; n > 0 {
		return float64(cpu.Microseconds()) / float64(n)
	}
	return 0
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *stats) fill(rep *Report, elapsed time.Duration) {
	rep.Duration = elapsed.Seconds()
	rep.Sent, rep.Acked, rep.Errors = s.sent.Load(), s.acked.Load(), s.errs.Load()
	rep.Expected, rep.Delivered, rep.ByFetch = s.expected.Load(), s.delivered.Load(), s.byFetch.Load()
	rep.Lost = max(0, rep.Expected-rep.Delivered)
	rep.Duplicated, rep.Reordered, rep.Attachments = s.dups.Load(), s.reordered.Load(), s.attach.Load()
	rep.AcksSent = s.acks.Load()
	rep.CatchUp = s.catchUp.Load()
	rep.AckedPerSec = float64(rep.Acked) / elapsed.Seconds()
	rep.DelivPerSec = float64(rep.Delivered-rep.ByFetch) / elapsed.Seconds()
	s.mu.Lock()
	slices.Sort(s.lat)
	rep.P50, rep.P99, rep.P999 = percentile(s.lat, 0.5), percentile(s.lat, 0.99), percentile(s.lat, 0.999)
	rep.FirstErrors = s.firstEr
	s.mu.Unlock()
	rep.Latency = map[string]float64{"p50": rep.P50, "p99": rep.P99, "p99.9": rep.P999}
}

func (w *world) setup(ctx context.Context) error {
	cfg := w.cfg
	run := randBytes(3)
	w.accts = make([][]*device, cfg.accounts)
	// Register every account's first device.
	err := parallel(cfg.accounts, 32, func(i int) error {
		d := newDevice(i, fmt.Sprintf("l%x-%d", run, i), w.st)
		d.srv = w.servers[i%len(w.servers)]
		c, err := dial(ctx, w.dl.pick(), d.srv, d.onPush)
		if err != nil {
			return err
		}
		s, err := c.register(ctx, d.name, d.key)
		if err != nil {
			return fmt.Errorf("register %s: %w", d.name, err)
		}
		d.c, d.id, d.token = c, s.DeviceId, s.BlobToken
		w.accts[i] = []*device{d}
		return nil
	})
	if err != nil {
		return err
	}
	// Link the other devices.
	if cfg.devices > 1 {
		err = parallel(cfg.accounts, 32, func(i int) error {
			first := w.accts[i][0]
			for range cfg.devices - 1 {
				d := newDevice(i, first.name, w.st)
				d.srv = first.srv
				c, err := dial(ctx, w.dl.pick(), d.srv, d.onPush)
				if err != nil {
					return err
				}
				r, err := c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_RequestLink{RequestLink: &parleypb.RequestLinkRequest{
					Username: d.name, PublicKey: d.key.Public().(ed25519.PublicKey), Signature: c.sign(d.key, wire.PurposeLink)}}})
				if err != nil {
					return fmt.Errorf("request link: %w", err)
				}
				if _, err := first.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_ApproveLink{ApproveLink: &parleypb.ApproveLinkRequest{Code: r.GetRequestLink().Code}}}); err != nil {
					return fmt.Errorf("approve link: %w", err)
				}
				s, err := c.authenticate(ctx, d.key)
				if err != nil {
					return err
				}
				d.c, d.id, d.token = c, s.DeviceId, s.BlobToken
				w.accts[i] = append(w.accts[i], d)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, a := range w.accts {
		w.all = append(w.all, a...)
	}
	if cfg.mls {
		for _, d := range w.all {
			m, err := newMLSDevice(d.id)
			if err != nil {
				return err
			}
			d.mls = m
		}
	}
	// 1:1 conversations between accounts 2k and 2k+1.
	var plans [][]*device
	for i := 0; i+1 < cfg.accounts; i += 2 {
		plans = append(plans, slices.Concat(w.accts[i], w.accts[i+1]))
	}
	direct := len(plans)
	for g := range cfg.groups {
		var m []*device
		for j := range min(cfg.groupSize, cfg.accounts) {
			m = append(m, w.accts[(g*cfg.groupSize+j)%cfg.accounts]...)
		}
		plans = append(plans, m)
	}
	w.convs = make([]*conversation, len(plans))
	err = parallel(len(plans), 16, func(i int) error {
		cv := &conversation{id: randBytes(16), members: plans[i]}
		creator := cv.members[0]
		if _, err := creator.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: cv.id}}}); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		var added []string
		for _, m := range cv.members[1:] {
			added = append(added, m.id)
		}
		commit, welcome := randBytes(cfg.size), randBytes(cfg.size)
		if cfg.mls {
			var err error
			if commit, welcome, err = createMLSGroup(cv); err != nil {
				return err
			}
		}
		r, err := creator.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{
			MessageId: randBytes(16), ConversationId: cv.id, Epoch: 0, Kind: parleypb.Kind_COMMIT,
			Payload: commit, AddedDeviceIds: added, Welcome: welcome}}})
		if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		// The creator is not pushed its own commit: without marking it
		// here its watermark would stay below the commit's seq, it would
		// never acknowledge, and nothing in the conversation would be
		// trimmed during the run (as no real client behaves).
		creator.mu.Lock()
		creator.wmFor(string(cv.id)).mark(r.GetSend().Seq)
		creator.mu.Unlock()
		w.convs[i] = cv
		return nil
	})
	if err != nil {
		return err
	}
	for i, cv := range w.convs {
		for _, m := range cv.members {
			if i < direct {
				m.direct = cv
			} else {
				m.groups = append(m.groups, cv)
			}
		}
	}
	return nil
}

// openIdle opens cfg.idle authenticated connections that then do nothing,
// and measures the server's resident memory before and after.
func (w *world) openIdle(ctx context.Context, progress io.Writer) (*IdleStats, []*wsClient, error) {
	n := w.cfg.idle
	st := &IdleStats{Connections: n}
	if w.proc != 0 {
		time.Sleep(time.Second)
		p, _ := readProc(w.proc)
		st.RSSBeforeMiB = float64(p.RSSKiB) / 1024
	}
	// Idle devices belong to a pool of accounts (several connections per
	// device are allowed), so registering does not dominate the setup.
	pool := make([]*device, min(n, 200))
	err := parallel(len(pool), 32, func(i int) error {
		d := newDevice(-1, fmt.Sprintf("idle%x-%d", randBytes(3), i), w.st)
		c, err := dial(ctx, w.dl.pick(), w.server, nil)
		if err != nil {
			return err
		}
		defer c.close()
		if _, err := c.register(ctx, d.name, d.key); err != nil {
			return err
		}
		pool[i] = d
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("idle accounts: %w", err)
	}
	conns := make([]*wsClient, n)
	var failed, opened atomic.Int64
	start := time.Now()
	stopProgress := ticker(progress, 5*time.Second, func() string {
		return fmt.Sprintf("idle connections: %d open, %d failed", opened.Load(), failed.Load())
	})
	parallel(n, 64, func(i int) error {
		d := pool[i%len(pool)]
		c, err := dial(ctx, w.dl.pick(), w.server, nil)
		if err == nil {
			if _, err = c.authenticate(ctx, d.key); err != nil {
				c.close()
			}
		}
		if err != nil {
			if failed.Add(1) == 1 {
				fmt.Fprintf(progress, "idle connection failed: %v\n", err)
			}
			return nil
		}
		conns[i] = c
		opened.Add(1)
		return nil
	})
	stopProgress()
	st.OpenSeconds = time.Since(start).Seconds()
	st.Failed = int(failed.Load())
	conns = slices.DeleteFunc(conns, func(c *wsClient) bool { return c == nil })
	if w.proc != 0 {
		time.Sleep(w.cfg.idleSettle)
		st.SettleSeconds = w.cfg.idleSettle.Seconds()
		p, _ := readProc(w.proc)
		st.RSSAfterMiB = float64(p.RSSKiB) / 1024
		if len(conns) > 0 {
			st.KiBPerConn = (st.RSSAfterMiB - st.RSSBeforeMiB) * 1024 / float64(len(conns))
		}
	}
	return st, conns, nil
}

func ticker(out io.Writer, every time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(out, line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// traffic runs the senders for cfg.duration and returns the time from
// the first send until the last acknowledged send's pushes had a
// moment to arrive.
func (w *world) traffic(ctx context.Context, progress io.Writer) time.Duration {
	cfg := w.cfg
	senders := w.all
	var kinds []string
	var weights []float64
	total := 0.0
	for _, k := range []string{"direct", "group", "attach"} {
		if cfg.mix[k] > 0 {
			kinds = append(kinds, k)
			weights = append(weights, cfg.mix[k])
			total += cfg.mix[k]
		}
	}
	if cfg.mix["group"] > 0 && cfg.mix["direct"] == 0 && cfg.mix["attach"] == 0 {
		senders = slices.DeleteFunc(slices.Clone(senders), func(d *device) bool { return len(d.groups) == 0 })
	}
	if len(senders) == 0 || len(kinds) == 0 {
		return time.Millisecond
	}
	pick := func() string {
		x := mrand.Float64() * total
		for i, wgt := range weights {
			if x < wgt {
				return kinds[i]
			}
			x -= wgt
		}
		return kinds[len(kinds)-1]
	}
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	stopProgress := ticker(progress, 5*time.Second, func() string {
		el := time.Since(start).Seconds()
		return fmt.Sprintf("%5.0fs sent %d acked %d delivered %d (%.0f/s) errors %d", el,
			w.st.sent.Load(), w.st.acked.Load(), w.st.delivered.Load(), float64(w.st.delivered.Load())/el, w.st.errs.Load())
	})
	stopAcks := w.startAckers(ctx)
	var wg sync.WaitGroup
	var lastAck atomic.Int64
	for si, d := range senders {
		var interval time.Duration
		if cfg.rate > 0 {
			interval = time.Duration(float64(len(senders)) / cfg.rate * float64(time.Second))
		}
		for lane := range cfg.inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var sc sendScratch
				next := time.Now().Add(time.Duration(si+lane*7) * interval / time.Duration(len(senders)+1))
				for time.Now().Before(deadline) {
					if interval > 0 {
						if next.After(deadline) {
							return
						}
						if wait := time.Until(next); wait > 0 {
							time.Sleep(wait)
						}
						next = next.Add(interval * time.Duration(cfg.inflight))
						if time.Now().After(deadline) {
							return
						}
					}
					if err := w.sendOne(ctx, d, pick(), &sc); err != nil {
						w.st.err(err)
						if errors.Is(err, errClosed) {
							return
						}
						continue
					}
					lastAck.Store(time.Now().UnixNano())
				}
			}()
		}
	}
	wg.Wait()
	stopProgress()
	// Let the last pushes arrive (and be acknowledged).
	time.Sleep(time.Second)
	stopAcks()
	end := time.Unix(0, lastAck.Load())
	if end.Before(start) {
		end = time.Now()
	}
	return end.Sub(start)
}

// startAckers starts, for every device, the loop that acknowledges what
// it received, as client/sync.go does after processing messages: at most
// every cfg.ackEvery, one Ack per conversation with the highest seq below
// which everything was seen. It runs beside the connection's read loop,
// so a slow Ack never holds up pushes. stop waits for the loops to end.
func (w *world) startAckers(ctx context.Context) (stop func()) {
	if w.cfg.ackEvery <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range w.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the devices' ticks over the interval.
			first := time.NewTimer(time.Duration(mrand.Int64N(int64(w.cfg.ackEvery))))
			select {
			case <-done:
				first.Stop()
				return
			case <-first.C:
			}
			t := time.NewTicker(w.cfg.ackEvery)
			defer t.Stop()
			for {
				if err := d.ackReceived(ctx); err != nil {
					w.st.err(fmt.Errorf("ack: %w", err))
					if errors.Is(err, errClosed) {
						return
					}
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// ackReceived sends one Ack per conversation whose contiguous watermark
// moved since the last Ack.
func (d *device) ackReceived(ctx context.Context) error {
	type ack struct {
		conv string
		seq  uint64
	}
	var todo []ack
	d.mu.Lock()
	for conv, wm := range d.wm {
		if seq := wm.next - 1; seq > wm.acked {
			todo = append(todo, ack{conv, seq})
		}
	}
	d.mu.Unlock()
	for _, a := range todo {
		if _, err := d.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ack{Ack: &parleypb.AckRequest{ConversationId: []byte(a.conv), Seq: a.seq}}}); err != nil {
			return err
		}
		d.st.acks.Add(1)
		d.mu.Lock()
		wm := d.wmFor(a.conv)
		wm.acked = max(wm.acked, a.seq)
		d.mu.Unlock()
	}
	return nil
}

// sendScratch is what one sending lane reuses from message to message:
// the request (encoded and copied out before call returns) and its
// payload and id buffers.
type sendScratch struct {
	frame   parleypb.ClientFrame
	body    parleypb.ClientFrame_Send
	req     parleypb.SendRequest
	id      [16]byte
	payload []byte
}

func (w *world) sendOne(ctx context.Context, d *device, kind string, sc *sendScratch) error {
	cv := d.direct
	switch kind {
	case "group":
		if len(d.groups) > 0 {
			cv = d.groups[int(time.Now().UnixNano())%len(d.groups)]
		}
	case "attach":
		id, err := w.upload(ctx, d)
		if err != nil {
			return fmt.Errorf("attachment: %w", err)
		}
		w.st.attach.Add(1)
		_ = id // a real client would put the id and key inside the MLS message
	}
	if cv == nil {
		return nil
	}
	p, epoch, err := w.messagePayload(d, cv, sc.payload)
	if err != nil {
		return err
	}
	if d.mls == nil {
		sc.payload = p
	}
	rand.Read(sc.id[:])
	// As Parley's clients do: the first-send time keys the server's
	// idempotency record next to the other new ones (docs/protocol.md).
	sc.req = parleypb.SendRequest{MessageId: sc.id[:], ConversationId: cv.id, Epoch: epoch, Kind: parleypb.Kind_APPLICATION, Payload: p,
		FirstSentUnixMs: uint64(time.Now().UnixMilli())}
	sc.body.Send = &sc.req
	sc.frame = parleypb.ClientFrame{Body: &sc.body}
	w.st.sent.Add(1)
	r, err := d.c.call(ctx, &sc.frame)
	if err != nil {
		return err
	}
	w.st.acked.Add(1)
	w.st.expected.Add(int64(len(cv.members) - 1))
	d.mu.Lock()
	d.wmFor(string(cv.id)).mark(r.GetSend().Seq)
	d.mu.Unlock()
	return nil
}

// messagePayload is what d sends to cv: the prepared payload stamped
// with the send time, or with --mls that stamp and filler up to --size
// encrypted in d's group.
//
// Without MLS the payload is built in buf (reused by the caller once the
// request is written).
func (w *world) messagePayload(d *device, cv *conversation, buf []byte) (payload []byte, epoch uint64, err error) {
	if d.mls == nil {
		p := append(buf[:0], w.payload...)
		stamp(p)
		return p, 1, nil
	}
	pt := make([]byte, w.cfg.size)
	stamp(pt)
	return d.mls.encrypt(cv.id, pt)
}

func (w *world) upload(ctx context.Context, d *device) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(d.srv, "/")+wire.PathBlobs, bytes.NewReader(w.attach))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := w.dl.pick().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("upload: %s", resp.Status)
	}
	return out.ID, json.NewDecoder(resp.Body).Decode(&out)
}

// catchUp has every device fetch what it has not seen (messages whose
// push was missed), acknowledging as it goes, as a reconnecting client
// would.
func (w *world) catchUp(ctx context.Context) {
	parallel(len(w.all), 32, func(i int) error {
		d := w.all[i]
		convs := slices.Clone(d.groups)
		if d.direct != nil {
			convs = append(convs, d.direct)
		}
		for _, cv := range convs {
			if err := d.fetchAll(ctx, cv.id, func(*parleypb.Message) { w.st.catchUp.Add(1) }); err != nil {
				w.st.err(fmt.Errorf("catch up: %w", err))
			}
		}
		return nil
	})
}

// fetchAll fetches and acks a conversation until nothing is left; each
// message goes to d.receive and, if not nil, count.
func (d *device) fetchAll(ctx context.Context, conv []byte, count func(*parleypb.Message)) error {
	for {
		r, err := d.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Fetch{Fetch: &parleypb.FetchRequest{ConversationId: conv, Limit: wire.MaxFetchLimit}}})
		if err != nil {
			return err
		}
		f := r.GetFetch()
		for _, m := range f.Messages {
			d.receive(m, false)
			if count != nil {
				count(m)
			}
		}
		if len(f.Messages) > 0 {
			seq := f.Messages[len(f.Messages)-1].Seq
			if _, err := d.c.call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ack{Ack: &parleypb.AckRequest{ConversationId: conv, Seq: seq}}}); err != nil {
				return err
			}
		}
		if !f.More {
			return nil
		}
	}
}

// drain disconnects account 1's devices, queues cfg.offline messages from
// account 0 into their conversation, then reconnects one device of
// account 1 and times how long fetching and acknowledging them takes.
func (w *world) drain(ctx context.Context, progress io.Writer) (*DrainStats, error) {
	sender, peer := w.accts[0][0], w.accts[1][0]
	cv := sender.direct
	for _, d := range w.accts[1] {
		d.c.close()
	}
	fmt.Fprintf(progress, "queueing %d messages for an offline device...\n", w.cfg.offline)
	// Several connections of the sending device, so queueing is not
	// limited by one connection's round trips.
	const lanes = 16
	var conns []*wsClient
	for range lanes {
		c, err := dial(ctx, w.dl.pick(), sender.srv, nil)
		if err != nil {
			return nil, err
		}
		if _, err := c.authenticate(ctx, sender.key); err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	queued := make(map[[16]byte]bool)
	var mu sync.Mutex
	err := parallel(w.cfg.offline, lanes, func(i int) error {
		id := randBytes(16)
		p, epoch, err := w.messagePayload(sender, cv, nil)
		if err != nil {
			return err
		}
		_, err = conns[i%lanes].call(ctx, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{
			MessageId: id, ConversationId: cv.id, Epoch: epoch, Kind: parleypb.Kind_APPLICATION, Payload: p,
			FirstSentUnixMs: uint64(time.Now().UnixMilli())}}})
		if err == nil {
			mu.Lock()
			queued[[16]byte(id)] = true
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := peer.connect(ctx, w.dl, peer.srv); err != nil {
		return nil, err
	}
	drained := 0
	if err := peer.fetchAll(ctx, cv.id, func(m *parleypb.Message) {
		if queued[[16]byte(m.Id)] {
			drained++
		}
	}); err != nil {
		return nil, err
	}
	el := time.Since(start)
	peer.c.close()
	return &DrainStats{Queued: len(queued), Drained: drained, Seconds: el.Seconds(), PerSecond: float64(drained) / el.Seconds()}, nil
}
