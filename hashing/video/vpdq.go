package video

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parleychat/parley/hashing/pdq"
)

// Feature is one hashed frame of a vPDQ hash: the reference's vpdqFeature.
type Feature struct {
	// Frame is the frame's number among the decoded frames.
	Frame   int
	Quality int
	Hash    pdq.Hash
	// Timestamp is Frame / frame rate, in seconds (float32 arithmetic as in
	// the reference, printed to 3 decimals).
	Timestamp float64
}

// VPDQOptions says how a video is hashed.
type VPDQOptions struct {
	// SecondsPerHash is the sampling interval: a frame is hashed when its
	// number is a multiple of int(SecondsPerHash*frame rate) (at least 1),
	// as in the reference. 0 hashes every frame (the reference sample
	// hashes are made so); uploads use 1.
	SecondsPerHash float64
	// FrameStep, when positive, hashes every FrameStep-th decoded frame
	// instead (frames 0, FrameStep, 2*FrameStep, ...), whatever the rate.
	FrameStep int
	// RemoveBorders also hashes each sampled frame with its uniform
	// borders (letterbox and pillarbox bars) cut off, into
	// Hashes.VPDQBorderless (borders.go). Only Hash does this.
	RemoveBorders bool
	// PruneDistance, when positive, drops a frame whose hash is within
	// this distance of the last frame kept (the README's optional
	// "pruning frames"); 0 keeps every sampled frame.
	PruneDistance int
}

// VPDQScaler is the swscale setting for vPDQ's YUV to RGB24 conversion.
// The reference converts each frame with sws_scale(SWS_AREA) at the
// frame's own size; with the ffmpeg command line (Debian's ffmpeg 5.1),
// "neighbor+accurate_rnd" reproduces its frames exactly: on all 1672
// frames of the four reference sample videos every PDQ hash is identical
// to the reference's (TestVPDQConformance). Plain "area" leaves 40 % of
// frames 2-6 bits away.
const VPDQScaler = "neighbor+accurate_rnd"

// HashVPDQ decodes the video at path with d and returns its vPDQ hash:
// every sampled frame's PDQ hash (at the video's own resolution, as the
// reference hashes them), quality and timestamp.
func (d *Decoder) HashVPDQ(ctx context.Context, path string, opts VPDQOptions) ([]Feature, Info, error) {
	if err := opts.check(); err != nil {
		return nil, Info{}, err
	}
	info, err := d.Probe(ctx, path)
	if err != nil {
		return nil, info, err
	}
	var feats []Feature
	if err := d.decode(ctx, path, info, []output{vpdqOutput(info, opts, &feats)}); err != nil {
		return nil, info, err
	}
	if opts.PruneDistance > 0 {
		feats = Prune(feats, opts.PruneDistance)
	}
	return feats, info, nil
}

func (opts VPDQOptions) check() error {
	if opts.SecondsPerHash < 0 || math.IsNaN(opts.SecondsPerHash) || math.IsInf(opts.SecondsPerHash, 0) {
		return fmt.Errorf("video: seconds per hash must be 0 or more, not %v", opts.SecondsPerHash)
	}
	return nil
}

// vpdqOutput is the decoder output that hashes the sampled frames for
// vPDQ, appending to *feats.
func vpdqOutput(info Info, opts VPDQOptions, feats *[]Feature) output {
	return vpdqBordersOutput(info, opts, feats, nil, nil)
}

// vpdqBordersOutput is vpdqOutput that, with borderless non-nil, also
// hashes every frame with its borders removed, in each of the ways
// Borders.Cuts lists, into borderless (the frame's own hash where it has
// none), counting the frames that had some in *bordered.
func vpdqBordersOutput(info Info, opts VPDQOptions, feats *[]Feature, borderless *[BorderCuts][]Feature, bordered *int) output {
	every := 1
	if opts.FrameStep > 0 {
		every = opts.FrameStep
	} else if opts.SecondsPerHash > 0 {
		every = max(int(opts.SecondsPerHash*info.FrameRate), 1)
	}
	var hasher pdq.Hasher
	var luma, cropped []float32
	rate := float32(info.FrameRate)
	return output{FrameRequest{Every: every, Scaler: VPDQScaler}, func(f Frame) error {
		n := f.Width * f.Height
		if cap(luma) < n {
			luma = make([]float32, n)
		}
		luma = luma[:n]
		pdq.RGBLuma(luma, f.RGB)
		r := hasher.Luma(luma, f.Width, f.Height)
		feat := Feature{
			Frame:     f.Number,
			Quality:   r.Quality,
			Hash:      r.Hash,
			Timestamp: float64(float32(f.Number) / rate),
		}
		*feats = append(*feats, feat)
		if borderless != nil {
			// One variant per way of cutting: top and bottom bars only
			// (a letterboxed copy of a video that has side bars of its
			// own keeps them), side bars only, and all four.
			b := FindBorders(luma, f.Width, f.Height)
			if b.Any() {
				*bordered++
			}
			for i, cut := range b.Cuts() {
				v := feat
				if cut.Any() {
					var cw, ch int
					cropped, cw, ch = cropLuma(cropped, luma, f.Width, f.Height, cut)
					r := hasher.Luma(cropped, cw, ch)
					v.Quality, v.Hash = r.Quality, r.Hash
				}
				borderless[i] = append(borderless[i], v)
			}
		}
		return nil
	}}
}

