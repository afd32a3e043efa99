package channels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/variants"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/ratelimit"
	"github.com/parleychat/parley/internal/sharedlimit"
	"github.com/parleychat/parley/moderation"
)

// Config configures a Service. Store, Moderation, Auth and AccountExists
// are required.
type Config struct {
	Store      Store
	Moderation *moderation.Service
	Auth       Authenticator
	// AccountExists reports whether user is an account that can sign in
	// (registered and not deleted). A channel owner can only make such an
	// account an admin. parleyd answers it from the delivery store, which
	// channels does not know.
	AccountExists func(ctx context.Context, user string) (bool, error)
	// MaxMediaBytes bounds one media file other than a video (default
	// 16 MiB).
	MaxMediaBytes int64
	// MaxVideoBytes bounds one video file (default 64 MiB). Uploads are
	// held in memory while they are checked, so this times MaxMediaFiles
	// times MaxUploads bounds the memory uploads can take.
	MaxVideoBytes int64
	// Video decodes and hashes videos (ffmpeg in a child process, under
	// its Limits). nil looks ffmpeg and ffprobe up on $PATH. Without
	// them the server runs as before and refuses video posts with
	// ErrVideoUnavailable.
	Video *video.Decoder
	// VideoRemoveBorders also hashes every sampled frame of an uploaded
	// video with its uniform borders (letterbox, pillarbox) cut off and
	// matches those hashes too, so that a copy of a listed video with
	// bars added is caught (docs/benchmarks.md: what it gains and costs).
	VideoRemoveBorders bool
	// ImageVariants also hashes normalised variants of every uploaded
	// image (uniform borders cut off, each edge padded) and matches those
	// hashes too, so that a copy of a listed image with bars added or a
	// few percent cropped from an edge is caught (docs/moderation.md:
	// what each gains and costs). The zero value hashes the image only.
	ImageVariants variants.Options
	// MaxMediaFiles bounds the files of one post (default 4).
	MaxMediaFiles int
	// MaxTextBytes bounds a post's text (default 8 KiB).
	MaxTextBytes int
	// MaxPixels bounds width*height of an image before it is decoded
	// (default 40 megapixels, about 160 MiB of RGBA).
	MaxPixels int64
	// HashWorkers bounds how many images are decoded and hashed at once,
	// so that a burst of uploads cannot exhaust memory (default 2).
	HashWorkers int
	// MaxUploads bounds how many post uploads are read into memory at
	// once (default 8); more wait their turn.
	MaxUploads int
	// MaxUploadsPerUser bounds one user's post uploads in progress
	// (default 2), so that one account cannot take every upload slot;
	// more are answered 429 at once.
	MaxUploadsPerUser int
	// MaxWait bounds a long-poll on the event feed (default 30s).
	MaxWait time.Duration
	// Bus, if set, carries "this channel has new events" between the
	// server nodes that share the store (parleyd: NATS), so that a
	// follower long-polling on one node hears of a post made on another
	// at once. Nothing durable depends on it: a lost notice delays a
	// follower until the next FeedPoll.
	Bus Bus
	// FeedPoll is how often a long-poll also reads the store, for
	// changes no notice announces: "parleyd admin takedowns" in another
	// process, or a notice the bus lost (default 1s without a Bus, 15s
	// with one).
	FeedPoll time.Duration
	// Per-user rate limits; a request over one is answered 429 with
	// Retry-After. Posts (default 30 a minute) are the expensive writes:
	// every image is decoded and hashed. Other changes (creating
	// channels, admins, following) default to 60 a minute, reads to
	// 1 200 a minute.
	PostLimit, WriteLimit, ReadLimit Limit
	// Shared, if set, counts the per-user limits (PostLimit, WriteLimit,
	// ReadLimit and MaxUploadsPerUser) across every node sharing it
	// (parleyd: the delivery store, store.Store), so that a user who
	// spreads requests over k nodes gets each limit about once, not k
	// times (docs/abuse.md, "Across nodes"): rate limits through
	// sharedlimit.Limiter (leases of 1/16 of a window), uploads in
	// progress through sharedlimit.Slots. nil counts them in this node's
	// memory alone.
	Shared sharedlimit.Store
	// MediaObjects, if set, holds new posts' media bytes (parleyd
	// --channel-media: an S3-compatible bucket) instead of the Store.
	// Files stored before stay where they are; each is read from where
	// it is (Media.Object).
	MediaObjects MediaObjects
	// MediaSweep is how often the objects of erased media that are still
	// there are removed (a node that died, or an erasure by another
	// process) (default 1 minute), and MediaOrphanSweep how often
	// objects no post names are looked for (default 24 hours; negative:
	// never). Both only with MediaObjects.
	MediaSweep, MediaOrphanSweep time.Duration
	Logger                       *slog.Logger
}

