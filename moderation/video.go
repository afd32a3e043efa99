package moderation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/index"
	"github.com/parleychat/parley/hashing/video"
)

// videoEntry is a vPDQ or TMK bank entry, decoded once when it is indexed.
// Its ref carries the entry without its value (a vPDQ value is tens of KB,
// a TMK one 350 KB of base64), with the key and fingerprint computed.
type videoEntry struct {
	ref
	feats []video.Feature // vPDQ, until it is added to a VPDQIndex
	vid   int32           // vPDQ: its id in the VPDQIndex
	tmk   *compactTMK     // TMK
}

// compactTMK is a TMK+PDQF entry as the index keeps it: the level-1 vector
// (the average frame feature, 1 KiB) and the parameters in memory, and the
// full hash (264 KB of level-2 vectors) loaded only for the few entries
// whose level-1 cosine passes. This bounds the index's memory to about
// 1.5 KB a TMK entry instead of 264 KB (docs/benchmarks.md).
type compactTMK struct {
	level1 *video.TMK // Cos and Sin nil
	load   func() (*video.TMK, error)
}

func newCompactTMK(t *video.TMK, load func() (*video.TMK, error)) *compactTMK {
	h := &video.TMK{FramesPerSecond: t.FramesPerSecond, FrameCount: t.FrameCount,
		Periods: t.Periods, Coefficients: t.Coefficients, Average: t.Average}
	return &compactTMK{level1: h, load: load}
}

// match is video.MatchTMK(q, full entry) without holding the full entry:
// level 1 on the compact form, then level 2 on the entry loaded back.
func (c *compactTMK) match(q *video.TMK, c1, c2 float32) (video.TMKResult, error) {
	if err := video.Compatible(q, c.level1); err != nil {
		return video.TMKResult{}, err
	}
	if l1 := video.Level1(q, c.level1); l1 < c1 {
		return video.TMKResult{Level1: l1}, nil
	}
	full, err := c.load()
	if err != nil {
		return video.TMKResult{}, err
	}
	return video.MatchTMK(q, full, c1, c2)
}

// tmkSpill holds the full TMK hashes of an index in an unlinked temporary
// file (readable only by this process), appended in the reference .tmk
// format and read back by offset. A deleted entry's bytes stay until the
// process ends; a server that replaces its TMK lists often pays that in
// disk, not memory.
type tmkSpill struct {
	dir  string // "" for os.TempDir()
	mu   sync.Mutex
	f    *os.File
	size int64
	err  error
}

