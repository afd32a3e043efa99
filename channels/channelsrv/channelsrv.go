// Package channelsrv assembles the server side of public channels for
// parleyd: the channel store (DATA/channels.db, or channels/chanpg with
// --db), the moderation store (DATA/moderation.db, or moderation/modpg),
// the matcher loaded from it, the channel API and the
// hash exchange feed, behind one http.Handler.
//
// Wiring in parleyd (one call each):
//
//	cs, err := channelsrv.Open(ctx, dataDir, channelsrv.Config{Auth: auth, AccountExists: exists, Registerer: reg, Logger: log})
//	mux.Handle(channelsrv.Pattern, cs.Handler())        // /v1/channels...
//	mux.Handle(channelsrv.ExchangePattern, cs.Handler()) // /v1/exchange/...
//	server.Config.ForgetAccount = cs.Channels.ForgetUser // account deletion
//	go cs.Run(ctx)                                      // follow bank changes
//	defer cs.Close()
package channelsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/variants"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/sharedlimit"
	"github.com/parleychat/parley/moderation"
)

// Database file names inside the data directory.
const (
	ChannelsDB   = "channels.db"
	ModerationDB = "moderation.db"
)

// Patterns to mount Handler at in an http.ServeMux.
const (
	Pattern         = channels.PathPrefix + "/"
	ExactPattern    = channels.PathPrefix
	ExchangePattern = moderation.PathExchange
)

// Config configures Open. Auth and AccountExists are required.
type Config struct {
	Auth channels.Authenticator
	// AccountExists reports whether a user can sign in; only such a user
	// can be made a channel admin (channels.Config.AccountExists).
	AccountExists func(ctx context.Context, user string) (bool, error)
	Registerer    prometheus.Registerer // nil: a private registry
	Logger        *slog.Logger
	// Threshold is the PDQ match distance (default 31).
	Threshold int
	// MaxMediaBytes bounds one channel media file (default 16 MiB).
	MaxMediaBytes int64
	// PollInterval is how often Run looks for hash-list changes when no
	// request does (moderation.Config.PollInterval, default 2s).
	PollInterval time.Duration
	// MaxUploadsPerUser bounds one user's post uploads in progress
	// (default 2).
	MaxUploadsPerUser int
	// Shared counts the channel API's per-user limits across the nodes
	// sharing it (channels.Config.Shared; parleyd: the delivery store).
	Shared sharedlimit.Store
	// DB, if set, is the PostgreSQL database (postgres:// URL) holding
	// both stores, shared by every node; default: SQLite files in the
	// data directory.
	DB string
	// Bus carries channel feed notices between nodes
	// (channels.Config.Bus); nil for a single node.
	Bus channels.Bus
	// FeedPoll is how often a feed long-poll also reads the store
	// (channels.Config.FeedPoll).
	FeedPoll time.Duration
	// Video decodes channel videos (nil: ffmpeg and ffprobe from $PATH);
	// without ffmpeg the server starts and refuses video posts.
	Video *video.Decoder
	// MaxVideoBytes bounds one channel video (default 64 MiB).
	MaxVideoBytes int64
	// VideoMinFrames is moderation.Config.MinFrameMatches (default 1).
	VideoMinFrames int
	// VideoRemoveBorders is channels.Config.VideoRemoveBorders.
	VideoRemoveBorders bool
	// ImageVariants is channels.Config.ImageVariants.
	ImageVariants variants.Options
	// MediaObjects, if set, holds new posts' media files
	// (channels.Config.MediaObjects; parleyd --channel-media), and
	// MediaOrphanSweep is channels.Config.MediaOrphanSweep.
	MediaObjects     channels.MediaObjects
	MediaOrphanSweep time.Duration
}

// Server is the assembled channel and moderation service.
type Server struct {
	Channels   *channels.Service
	Moderation *moderation.Service
	cstore     channels.Store
	mstore     moderation.Store
	handler    http.Handler
}