// Limit allows N requests per window Per.
type Limit = ratelimit.Limit

// Service runs the channel API and keeps published channel content
// checked against the moderation banks.
type Service struct {
	cfg     Config
	store   Store
	mod     *moderation.Service
	log     *slog.Logger
	hashes  chan struct{} // semaphore of HashWorkers slots
	uploads chan struct{} // semaphore of MaxUploads slots
	pool    sync.Pool     // *pdq.Hasher
	notify  notifier
	// allow counts one request against a per-user rate limit: in this
	// node's memory, or across the nodes (Config.Shared).
	allow   func(key string, l Limit) (bool, time.Duration)
	userUps userUploads        // each user's share of uploads, on this node
	slots   *sharedlimit.Slots // and across the nodes (nil: Config.Shared unset)
	// stopShared ends the shared limits' store calls and slots.Run;
	// sharedDone is closed when Run has returned.
	stopShared context.CancelFunc
	sharedDone chan struct{}
	stopBus    func()
	// longPollWaiting, if set, is called when a long-poll on a channel's
	// feed starts waiting (tests: the signal to change the feed then).
	longPollWaiting func(channel string)
	// stopMedia ends the media objects' sweeps; mediaDone is closed
	// when they have.
	stopMedia context.CancelFunc
	mediaDone chan struct{}
	media     mediaCounters
	// mediaRead, if set, is called before a media request reads a
	// file's bytes from the store (tests: a move happens then).
	mediaRead func()
}

// New returns a Service and subscribes it to bank changes, so that
// published posts are checked again (and taken down) when banks gain
// hashes.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Moderation == nil || cfg.Auth == nil || cfg.AccountExists == nil {
		return nil, errors.New("channels: Config.Store, Moderation, Auth and AccountExists are required")
	}
	if cfg.MaxMediaBytes <= 0 {
		cfg.MaxMediaBytes = 16 << 20
	}
	if cfg.MaxVideoBytes <= 0 {
		cfg.MaxVideoBytes = 64 << 20
	}
	if cfg.Video == nil {
		cfg.Video = &video.Decoder{}
	}
	if cfg.Video.Limits.MaxBytes <= 0 || cfg.Video.Limits.MaxBytes > cfg.MaxVideoBytes {
		d := *cfg.Video
		d.Limits.MaxBytes = cfg.MaxVideoBytes
		cfg.Video = &d
	}
	if cfg.MaxMediaFiles <= 0 {
		cfg.MaxMediaFiles = 4
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = 8 << 10
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = 40_000_000
	}
	if cfg.HashWorkers <= 0 {
		cfg.HashWorkers = 2
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = 8
	}
	if cfg.MaxUploadsPerUser <= 0 {
		cfg.MaxUploadsPerUser = 2
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FeedPoll <= 0 {
		cfg.FeedPoll = time.Second
		if cfg.Bus != nil {
			cfg.FeedPoll = 15 * time.Second
		}
	}
	for _, l := range []struct {
		v   *Limit
		def Limit
	}{
		{&cfg.PostLimit, Limit{N: 30, Per: time.Minute}},
		{&cfg.WriteLimit, Limit{N: 60, Per: time.Minute}},
		{&cfg.ReadLimit, Limit{N: 1200, Per: time.Minute}},
	} {
		if l.v.N <= 0 || l.v.Per <= 0 {
			*l.v = l.def
		}
	}
	s := &Service{
		cfg: cfg, store: cfg.Store, mod: cfg.Moderation, log: cfg.Logger,
		hashes:  make(chan struct{}, cfg.HashWorkers),
		uploads: make(chan struct{}, cfg.MaxUploads),
		notify:  notifier{waiters: map[string]chan struct{}{}, bus: cfg.Bus, log: cfg.Logger},
		userUps: userUploads{n: map[string]int{}},
	}
	s.pool.New = func() any { return new(pdq.Hasher) }
	if cfg.Shared != nil {
		ctx, stop := context.WithCancel(context.Background())
		shared := sharedlimit.New(ctx, cfg.Shared, nil, cfg.Logger)
		s.allow = func(key string, l Limit) (bool, time.Duration) { return shared.AllowN(key, 1, l) }
		s.slots = sharedlimit.NewSlots(cfg.Shared, sharedlimit.NewNodeID(), "channel post uploads in progress per account", cfg.Logger)
		s.stopShared, s.sharedDone = stop, make(chan struct{})
		go func() {
			defer close(s.sharedDone)
			s.slots.Run(ctx)
		}()
	} else {
		s.allow = ratelimit.New().Allow
	}
	if cfg.Bus != nil {
		stop, err := cfg.Bus.Subscribe(func(b []byte) { s.notify.wake(string(b)) })
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("channels: subscribe to feed notices: %w", err)
		}
		s.stopBus = stop
	}
	s.mod.OnAdded(s.rescan)
	if cfg.MediaObjects != nil {
		if s.cfg.MediaSweep <= 0 {
			s.cfg.MediaSweep = time.Minute
		}
		if s.cfg.MediaOrphanSweep == 0 {
			s.cfg.MediaOrphanSweep = 24 * time.Hour
		}
		ctx, stop := context.WithCancel(context.Background())
		s.stopMedia, s.mediaDone = stop, make(chan struct{})
		go func() {
			defer close(s.mediaDone)
			s.sweepMedia(ctx)
		}()
	}
	return s, nil
}

