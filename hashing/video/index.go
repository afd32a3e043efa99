package video

import (
	"slices"
	"sync"

	"github.com/parleychat/parley/hashing/index"
)

// VPDQIndex finds the listed videos a query video matches by vPDQ, without
// comparing every frame with every frame: the frames of every listed video
// (quality-filtered and de-duplicated, as Match does) go into one PDQ
// multi-index (hashing/index); a query looks up each of its frames there,
// and only the videos some frame hit (the candidates) are scored. The
// scores are those of Match: a query frame counts when some frame of the
// video is within the distance, a video frame when some query frame is;
// since the multi-index returns exactly the frames within the distance,
// the decisions are the brute-force ones (TestVPDQIndexAgreesWithMatch).
// It is safe for concurrent use.
type VPDQIndex struct {
	opts   MatchOptions
	frames *index.PDQ

	mu     sync.RWMutex
	owner  []int32 // frame index.ID → video, -1 once removed
	videos map[int32]indexedVideo
	next   int32
}

type indexedVideo struct {
	ids []index.ID // its distinct frames of sufficient quality
}

// VPDQHit is a listed video a query matched, with the scores.
type VPDQHit struct {
	Video int32
	MatchResult
}

// NewVPDQIndex returns an empty index matching with o.
func NewVPDQIndex(o MatchOptions) *VPDQIndex {
	return &VPDQIndex{opts: o, frames: index.NewPDQ(), videos: map[int32]indexedVideo{}}
}

// Options returns the index's match options.
func (x *VPDQIndex) Options() MatchOptions { return x.opts }

// Add indexes a video's vPDQ hash and returns its id. A video with no
// frame of sufficient quality is kept (it matches nothing, as in Match).
func (x *VPDQIndex) Add(feats []Feature) int32 {
	hs := filterFrames(feats, x.opts.Quality)
	x.mu.Lock()
	defer x.mu.Unlock()
	v := x.next
	x.next++
	iv := indexedVideo{ids: make([]index.ID, 0, len(hs))}
	if len(hs) > 0 {
		// IDs are dense: the batch's are first, first+1, ...
		first := x.frames.InsertBatch(hs)
		for i := range hs {
			id := first + index.ID(i)
			for int(id) >= len(x.owner) {
				x.owner = append(x.owner, -1)
			}
			x.owner[id] = v
			iv.ids = append(iv.ids, id)
		}
	}
	x.videos[v] = iv
	return v
}

// Remove drops a video from the index.
func (x *VPDQIndex) Remove(v int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	iv, ok := x.videos[v]
	if !ok {
		return
	}
	for _, id := range iv.ids {
		x.frames.Delete(id)
		x.owner[id] = -1
	}
	delete(x.videos, v)
}

// Len returns the number of videos and of indexed frames.
func (x *VPDQIndex) Len() (videos, frames int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.videos), x.frames.Len()
}

// Compact rebuilds the frame index's flat base (after a bulk load).
func (x *VPDQIndex) Compact() { x.frames.Compact() }

// Match returns the listed videos q matches, best query percentage first,
// and how many candidate videos were scored.
func (x *VPDQIndex) Match(q []Feature) (hits []VPDQHit, candidates int) {
	fq := filterFrames(q, x.opts.Quality)
	if len(fq) == 0 {
		return nil, 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	type score struct {
		query   int
		matched map[index.ID]struct{} // the video's frames some query frame hit
	}
	scores := map[int32]*score{}
	for _, h := range fq {
		var counted []int32 // videos this query frame already counted for
		for _, m := range x.frames.Lookup(h, x.opts.Distance) {
			if int(m.ID) >= len(x.owner) {
				continue
			}
			v := x.owner[m.ID]
			if v < 0 {
				continue
			}
			s := scores[v]
			if s == nil {
				s = &score{matched: map[index.ID]struct{}{}}
				scores[v] = s
			}
			s.matched[m.ID] = struct{}{}
			if !slices.Contains(counted, v) {
				counted = append(counted, v)
				s.query++
			}
		}
	}
	decide := func(v int32, query, compared int) {
		n := len(x.videos[v].ids)
		if n == 0 {
			return
		}
		r := MatchResult{
			QueryPct:    float64(query) * 100 / float64(len(fq)),
			ComparedPct: float64(compared) * 100 / float64(n),
		}
		if r.Match = r.QueryPct >= x.opts.QueryPct && r.ComparedPct >= x.opts.ComparedPct; r.Match {
			hits = append(hits, VPDQHit{Video: v, MatchResult: r})
		}
	}
	if x.opts.QueryPct <= 0 && x.opts.ComparedPct <= 0 {
		// Thresholds of 0 match every video, hit or not: score them all.
		for v := range x.videos {
			if s := scores[v]; s != nil {
				decide(v, s.query, len(s.matched))
			} else {
				decide(v, 0, 0)
			}
		}
		candidates = len(x.videos)
	} else {
		for v, s := range scores {
			decide(v, s.query, len(s.matched))
		}
		candidates = len(scores)
	}
	slices.SortFunc(hits, func(a, b VPDQHit) int {
		if a.QueryPct != b.QueryPct {
			if a.QueryPct > b.QueryPct {
				return -1
			}
			return 1
		}
		return int(a.Video - b.Video)
	})
	return hits, candidates
}
