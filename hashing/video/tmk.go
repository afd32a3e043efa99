package video

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parleychat/parley/hashing/pdq"
)

// TMK+PDQF (ThreatExchange tmk/): each video is resampled to 15 frames a
// second at 64x64, every frame gets its PDQF (the 256 float DCT
// coefficients PDQ thresholds), and the frame features are summarised in a
// fixed-length hash: their average, and for each of 4 periods and 32
// Fourier coefficients the cosine- and sine-weighted sums of the
// L2-normalised features (a temporal match kernel, Poullot et al.).

// TMK constants of the reference (tmkiotypes.h, tmkfv.cpp).
const (
	TMKFramesPerSecond = 15
	TMKFrameDimension  = 64  // frames are scaled to 64x64
	TMKFeatureDim      = 256 // PDQF
	tmkHeaderSize      = 32
	// Bounds on what a .tmk file may declare, so that a hostile header
	// cannot make the reader allocate or the matcher loop without end.
	tmkMaxPeriods = 64
	tmkMaxCoeffs  = 256
	tmkMaxPeriod  = 1 << 20
)

// Default thresholds of the two-level match (tmk_default_thresholds.h).
const (
	DefaultTMKLevel1 = 0.7
	DefaultTMKLevel2 = 0.7
)

// TMKPeriods and TMKCoefficients are the reference's Poullot periods (in
// frames) and Fourier coefficients.
var (
	TMKPeriods      = []int32{2731, 4391, 9767, 14653}
	TMKCoefficients = []float32{
		0.0708041893112, 0.13937789309, 0.132897260304,
		0.122765735552, 0.109878684888, 0.09529606433,
		0.0800986647852, 0.0652590650356, 0.0515478238322,
		0.0394851531195, 0.0293374252025, 0.0211492623679,
		0.0147973073245, 0.0100512818746, 0.0066306408014,
		0.00424947117334, 0.0026467615764, 0.00160270959695,
		0.000943882629639, 0.000540841638603, 0.000301633183798,
		0.000163800158855, 8.66454753015e-05, 4.46626303151e-05,
		2.24429442235e-05, 1.09982139799e-05, 5.25823487999e-06,
		2.45358229988e-06, 1.11781474895e-06, 4.97406489221e-07,
		2.16265487234e-07, 9.19087006565e-08,
	}
)

// TMK is a TMK+PDQF hash: the reference's TMKFeatureVectors.
type TMK struct {
	FramesPerSecond int32
	// FrameCount is the number of (resampled) frames hashed; informational.
	FrameCount   int32
	Periods      []int32
	Coefficients []float32
	// Average is the average PDQF frame feature (the level-1 vector).
	Average [TMKFeatureDim]float32
	// Cos and Sin hold len(Periods)*len(Coefficients) feature vectors,
	// period-major: vector (i, j) is at [(i*len(Coefficients)+j)*256:].
	Cos, Sin []float32
}

func (t *TMK) vec(v []float32, i, j int) []float32 {
	off := (i*len(t.Coefficients) + j) * TMKFeatureDim
	return v[off : off+TMKFeatureDim]
}

// newTMK returns an empty accumulator with the reference parameters.
func newTMK() *TMK {
	n := len(TMKPeriods) * len(TMKCoefficients) * TMKFeatureDim
	return &TMK{
		FramesPerSecond: TMKFramesPerSecond,
		Periods:         append([]int32(nil), TMKPeriods...),
		Coefficients:    append([]float32(nil), TMKCoefficients...),
		Cos:             make([]float32, n),
		Sin:             make([]float32, n),
	}
}