// Bus carries notices between server nodes (parleyd: NATS). It has the
// shape of server.Bus.
type Bus interface {
	// Publish sends a notice to every node; it must not block for long.
	Publish(b []byte) error
	// Subscribe calls fn for every notice other nodes publish until stop
	// is called. A node's own notices may come back too (natsbus keeps
	// them away); the caller must not depend on either.
	Subscribe(fn func(b []byte)) (stop func(), err error)
}

// Close stops following the bus, renewing the shared counts and
// sweeping media objects.
func (s *Service) Close() {
	if s.stopMedia != nil {
		s.stopMedia()
		<-s.mediaDone
	}
	if s.stopBus != nil {
		s.stopBus()
	}
	if s.stopShared != nil {
		s.stopShared()
		<-s.sharedDone
	}
}

// userUploads counts each user's post uploads in progress.
type userUploads struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of user's max upload slots, if one is free.
func (u *userUploads) acquire(user string, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user] >= max {
		return false
	}
	u.n[user]++
	return true
}

func (u *userUploads) release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user]--; u.n[user] <= 0 {
		delete(u.n, user)
	}
}

// ErrMediaRefused is returned for media that cannot be accepted: images
// that do not decode within the limits (decompression bombs, truncated or
// garbage files) and files over the size limit.
var ErrMediaRefused = errors.New("media refused")

// sniff returns the image type of data from its magic bytes, or "".
func sniff(data []byte) string {
	switch ct := http.DetectContentType(data); ct {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return ct
	}
	if len(data) > 2 && data[0] == 'P' && data[1] == '6' {
		return "image/x-portable-pixmap"
	}
	return ""
}

// Analyse hashes one uploaded file: MD5 and SHA-256 of its bytes and, for
// images (by magic bytes, or declared as image/*), the dihedral PDQ hashes
// of its pixels. Images are decoded under the pixel limit, so bombs,
// truncated and garbage images are refused with ErrMediaRefused before any
// large allocation.
func (s *Service) Analyse(data []byte, declared string) (Media, error) {
	// A video is a file whose magic bytes say so, whatever it is declared
	// as: anything ffmpeg would decode under the allowed formats has them.
	// A file declared video/* without them is an opaque file, matched by
	// its digests and served as application/octet-stream.
	if ct := sniffVideo(data); ct != "" {
		return s.analyseVideo(data, ct)
	}
	if int64(len(data)) > s.cfg.MaxMediaBytes {
		return Media{}, fmt.Errorf("%w: file larger than %d bytes", ErrMediaRefused, s.cfg.MaxMediaBytes)
	}
	d, err := hashing.Digest(bytes.NewReader(data), 0)
	if err != nil {
		return Media{}, err
	}
	m := Media{MD5: d.MD5, SHA256: d.SHA256, Size: d.Size, ContentType: "application/octet-stream"}
	ct := sniff(data)
	if ct == "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(declared)), "image/") {
		// Not an image: matched by its exact digests only.
		return m, nil
	}
	s.hashes <- struct{}{}
	defer func() { <-s.hashes }()
	img, format, err := pdq.DecodeBytes(data, &pdq.Options{MaxPixels: s.cfg.MaxPixels, MaxBytes: s.cfg.MaxMediaBytes})
	if err != nil {
		reason := "the image is malformed, truncated or of an unsupported format"
		switch {
		case errors.Is(err, pdq.ErrTooManyPixels):
			reason = fmt.Sprintf("the image declares more than %d pixels", s.cfg.MaxPixels)
		case errors.Is(err, pdq.ErrTooLarge):
			reason = fmt.Sprintf("the file is larger than %d bytes", s.cfg.MaxMediaBytes)
		}
		return Media{}, fmt.Errorf("%w: %s", ErrMediaRefused, reason)
	}
	h := s.pool.Get().(*pdq.Hasher)
	vs := variants.Hashes(h, img, s.cfg.ImageVariants)
	s.pool.Put(h)
	dih := vs[0]
	if len(vs) > 1 {
		m.PDQVariants = vs[1:]
	}
	if ct == "" {
		ct = "image/" + format
	}
	m.ContentType = ct
	m.PDQ = &dih
	return m, nil
}

