package moderation

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/index"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

// Config configures a Service. Store is required.
type Config struct {
	Store Store
	// Threshold is the largest PDQ Hamming distance that counts as a match
	// (default index.MatchThreshold, 31 of 256).
	Threshold int
	// MinQuality is the lowest PDQ quality matched, on the upload side and
	// on the list side where a list says it (default pdq.QualityThreshold,
	// 50).
	MinQuality int
	// PollInterval is how often Run applies bank changes made by other
	// processes, such as "parleyd admin lists import" (default 2s).
	// Checks do not wait for it: BeginCheck and UpToDate apply any change
	// committed before they were called. The poll takes down published
	// posts a new list matches when no request comes to do it sooner.
	PollInterval time.Duration
	// VPDQ are the vPDQ comparison's parameters (default
	// video.DefaultMatch: distance 31, quality 50, 80 % of the upload's
	// frames, 0 % of the listed video's).
	VPDQ video.MatchOptions
	// SpillDir is the directory of the unlinked temporary file that holds
	// the full TMK+PDQF hashes of the indexed entries (263 KB each; only
	// a 1 KiB level-1 vector per entry stays in memory). "" means
	// os.TempDir(), which may be a tmpfs, that is memory: a server
	// passes its data directory.
	SpillDir string
	// TMKLevel1 and TMKLevel2 are the TMK+PDQF two-level thresholds
	// (default 0.7 and 0.7, the reference's).
	TMKLevel1, TMKLevel2 float32
	// MinFrameMatches is how many sampled frames of a video must
	// be within Threshold of one listed image's PDQ hash for the video to
	// match that image (default 1: a known still anywhere in a video).
	MinFrameMatches int
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Media is what is known about one uploaded file.
type Media struct {
	Digests hashing.Digests
	// PDQ holds the 8 dihedral PDQ hashes of an image, so that rotated
	// and mirrored copies match too; nil for files that are not images.
	PDQ *pdq.Dihedral
	// VPDQ and TMK are a video's hashes (nil for other files). Every
	// sampled vPDQ frame is also matched against the image PDQ lists.
	VPDQ []video.Feature
	TMK  *video.TMK
	// VPDQBorderless are further vPDQ hashes of the same video, its
	// frames with uniform borders cut off (video.Hashes.VPDQBorderless);
	// a listed video matches when VPDQ or any of these does.
	VPDQBorderless [][]video.Feature
	// PDQVariants are the dihedral PDQ hashes of normalised variants of
	// an image (borders cut off, edges padded: hashing/variants); an
	// image matches a listed hash when PDQ or any of these does.
	PDQVariants []pdq.Dihedral
}

// pdqHashes calls f with every PDQ hash of m's image and its variants
// whose quality is at least minQuality.
func (m *Media) pdqHashes(minQuality int, f func(pdq.Hash)) {
	if m.PDQ != nil && m.PDQ.Quality >= minQuality {
		for _, h := range m.PDQ.Hashes {
			f(h)
		}
	}
	for _, v := range m.PDQVariants {
		if v.Quality >= minQuality {
			for _, h := range v.Hashes {
				f(h)
			}
		}
	}
}

// Match is one bank entry an upload matched.
type Match struct {
	Bank     string
	Label    string
	Action   hashlist.Action
	Type     hashlist.SignalType
	Hash     string // the list's hash
	Distance int    // PDQ distance (0 for exact matches)
	Tags     []string
	// Key is the entry's bank-wide key (IndexKey: hashlist.Entry.Key, or
	// for a video entry the SHA-256 of its value).
	Key string
	// Detail says how a video matched: the vPDQ percentages, the TMK
	// scores, or how many frames matched a listed image. Empty for
	// images and exact matches.
	Detail string
}

// ref is what an index ID stands for.
type ref struct {
	bank  string
	entry hashlist.Entry // without its value for video entries (slimRef)
	// key and fingerprint are set for video entries: IndexKey and
	// Fingerprint of the value they no longer carry.
	key, fingerprint string
}

// Key returns IndexKey of the entry.
func (r ref) Key() string {
	if r.key != "" {
		return r.key
	}
	return r.entry.Key()
}

// Fingerprint returns the entry's Fingerprint.
func (r ref) Fingerprint() string {
	if r.fingerprint != "" {
		return r.fingerprint
	}
	return r.entry.Fingerprint()
}

// Service matches media against every bank and keeps its index in step with
// the store's change log. It is safe for concurrent use.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger
	m     *metrics

	// gate orders uploads against index updates: an upload holds it for
	// reading from its check until its post is stored, and Refresh holds
	// it for writing while changing the index. So a post is either stored
	// before the index changed (and the rescan that follows sees it) or
	// checked against the changed index.
	gate sync.RWMutex

	// refreshing is held (a one-slot semaphore, so that waiting for it
	// can be cancelled) by the one Refresh that may run at a time.
	refreshing chan struct{}

	mu        sync.RWMutex // guards the fields below (the indexes lock themselves)
	pdqIdx    *index.PDQ
	exact     *index.Exact
	pdqRefs   map[index.ID]ref
	exactRefs map[index.ID]ref
	byKey     map[string]index.ID   // bank+"\x00"+entry.Key() → ID (in pdqRefs or exactRefs by type)
	videos    map[string]videoEntry // bank+"\x00"+IndexKey(entry) → vPDQ and TMK entries
	tmkSpill  tmkSpill              // the TMK entries' full hashes
	vpdq      vpdqSet               // the vPDQ entries' frames, indexed
	banks     map[string]Bank
	seq       int64 // the last change-log record applied to the index
	meta      int64 // the Position.Meta the banks were last read at
	// swept is the position up to which the OnAdded listeners have run
	// (published posts checked against the new entries); it trails
	// seq and meta while they run.
	swept   Position
	ignored int // list-side PDQ entries skipped for low quality

	lmu       sync.Mutex
	listeners []func(context.Context, []Change)
}

