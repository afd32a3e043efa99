package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Key transparency (docs/transparency.md). The server runs the directory
// of package transparency/directory over its store: every account's signed
// device list is put into the directory by an epoch loop, each epoch
// stored in one transaction before the directory serves it, and clients
// fetch device lists only as directory answers with proofs.

// TransparencyConfig configures the key transparency directory.
type TransparencyConfig struct {
	// Directory holds the log's origin and the directory's own keys (a
	// note key for checkpoints, a VRF key), separate from every other key.
	Directory directory.Config
	// VerifierKey is the note verifier key of Directory.Signer, which
	// clients are given; WitnessKeys those of Directory.Witnesses.
	VerifierKey string
	WitnessKeys []string
	// Interval is the least time between two epochs (default 2s): a
	// published list is in the directory within about that long.
	Interval time.Duration
	// Heartbeat publishes an epoch after that long even when nothing
	// changed (default 5m), so that clients can tell a quiet directory
	// from one that freezes their view (they refuse epochs older than a
	// day by default).
	Heartbeat time.Duration
	// MaxChanges bounds the accounts one epoch takes (default 10 000);
	// more wait for the next.
	MaxChanges int
	// Follow: this node does not publish epochs; it serves the epochs
	// another node (with the same keys) stores in the shared database,
	// reloading when a new one appears. Of the nodes sharing a database,
	// exactly one publishes.
	Follow bool
}

// EphemeralTransparency returns a directory config with fresh keys, for
// tests and tools: clients pin the keys, so a server must keep its keys
// across restarts (parleyd keeps them in its data directory).
func EphemeralTransparency(origin string) (*TransparencyConfig, error) {
	skey, vkey, err := directory.GenerateNoteKey(rand.Reader, origin)
	if err != nil {
		return nil, err
	}
	signer, _, err := directory.NewNoteKey(skey)
	if err != nil {
		return nil, err
	}
	vk, err := vrf.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	// Tests want lists in the directory quickly.
	return &TransparencyConfig{Directory: directory.Config{Origin: origin, Signer: signer, VRF: vk}, VerifierKey: vkey, Interval: 20 * time.Millisecond}, nil
}

// ktDirectory is the server's running directory.
type ktDirectory struct {
	cfg   TransparencyConfig
	cur   atomic.Pointer[directory.Directory]
	store store.Store
	s     *Server
	nudge chan struct{}

	mu   sync.Mutex
	last time.Time // of the latest epoch
}

// maxHistoryPage bounds the versions one KTHistory answer carries.
const maxHistoryPage = 256

func newKTDirectory(ctx context.Context, s *Server, cfg TransparencyConfig) (*ktDirectory, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Minute
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = 10000
	}
	st, err := s.cfg.Store.KTLoad(ctx)
	if err != nil {
		return nil, err
	}
	labels := make([]directory.StoredLabel, len(st.Labels))
	for i, l := range st.Labels {
		if len(l.Index) != prefix.IndexSize || len(l.Leaf) != prefix.HashSize {
			return nil, fmt.Errorf("server: stored directory label %q is malformed", l.Label)
		}
		labels[i] = directory.StoredLabel{Label: l.Label, VRFProof: l.VRFProof, Epoch: l.Epoch, Version: l.Version}
		copy(labels[i].Index[:], l.Index)
		copy(labels[i].Value[:], l.Leaf)
	}
	dir, err := directory.Restore(cfg.Directory, st.Records, labels, st.Published)
	if err != nil {
		return nil, fmt.Errorf("server: key transparency directory: %w", err)
	}
	k := &ktDirectory{cfg: cfg, store: s.cfg.Store, s: s, nudge: make(chan struct{}, 1)}
	k.cur.Store(dir)
	if n := len(st.Records); n > 0 {
		if e, err := log.ParseEntry(st.Records[n-1]); err == nil {
			k.last = e.Time
		}
	}
	return k, nil
}

// dir is the directory answering now.
func (k *ktDirectory) dir() *directory.Directory { return k.cur.Load() }