// ingest adds frame feature f at frame number t (ingestFrameFeature).
func (t *TMK) ingest(f *pdq.Float, frame int) {
	for k, v := range f {
		t.Average[k] += v
	}
	nf := *f
	l2Normalize(nf[:])
	for i, period := range t.Periods {
		c0 := t.vec(t.Cos, i, 0)
		for k, v := range nf {
			c0[k] += v
		}
		for j := 1; j < len(t.Coefficients); j++ {
			arg := 2.0 * math.Pi * float64(j) * float64(frame) / float64(period)
			ca, sa := math.Cos(arg), math.Sin(arg)
			cv, sv := t.vec(t.Cos, i, j), t.vec(t.Sin, i, j)
			for k, v := range nf {
				// float += float*double: the sum is taken in double.
				cv[k] = float32(float64(cv[k]) + float64(v)*ca)
				sv[k] = float32(float64(sv[k]) + float64(v)*sa)
			}
		}
	}
	t.FrameCount++
}

// finish is finishFrameFeatureIngest.
func (t *TMK) finish() {
	if t.FrameCount == 0 {
		return
	}
	n := float32(t.FrameCount)
	for k := range t.Average {
		t.Average[k] /= n
	}
	for i := range t.Periods {
		for j, c := range t.Coefficients {
			s := float32(math.Sqrt(float64(c)))
			for _, v := range [][]float32{t.vec(t.Cos, i, j), t.vec(t.Sin, i, j)} {
				l2Normalize(v)
				for k := range v {
					v[k] *= s
				}
			}
		}
	}
}

func norm(u []float32) float32 {
	var s float32
	for _, e := range u {
		s += float32(e * e)
	}
	return float32(math.Sqrt(float64(s)))
}

func dot(u, v []float32) float32 {
	var s float32
	for i := range u {
		s += float32(u[i] * v[i])
	}
	return s
}

func l2Normalize(v []float32) {
	if n := norm(v); n > 0 {
		for i := range v {
			v[i] /= n
		}
	}
}

// HashTMK decodes the video at path with d, resampled to 15 frames a
// second at 64x64 as the reference's ffmpeg command does, and returns its
// TMK+PDQF hash.
func (d *Decoder) HashTMK(ctx context.Context, path string) (*TMK, Info, error) {
	info, err := d.Probe(ctx, path)
	if err != nil {
		return nil, info, err
	}
	t := newTMK()
	if err := d.decode(ctx, path, info, []output{tmkOutput(t)}); err != nil {
		return nil, info, err
	}
	t.finish()
	return t, info, nil
}

// tmkOutput is the decoder output that feeds t (left unfinished).
func tmkOutput(t *TMK) output {
	var hasher pdq.Hasher
	luma := make([]float32, TMKFrameDimension*TMKFrameDimension)
	return output{FrameRequest{
		Width: TMKFrameDimension, Height: TMKFrameDimension,
		FPS: TMKFramesPerSecond, Scaler: "bicubic",
	}, func(f Frame) error {
		pdq.RGBLuma(luma, f.RGB)
		feat, _ := hasher.LumaFloat(luma, TMKFrameDimension, TMKFrameDimension)
		t.ingest(&feat, int(t.FrameCount))
		return nil
	}}
}

// Compatible reports whether a and b were made with the same parameters
// (the reference's areCompatible), with the difference as the error.
func Compatible(a, b *TMK) error {
	if a.FramesPerSecond != b.FramesPerSecond {
		return fmt.Errorf("tmk: frames per second %d != %d", a.FramesPerSecond, b.FramesPerSecond)
	}
	if len(a.Periods) != len(b.Periods) {
		return fmt.Errorf("tmk: period count %d != %d", len(a.Periods), len(b.Periods))
	}
	for i := range a.Periods {
		if a.Periods[i] != b.Periods[i] {
			return fmt.Errorf("tmk: period %d: %d != %d", i, a.Periods[i], b.Periods[i])
		}
	}
	if len(a.Coefficients) != len(b.Coefficients) {
		return fmt.Errorf("tmk: coefficient count %d != %d", len(a.Coefficients), len(b.Coefficients))
	}
	for i := range a.Coefficients {
		ca, cb := float64(a.Coefficients[i]), float64(b.Coefficients[i])
		if m := math.Max(math.Abs(ca), math.Abs(cb)); m > 0 && math.Abs((ca-cb)/m) > 1e-6 {
			return fmt.Errorf("tmk: coefficient %d: %g != %g", i, ca, cb)
		}
	}
	return nil
}