// New loads every bank from cfg.Store into a fresh index.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("moderation: Config.Store is required")
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = index.MatchThreshold
	}
	if cfg.Threshold > 256 {
		return nil, fmt.Errorf("moderation: PDQ threshold %d above 256", cfg.Threshold)
	}
	if cfg.MinQuality <= 0 {
		cfg.MinQuality = pdq.QualityThreshold
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.VPDQ == (video.MatchOptions{}) {
		cfg.VPDQ = video.DefaultMatch
	}
	if cfg.TMKLevel1 <= 0 {
		cfg.TMKLevel1 = video.DefaultTMKLevel1
	}
	if cfg.TMKLevel2 <= 0 {
		cfg.TMKLevel2 = video.DefaultTMKLevel2
	}
	if cfg.MinFrameMatches <= 0 {
		cfg.MinFrameMatches = 1
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, store: cfg.Store, log: cfg.Logger, m: m,
		pdqIdx: index.NewPDQ(), exact: index.NewExact(),
		pdqRefs: map[index.ID]ref{}, exactRefs: map[index.ID]ref{},
		byKey: map[string]index.ID{}, banks: map[string]Bank{}, videos: map[string]videoEntry{},
		vpdq:       newVPDQSet(cfg.VPDQ),
		tmkSpill:   tmkSpill{dir: cfg.SpillDir},
		refreshing: make(chan struct{}, 1),
	}
	// Read the log position first: replaying changes that the entries
	// already include is harmless, as applying a change is idempotent.
	pos, err := s.store.Position(ctx)
	if err != nil {
		return nil, fmt.Errorf("moderation: load banks: %w", err)
	}
	banks, err := s.store.Banks(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range banks {
		entries, err := s.store.Entries(ctx, b.Name)
		if err != nil {
			return nil, err
		}
		s.banks[b.Name] = b
		for _, e := range entries {
			s.upsertLocked(b.Name, e)
		}
	}
	s.seq, s.meta = pos.Change, pos.Meta
	// Posts stored before New are the channel layer's to check
	// (channels.Service.CatchUp), not the listeners'.
	s.swept = pos
	s.pdqIdx.Compact()
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// Threshold returns the PDQ match distance in use.
func (s *Service) Threshold() int { return s.cfg.Threshold }

// MinQuality returns the lowest PDQ quality that is matched.
func (s *Service) MinQuality() int { return s.cfg.MinQuality }

// OnAdded registers f to be called after Refresh with the upserts it
// applied (entries new to the index, in log order), so that published
// content can be checked again. f runs on Refresh's goroutine.
func (s *Service) OnAdded(f func(ctx context.Context, added []Change)) {
	s.lmu.Lock()
	s.listeners = append(s.listeners, f)
	s.lmu.Unlock()
}

// BeginCheck brings the index up to date with the store, then holds back
// index updates until the returned function is called: call it before
// Match and release it once the checked content is stored. So an upload is
// checked against every bank change committed before BeginCheck was
// called, including one "parleyd admin lists import" made in another
// process a moment ago. Do not call Refresh or UpToDate while holding it.
func (s *Service) BeginCheck(ctx context.Context) (end func(), err error) {
	if err := s.catchUp(ctx, s.indexed); err != nil {
		return nil, err
	}
	s.gate.RLock()
	return s.gate.RUnlock, nil
}

// UpToDate applies every bank change committed before it was called, by
// this process or another, and waits until the OnAdded listeners have run
// for them (the channel layer's listener takes down the published posts
// the new entries match), unless that is done already. The server calls
// it before it serves channel content, so that once "parleyd admin lists
// import" has returned, no post the list matches is served. It costs one
// cheap store query when nothing changed.
func (s *Service) UpToDate(ctx context.Context) error {
	return s.catchUp(ctx, s.sweptPos)
}

// catchUp refreshes unless done() already covers the store's position.
// Callers that find the index behind at the same time share one Refresh:
// the first refreshes, the others wait for it and then find nothing left
// to do.
func (s *Service) catchUp(ctx context.Context, done func() Position) error {
	want, err := s.store.Position(ctx)
	if err != nil {
		return fmt.Errorf("moderation: read the banks' position: %w", err)
	}
	if done().Covers(want) {
		return nil
	}
	select {
	case s.refreshing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.refreshing }()
	if done().Covers(want) {
		return nil // applied by the Refresh this caller waited for
	}
	// Callers queued behind this one rely on this Refresh, so one
	// caller's cancelled request must not cut it short.
	return s.refreshLocked(context.WithoutCancel(ctx))
}

// indexed returns how far the index (entries and bank metadata) has
// applied the store's changes.
func (s *Service) indexed() Position {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Position{Change: s.seq, Meta: s.meta}
}

// sweptPos returns how far the OnAdded listeners have run.
func (s *Service) sweptPos() Position {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.swept
}

// Run applies bank changes every PollInterval until ctx is done.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("moderation: refresh banks", "err", err)
			}
		}
	}
}