func modMedia(m Media) moderation.Media {
	return moderation.Media{Digests: hashing.Digests{MD5: m.MD5, SHA256: m.SHA256, Size: m.Size}, PDQ: m.PDQ, PDQVariants: m.PDQVariants,
		VPDQ: m.VPDQ, TMK: m.TMK, VPDQBorderless: m.VPDQBorderless}
}

// Refusal says why a post was refused or held.
type Refusal struct {
	Media int // index of the file that matched
	Match moderation.Match
}

// ErrBlocked is wrapped by the error Publish returns for a post whose media
// matched a block list.
var ErrBlocked = errors.New("media matches a blocked hash list")

// BlockedError is returned by Publish for a post refused by a block list.
type BlockedError struct{ Refusal }

func (e *BlockedError) Error() string {
	return fmt.Sprintf("media %d matches hash list %q (%s)", e.Media, e.Match.Bank, e.Match.Label)
}

func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Publish checks the post's media (already analysed, data[i] for
// p.Media[i]) against the banks and stores it: published, or held for a
// moderator if it matched a review list. A block match refuses it with a
// *BlockedError. Every match is recorded as a decision. received is when
// the upload arrived, for the upload-to-decision metric.
func (s *Service) Publish(ctx context.Context, p Post, data [][]byte, received time.Time) (Post, error) {
	p.Media = slices.Clone(p.Media)
	data = slices.Clone(data)
	var objects []string // put in MediaObjects for this post
	for {
		stored, done, err := s.publishChecked(ctx, p, data, received, objects)
		if done || err != nil {
			if err != nil && len(objects) > 0 {
				s.removeObjects(context.WithoutCancel(ctx), objects)
			}
			return stored, err
		}
		// Files go to the object store only once the hash lists have
		// let them through (what a list blocks is never put there), and
		// outside the check, which would otherwise hold list imports up
		// for the time the bytes take. A list may change meanwhile:
		// checked again.
		if objects, err = s.putObjects(ctx, p.Media, data); err != nil {
			return Post{}, err
		}
	}
}

// putObjects puts each file's bytes in MediaObjects, naming the object
// in media[i] and leaving data[i] nil.
func (s *Service) putObjects(ctx context.Context, media []Media, data [][]byte) ([]string, error) {
	var objects []string
	for i := range media {
		o, err := s.cfg.MediaObjects.PutMedia(ctx, data[i])
		if err != nil {
			s.media.failed.Add(1)
			s.removeObjects(context.WithoutCancel(ctx), objects)
			return nil, fmt.Errorf("%w: %w", ErrMediaStorage, err)
		}
		s.media.put.Add(1)
		objects = append(objects, o)
		media[i].Object, media[i].Size = o, int64(len(data[i]))
		data[i] = nil
	}
	return objects, nil
}

// removeObjects removes objects put for a post that was not stored; a
// failure leaves them to the orphan sweep.
func (s *Service) removeObjects(ctx context.Context, objects []string) {
	if err := s.cfg.MediaObjects.RemoveMedia(ctx, objects); err != nil {
		s.media.failed.Add(1)
		s.log.Warn("channels: the media objects of a post that was not stored were not removed; the orphan sweep will", "objects", len(objects), "err", err)
	}
}