// load reads the directory's stored state.
func loadDirectory(ctx context.Context, st store.Store, cfg directory.Config) (*directory.Directory, []byte, error) {
	kt, err := st.KTLoad(ctx)
	if err != nil {
		return nil, nil, err
	}
	labels := make([]directory.StoredLabel, len(kt.Labels))
	for i, l := range kt.Labels {
		if len(l.Index) != prefix.IndexSize || len(l.Leaf) != prefix.HashSize {
			return nil, nil, fmt.Errorf("server: stored directory label %q is malformed", l.Label)
		}
		labels[i] = directory.StoredLabel{Label: l.Label, VRFProof: l.VRFProof, Epoch: l.Epoch, Version: l.Version}
		copy(labels[i].Index[:], l.Index)
		copy(labels[i].Value[:], l.Leaf)
	}
	d, err := directory.Restore(cfg, kt.Records, labels, kt.Published)
	if err != nil {
		return nil, nil, err
	}
	var last []byte
	if n := len(kt.Records); n > 0 {
		last = kt.Records[n-1]
	}
	return d, last, nil
}

// follow keeps a following node's directory at the epochs the
// publishing node stores.
func (k *ktDirectory) follow(ctx context.Context) {
	tick := time.NewTicker(k.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_, _, err := k.store.KTEpoch(ctx, uint64(k.dir().Size()))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err == nil {
			var d *directory.Directory
			if d, _, err = loadDirectory(ctx, k.store, k.cfg.Directory); err == nil {
				k.cur.Store(d)
				continue
			}
		}
		if ctx.Err() == nil {
			k.s.log.Error("following the key transparency directory", "err", err)
		}
	}
}

// poke asks the epoch loop to publish soon (a list was published, or a
// witness cosigned).
func (k *ktDirectory) poke() {
	select {
	case k.nudge <- struct{}{}:
	default:
	}
}

// run is the epoch loop. Every Interval (or sooner after a poke, but
// never two epochs closer than Interval) it looks for lists that are not
// in the directory yet, whoever wrote them, and publishes an epoch if
// there are any, or if the last epoch is Heartbeat old.
func (k *ktDirectory) run(ctx context.Context) {
	if k.cfg.Follow {
		k.follow(ctx)
		return
	}
	tick := time.NewTicker(k.cfg.Interval)
	defer tick.Stop()
	for {
		wait := time.Until(k.lastTime().Add(k.cfg.Interval))
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		more, err := k.epoch(ctx, time.Since(k.lastTime()) >= k.cfg.Heartbeat || k.dir().Size() == 0)
		switch {
		case errors.Is(err, directory.ErrPending):
		case err != nil && ctx.Err() == nil:
			k.s.log.Error("key transparency epoch failed; retrying", "err", err)
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-k.nudge:
		case <-tick.C:
		}
	}
}

func (k *ktDirectory) lastTime() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.last
}