// Refresh applies every change-log record written since the last Refresh
// (by this process or another) to the index, without rebuilding it, then
// calls the OnAdded listeners with the new entries.
func (s *Service) Refresh(ctx context.Context) error {
	select {
	case s.refreshing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.refreshing }()
	return s.refreshLocked(ctx)
}

// refreshLocked is Refresh; the caller holds s.refreshing.
func (s *Service) refreshLocked(ctx context.Context) error {
	// Read the position before the banks: a change committed after this
	// read is then seen by the next UpToDate, at worst applied twice.
	pos, err := s.store.Position(ctx)
	if err != nil {
		return fmt.Errorf("moderation: refresh: %w", err)
	}
	added, err := s.applyChanges(ctx, pos)
	// The listeners get whatever was applied, even if a later read
	// failed: the next Refresh starts after it and would never pass
	// those entries on.
	if len(added) > 0 {
		s.lmu.Lock()
		ls := slices.Clone(s.listeners)
		s.lmu.Unlock()
		for _, f := range ls {
			f(ctx, added)
		}
	}
	s.mu.Lock()
	s.swept = Position{Change: s.seq, Meta: s.meta}
	s.mu.Unlock()
	return err
}

// changeBatch is how many change-log records a refresh reads at once. A
// TMK record carries 350 KB of base64, so this bounds a batch to about
// 350 MB of TMK entries; PDQ and exact records are small.
const changeBatch = 1000