// publishChecked is one pass of Publish: done false means the post's
// files passed the check and must be put in MediaObjects first (objects
// is what was put).
func (s *Service) publishChecked(ctx context.Context, p Post, data [][]byte, received time.Time, objects []string) (Post, bool, error) {
	// BeginCheck first applies any list change committed before now, so
	// an upload right after "parleyd admin lists import" returns is
	// checked against the new list. If that cannot be done, nothing is
	// published.
	end, err := s.mod.BeginCheck(ctx)
	if err != nil {
		return Post{}, true, fmt.Errorf("channels: check the post's media against the hash lists: %w", err)
	}
	var held, blocked, logged []Refusal
	for i, m := range p.Media {
		for _, mt := range s.mod.Match(modMedia(m)) {
			switch mt.Action {
			case hashlist.Block:
				blocked = append(blocked, Refusal{i, mt})
			case hashlist.Log:
				logged = append(logged, Refusal{i, mt})
			default:
				held = append(held, Refusal{i, mt})
			}
		}
	}
	subject := "channel:" + p.Channel + " author:" + p.Author
	if len(blocked) > 0 {
		end()
		for _, r := range blocked {
			s.decide(ctx, moderation.DecisionBlock, r, subject, received)
		}
		return Post{}, true, &BlockedError{blocked[0]}
	}
	if s.cfg.MediaObjects != nil && len(p.Media) > 0 && objects == nil {
		end()
		return p, false, nil
	}
	p.Status = Published
	if len(held) > 0 {
		p.Status = Held
		p.Reason = holdReason(held[0])
	}
	p, err = s.store.AddPost(ctx, p, data)
	end()
	if err != nil {
		return Post{}, true, err
	}
	for _, r := range logged {
		s.decide(ctx, moderation.DecisionLog, r, fmt.Sprintf("post:%d", p.ID), received)
	}
	if len(held) > 0 {
		for _, r := range held {
			s.decide(ctx, moderation.DecisionHold, r, fmt.Sprintf("post:%d", p.ID), received)
		}
		s.fileHold(ctx, p, held)
	} else {
		s.mod.ObserveAccepted(received)
		s.notify.notify(p.Channel)
	}
	return p, true, nil
}

func (s *Service) decide(ctx context.Context, kind string, r Refusal, subject string, start time.Time) {
	note := fmt.Sprintf("media %d", r.Media)
	if r.Match.Detail != "" {
		note += ": " + r.Match.Detail
	}
	d := moderation.Decision{Kind: kind, Bank: r.Match.Bank, Type: r.Match.Type, Hash: r.Match.Hash,
		Distance: r.Match.Distance, Subject: subject, Note: note}
	if err := s.mod.Decide(ctx, d, start); err != nil {
		s.log.Error("channels: record moderation decision", "kind", kind, "bank", r.Match.Bank, "err", err)
	}
}

// rescan checks published and held posts against newly added entries and
// takes down (block lists) or holds (review lists) the ones that match,
// then records how far the change log has been checked.
func (s *Service) rescan(ctx context.Context, added []moderation.Change) {
	if err := s.rescanPosts(ctx, added); err != nil {
		s.log.Error("channels: rescan", "err", err)
		return
	}
	if len(added) > 0 {
		if err := s.store.SetRescanCheckpoint(ctx, added[len(added)-1].Seq); err != nil {
			s.log.Error("channels: rescan checkpoint", "err", err)
		}
	}
}

func (s *Service) rescanPosts(ctx context.Context, added []moderation.Change) error {
	if len(added) == 0 {
		return nil
	}
	rs := s.mod.NewRescan(added)
	changed := make(map[string]time.Time, len(added))
	for _, c := range added {
		changed[c.Bank+"\x00"+moderation.IndexKey(c.Entry)] = c.Time
	}
	var after int64
	for {
		posts, err := s.store.Posts(ctx, after, 200, Published, Held)
		if err != nil {
			return err
		}
		if len(posts) == 0 {
			return nil
		}
		for _, p := range posts {
			after = p.ID
			s.rescanPost(ctx, rs, p, changed)
		}
	}
}

// fileHold puts a held post into the moderators' queue (a hold case with
// what it matched). The post is held whatever happens here: a failure is
// logged, and CatchUp files the cases of held posts that have none.
func (s *Service) fileHold(ctx context.Context, p Post, held []Refusal) {
	h := moderation.Hold{Post: p.ID, Channel: p.Channel, Author: p.Author, Text: p.Text}
	for _, r := range held {
		h.Matches = append(h.Matches, moderation.HoldMatchOf(r.Media, r.Match))
	}
	if _, err := s.mod.Store().FileHold(ctx, h, time.Now()); err != nil {
		s.log.Error("channels: queue a held post for moderators", "post", p.ID, "err", err)
	}
}