// Level1 is the cosine similarity of the two videos' average frame
// features (computeLevel1Score).
func Level1(a, b *TMK) float32 {
	na, nb := norm(a.Average[:]), norm(b.Average[:])
	if na == 0 && nb == 0 {
		return 0
	}
	return dot(a.Average[:], b.Average[:]) / float32(na*nb)
}

// Level2 is the temporal-kernel score (computeLevel2Score): for each
// period, the best time offset's kernel value, maximised over periods and
// divided by the coefficients' normaliser. 1 for identical videos. a and b
// must be Compatible.
func Level2(a, b *TMK) float32 {
	nc := len(a.Coefficients)
	if len(a.Periods) == 0 || nc == 0 {
		return 0
	}
	cc := make([]float32, nc)
	ss := make([]float32, nc)
	sc := make([]float32, nc)
	cs := make([]float32, nc)
	best := float32(math.Inf(-1))
	for i, period := range a.Periods {
		for j := range nc {
			ac, as := a.vec(a.Cos, i, j), a.vec(a.Sin, i, j)
			bc, bs := b.vec(b.Cos, i, j), b.vec(b.Sin, i, j)
			cc[j], ss[j], sc[j], cs[j] = dot(ac, bc), dot(as, bs), dot(as, bc), dot(ac, bs)
		}
		maxK := float32(math.Inf(-1))
		for offset := range int(period) {
			delta := float32(2.0 * math.Pi * float64(float32(offset)) / float64(float32(period)))
			k := cc[0]
			// The reference's incremental cos/sin recurrence (float32).
			cosJD, sinJD := float32(1), float32(0)
			beta := float32(math.Sin(float64(delta)))
			alpha := float32(math.Sin(float64(delta / 2)))
			alpha = float32(2 * alpha * alpha)
			for j := 1; j < nc; j++ {
				nCos := float32(alpha*cosJD) + float32(beta*sinJD)
				nSin := float32(alpha*sinJD) - float32(beta*cosJD)
				cosJD -= nCos
				sinJD -= nSin
				k += float32(cosJD * float32(cc[j]+ss[j]))
				k += float32(sinJD * float32(sc[j]-cs[j]))
			}
			if offset == 0 || k > maxK {
				maxK = k
			}
		}
		if i == 0 || maxK > best {
			best = maxK
		}
	}
	return best / pairNormalizer(a.Coefficients)
}

func pairNormalizer(c []float32) float32 {
	if len(c) == 0 {
		return 1
	}
	s := c[0]
	for _, v := range c[1:] {
		s += float32(2.0 * v)
	}
	return s
}

// TMKResult is the outcome of the two-level comparison.
type TMKResult struct {
	Level1, Level2 float32
	// Level2Computed is false when level 1 was under its threshold and
	// level 2 was not computed (as in tmk-two-level-score).
	Level2Computed bool
	Match          bool
}

// MatchTMK compares a and b as tmk-two-level-score does: level 1 (the
// average features' cosine) must reach c1; then level 2 must reach c2.
// Incompatible hashes are an error.
func MatchTMK(a, b *TMK, c1, c2 float32) (TMKResult, error) {
	if err := Compatible(a, b); err != nil {
		return TMKResult{}, err
	}
	r := TMKResult{Level1: Level1(a, b)}
	if r.Level1 < c1 {
		return r, nil
	}
	r.Level2, r.Level2Computed = Level2(a, b), true
	r.Match = r.Level2 >= c2
	return r, nil
}

// ErrBadTMK is wrapped by every ReadTMK error.
var ErrBadTMK = errors.New("tmk: malformed .tmk file")

var le = binary.LittleEndian