// applyChanges applies the change-log records after s.seq to the index
// and reloads the banks' metadata, returning the upserts new to the index.
func (s *Service) applyChanges(ctx context.Context, pos Position) ([]Change, error) {
	var added []Change
	for first := true; ; first = false {
		s.mu.RLock()
		since := s.seq
		s.mu.RUnlock()
		changes, err := s.store.Changes(ctx, "", since, changeBatch)
		if err != nil {
			return added, fmt.Errorf("moderation: refresh: %w", err)
		}
		if len(changes) == 0 && !first {
			break
		}
		// Bank metadata (label, action) can change without any entry
		// changing, so it is reloaded on every refresh.
		banks, err := s.store.Banks(ctx)
		if err != nil {
			return added, fmt.Errorf("moderation: refresh: %w", err)
		}
		if len(changes) == 0 {
			s.mu.Lock()
			s.setBanksLocked(banks)
			s.mu.Unlock()
			break
		}
		s.gate.Lock()
		s.mu.Lock()
		s.setBanksLocked(banks)
		for _, c := range changes {
			switch c.Op {
			case OpUpsert:
				if s.upsertLocked(c.Bank, c.Entry) {
					added = append(added, c)
				}
			case OpDelete:
				s.deleteLocked(c.Bank, c.Entry)
			}
			s.seq = c.Seq
		}
		s.mu.Unlock()
		s.gate.Unlock()
	}
	// Every Banks read above came after pos was read.
	s.mu.Lock()
	s.meta = max(s.meta, pos.Meta)
	s.mu.Unlock()
	return added, nil
}

func (s *Service) setBanksLocked(banks []Bank) {
	s.banks = make(map[string]Bank, len(banks))
	for _, b := range banks {
		s.banks[b.Name] = b
	}
}

// entryQuality returns the quality an entry's "quality:N" tag declares,
// or -1.
func entryQuality(e hashlist.Entry) int {
	for _, t := range e.Tags {
		if v, ok := strings.CutPrefix(t, "quality:"); ok {
			if q, err := strconv.Atoi(v); err == nil {
				return q
			}
		}
	}
	return -1
}

// upsertLocked adds e to the index, or updates its tags, reporting whether
// it is new to the index.
func (s *Service) upsertLocked(bank string, e hashlist.Entry) bool {
	if e.Type.IsVideo() {
		key := bank + "\x00" + IndexKey(e)
		if v, ok := s.videos[key]; ok {
			v.ref = slimRef(bank, e)
			s.videos[key] = v
			if e.Type == hashlist.VPDQ {
				s.vpdq.refs[v.vid] = v.ref
			}
			return false
		}
		v, err := newVideoEntry(bank, e, &s.tmkSpill)
		if err != nil {
			s.log.Warn("moderation: video entry not indexed", "bank", bank, "hash", e.Fingerprint(), "err", err)
			return false // the store holds validated entries; be safe anyway
		}
		if e.Type == hashlist.VPDQ {
			v = s.vpdq.add(v)
		}
		s.videos[key] = v
		return true
	}
	key := bank + "\x00" + e.Key()
	if id, ok := s.byKey[key]; ok {
		if e.Type == hashlist.PDQ {
			s.pdqRefs[id] = ref{bank: bank, entry: e}
		} else {
			s.exactRefs[id] = ref{bank: bank, entry: e}
		}
		return false
	}
	raw, err := hex.DecodeString(e.Value)
	if err != nil {
		return false // the store holds validated entries; be safe anyway
	}
	var id index.ID
	switch e.Type {
	case hashlist.PDQ:
		var h pdq.Hash
		if len(raw) != len(h) {
			return false
		}
		copy(h[:], raw)
		// Lists rarely carry quality; where an entry says it (a
		// "quality:N" tag), low-quality hashes are ignored, as is the
		// all-zero hash of images too small to hash.
		if q := entryQuality(e); q >= 0 && q < s.cfg.MinQuality || h.IsZero() {
			s.ignored++
			return false
		}
		id = s.pdqIdx.Insert(h)
		s.pdqRefs[id] = ref{bank: bank, entry: e}
	case hashlist.MD5:
		var h [md5.Size]byte
		if len(raw) != len(h) {
			return false
		}
		copy(h[:], raw)
		id = s.exact.InsertMD5(h)
		s.exactRefs[id] = ref{bank: bank, entry: e}
	case hashlist.SHA256:
		var h [sha256.Size]byte
		if len(raw) != len(h) {
			return false
		}
		copy(h[:], raw)
		id = s.exact.InsertSHA256(h)
		s.exactRefs[id] = ref{bank: bank, entry: e}
	default:
		return false
	}
	s.byKey[key] = id
	return true
}