// fileHeldCases opens a hold case for every held post without an open
// one: posts held before holds went into the case queue, or whose case
// could not be filed.
func (s *Service) fileHeldCases(ctx context.Context) error {
	var after int64
	for {
		posts, err := s.store.Posts(ctx, after, 200, Held)
		if err != nil {
			return err
		}
		if len(posts) == 0 {
			return nil
		}
		for _, p := range posts {
			after = p.ID
			if _, err := s.mod.Store().OpenHold(ctx, p.ID); err == nil {
				continue
			} else if !errors.Is(err, moderation.ErrNotFound) {
				return err
			}
			var held []Refusal
			for i, m := range p.Media {
				for _, mt := range s.mod.Match(modMedia(m)) {
					held = append(held, Refusal{i, mt})
				}
			}
			h := moderation.Hold{Post: p.ID, Channel: p.Channel, Author: p.Author, Text: p.Text}
			for _, r := range held {
				h.Matches = append(h.Matches, moderation.HoldMatchOf(r.Media, r.Match))
			}
			if _, err := s.mod.Store().FileHold(ctx, h, p.Created); err != nil {
				return err
			}
		}
	}
}

// CatchUp checks published posts against the bank entries added while no
// server was running (for example by "parleyd admin lists import" during
// a restart): everything in the change log after the store's rescan
// checkpoint, and puts held posts that have no hold case into the queue.
// Call it once after New.
func (s *Service) CatchUp(ctx context.Context) error {
	if err := s.fileHeldCases(ctx); err != nil {
		return fmt.Errorf("queue held posts for moderators: %w", err)
	}
	from, err := s.store.RescanCheckpoint(ctx)
	if err != nil {
		return err
	}
	for {
		cs, err := s.mod.Store().Changes(ctx, "", from, 50000)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		from = cs[len(cs)-1].Seq
		var ups []moderation.Change
		for _, c := range cs {
			if c.Op == moderation.OpUpsert {
				ups = append(ups, c)
			}
		}
		// Entries deleted later are skipped by Rescan.Match, which only
		// reports entries still in the live index.
		if err := s.rescanPosts(ctx, ups); err != nil {
			return err
		}
		if err := s.store.SetRescanCheckpoint(ctx, from); err != nil {
			return err
		}
	}
}

func (s *Service) rescanPost(ctx context.Context, rs *moderation.Rescan, p Post, changed map[string]time.Time) {
	for i, m := range p.Media {
		ms := rs.Match(modMedia(m))
		if len(ms) == 0 {
			continue
		}
		mt := ms[0] // block matches sort first, then review, then log
		start := changed[mt.Bank+"\x00"+mt.Key]
		kind, status := moderation.DecisionTakedown, Removed
		reason := fmt.Sprintf("taken down: matched hash list %q (%s)", mt.Bank, mt.Label)
		switch mt.Action {
		case hashlist.Block:
		case hashlist.Log:
			for _, m := range ms {
				s.decide(ctx, moderation.DecisionLog, Refusal{i, m}, fmt.Sprintf("post:%d", p.ID), start)
			}
			continue
		default:
			if p.Status != Published {
				return
			}
			kind, status = moderation.DecisionHold, Held
			reason = holdReason(Refusal{i, mt})
		}
		_, ch, err := s.store.SetStatus(ctx, p.ID, status, reason)
		if err != nil {
			s.log.Error("channels: take down", "post", p.ID, "err", err)
			return
		}
		if ch {
			s.decide(ctx, kind, Refusal{i, mt}, fmt.Sprintf("post:%d", p.ID), start)
			if status == Held {
				s.fileHold(ctx, p, []Refusal{{i, mt}})
			}
			s.notify.notify(p.Channel)
		}
		return
	}
}

// Approve publishes a held post on a moderator's decision.
func Approve(ctx context.Context, st Store, mod moderation.Store, postID int64, moderator string) (Post, error) {
	p, err := st.Post(ctx, postID)
	if err != nil {
		return p, err
	}
	if p.Status != Held {
		return p, fmt.Errorf("%w: post %d is %s, not held", ErrInvalid, postID, p.Status)
	}
	p, _, err = st.SetStatus(ctx, postID, Published, "")
	if err != nil {
		return p, err
	}
	if _, err = mod.RecordDecision(ctx, moderation.Decision{Kind: moderation.DecisionApprove, Subject: fmt.Sprintf("post:%d", postID), Actor: moderator}); err != nil {
		return p, err
	}
	return p, closeHold(ctx, mod, postID, moderation.CaseEvent{Action: moderation.ActionRelease, Moderator: moderator, Reason: "approved with parleyd admin takedowns"})
}