// Hashes are a video's two perceptual hashes.
type Hashes struct {
	VPDQ []Feature
	TMK  *TMK
	// VPDQBorderless are, with VPDQOptions.RemoveBorders, the vPDQ
	// hashes of the frames with their uniform borders cut off, one per
	// way of cutting (Borders.Cuts: top and bottom, sides, all four; a
	// frame without such borders keeps its hash); nil when no frame had
	// borders.
	VPDQBorderless [][]Feature
	// BorderedFrames counts the sampled frames that had borders.
	BorderedFrames int
}

// Hash returns both the vPDQ hash (as HashVPDQ with opts) and the
// TMK+PDQF hash (as HashTMK) of the video at path, identical to theirs,
// from one ffmpeg child process that decodes the video once and writes
// the two frame streams (full size, sampled, for vPDQ; 64x64 at 15 frames
// a second for TMK) to two pipes, hashed concurrently. The limits apply
// to the one process; decoding is most of the cost of hashing, so this
// costs little more than either hash alone (docs/benchmarks.md).
func (d *Decoder) Hash(ctx context.Context, path string, opts VPDQOptions) (Hashes, Info, error) {
	if err := opts.check(); err != nil {
		return Hashes{}, Info{}, err
	}
	info, err := d.Probe(ctx, path)
	if err != nil {
		return Hashes{}, info, err
	}
	var feats []Feature
	var borderless [BorderCuts][]Feature
	var bordered int
	vpdqOut := vpdqOutput(info, opts, &feats)
	if opts.RemoveBorders {
		vpdqOut = vpdqBordersOutput(info, opts, &feats, &borderless, &bordered)
	}
	t := newTMK()
	if err := d.decode(ctx, path, info, []output{vpdqOut, tmkOutput(t)}); err != nil {
		return Hashes{}, info, err
	}
	t.finish()
	var variants [][]Feature
	if bordered > 0 {
		for _, v := range borderless {
			if !slices.Equal(v, feats) {
				variants = append(variants, v)
			}
		}
	}
	if opts.PruneDistance > 0 {
		feats = Prune(feats, opts.PruneDistance)
		for i := range variants {
			variants[i] = Prune(variants[i], opts.PruneDistance)
		}
	}
	return Hashes{VPDQ: feats, TMK: t, VPDQBorderless: variants, BorderedFrames: bordered}, info, nil
}

// Prune drops each feature whose hash is within distance of the last
// feature kept (vpdq/README.md, "Pruning Frames"). The first is always kept.
func Prune(feats []Feature, distance int) []Feature {
	out := make([]Feature, 0, len(feats))
	for _, f := range feats {
		if len(out) > 0 && pdq.Distance(out[len(out)-1].Hash, f.Hash) <= distance {
			continue
		}
		out = append(out, f)
	}
	return out
}

// MatchOptions are the vPDQ comparison's parameters. The zero value is not
// useful; start from DefaultMatch.
type MatchOptions struct {
	// Distance: two frames match when their PDQ distance is <= Distance.
	Distance int
	// Quality: frames of lower quality are left out of both videos.
	Quality int
	// QueryPct: at least this share (percent) of the query's distinct
	// frames must match some frame of the compared video.
	QueryPct float64
	// ComparedPct: likewise for the compared video's frames.
	ComparedPct float64
}

// DefaultMatch is python-threatexchange's vPDQ signal type (the matcher
// HMA uses): distance 31, quality 50, query 80 %, compared (index) 0 %.
var DefaultMatch = MatchOptions{Distance: 31, Quality: 50, QueryPct: 80, ComparedPct: 0}

// MatchResult is the outcome of comparing two vPDQ hashes.
type MatchResult struct {
	// QueryPct and ComparedPct are the shares of each video's distinct,
	// quality-filtered frames that have a match in the other.
	QueryPct, ComparedPct float64
	Match                 bool
}