// ReadTMK reads the reference binary .tmk format (tmkio.cpp, tmkfv.cpp
// writeToOutputStream): a 32-byte header ("TMK1" "FVEC" "PDQF", frames per
// second, period count P, coefficient count C, feature dimension, frame
// count, as little-endian int32), then P int32 periods, C float32
// coefficients, the average feature, and P*C cosine then P*C sine feature
// vectors. Everything is checked (sizes bounded, no NaN or infinity, no
// bytes after the end) before the hash is returned.
func ReadTMK(r io.Reader) (*TMK, error) {
	var hdr [tmkHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadTMK, short(err))
	}
	if string(hdr[0:4]) != "TMK1" || string(hdr[4:8]) != "FVEC" {
		return nil, fmt.Errorf("%w: magic %q, want \"TMK1FVEC\"", ErrBadTMK, hdr[0:8])
	}
	if string(hdr[8:12]) != "PDQF" {
		return nil, fmt.Errorf("%w: frame algorithm %q, want \"PDQF\"", ErrBadTMK, hdr[8:12])
	}
	fps := int32(le.Uint32(hdr[12:]))
	np := int32(le.Uint32(hdr[16:]))
	nc := int32(le.Uint32(hdr[20:]))
	dim := int32(le.Uint32(hdr[24:]))
	count := int32(le.Uint32(hdr[28:]))
	switch {
	case fps <= 0 || fps > 1000:
		return nil, fmt.Errorf("%w: frames per second %d", ErrBadTMK, fps)
	case np <= 0 || np > tmkMaxPeriods:
		return nil, fmt.Errorf("%w: period count %d (1-%d)", ErrBadTMK, np, tmkMaxPeriods)
	case nc <= 0 || nc > tmkMaxCoeffs:
		return nil, fmt.Errorf("%w: coefficient count %d (1-%d)", ErrBadTMK, nc, tmkMaxCoeffs)
	case dim != TMKFeatureDim:
		return nil, fmt.Errorf("%w: feature dimension %d, want %d", ErrBadTMK, dim, TMKFeatureDim)
	case count < 0:
		return nil, fmt.Errorf("%w: frame count %d", ErrBadTMK, count)
	}
	t := &TMK{FramesPerSecond: fps, FrameCount: count}
	br := bufio.NewReader(r)
	t.Periods = make([]int32, np)
	for i := range t.Periods {
		v, err := readU32(br)
		if err != nil {
			return nil, fmt.Errorf("%w: periods: %v", ErrBadTMK, short(err))
		}
		if p := int32(v); p <= 0 || p > tmkMaxPeriod {
			return nil, fmt.Errorf("%w: period %d", ErrBadTMK, p)
		}
		t.Periods[i] = int32(v)
	}
	t.Coefficients = make([]float32, nc)
	if err := readFloats(br, t.Coefficients); err != nil {
		return nil, fmt.Errorf("%w: coefficients: %v", ErrBadTMK, err)
	}
	if err := readFloats(br, t.Average[:]); err != nil {
		return nil, fmt.Errorf("%w: average feature: %v", ErrBadTMK, err)
	}
	n := int(np) * int(nc) * TMKFeatureDim
	var err error
	// Grown as the bytes arrive, so that a short file with a large header
	// costs no more memory than its own size.
	if t.Cos, err = readFloatsN(br, n); err != nil {
		return nil, fmt.Errorf("%w: cosine features: %v", ErrBadTMK, err)
	}
	if t.Sin, err = readFloatsN(br, n); err != nil {
		return nil, fmt.Errorf("%w: sine features: %v", ErrBadTMK, err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: bytes after the end of the hash", ErrBadTMK)
	}
	return t, nil
}

// TMKSize is the size of a .tmk file with the reference parameters.
var TMKSize = tmkHeaderSize + 4*len(TMKPeriods) + 4*len(TMKCoefficients) +
	4*TMKFeatureDim*(1+2*len(TMKPeriods)*len(TMKCoefficients))