func (s *Service) deleteLocked(bank string, e hashlist.Entry) {
	key := bank + "\x00" + IndexKey(e)
	if e.Type.IsVideo() {
		if v, ok := s.videos[key]; ok && e.Type == hashlist.VPDQ {
			s.vpdq.remove(v)
		}
		delete(s.videos, key)
		return
	}
	id, ok := s.byKey[key]
	if !ok {
		return
	}
	delete(s.byKey, key)
	if e.Type == hashlist.PDQ {
		s.pdqIdx.Delete(id)
		delete(s.pdqRefs, id)
	} else {
		s.exact.Delete(id)
		delete(s.exactRefs, id)
	}
}

// Len returns the number of PDQ and exact entries in the index.
func (s *Service) Len() (pdqEntries, exactEntries int) {
	return s.pdqIdx.Len(), s.exact.Len()
}

// Match returns every bank entry m matches: exact MD5 and SHA-256 matches,
// and PDQ entries within the threshold of any dihedral variant of an image
// of sufficient quality. Block matches come first, then by distance.
func (s *Service) Match(m Media) []Match {
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := map[index.ID]int{} // PDQ ID → smallest distance over the variants
	m.pdqHashes(s.cfg.MinQuality, func(h pdq.Hash) {
		for _, r := range s.pdqIdx.Lookup(h, s.cfg.Threshold) {
			if d, ok := best[r.ID]; !ok || r.Distance < d {
				best[r.ID] = r.Distance
			}
		}
	})
	var out []Match
	add := func(r ref, dist int, detail string) {
		out = append(out, s.newMatch(r, dist, detail))
	}
	for id, d := range best {
		if r, ok := s.pdqRefs[id]; ok {
			add(r, d, "")
		}
	}
	for _, id := range s.exact.LookupMD5(m.Digests.MD5) {
		if r, ok := s.exactRefs[id]; ok {
			add(r, 0, "")
		}
	}
	for _, id := range s.exact.LookupSHA256(m.Digests.SHA256) {
		if r, ok := s.exactRefs[id]; ok {
			add(r, 0, "")
		}
	}
	videoMatcher{cfg: &s.cfg, pdqIdx: s.pdqIdx, pdqRefs: s.pdqRefs, vpdq: s.vpdq, videos: s.videos}.match(m, add)
	sortMatches(out)
	return out
}

// newMatch describes a match of entry r; the caller holds s.mu.
func (s *Service) newMatch(r ref, dist int, detail string) Match {
	b := s.banks[r.bank]
	return Match{Bank: r.bank, Label: b.Label, Action: b.Action, Type: r.entry.Type,
		Hash: r.Fingerprint(), Distance: dist, Tags: r.entry.Tags, Key: r.Key(), Detail: detail}
}

// live reports whether entry key of bank is still indexed; the caller
// holds s.mu.
func (s *Service) live(bank, key string) bool {
	k := bank + "\x00" + key
	if _, ok := s.byKey[k]; ok {
		return true
	}
	_, ok := s.videos[k]
	return ok
}

// actionRank orders actions by severity: block, review, log.
func actionRank(a hashlist.Action) int {
	switch a {
	case hashlist.Block:
		return 0
	case hashlist.Review:
		return 1
	}
	return 2
}

func sortMatches(ms []Match) {
	slices.SortFunc(ms, func(a, b Match) int {
		if ra, rb := actionRank(a.Action), actionRank(b.Action); ra != rb {
			return ra - rb
		}
		if a.Distance != b.Distance {
			return a.Distance - b.Distance
		}
		return strings.Compare(a.Bank+a.Hash, b.Bank+b.Hash)
	})
}

// Rescan matches media against a set of newly added entries only, to
// check published content again when banks gain hashes. It has its own
// small index, so rescanning many posts against a large import stays
// fast.
type Rescan struct {
	s       *Service
	pdqIdx  *index.PDQ
	pdqRefs map[index.ID]ref
	exact   map[string][]ref // raw digest bytes → entries
	videos  map[string]videoEntry
	vpdq    vpdqSet
}