// Match compares the query video q with the compared video c by the
// published algorithm (vpdq/README.md, python-threatexchange's
// match_VPDQ_hash_brute): each video's frames are de-duplicated by hash and
// filtered by quality; a frame matches when some frame of the other video
// is within the distance; the videos match when both percentages reach
// their thresholds. With no frames left on either side nothing matches.
func Match(q, c []Feature, o MatchOptions) MatchResult {
	fq := filterFrames(q, o.Quality)
	fc := filterFrames(c, o.Quality)
	if len(fq) == 0 || len(fc) == 0 {
		return MatchResult{}
	}
	qn := countMatched(fq, fc, o.Distance)
	cn := countMatched(fc, fq, o.Distance)
	r := MatchResult{
		QueryPct:    float64(qn) * 100 / float64(len(fq)),
		ComparedPct: float64(cn) * 100 / float64(len(fc)),
	}
	r.Match = r.QueryPct >= o.QueryPct && r.ComparedPct >= o.ComparedPct
	return r
}

// MatchVariants compares each variant of a query video (its vPDQ hash,
// and for example its border-removed hash) with c and returns the best
// result: a match if any variant matches, otherwise the highest query
// percentage. Nil variants are skipped.
func MatchVariants(variants [][]Feature, c []Feature, o MatchOptions) MatchResult {
	var best MatchResult
	for _, q := range variants {
		if q == nil {
			continue
		}
		r := Match(q, c, o)
		if r.Match && !best.Match || r.Match == best.Match && r.QueryPct > best.QueryPct {
			best = r
		}
	}
	return best
}

// filterFrames keeps the distinct hashes of frames of quality >= min.
func filterFrames(fs []Feature, minQuality int) []pdq.Hash {
	seen := make(map[pdq.Hash]bool, len(fs))
	out := make([]pdq.Hash, 0, len(fs))
	for _, f := range fs {
		if f.Quality < minQuality || seen[f.Hash] {
			continue
		}
		seen[f.Hash] = true
		out = append(out, f.Hash)
	}
	return out
}

func countMatched(a, b []pdq.Hash, dist int) int {
	n := 0
	for _, x := range a {
		for _, y := range b {
			if pdq.Distance(x, y) <= dist {
				n++
				break
			}
		}
	}
	return n
}

// FormatVPDQ writes feats in the reference's text format (vpdqio.cpp), one
// line per frame: frame_number,quality,pdq_hex,timestamp with 3 decimals.
func FormatVPDQ(w io.Writer, feats []Feature) error {
	bw := bufio.NewWriter(w)
	for _, f := range feats {
		fmt.Fprintf(bw, "%d,%d,%s,%.3f\n", f.Frame, f.Quality, f.Hash, f.Timestamp)
	}
	return bw.Flush()
}

// MaxVPDQFrames bounds how many lines ParseVPDQ accepts by default (about
// 2 h 45 min at 30 frames a second, every frame).
const MaxVPDQFrames = 300_000

// ErrBadVPDQ is wrapped by every ParseVPDQ error.
var ErrBadVPDQ = errors.New("vpdq: malformed hash")

// ParseVPDQ reads a vPDQ hash in the reference text format. Blank lines are
// skipped; anything else malformed is an error naming the line, and nothing
// is returned. More than maxFrames lines (MaxVPDQFrames if maxFrames <= 0)
// is an error, found before reading further. Line length is bounded.
func ParseVPDQ(r io.Reader, maxFrames int) ([]Feature, error) {
	if maxFrames <= 0 {
		maxFrames = MaxVPDQFrames
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), 256)
	var feats []Feature
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if len(feats) >= maxFrames {
			return nil, fmt.Errorf("%w: more than %d frames", ErrBadVPDQ, maxFrames)
		}
		f, err := ParseFeature(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		feats = append(feats, f)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d is too long", ErrBadVPDQ, line+1)
		}
		return nil, err
	}
	if len(feats) == 0 {
		return nil, fmt.Errorf("%w: no frames", ErrBadVPDQ)
	}
	return feats, nil
}

// ParseFeature parses one line "frame,quality,pdq_hex,timestamp".
func ParseFeature(s string) (Feature, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Feature{}, fmt.Errorf("%w: want frame,quality,pdq_hex,timestamp, got %d fields", ErrBadVPDQ, len(parts))
	}
	frame, err := strconv.Atoi(parts[0])
	if err != nil || frame < 0 {
		return Feature{}, fmt.Errorf("%w: frame number %q", ErrBadVPDQ, parts[0])
	}
	q, err := strconv.Atoi(parts[1])
	if err != nil || q < 0 || q > 100 {
		return Feature{}, fmt.Errorf("%w: quality %q is not 0-100", ErrBadVPDQ, parts[1])
	}
	h, err := pdq.ParseHash(parts[2])
	if err != nil {
		return Feature{}, fmt.Errorf("%w: %v", ErrBadVPDQ, err)
	}
	ts, err := strconv.ParseFloat(parts[3], 64)
	if err != nil || ts < 0 || math.IsInf(ts, 0) || math.IsNaN(ts) {
		return Feature{}, fmt.Errorf("%w: timestamp %q", ErrBadVPDQ, parts[3])
	}
	return Feature{Frame: frame, Quality: q, Hash: h, Timestamp: ts}, nil
}