// epoch publishes one epoch with the pending lists, if there are any or
// force is set; more reports that lists are still waiting.
func (k *ktDirectory) epoch(ctx context.Context, force bool) (more bool, err error) {
	pending, err := k.store.KTPending(ctx, k.cfg.MaxChanges)
	if err != nil {
		return false, err
	}
	if len(pending) == 0 && !force {
		return false, nil
	}
	changes := make([]directory.Change, 0, len(pending))
	for _, l := range pending {
		c := directory.Change{Label: l.Username}
		if l.Signed != nil {
			if l.Version > directory.MaxVersion {
				continue // refused at publishing; never stored by this server
			}
			c.Version, c.Value = uint32(l.Version), l.Signed
		} else if _, ok := k.dir().Version(l.Username); !ok {
			continue
		}
		changes = append(changes, c)
	}
	now := time.Now()
	if t := k.lastTime(); now.Before(t) {
		now = t // the clock went back: epochs' times never do
	}
	e, err := k.dir().Prepare(rand.Reader, now, changes)
	if err != nil {
		return false, err
	}
	se := store.KTEpoch{Epoch: e.Entry.Epoch, Record: e.Record}
	if se.Changes, err = e.Changes().MarshalBinary(); err != nil {
		return false, err
	}
	for _, u := range e.Updates {
		se.Labels = append(se.Labels, store.KTLabel{Label: u.Label, Index: u.Index[:], VRFProof: u.VRFProof, Leaf: u.Leaf[:], Epoch: e.Entry.Epoch, Version: u.Version})
		se.Versions = append(se.Versions, store.KTVersion{Label: u.Label, Epoch: e.Entry.Epoch, Version: u.Version, Prev: u.Prev[:], Opening: u.Opening[:], Value: u.Value})
	}
	for _, r := range e.Removals {
		se.Removed = append(se.Removed, r.Label)
	}
	// Stored first: a crash here leaves no trace of a checkpoint that was
	// never served; a crash after leaves one the restart serves.
	if err := k.store.KTCommitEpoch(ctx, se); err != nil {
		return false, err
	}
	if err := k.dir().Commit(e); err != nil {
		return false, err
	}
	k.mu.Lock()
	k.last = e.Entry.Time
	k.mu.Unlock()
	k.s.metrics.ktEpochs.Inc()
	k.s.log.Info("key transparency epoch published", "epoch", e.Entry.Epoch, "updates", len(e.Updates), "removals", len(e.Removals))
	return len(pending) == k.cfg.MaxChanges, nil
}

// answer is the directory's answer about username for a client that knows
// the checkpoint of size known, as a wire message.
func (k *ktDirectory) answer(ctx context.Context, username string, known int64) (*parleypb.KTAnswer, *directory.Lookup, error) {
	l, err := k.dir().Search(username, known)
	if errors.Is(err, directory.ErrNotServing) {
		return nil, nil, &wire.Error{Code: parleypb.ErrorCode_NOT_READY, Message: "the key transparency directory has not published an epoch yet; retry in a few seconds"}
	}
	if err != nil {
		return nil, nil, err
	}
	a := &parleypb.KTAnswer{Checkpoint: l.Checkpoint, Entry: l.Record, VrfProof: l.VRFProof}
	if a.Consistency, err = log.EncodeProof(l.Consistency); err != nil {
		return nil, nil, err
	}
	if a.EntryProof, err = log.EncodeProof(l.EntryProof); err != nil {
		return nil, nil, err
	}
	if a.PrefixProof, err = l.Proof.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	if l.Found {
		v, err := k.store.KTVersion(ctx, username, l.Epoch)
		if err != nil {
			return nil, nil, fmt.Errorf("directory version of %s: %w", username, err)
		}
		a.Current = wireVersion(v)
	}
	return a, l, nil
}

func wireVersion(v store.KTVersion) *parleypb.KTVersion {
	return &parleypb.KTVersion{Epoch: v.Epoch, Prev: v.Prev, Version: v.Version, Opening: v.Opening, Value: v.Value}
}

func (c *conn) handleKTKeys() (parleypb.ServerFrameBody, error) {
	k := c.s.kt
	return &parleypb.ServerFrame_KtKeys{KtKeys: &parleypb.KTKeysResponse{
		Origin: k.cfg.Directory.Origin, NoteKey: k.cfg.VerifierKey, VrfKey: k.dir().VRFPublic().Bytes(), Witnesses: k.cfg.WitnessKeys,
		FrankingKey: c.s.FrankingKey(),
	}}, nil
}

// handleKTHistory answers own-account monitoring: the versions of the
// caller's own username after an epoch, with the current answer.
func (c *conn) handleKTHistory(ctx context.Context, r *parleypb.KTHistoryRequest) (parleypb.ServerFrameBody, error) {
	a, l, err := c.s.kt.answer(ctx, c.dev.Username, r.KnownSize)
	if err != nil {
		return nil, err
	}
	resp := &parleypb.KTHistoryResponse{Answer: a}
	vs, err := c.s.cfg.Store.KTVersions(ctx, c.dev.Username, r.AfterEpoch, r.FromStart, maxHistoryPage)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.Epoch > l.Served {
			break // not served yet
		}
		resp.Versions = append(resp.Versions, wireVersion(v))
	}
	resp.More = len(vs) == maxHistoryPage && len(resp.Versions) == len(vs)
	return &parleypb.ServerFrame_KtHistory{KtHistory: resp}, nil
}