func short(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("file ends early")
	}
	return err
}

func readU32(br *bufio.Reader) (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(br, b[:]); err != nil {
		return 0, err
	}
	return le.Uint32(b[:]), nil
}

func readFloats(br *bufio.Reader, dst []float32) error {
	var b [4]byte
	for i := range dst {
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return short(err)
		}
		v := math.Float32frombits(le.Uint32(b[:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("value %d is not a finite number", i)
		}
		if math.Abs(float64(v)) > maxTMKValue {
			// Finite, but its square overflows float32 in the
			// reference's arithmetic: every score would be NaN.
			return fmt.Errorf("value %d is %g, beyond any hash's (at most %g)", i, v, maxTMKValue)
		}
		dst[i] = v
	}
	return nil
}

// maxTMKValue bounds a TMK file's floats. PDQF features and their
// averages and Fourier coefficients are small (in the eight reference
// files at most 374); the matcher multiplies coefficients by dot products
// of 256 products in float32, so values much past 1e9 overflow to Inf and
// the scores to NaN (a fuzzed file did). 1e6 leaves 2 700 times the
// reference's largest.
const maxTMKValue = 1e6

func readFloatsN(br *bufio.Reader, n int) ([]float32, error) {
	const chunk = 4096
	out := make([]float32, 0, min(n, chunk))
	for len(out) < n {
		k := min(chunk, n-len(out))
		out = append(out, make([]float32, k)...)
		if err := readFloats(br, out[len(out)-k:]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WriteTMK writes t in the reference binary format (see ReadTMK).
func WriteTMK(w io.Writer, t *TMK) error {
	if len(t.Cos) != len(t.Periods)*len(t.Coefficients)*TMKFeatureDim || len(t.Sin) != len(t.Cos) {
		return errors.New("tmk: feature vectors do not match the period and coefficient counts")
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("TMK1FVECPDQF")
	for _, v := range []int32{t.FramesPerSecond, int32(len(t.Periods)), int32(len(t.Coefficients)), TMKFeatureDim, t.FrameCount} {
		binary.Write(bw, le, v)
	}
	binary.Write(bw, le, t.Periods)
	binary.Write(bw, le, t.Coefficients)
	binary.Write(bw, le, t.Average[:])
	binary.Write(bw, le, t.Cos)
	binary.Write(bw, le, t.Sin)
	return bw.Flush()
}

// DumpTMK writes t in the text format of the reference's tmkdump (not
// --raw): four header lines, then name and the average feature, then one
// line per cosine and sine feature vector ("name:period:j:cos,..."), values
// as C's %.6e. With avgOnly only the header and average lines.
func DumpTMK(w io.Writer, name string, t *TMK, avgOnly bool) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "frameFeatureDimension       %d\n", TMKFeatureDim)
	fmt.Fprintf(bw, "framesPerSecond             %d\n", t.FramesPerSecond)
	fmt.Fprintf(bw, "frameFeatureCount           %d\n", t.FrameCount)
	fmt.Fprintf(bw, "algorithm                   %s\n", "PDQF")
	line := func(prefix string, v []float32) {
		bw.WriteString(prefix)
		for _, x := range v {
			bw.WriteByte(',')
			bw.WriteString(cExp(x))
		}
		bw.WriteByte('\n')
	}
	line(name, t.Average[:])
	if !avgOnly {
		for _, kind := range []string{"cos", "sin"} {
			v := t.Cos
			if kind == "sin" {
				v = t.Sin
			}
			for i, p := range t.Periods {
				for j := range t.Coefficients {
					line(fmt.Sprintf("%s:%d:%d:%s", name, p, j, kind), t.vec(v, i, j))
				}
			}
		}
	}
	return bw.Flush()
}

// cExp formats x as C's printf("%.6e") does (two-digit exponent at least).
func cExp(x float32) string {
	return strconv.FormatFloat(float64(x), 'e', 6, 64)
}