// closeHold records a decision taken on a post outside its hold case on
// the case, if it has an open one, so that the queue does not keep it.
func closeHold(ctx context.Context, mod moderation.Store, postID int64, e moderation.CaseEvent) error {
	id, err := mod.OpenHold(ctx, postID)
	if errors.Is(err, moderation.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = mod.ActOnCase(ctx, id, e)
	if errors.Is(err, moderation.ErrCaseState) {
		return nil // decided meanwhile
	}
	return err
}

// DecideHold carries out a moderator's decision on a hold case (release
// the post, remove it, or delete its whole channel) and records it on the
// case, which closes it. The channel is acted on first: if recording then
// fails, deciding again finds the action done and only records it. A
// post that is gone already (its author or channel deleted it) can still
// be removed, which closes the case.
func DecideHold(ctx context.Context, st Store, mod moderation.Store, caseID int64, e moderation.CaseEvent) (moderation.Case, error) {
	k, err := mod.Case(ctx, caseID)
	if err != nil {
		return k, err
	}
	if k.Kind != moderation.KindHold || k.Hold == nil {
		return k, fmt.Errorf("%w: case %d is a %s case, not a held channel post", moderation.ErrAction, caseID, k.Kind)
	}
	if k.State != moderation.CaseOpen {
		return k, fmt.Errorf("%w: case %d is %s", moderation.ErrCaseState, caseID, k.State)
	}
	if !moderation.ValidHoldAction(e.Action) {
		return k, fmt.Errorf("%w %q: a held post is decided with %v", moderation.ErrAction, e.Action, moderation.HoldActions)
	}
	postID := k.Hold.Post
	subject := fmt.Sprintf("post:%d", postID)
	p, err := st.Post(ctx, postID)
	gone := errors.Is(err, ErrNotFound) || err == nil && p.Status == Deleted
	if err != nil && !gone {
		return k, err
	}
	switch e.Action {
	case moderation.ActionRelease:
		if gone || p.Status == Removed {
			return k, fmt.Errorf("%w (post %d is %s)", moderation.ErrHoldGone, postID, statusOr(p, gone))
		}
		if p.Status == Held {
			if _, _, err := st.SetStatus(ctx, postID, Published, ""); err != nil {
				return k, err
			}
		}
		if _, err := mod.RecordDecision(ctx, moderation.Decision{Time: e.Time, Kind: moderation.DecisionApprove, Subject: subject, Actor: e.Moderator, Note: e.Reason}); err != nil {
			return k, err
		}
	case moderation.ActionRemovePost:
		if !gone && p.Status != Removed {
			if _, _, err := st.SetStatus(ctx, postID, Removed, "removed by a moderator"); err != nil {
				return k, err
			}
		}
		if _, err := mod.RecordDecision(ctx, moderation.Decision{Time: e.Time, Kind: moderation.DecisionReject, Subject: subject, Actor: e.Moderator, Note: e.Reason}); err != nil {
			return k, err
		}
	case moderation.ActionRemoveChannel:
		if err := st.DeleteChannel(ctx, k.Hold.Channel); err != nil && !errors.Is(err, ErrNotFound) {
			return k, err
		}
		if _, err := mod.RecordDecision(ctx, moderation.Decision{Time: e.Time, Kind: moderation.DecisionRemoveChannel, Subject: "channel:" + k.Hold.Channel, Actor: e.Moderator, Note: e.Reason}); err != nil {
			return k, err
		}
	}
	return mod.ActOnCase(ctx, caseID, e)
}

func statusOr(p Post, gone bool) Status {
	if gone {
		return Deleted
	}
	return p.Status
}

// Reject removes a held or published post on a moderator's decision. If
// confirmBank is not empty, the post's media hashes (MD5, SHA-256, and PDQ
// of images of sufficient quality) are confirmed into that bank, which
// blocks them here and, if the bank is published, shares them with other
// servers.
func Reject(ctx context.Context, st Store, mod moderation.Store, postID int64, moderator, confirmBank string) (Post, error) {
	p, err := st.Post(ctx, postID)
	if err != nil {
		return p, err
	}
	if p.Status == Removed {
		return p, fmt.Errorf("%w: post %d is already removed", ErrInvalid, postID)
	}
	p, _, err = st.SetStatus(ctx, postID, Removed, "removed by a moderator")
	if err != nil {
		return p, err
	}
	subject := fmt.Sprintf("post:%d", postID)
	if _, err := mod.RecordDecision(ctx, moderation.Decision{Kind: moderation.DecisionReject, Subject: subject, Actor: moderator}); err != nil {
		return p, err
	}
	if err := closeHold(ctx, mod, postID, moderation.CaseEvent{Action: moderation.ActionRemovePost, Moderator: moderator, Reason: "rejected with parleyd admin takedowns"}); err != nil {
		return p, err
	}
	if confirmBank == "" {
		return p, nil
	}
	entries, err := ConfirmableEntries(p)
	if err != nil {
		return p, err
	}
	_, err = moderation.Confirm(ctx, mod, confirmBank, entries, moderator, subject)
	return p, err
}

// holdReason says why a post is held: the list, and for videos how it
// matched, for the moderator who reviews it.
func holdReason(r Refusal) string {
	reason := fmt.Sprintf("held for review: matched hash list %q", r.Match.Bank)
	if r.Match.Detail != "" {
		name := r.Match.Hash // a video entry's fingerprint names its type
		if !r.Match.Type.IsVideo() {
			name = string(r.Match.Type) + " " + name
		}
		reason += fmt.Sprintf(" (media %d, %s: %s)", r.Media, name, r.Match.Detail)
	}
	return reason
}

// ConfirmableEntries returns the hashes of a post's media that a moderator
// can confirm into a bank: MD5 and SHA-256 of every file, the PDQ hash
// (tagged with its quality) of images of quality 50 or more, and a video's
// vPDQ (its frames of quality 50 or more) and TMK hashes.
func ConfirmableEntries(p Post) ([]hashlist.Entry, error) {
	seen := map[string]bool{}
	var out []hashlist.Entry
	addValue := func(t hashlist.SignalType, v string, tags ...string) error {
		e, err := hashlist.NewEntry(t, v, tags)
		if err != nil {
			return err
		}
		if !seen[e.Key()] {
			seen[e.Key()] = true
			out = append(out, e)
		}
		return nil
	}
	add := func(t hashlist.SignalType, raw []byte, tags ...string) error {
		e, err := hashlist.NewEntry(t, fmt.Sprintf("%x", raw), tags)
		if err != nil {
			return err
		}
		if !seen[e.Key()] {
			seen[e.Key()] = true
			out = append(out, e)
		}
		return nil
	}
	for _, m := range p.Media {
		if err := add(hashlist.MD5, m.MD5[:]); err != nil {
			return nil, err
		}
		if err := add(hashlist.SHA256, m.SHA256[:]); err != nil {
			return nil, err
		}
		if m.PDQ != nil && m.PDQ.Quality >= pdq.QualityThreshold {
			h := m.PDQ.Hashes[pdq.Original]
			if err := add(hashlist.PDQ, h[:], fmt.Sprintf("quality:%d", m.PDQ.Quality)); err != nil {
				return nil, err
			}
		}
		var good []video.Feature
		for _, f := range m.VPDQ {
			if f.Quality >= pdq.QualityThreshold {
				good = append(good, f)
			}
		}
		if len(good) > 0 {
			if err := addValue(hashlist.VPDQ, hashlist.FormatVPDQValue(good)); err != nil {
				return nil, err
			}
		}
		if m.TMK != nil {
			v, err := hashlist.TMKValue(m.TMK)
			if err != nil {
				return nil, err
			}
			if err := addValue(hashlist.TMK, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// notifier wakes long-polls waiting on a channel's feed, on this node
// and, through the bus, on the others.
type notifier struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	bus     Bus
	log     *slog.Logger
}

// wait returns a channel closed at the next notify of channel id.
func (n *notifier) wait(id string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.waiters[id]
	if !ok {
		c = make(chan struct{})
		n.waiters[id] = c
	}
	return c
}

// notify wakes the long-polls of channel id here and on every other node.
func (n *notifier) notify(id string) {
	n.wake(id)
	if n.bus != nil {
		if err := n.bus.Publish([]byte(id)); err != nil {
			n.log.Warn("channel feed notice not published; followers on other nodes see the change at their next poll", "channel", id, "err", err)
		}
	}
}

// wake wakes the long-polls of channel id on this node.
func (n *notifier) wake(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.waiters[id]; ok {
		close(c)
		delete(n.waiters, id)
	}
}

// ForgetUser removes a deleted account from public channels: the channels
// it owned are deleted with their posts (their ids stay taken), its posts
// elsewhere are erased, and its follows and admin roles are dropped.
// parleyd calls it before deleting the account itself.
func (s *Service) ForgetUser(ctx context.Context, user string) error {
	gone, err := s.store.ForgetUser(ctx, user)
	if err != nil {
		return fmt.Errorf("channels: remove the account's channel content: %w", err)
	}
	s.erased(ctx)
	for _, id := range gone {
		s.notify.notify(id)
	}
	return nil
}
