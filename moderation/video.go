package moderation

import (
	"fmt"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/index"
	"github.com/parleychat/parley/hashing/video"
)

// videoEntry is a vPDQ or TMK bank entry, decoded once when it is indexed.
type videoEntry struct {
	ref
	feats []video.Feature // vPDQ, until it is added to a VPDQIndex
	vid   int32           // vPDQ: its id in the VPDQIndex
	tmk   *video.TMK      // TMK
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

// newVideoEntry decodes a stored vPDQ or TMK entry.
func newVideoEntry(bank string, e hashlist.Entry) (videoEntry, error) {
	v := videoEntry{ref: ref{bank, e}}
	var err error
	switch e.Type {
	case hashlist.VPDQ:
		v.feats, err = hashlist.ParseVPDQValue(e.Value)
	case hashlist.TMK:
		v.tmk, err = hashlist.ParseTMKValue(e.Value)
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
		hits, _ := vm.vpdq.idx.Match(m.VPDQ)
		for _, r := range hits {
			x, ok := vm.vpdq.refs[r.Video]
			if !ok {
				continue
			}
			add(x, 0, fmt.Sprintf("vPDQ: %.1f%% of the upload's frames and %.1f%% of the listed video's frames match (need %.0f%% and %.0f%%, distance %d, quality %d)",
				r.QueryPct, r.ComparedPct, cfg.VPDQ.QueryPct, cfg.VPDQ.ComparedPct, cfg.VPDQ.Distance, cfg.VPDQ.Quality))
		}
	}
	for _, v := range vm.videos {
		switch {
		case v.tmk != nil && m.TMK != nil:
			r, err := video.MatchTMK(m.TMK, v.tmk, cfg.TMKLevel1, cfg.TMKLevel2)
			if err == nil && r.Match {
				add(v.ref, 0, fmt.Sprintf("TMK+PDQF: level-1 cosine %.4f, level-2 score %.4f (need %.2f and %.2f)",
					r.Level1, r.Level2, cfg.TMKLevel1, cfg.TMKLevel2))
			}
		}
	}
}