func (c *conn) handleKTConsistency(r *parleypb.KTConsistencyRequest) (parleypb.ServerFrameBody, error) {
	p, err := c.s.kt.dir().Consistency(r.OldSize, r.NewSize)
	if err != nil {
		return nil, &wire.Error{Code: parleypb.ErrorCode_NOT_FOUND, Message: err.Error()}
	}
	b, err := log.EncodeProof(p)
	if err != nil {
		return nil, err
	}
	return &parleypb.ServerFrame_KtConsistency{KtConsistency: &parleypb.KTConsistencyResponse{Proof: b}}, nil
}

// The auditors' HTTP API (wire.PathKT): public, read-only but for
// cosignatures, which only configured witnesses can make.

// KTKeysJSON is GET /v1/kt/keys.
type KTKeysJSON struct {
	Origin    string   `json:"origin"`
	NoteKey   string   `json:"note_key"`
	VRFKey    []byte   `json:"vrf_key"`
	Witnesses []string `json:"witnesses,omitempty"`
	// Size is the number of epochs committed, Published the number served
	// (less while an epoch waits for its witnesses).
	Size      int64 `json:"size"`
	Published int64 `json:"published"`
}

// KTEpochJSON is GET /v1/kt/epochs/{n}: the log record and the changes
// (directory.Changes encoded).
type KTEpochJSON struct {
	Record  []byte `json:"record"`
	Changes []byte `json:"changes"`
}

func (s *Server) ktRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathKT+"/keys", func(w http.ResponseWriter, r *http.Request) {
		_, pub := s.kt.dir().Published()
		writeJSON(w, KTKeysJSON{Origin: s.kt.cfg.Directory.Origin, NoteKey: s.kt.cfg.VerifierKey, VRFKey: s.kt.dir().VRFPublic().Bytes(),
			Witnesses: s.kt.cfg.WitnessKeys, Size: s.kt.dir().Size(), Published: pub})
	})
	mux.HandleFunc("GET "+wire.PathKT+"/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		n := s.kt.dir().Latest()
		if n == nil {
			http.Error(w, "no epoch yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(n)
	})
	mux.HandleFunc("GET "+wire.PathKT+"/epochs/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseUint(r.PathValue("n"), 10, 63)
		if err != nil {
			http.Error(w, "epoch must be a number", http.StatusBadRequest)
			return
		}
		if n >= uint64(s.kt.dir().Size()) {
			http.Error(w, "no such epoch yet", http.StatusNotFound)
			return
		}
		rec, ch, err := s.cfg.Store.KTEpoch(r.Context(), n)
		if err != nil {
			http.Error(w, "epoch not available", http.StatusInternalServerError)
			return
		}
		writeJSON(w, KTEpochJSON{Record: rec, Changes: ch})
	})
	mux.HandleFunc("GET "+wire.PathKT+"/consistency", func(w http.ResponseWriter, r *http.Request) {
		from, err1 := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		to, err2 := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
		if err1 != nil || err2 != nil {
			http.Error(w, "from and to must be numbers", http.StatusBadRequest)
			return
		}
		p, err := s.kt.dir().Consistency(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		b, _ := log.EncodeProof(p)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
	mux.HandleFunc("POST "+wire.PathKT+"/cosign", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, log.MaxNoteSize+1))
		if err != nil || len(body) > log.MaxNoteSize {
			http.Error(w, "a cosigned checkpoint note, at most 16 KiB", http.StatusBadRequest)
			return
		}
		pub, err := s.kt.dir().Publish(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if pub != nil {
			if err := s.cfg.Store.KTSetPublished(r.Context(), pub); err != nil {
				s.log.Error("storing cosigned checkpoint", "err", err)
			}
			s.kt.poke()
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