// NewRescan indexes added (the upserts given to an OnAdded listener).
func (s *Service) NewRescan(added []Change) *Rescan {
	r := &Rescan{s: s, pdqIdx: index.NewPDQ(), pdqRefs: map[index.ID]ref{}, exact: map[string][]ref{}, videos: map[string]videoEntry{},
		vpdq: newVPDQSet(s.cfg.VPDQ)}
	for _, c := range added {
		if c.Entry.Type.IsVideo() {
			if v, err := newVideoEntry(c.Bank, c.Entry, nil); err == nil {
				if c.Entry.Type == hashlist.VPDQ {
					v = r.vpdq.add(v)
				}
				r.videos[c.Bank+"\x00"+v.Key()] = v
			}
			continue
		}
		raw, err := hex.DecodeString(c.Entry.Value)
		if err != nil {
			continue
		}
		switch c.Entry.Type {
		case hashlist.PDQ:
			if len(raw) != pdq.Size {
				continue
			}
			r.pdqRefs[r.pdqIdx.Insert(pdq.Hash(raw))] = ref{bank: c.Bank, entry: c.Entry}
		case hashlist.MD5, hashlist.SHA256:
			r.exact[string(raw)] = append(r.exact[string(raw)], ref{bank: c.Bank, entry: c.Entry})
		}
	}
	r.pdqIdx.Compact()
	return r
}

// Match returns the added entries that m matches and that are still in
// the service's index (not deleted since), with the rules of
// Service.Match.
func (r *Rescan) Match(m Media) []Match {
	s := r.s
	var cands []Match
	best := map[index.ID]int{}
	m.pdqHashes(s.cfg.MinQuality, func(h pdq.Hash) {
		for _, x := range r.pdqIdx.Lookup(h, s.cfg.Threshold) {
			if d, ok := best[x.ID]; !ok || x.Distance < d {
				best[x.ID] = x.Distance
			}
		}
	})
	s.mu.RLock()
	defer s.mu.RUnlock()
	add := func(x ref, dist int, detail string) {
		if !s.live(x.bank, x.Key()) {
			return
		}
		cands = append(cands, s.newMatch(x, dist, detail))
	}
	for id, d := range best {
		add(r.pdqRefs[id], d, "")
	}
	for _, x := range r.exact[string(m.Digests.MD5[:])] {
		if x.entry.Type == hashlist.MD5 {
			add(x, 0, "")
		}
	}
	for _, x := range r.exact[string(m.Digests.SHA256[:])] {
		if x.entry.Type == hashlist.SHA256 {
			add(x, 0, "")
		}
	}
	videoMatcher{cfg: &s.cfg, pdqIdx: r.pdqIdx, pdqRefs: r.pdqRefs, vpdq: r.vpdq, videos: r.videos}.match(m, add)
	sortMatches(cands)
	return cands
}

// Decide records a decision about content uploaded (or a list changed) at
// start, counts it per list and observes the time it took: for block and
// hold decisions the upload-to-decision histogram, for takedowns the
// list-update-to-takedown one.
func (s *Service) Decide(ctx context.Context, d Decision, start time.Time) error {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	if _, err := s.store.RecordDecision(ctx, d); err != nil {
		return err
	}
	if d.Bank != "" {
		s.m.matches.WithLabelValues(d.Bank, d.Kind).Inc()
	}
	if !start.IsZero() {
		switch d.Kind {
		case DecisionTakedown:
			s.m.takedownSeconds.Observe(d.Time.Sub(start).Seconds())
		case DecisionBlock, DecisionHold:
			s.m.decisionSeconds.Observe(d.Time.Sub(start).Seconds())
		}
	}
	return nil
}

// ObserveAccepted observes the decision time of an upload that matched
// nothing.
func (s *Service) ObserveAccepted(start time.Time) {
	s.m.decisionSeconds.Observe(time.Since(start).Seconds())
}

type metrics struct {
	matches         *prometheus.CounterVec
	decisionSeconds prometheus.Histogram
	takedownSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_moderation_matches_total",
			Help: "Hash-list matches by list and decision (block, hold, takedown)."}, []string{"list", "decision"}),
		decisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parleyd_moderation_upload_decision_seconds",
			Help:    "Time from a channel media upload arriving to its moderation decision.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		takedownSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parleyd_moderation_list_update_to_takedown_seconds",
			Help:    "Time from a hash-list update being stored to the takedown of a published post it matches.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
	}
	for _, c := range []prometheus.Collector{m.matches, m.decisionSeconds, m.takedownSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("moderation: register metrics: %w", err)
		}
	}
	return m, nil
}