// Open opens (creating) both stores, in dataDir or in cfg.DB, and loads
// the banks.
func Open(ctx context.Context, dataDir string, cfg Config) (*Server, error) {
	if cfg.Auth == nil || cfg.AccountExists == nil {
		return nil, errors.New("channelsrv: Config.Auth and AccountExists are required")
	}
	ms, cs, err := openStores(ctx, Where{Data: dataDir, DB: cfg.DB, Create: true})
	if err != nil {
		return nil, err
	}
	mod, err := moderation.New(ctx, moderation.Config{Store: ms, Threshold: cfg.Threshold, PollInterval: cfg.PollInterval,
		MinFrameMatches: cfg.VideoMinFrames, SpillDir: dataDir,
		Registerer: cfg.Registerer, Logger: cfg.Logger})
	if err != nil {
		ms.Close()
		cs.Close()
		return nil, fmt.Errorf("channelsrv: %w", err)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(moderation.NewCaseCollector(ms)); err != nil {
			ms.Close()
			cs.Close()
			return nil, fmt.Errorf("channelsrv: register the case metrics: %w", err)
		}
	}
	svc, err := channels.New(channels.Config{Store: cs, Moderation: mod, Auth: cfg.Auth, AccountExists: cfg.AccountExists, MaxMediaBytes: cfg.MaxMediaBytes, MaxUploadsPerUser: cfg.MaxUploadsPerUser, Shared: cfg.Shared, Logger: cfg.Logger, Bus: cfg.Bus, FeedPoll: cfg.FeedPoll,
		Video: cfg.Video, MaxVideoBytes: cfg.MaxVideoBytes, VideoRemoveBorders: cfg.VideoRemoveBorders,
		ImageVariants: cfg.ImageVariants, MediaObjects: cfg.MediaObjects, MediaOrphanSweep: cfg.MediaOrphanSweep})
	if err != nil {
		ms.Close()
		cs.Close()
		return nil, err
	}
	if cfg.Registerer != nil && cfg.MediaObjects != nil {
		if err := registerMediaMetrics(cfg.Registerer, svc.MediaStats); err != nil {
			svc.Close()
			ms.Close()
			cs.Close()
			return nil, fmt.Errorf("channelsrv: register the media metrics: %w", err)
		}
	}
	if err := svc.CatchUp(ctx); err != nil {
		svc.Close()
		ms.Close()
		cs.Close()
		return nil, fmt.Errorf("channelsrv: check posts against list changes made while stopped: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(ExactPattern, svc.Handler())
	mux.Handle(Pattern, svc.Handler())
	mux.Handle(ExchangePattern, moderation.ExchangeHandler(ms))
	return &Server{Channels: svc, Moderation: mod, cstore: cs, mstore: ms, handler: mux}, nil
}

// Handler serves /v1/channels... and /v1/exchange/....
func (s *Server) Handler() http.Handler { return s.handler }

// Routes maps every pattern the service answers to its handler, in the form
// server.Config.Mount takes.
func (s *Server) Routes() map[string]http.Handler {
	return map[string]http.Handler{ExactPattern: s.handler, Pattern: s.handler, ExchangePattern: s.handler}
}

// Run applies bank changes (from "parleyd admin lists ...") and takes down
// matching posts until ctx is done.
func (s *Server) Run(ctx context.Context) { s.Moderation.Run(ctx) }

// DecideHold carries out a moderator's decision on a held post's case
// (channels.DecideHold): the web console's way to act on the channel.
func (s *Server) DecideHold(ctx context.Context, caseID int64, e moderation.CaseEvent) (moderation.Case, error) {
	return channels.DecideHold(ctx, s.cstore, s.mstore, caseID, e)
}

// Close stops following the bus and closes both stores.
func (s *Server) Close() error {
	s.Channels.Close()
	return errors.Join(s.cstore.Close(), s.mstore.Close())
}

// registerMediaMetrics exports the channel media objects' counts.
func registerMediaMetrics(reg prometheus.Registerer, stats func() channels.MediaStats) error {
	for _, m := range []struct {
		name, help string
		get        func(channels.MediaStats) int64
	}{
		{"parleyd_channel_media_objects_put_total", "Channel media files put in the object store (--channel-media).", func(s channels.MediaStats) int64 { return s.Put }},
		{"parleyd_channel_media_objects_removed_total", "Objects of erased channel media removed from the object store.", func(s channels.MediaStats) int64 { return s.Removed }},
		{"parleyd_channel_media_object_failures_total", "Puts and removals of channel media objects that failed (a removal is retried every minute; alert if this keeps rising).", func(s channels.MediaStats) int64 { return s.Failed }},
		{"parleyd_channel_media_orphans_removed_total", "Objects no channel post names (a node died before its post was stored), removed by the orphan sweep.", func(s channels.MediaStats) int64 { return s.Orphans }},
	} {
		get := m.get
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, func() float64 { return float64(get(stats())) })
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
