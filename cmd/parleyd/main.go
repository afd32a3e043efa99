// Command parleyd is Parley's delivery server. It stores and forwards
// end-to-end encrypted MLS messages it cannot read.
//
//	parleyd serve [flags]          run the server
//	parleyd admin invite [flags]   create a registration invite code
//
// Every flag can also be set by an environment variable (PARLEY_DATA,
// PARLEY_LISTEN, ...); a flag on the command line wins.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/hashing/variants"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/buildinfo"
	"github.com/parleychat/parley/internal/datadir"
	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/admincmd"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/natsbus"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/pgstore"
	"github.com/parleychat/parley/store/sqlitestore"
	"github.com/parleychat/parley/web"
)

const usage = `parleyd is Parley's delivery server: it stores and forwards end-to-end
encrypted messages it cannot read.

Usage:
  parleyd serve [flags]          run the server (default: http://127.0.0.1:7867, data in ./parley-data)
  parleyd admin invite [flags]   create a registration invite code and print it
  parleyd admin lists ...        import, list, remove, export, publish and sync
                                 hash lists (banks) for public channels
  parleyd admin takedowns ...    list moderation decisions; approve or reject
                                 posts held for review
  parleyd admin legal ...        record lawful requests, answer them from what the
                                 server holds, preserve, publish (docs/lawful-requests.md)
  parleyd admin cases ...        abuse report cases: list, show (with each message's proof), decide
  parleyd admin moderators ...   web console accounts (serve --admin-listen): add, list
  parleyd admin channel-media move --to s3://...
                                 move channel media held in the database to the
                                 object store of serve --channel-media
  parleyd admin transparency-report --period 2026H2
                                 write the public transparency report
  parleyd nats --listen ADDR      run an embedded NATS server for several parleyd nodes (--nats)
  parleyd audit --server URL --key FILE
                                 audit a server's key transparency log and
                                 cosign its checkpoints ("parleyd audit --help")
  parleyd version                print the version (and the commit it was built from)

Run "parleyd serve --help", "parleyd admin invite --help",
"parleyd admin lists --help" or "parleyd admin takedowns --help" for the flags.
Every flag can also be given as an environment variable, e.g. --data as
PARLEY_DATA and --max-frame as PARLEY_MAX_FRAME. The admin commands work on
the data directory of a server (--data DIR or PARLEY_DATA, default
./parley-data) and never create one: only "parleyd serve" does.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "nats":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runNATS(ctx, args[1:], stdout, stderr)
	case "audit":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return audit(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "parleyd "+buildinfo.String())
		return 0
	case "admin":
		if len(args) > 1 {
			switch args[1] {
			case "invite":
				return adminInvite(ctx, args[2:], stdout, stderr)
			case "legal":
				return adminLegal(ctx, args[2:], stdout, stderr)
			case "transparency-report":
				return adminReport(ctx, args[2:], stdout, stderr)
			case "cases":
				return adminCases(ctx, args[2:], stdout, stderr)
			case "moderators":
				return adminModerators(ctx, args[2:], stdout, stderr)
			case "channel-media":
				return adminChannelMedia(ctx, args[2:], stdout, stderr)
			case "lists", "takedowns":
				w, rest := adminWhere(args[1:])
				return admincmd.Run(w, rest, stdout, stderr)
			}
		}
		fmt.Fprint(stderr, "parleyd admin: unknown command; try \"parleyd admin invite|lists|takedowns|legal|transparency-report|cases|moderators|channel-media\"\n")
		return 2
	}
	fmt.Fprintf(stderr, "parleyd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// adminWhere takes the --data and --db flags (or PARLEY_DATA, PARLEY_DB)
// out of the admin arguments, defaulting like serve does, and returns the
// rest.
func adminWhere(args []string) (w channelsrv.Where, rest []string) {
	w.Data, w.DB = os.Getenv("PARLEY_DATA"), os.Getenv("PARLEY_DB")
	if w.Data == "" {
		w.Data = "parley-data"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "--data" || a == "-data") && i+1 < len(args):
			w.Data = args[i+1]
			i++
		case strings.HasPrefix(a, "--data=") || strings.HasPrefix(a, "-data="):
			w.Data = a[strings.Index(a, "=")+1:]
		case (a == "--db" || a == "-db") && i+1 < len(args):
			w.DB = args[i+1]
			i++
		case strings.HasPrefix(a, "--db=") || strings.HasPrefix(a, "-db="):
			w.DB = a[strings.Index(a, "=")+1:]
		default:
			rest = append(rest, a)
		}
	}
	return w, rest
}

// envFlags applies PARLEY_<NAME> environment variables to the flags not
// given on the command line.
func envFlags(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "PARLEY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s\n\nFlags (each also settable as PARLEY_<FLAG>, e.g. --max-frame as PARLEY_MAX_FRAME):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

type serveFlags struct {
	data, db, blobs, listen, tlsCert, tlsKey string
	registration, logFormat                  string
	nats                                     string
	logLevel                                 slog.Level
	retention, shutdownTimeout               time.Duration
	// sessionCheck is how often connected devices are looked up again
	// (--session-check).
	sessionCheck time.Duration
	// caseRetention is how long a decided moderation case keeps what
	// reporters sent (--case-retention).
	caseRetention           time.Duration
	maxAttachment, maxFrame int64
	abuse                   abuseFlags
	kt                      ktFlags
	// listPoll is how often hash-list changes are polled for when no
	// request applies them first (0: the default). Not a flag: tests set
	// it to an hour so that the poll cannot hide a check that misses a
	// change.
	listPoll time.Duration
	// feedPoll is how often a channel feed long-poll reads the store
	// without a notice (0: the default). Not a flag: a test sets it to an
	// hour so that only a NATS notice can wake a follower.
	feedPoll time.Duration
	// adminListen serves the moderators' web console (--admin-listen);
	// adminReady, if not nil, receives its address (tests).
	adminListen string
	adminReady  chan<- string
	// Videos on public channels (docs/channels.md "Videos").
	ffmpeg, ffprobe string
	maxVideo        int64
	videoMinFrames  int
	videoBorders    bool
	imageVariants   string
	// blobsCredentials is the S3 credentials file of an s3:// --blobs
	// (and --channel-media).
	blobsCredentials string
	// channelMedia is where public channels' media files go: an s3://
	// URL, or "" for the channels database.
	channelMedia string
	// webDirect is the web origin whose web client moves attachments to
	// and from --blobs' bucket itself (--web-direct-transfers).
	webDirect   string
	memoryLimit memoryLimitFlag
}

// abuseFlags are the limits that keep one account from taking others off
// the service (docs/abuse.md), and where operators read metrics.
type abuseFlags struct {
	maxWelcome, maxDevices, maxConnsPerAccount int
	maxGroupMembers                            int
	inboxPerSender, inboxTotal                 int64
	inboxPerSenderN, inboxTotalN               int
	metricsListen, metricsToken                string
	trustedProxies                             string
	// Uploads (docs/abuse.md "Uploads").
	bodyTimeout                time.Duration
	minBodyRate, blobQuota     int64
	maxUploads, maxPostUploads int
	uploadRate                 limitFlag
}

func (a *abuseFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&a.maxWelcome, "max-welcome", 512<<10, "largest Welcome (invitation) one commit may carry, in `bytes`")
	fs.Int64Var(&a.inboxPerSender, "inbox-per-sender", 2<<20, "unread invitation `bytes` one account may leave in another device's inbox")
	fs.Int64Var(&a.inboxTotal, "inbox-total", 16<<20, "unread invitation `bytes` one device's inbox may hold from everyone")
	fs.IntVar(&a.inboxPerSenderN, "inbox-per-sender-count", 50, "unread invitations one account may leave in another device's inbox")
	fs.IntVar(&a.inboxTotalN, "inbox-total-count", 500, "unread invitations one device's inbox may hold from everyone")
	fs.IntVar(&a.maxDevices, "max-devices", 32, "most devices one account may link")
	fs.IntVar(&a.maxGroupMembers, "max-group-members", 1000, "most accounts a group may hold: a commit adding devices past it is refused with GROUP_FULL")
	fs.IntVar(&a.maxConnsPerAccount, "max-conns-per-account", 64, "most WebSocket connections all of one account's devices may hold open")
	fs.StringVar(&a.metricsListen, "metrics-listen", "127.0.0.1:9867", "loopback `address` serving Prometheus /metrics to operators (\"off\": none)")
	fs.StringVar(&a.metricsToken, "metrics-token", "", "also serve /metrics on the main listener to requests with \"Authorization: Bearer `TOKEN`\"")
	fs.DurationVar(&a.bodyTimeout, "body-timeout", 30*time.Second, "longest pause in a request body (upload, channel post) before it is cut off with 408")
	fs.Int64Var(&a.minBodyRate, "min-body-rate", 4<<10, "slowest request body, in `bytes` per second over any stretch longer than --body-timeout")
	fs.IntVar(&a.maxUploads, "max-uploads-per-account", 4, "attachment uploads one account may have in progress at once")
	fs.IntVar(&a.maxPostUploads, "max-post-uploads-per-account", 2, "public channel post uploads one account may have in progress at once (on all the nodes sharing --db)")
	fs.Int64Var(&a.blobQuota, "blob-quota", 1<<30, "attachment `bytes` one account may hold until they are deleted or expire; -1 for no quota")
	a.uploadRate = limitFlag(server.DefaultLimits.UploadPerAccount)
	fs.Var(&a.uploadRate, "upload-rate", "attachment uploads one account may start, as `N/duration`")
	fs.StringVar(&a.trustedProxies, "trusted-proxy", "", "comma-separated `CIDRs` of reverse proxies whose X-Forwarded-For names the client (e.g. 127.0.0.1/32 for a TLS proxy on this host); limits per address then count clients, not the proxy")
}

// serverConfig applies the flags to cfg.
func (a abuseFlags) serverConfig(cfg *server.Config) error {
	cfg.MaxWelcome = a.maxWelcome
	// 0 leaves the server's default (1000), as for the other limits.
	if a.maxGroupMembers < 0 || a.maxGroupMembers == 1 {
		return fmt.Errorf("--max-group-members %d: a group needs room for at least 2 members", a.maxGroupMembers)
	}
	cfg.MaxGroupMembers = a.maxGroupMembers
	cfg.InboxLimits = store.InboxLimits{PerSender: a.inboxPerSender, Total: a.inboxTotal,
		PerSenderCount: a.inboxPerSenderN, TotalCount: a.inboxTotalN}
	cfg.MaxDevices = a.maxDevices
	cfg.MaxConnsPerAccount = a.maxConnsPerAccount
	cfg.MetricsToken = a.metricsToken
	cfg.BodyTimeout, cfg.MinBodyRate = a.bodyTimeout, a.minBodyRate
	cfg.MaxUploadsPerAccount, cfg.BlobQuota = a.maxUploads, a.blobQuota
	cfg.Limits.UploadPerAccount = server.Limit(a.uploadRate)
	for _, p := range strings.Split(a.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return fmt.Errorf("--trusted-proxy %q: want an address or CIDR such as 127.0.0.1/32", p)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, prefix)
	}
	return nil
}

// limitFlag is a rate limit given as N/duration, e.g. 600/1h.
type limitFlag server.Limit

func (l *limitFlag) String() string {
	if l == nil || l.N == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%v", l.N, l.Per)
}

func (l *limitFlag) Set(v string) error {
	n, per, ok := strings.Cut(v, "/")
	if !ok {
		return fmt.Errorf("want N/duration, e.g. 600/1h, not %q", v)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count <= 0 {
		return fmt.Errorf("want a positive count before the slash, not %q", n)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration after the slash (e.g. 1h), not %q", per)
	}
	*l = limitFlag{N: count, Per: d}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f serveFlags
	fs := newFlagSet("parleyd serve", "Run the delivery server.", stderr)
	fs.StringVar(&f.data, "data", "parley-data", "data `directory` (database and attachments); created with mode 0700")
	fs.StringVar(&f.nats, "nats", "", "`URL` of the NATS server(s) connecting the nodes that share --db (nats://host:4222, comma separated); nodes announce stored messages there so that a device on any node gets pushes at once (\"parleyd nats\" runs one)")
	fs.StringVar(&f.db, "db", "", "`URL` of a PostgreSQL database (postgres://user:pass@host/db) holding the delivery, channel and moderation stores, shared by every node; default: SQLite in the data directory")
	fs.StringVar(&f.blobs, "blobs", "", blobsFlagHelp)
	fs.StringVar(&f.blobsCredentials, "blobs-credentials", "", blobsCredentialsHelp)
	fs.StringVar(&f.channelMedia, "channel-media", "", channelMediaFlagHelp)
	fs.StringVar(&f.webDirect, "web-direct-transfers", "", webDirectFlagHelp)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7867", "`address` to listen on; plain HTTP only on a loopback address, anything else needs --tls-cert and --tls-key")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate chain `file` (PEM)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.StringVar(&f.registration, "registration", "open", "account registration: open, or invite (needs a code from \"parleyd admin invite\")")
	fs.DurationVar(&f.retention, "retention", 720*time.Hour, "delete messages, welcomes and attachments older than this `duration`, fetched or not")
	fs.DurationVar(&f.caseRetention, "case-retention", moderation.DefaultCaseRetention, "delete a decided moderation case's reported messages (and the case, unless its ban or suspension is in force) this `long` after its last decision; the audit log keeps the decisions (0: never)")
	fs.Int64Var(&f.maxAttachment, "max-attachment", 100<<20, "largest attachment upload in `bytes`")
	fs.Int64Var(&f.maxFrame, "max-frame", 1<<20, "largest WebSocket frame (one request) in `bytes`")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&f.ffmpeg, "ffmpeg", "ffmpeg", "the ffmpeg `binary` that decodes channel videos (Debian package ffmpeg); without it the server refuses video posts and keeps everything else")
	fs.StringVar(&f.ffprobe, "ffprobe", "ffprobe", "the ffprobe `binary` (Debian package ffmpeg)")
	fs.Int64Var(&f.maxVideo, "max-video-bytes", 64<<20, "largest video one public channel post may carry, in `bytes`")
	fs.BoolVar(&f.videoBorders, "video-remove-borders", false, "also hash channel videos with uniform borders (letterbox and pillarbox bars) cut off and match those hashes, so a copy of a listed video with bars added is caught (about one PDQ hash more per sampled frame)")
	fs.StringVar(&f.imageVariants, "image-variants", "none", "also hash normalised variants of channel images and match those hashes: a comma-separated list of borders (uniform borders cut off: catches uniform bars and frames added; about 1.3x the PDQ hashing time) and pads (each edge in turn extended by 5%: catches about 3 in 5 crops of 5% from one edge; about 4x), or none; see docs/moderation.md")
	fs.IntVar(&f.videoMinFrames, "video-min-frames", 1, "sampled frames of a video (one a second) that must match one listed image's PDQ hash for the video to match it")
	fs.StringVar(&f.adminListen, "admin-listen", "", "`address` serving the moderators' web console (default: none); plain HTTP only on a loopback address, like --listen")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to wait for in-flight requests on SIGTERM/SIGINT")
	fs.DurationVar(&f.sessionCheck, "session-check", time.Minute, "look every connected device up in the store this `often` and sign out those removed, deleted or newly suspended or banned elsewhere (another node without --nats, or \"parleyd admin cases\"); account requests and, with --nats, other nodes' removals take effect at once anyway")
	f.memoryLimit = "auto"
	fs.Var(&f.memoryLimit, "memory-limit", "soft memory `limit` of the Go runtime, such as 20GiB: near it the garbage collector works harder instead of letting the heap grow to twice what is live (idle connections then cost about 40% less); auto: GOMEMLIMIT if set, else 90% of the cgroup's memory limit (container, systemd MemoryMax=) if any; none: no limit")
	f.abuse.register(fs)
	f.kt.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd serve: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parleyd serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var handler slog.Handler
	switch f.logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: f.logLevel})
	default:
		fmt.Fprintf(stderr, "parleyd serve: --log-format must be text or json, not %q\n", f.logFormat)
		return 2
	}
	if f.sessionCheck < time.Second {
		fmt.Fprintf(stderr, "parleyd serve: --session-check must be at least 1s (a minute suits most servers), not %v\n", f.sessionCheck)
		return 2
	}
	log := slog.New(handler)
	if n, err := raiseFileLimit(); err != nil {
		log.Warn("cannot raise the open file limit", "err", err)
	} else {
		log.Debug("open file limit", "n", n)
	}
	if limit, err := applyMemoryLimit(f.memoryLimit, "/"); err != nil {
		log.Warn("cannot find the memory limit; running without one", "err", err)
	} else {
		log.Info("memory limit", "limit", limit)
	}
	if err := serveWith(ctx, f, log, nil); err != nil {
		log.Error("parleyd serve failed", "err", err)
		return 1
	}
	return 0
}

// checkListen enforces that plain HTTP is only served on loopback.
func checkListen(addr string, tls bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if tls || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address: plain HTTP would expose clients' traffic; pass --tls-cert and --tls-key (or listen on 127.0.0.1 behind a TLS proxy)", addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveWith runs the server until ctx ends or SIGTERM/SIGINT arrives. If
// ready is not nil it receives the listening address.
func serveWith(ctx context.Context, f serveFlags, log *slog.Logger, ready chan<- string) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	useTLS := f.tlsCert != ""
	if err := checkListen(f.listen, useTLS); err != nil {
		return err
	}
	imageVariants, err := variants.ParseOptions(f.imageVariants)
	if err != nil {
		return fmt.Errorf("--image-variants: %w", err)
	}
	var tlsConfig *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	}
	st, blobs, err := openData(ctx, f, log, newBatchMetric())
	if err != nil {
		return err
	}
	// Nodes that share --db announce stored messages and channel feed
	// changes to each other over NATS.
	var bus *natsbus.Bus
	var chanBus channels.Bus
	if f.nats != "" {
		if bus, err = natsbus.Connect(f.nats, log); err != nil {
			st.Close()
			blobs.Close()
			return err
		}
		defer bus.Close()
		chanBus = bus.On(natsbus.ChannelSubject)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), batchSizes)
	if sq, ok := st.(*sqlitestore.Store); ok {
		// The message log's index is in memory and grows with the
		// messages devices have not read (an offline device's backlog).
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parleyd_sqlite_log_index_entries",
			Help: "Entries of the SQLite message log's in-memory index: about one per message some device has not acknowledged (8 bytes each).",
		}, func() float64 { return float64(sq.LogIndexEntries()) }))
	}
	media, mediaSweep, err := openChannelMedia(ctx, f.channelMedia, f.blobs, f.blobsCredentials, log)
	if err != nil {
		st.Close()
		blobs.Close()
		return err
	}
	var mediaObjects channels.MediaObjects
	if media != nil {
		mediaObjects = media
	}
	// Public channels (not end to end encrypted, checked against hash
	// lists) authenticate through the delivery server's bearer tokens; the
	// server is created after them, hence the indirection.
	var srv *server.Server
	chans, err := channelsrv.Open(ctx, f.data, channelsrv.Config{
		Auth: channels.AuthenticatorFunc(func(r *http.Request) (string, error) {
			user, _, err := srv.AuthenticateHTTP(r)
			return user, err
		}),
		// Only a user who can sign in can be made a channel admin.
		AccountExists: func(ctx context.Context, user string) (bool, error) {
			return store.HasAccount(ctx, st, user)
		},
		Registerer: reg, Logger: log, PollInterval: f.listPoll, MaxUploadsPerUser: f.abuse.maxPostUploads,
		// Shared: the channel API's per-user limits are counted across
		// the nodes sharing --db, as the delivery server's per-account ones.
		DB: f.db, Bus: chanBus, FeedPoll: f.feedPoll, Shared: st,
		Video:         &video.Decoder{FFmpeg: f.ffmpeg, FFprobe: f.ffprobe},
		MaxVideoBytes: f.maxVideo, VideoMinFrames: f.videoMinFrames, VideoRemoveBorders: f.videoBorders,
		ImageVariants: imageVariants,
		MediaObjects:  mediaObjects, MediaOrphanSweep: mediaSweep,
	})
	if err != nil {
		st.Close()
		blobs.Close()
		return fmt.Errorf("open public channels: %w", err)
	}
	defer blobs.Close()
	defer chans.Close()
	cfg := server.Config{
		Store: st, Blobs: blobs, Logger: log, Registerer: reg, Gatherer: reg,
		Registration: server.Registration(f.registration), Retention: f.retention, SessionCheck: f.sessionCheck,
		MaxAttachment: f.maxAttachment, MaxFrame: f.maxFrame, TLSConfig: tlsConfig,
	}
	if err := f.abuse.serverConfig(&cfg); err != nil {
		st.Close()
		return err
	}
	if cfg.FrankingKey, err = loadFrankingKey(f.data); err != nil {
		st.Close()
		return fmt.Errorf("franking key: %w", err)
	}
	if cfg.BlobTokenKey, err = loadBlobTokenKey(f.data); err != nil {
		st.Close()
		return fmt.Errorf("blob token key: %w", err)
	}
	chans.Wire(&cfg)
	if bus != nil {
		cfg.Bus = bus
	}
	cfg.Mount = withTransparency(cfg.Mount, f.data)
	webOpts, err := webDirectTransfers(ctx, f.webDirect, blobs, log)
	if err != nil {
		st.Close()
		return err
	}
	cfg.Mount = withWebClient(cfg.Mount, web.Files(), webOpts, log)
	if cfg.Transparency, err = f.kt.transparencyConfig(f.data); err != nil {
		st.Close()
		return fmt.Errorf("key transparency directory: %w", err)
	}
	srv, err = server.New(cfg)
	if err != nil {
		st.Close()
		return err
	}
	if m := f.abuse.metricsListen; m != "" && m != "off" {
		stopMetrics, err := serveMetrics(m, srv.MetricsHandler(), log)
		if err != nil {
			st.Close()
			return err
		}
		defer stopMetrics()
	}
	if f.adminListen != "" {
		stopConsole, err := serveConsole(f, chans, cfg.FrankingKey, tlsConfig, log, srv.RecheckAccount)
		if err != nil {
			st.Close()
			return err
		}
		defer stopConsole()
	}
	chanCtx, stopChans := context.WithCancel(ctx)
	defer stopChans()
	go chans.Run(chanCtx)
	go moderation.CaseRetention{Store: chans.Moderation.Store(), Period: f.caseRetention, Logger: log}.Run(chanCtx)
	go releasePreserved(chanCtx, st, f.data, log)
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		st.Close()
		return err
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	dbName := "sqlite"
	if f.db != "" {
		dbName = redactDSN(f.db)
	}
	log.Info("parleyd listening", "url", scheme+"://"+ln.Addr().String(), "data", f.data, "db", dbName, "registration", f.registration, "version", buildinfo.String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		st.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	// Close flushes the group-commit queue and checkpoints the database.
	if cerr := st.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	log.Info("stopped")
	return err
}

// serveMetrics serves h at /metrics on addr, which must be a loopback
// address: metrics are for operators, not for every client.
// withWebClient serves the web client (package web) at / on the main
// listener, or, in a parleyd built without its module, a page saying how
// to build it.
func withWebClient(mount map[string]http.Handler, files fs.FS, opts web.Options, log *slog.Logger) map[string]http.Handler {
	b, err := web.LoadWith(files, opts)
	if err != nil {
		log.Warn("web client not served", "err", err)
		mount["GET /{$}"] = web.NotBuiltHandler()
		return mount
	}
	log.Info("web client", "bundle_sha256", b.WASMSHA256(), "sums", "/web/SHA256SUMS")
	h := b.Handler()
	for _, pattern := range web.Routes {
		mount[pattern] = h
	}
	return mount
}

func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return nil, fmt.Errorf("--metrics-listen %q is not a loopback address: metrics are for operators; scrape through an SSH tunnel or a proxy, or use --metrics-token on the main listener", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w (another parleyd may hold it: pick another port, or \"off\")", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() { hs.Close() }, nil
}

var batchSizes = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "parleyd_append_batch_size",
	Help:    "Message appends per group-commit transaction.",
	Buckets: prometheus.ExponentialBuckets(1, 2, 8),
})

func newBatchMetric() func(int) { return func(n int) { batchSizes.Observe(float64(n)) } }

// deliveryDB is the delivery store's database in the data directory.
const deliveryDB = "parley.db"

// openData opens the data directory for "parleyd serve", creating it and
// its databases if needed: serve is the only command that does. With db
// set, the delivery store is that PostgreSQL database instead of SQLite in
// the directory, and so is the attachments' index; attachments are in
// f.blobs (default DIR/blobs, or an S3 bucket), keys stay in the directory.
func openData(ctx context.Context, f serveFlags, log *slog.Logger, onBatch func(int)) (store.Store, blobBackend, error) {
	dir, db := f.data, f.db
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := openStore(ctx, dir, db, true, log, onBatch)
	if err != nil {
		return nil, nil, err
	}
	blobs, err := openBlobs(ctx, dir, db, f.blobs, f.blobsCredentials, log)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, blobs, nil
}

// openStore opens the delivery store: the PostgreSQL database db if set,
// else SQLite in the data directory (created only if create is set; the
// admin commands never create it).
func openStore(ctx context.Context, dir, db string, create bool, log *slog.Logger, onBatch func(int)) (store.Store, error) {
	if db != "" {
		if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
			return nil, fmt.Errorf("--db must be a postgres:// URL, not %q", redactDSN(db))
		}
		opts := &pgstore.Options{Logger: log}
		if !strings.Contains(db, "pool_max_conns") {
			// pgxpool's default (4 on a small machine) queues the appends
			// of hundreds of connections behind 4 transactions: 16 held
			// 1.7 x the rate in docs/benchmarks.md ("PostgreSQL"), and
			// leaves room under PostgreSQL's default max_connections (100)
			// for 3 nodes with their channel, moderation and blob pools.
			opts.MaxConns = 16
		}
		st, err := pgstore.Open(ctx, db, opts)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", redactDSN(db), err)
		}
		return st, nil
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, deliveryDB), &sqlitestore.Options{OnBatch: onBatch, NoCreate: !create, OneServer: create})
	if errors.Is(err, sqlitedb.ErrNoDatabase) {
		err = datadir.Missing(dir, deliveryDB)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// redactDSN is a database URL fit for logs: without its password.
func redactDSN(db string) string {
	u, err := url.Parse(db)
	if err != nil || u.Scheme == "" {
		return "(unparsable database URL)"
	}
	return u.Redacted()
}

func adminInvite(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("parleyd admin invite", "Create a registration invite code (for --registration invite) and print it.\nWorks on the data directory directly, also while the server runs; it never creates one.", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server (it must exist: only \"parleyd serve\" creates it)")
	db := fs.String("db", "", "`URL` of the PostgreSQL database (postgres://...) if the server runs with --db")
	expires := fs.Duration("expires", 7*24*time.Hour, "the code is valid for this `duration`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd admin invite: %v\n", err)
		return 2
	}
	// Never create the database here: an invite written to a new one in
	// the wrong directory would be printed, yet the server never accepts it.
	st, err := openStore(ctx, *data, *db, false, nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd admin invite: %v\n", err)
		return 1
	}
	defer st.Close()
	b := make([]byte, 10)
	rand.Read(b)
	code := strings.ToLower(base32.StdEncoding.EncodeToString(b))
	if err := st.CreateInvite(ctx, code, time.Now().Add(*expires)); err != nil {
		fmt.Fprintf(stderr, "parleyd admin invite: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, code)
	return 0
}