// put appends t and returns the function that reads it back.
func (sp *tmkSpill) put(t *video.TMK) (func() (*video.TMK, error), error) {
	var b bytes.Buffer
	if err := video.WriteTMK(&b, t); err != nil {
		return nil, err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f == nil && sp.err == nil {
		sp.f, sp.err = os.CreateTemp(sp.dir, "parley-tmk-*")
		if sp.err == nil {
			// Unlinked at once: the file lives as long as the
			// process holds it and nobody else can open it.
			sp.err = os.Remove(sp.f.Name())
		}
	}
	if sp.err != nil {
		return nil, fmt.Errorf("moderation: TMK spill file: %w", sp.err)
	}
	off, n := sp.size, b.Len()
	if _, err := sp.f.WriteAt(b.Bytes(), off); err != nil {
		return nil, fmt.Errorf("moderation: TMK spill file: %w", err)
	}
	sp.size += int64(n)
	return func() (*video.TMK, error) {
		return video.ReadTMK(io.NewSectionReader(sp.f, off, int64(n)))
	}, nil
}

// IndexKey is the key under which the index keeps an entry, and the
// Match.Key of its matches: hashlist.Entry.Key for image and exact
// entries, and for video entries the type and the SHA-256 of the value
// (which for TMK is 350 KB).
func IndexKey(e hashlist.Entry) string {
	if !e.Type.IsVideo() {
		return e.Key()
	}
	sum := sha256.Sum256([]byte(e.Value))
	return string(e.Type) + ":sha256:" + hex.EncodeToString(sum[:])
}

// slimRef is the ref of a video entry: without its value, with its key and
// fingerprint computed from it.
func slimRef(bank string, e hashlist.Entry) ref {
	r := ref{bank: bank, entry: e, key: IndexKey(e), fingerprint: e.Fingerprint()}
	r.entry.Value = ""
	return r
}

// vpdqSet is the vPDQ entries of a matcher: their frames in a VPDQIndex.
type vpdqSet struct {
	idx  *video.VPDQIndex
	refs map[int32]ref
}

func newVPDQSet(o video.MatchOptions) vpdqSet {
	return vpdqSet{idx: video.NewVPDQIndex(o), refs: map[int32]ref{}}
}

// add indexes v's frames (dropping them from v) and returns v with its id.
func (vs vpdqSet) add(v videoEntry) videoEntry {
	v.vid = vs.idx.Add(v.feats)
	v.feats = nil
	vs.refs[v.vid] = v.ref
	return v
}

func (vs vpdqSet) remove(v videoEntry) {
	vs.idx.Remove(v.vid)
	delete(vs.refs, v.vid)
}

// newVideoEntry decodes a stored vPDQ or TMK entry. A TMK entry's full
// hash goes to spill; with spill nil it is decoded again from e's value
// when needed (a Rescan, whose changes hold the values anyway).
func newVideoEntry(bank string, e hashlist.Entry, spill *tmkSpill) (videoEntry, error) {
	v := videoEntry{ref: slimRef(bank, e)}
	var err error
	switch e.Type {
	case hashlist.VPDQ:
		v.feats, err = hashlist.ParseVPDQValue(e.Value)
	case hashlist.TMK:
		var t *video.TMK
		if t, err = hashlist.ParseTMKValue(e.Value); err != nil {
			break
		}
		load := func() (*video.TMK, error) { return hashlist.ParseTMKValue(e.Value) }
		if spill != nil {
			if load, err = spill.put(t); err != nil {
				break
			}
		}
		v.tmk = newCompactTMK(t, load)
	default:
		err = fmt.Errorf("moderation: %s is not a video hash", e.Type)
	}
	return v, err
}

// videoMatcher matches a video's hashes against a PDQ index (every sampled
// frame against the image lists) and a set of vPDQ and TMK entries. The
// service's own index and a Rescan's index of new entries both use it.
type videoMatcher struct {
	cfg     *Config
	pdqIdx  *index.PDQ
	pdqRefs map[index.ID]ref
	vpdq    vpdqSet
	videos  map[string]videoEntry // TMK entries are compared one by one
}

// match returns the entries m's video hashes match; add is called for each
// with what the match says (percentages, cosine, frame counts).
func (vm videoMatcher) match(m Media, add func(r ref, dist int, detail string)) {
	cfg := vm.cfg
	if len(m.VPDQ) > 0 {
		// Frames against image PDQ lists: each listed image counts the
		// sampled frames within the threshold (a still shown for three
		// seconds is three frames at one a second).
		type hit struct{ frames, best int }
		hits := map[index.ID]*hit{}
		sampled := 0
		for _, f := range m.VPDQ {
			if f.Quality < cfg.MinQuality {
				continue
			}
			sampled++
			for _, r := range vm.pdqIdx.Lookup(f.Hash, cfg.Threshold) {
				h := hits[r.ID]
				if h == nil {
					h = &hit{best: r.Distance}
					hits[r.ID] = h
				}
				h.frames++
				h.best = min(h.best, r.Distance)
			}
		}
		for id, h := range hits {
			r, ok := vm.pdqRefs[id]
			if !ok || h.frames < cfg.MinFrameMatches {
				continue
			}
			add(r, h.best, fmt.Sprintf("%d of %d sampled frames within PDQ distance %d of the listed image (closest %d; at least %d needed)",
				h.frames, sampled, cfg.Threshold, h.best, cfg.MinFrameMatches))
		}
	}
	if len(m.VPDQ) > 0 {
		// The upload's own frames first, then its border-removed
		// variants; each listed video is reported once, by the first
		// variant that matches it.
		seen := map[int32]bool{}
		for i, q := range append([][]video.Feature{m.VPDQ}, m.VPDQBorderless...) {
			hits, _ := vm.vpdq.idx.Match(q)
			for _, r := range hits {
				x, ok := vm.vpdq.refs[r.Video]
				if !ok || seen[r.Video] {
					continue
				}
				seen[r.Video] = true
				how := ""
				if i > 0 {
					how = " with the upload's borders removed"
				}
				add(x, 0, fmt.Sprintf("vPDQ%s: %.1f%% of the upload's frames and %.1f%% of the listed video's frames match (need %.0f%% and %.0f%%, distance %d, quality %d)",
					how, r.QueryPct, r.ComparedPct, cfg.VPDQ.QueryPct, cfg.VPDQ.ComparedPct, cfg.VPDQ.Distance, cfg.VPDQ.Quality))
			}
		}
	}
	for _, v := range vm.videos {
		switch {
		case v.tmk != nil && m.TMK != nil:
			r, err := v.tmk.match(m.TMK, cfg.TMKLevel1, cfg.TMKLevel2)
			if err == nil && r.Match {
				add(v.ref, 0, fmt.Sprintf("TMK+PDQF: level-1 cosine %.4f, level-2 score %.4f (need %.2f and %.2f)",
					r.Level1, r.Level2, cfg.TMKLevel1, cfg.TMKLevel2))
			}
		}
	}
}
