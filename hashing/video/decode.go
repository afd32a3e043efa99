package video

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors a caller can test for with errors.Is. Every error the decoder
// returns wraps one of these, so that a server can map them to responses.
var (
	// ErrNoFFmpeg: the ffmpeg or ffprobe binary is not installed. The
	// message names the Debian package, so that an operator seeing it in
	// a refused post knows what to install.
	ErrNoFFmpeg = errors.New("video: ffmpeg is not installed (install the Debian package \"ffmpeg\": apt-get install ffmpeg)")
	// ErrTooLarge: the file, its resolution or its frame rate is over a
	// limit.
	ErrTooLarge = errors.New("video: over a size limit")
	// ErrTooLong: more frames or a longer duration than the limits allow
	// (this is how an endless stream ends).
	ErrTooLong = errors.New("video: too long")
	// ErrTimeout: decoding took longer than Limits.Timeout.
	ErrTimeout = errors.New("video: decoding timed out")
	// ErrInvalid: not a video the decoder accepts: empty, truncated,
	// corrupt, no video stream, or a container format not allowed.
	ErrInvalid = errors.New("video: invalid or corrupt video")
	// ErrDecoder: ffmpeg failed in a way that says nothing about the file
	// (killed by the memory limit, for example).
	ErrDecoder = errors.New("video: decoder failed")
)

// Limits bound what decoding one untrusted file may cost. Zero fields take
// the defaults below.
type Limits struct {
	// MaxBytes is the largest file accepted (default 256 MiB).
	MaxBytes int64
	// MaxPixels bounds width*height of the video stream (default 3840x2160).
	// A frame buffer is 3*MaxPixels bytes, the luma buffers 12*MaxPixels.
	MaxPixels int64
	// MaxSide bounds width and height separately (default 8192).
	MaxSide int
	// MaxFrames bounds the number of frames ffmpeg may hand over (after
	// sampling); one more is an error (default 200 000, about 1 h 50 min
	// at 30 frames a second, every frame).
	MaxFrames int
	// MaxDuration bounds the video's length (default 2 h). A stream that
	// claims less but runs on is stopped at MaxFrames or Timeout.
	MaxDuration time.Duration
	// Timeout bounds the wall-clock time of the whole decode (default 5 min).
	Timeout time.Duration
	// MemoryBytes is the address-space limit (RLIMIT_AS) of the ffmpeg
	// child process (default 2 GiB); ffmpeg dies if it asks for more.
	MemoryBytes int64
	// Formats lists the demuxers ffmpeg may use (ffmpeg's
	// -format_whitelist); default "mov,matroska,webm" (MP4, MOV, M4V,
	// 3GP, Matroska and WebM). An empty-string entry is not allowed.
	Formats []string
}

// Default limits.
const (
	DefaultMaxBytes    = 256 << 20
	DefaultMaxPixels   = 3840 * 2160
	DefaultMaxSide     = 8192
	DefaultMaxFrames   = 200_000
	DefaultMaxDuration = 2 * time.Hour
	DefaultTimeout     = 5 * time.Minute
	DefaultMemoryBytes = 2 << 30
)

// DefaultFormats are the container formats (ffmpeg demuxer names) decoded
// by default: mp4/mov/m4v/3gp (the "mov" demuxer) and mkv/webm.
var DefaultFormats = []string{"mov", "matroska", "webm"}

func (l *Limits) withDefaults() Limits {
	var o Limits
	if l != nil {
		o = *l
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.MaxSide <= 0 {
		o.MaxSide = DefaultMaxSide
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = DefaultMaxFrames
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if len(o.Formats) == 0 {
		o.Formats = DefaultFormats
	}
	return o
}

// Info describes a video's first video stream, as ffprobe reports it.
type Info struct {
	Width, Height int
	// FrameRate is the stream's average frame rate (falling back to its
	// real base frame rate when the average is unknown), as the vPDQ
	// reference takes it; timestamps are frame number / FrameRate.
	FrameRate float64
	// Duration in seconds, 0 when the container does not say.
	Duration float64
	Codec    string
}

// Decoder runs ffmpeg and ffprobe as child processes. The zero value looks
// both up on $PATH.
type Decoder struct {
	// FFmpeg and FFprobe are the binaries' paths; empty means look up
	// "ffmpeg" and "ffprobe" on $PATH.
	FFmpeg, FFprobe string
	Limits          Limits
}

// Available reports whether ffmpeg and ffprobe can be run, with ErrNoFFmpeg
// (naming the package to install) when they cannot.
func (d *Decoder) Available() error {
	_, _, err := d.binaries()
	return err
}

func (d *Decoder) binaries() (ffmpeg, ffprobe string, err error) {
	ffmpeg, ffprobe = d.FFmpeg, d.FFprobe
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	a, err1 := exec.LookPath(ffmpeg)
	b, err2 := exec.LookPath(ffprobe)
	if err1 != nil || err2 != nil {
		return "", "", ErrNoFFmpeg
	}
	return a, b, nil
}

// FrameRequest says which frames Frames delivers and at what size.
type FrameRequest struct {
	// Width and Height scale every frame (ffmpeg's -s); 0 keeps the
	// stream's own size.
	Width, Height int
	// FPS resamples to a constant frame rate (ffmpeg's -r, duplicating or
	// dropping frames); 0 passes every decoded frame through unchanged.
	FPS int
	// Every keeps decoded frames whose number is a multiple of Every
	// (with FPS 0); 0 or 1 keeps every frame.
	Every int
	// Scaler is ffmpeg's -sws_flags for the conversion to RGB24 (and the
	// scaling); empty means ffmpeg's default, "bicubic", which is what
	// TMK's reference (a plain ffmpeg command line) uses. vPDQ uses
	// VPDQScaler.
	Scaler string
}

// Frame is one decoded frame: packed RGB24, Width*Height*3 bytes. RGB is
// reused for the next frame once the callback returns.
type Frame struct {
	// Number is the frame's index among the decoded frames (before
	// sampling by Every; with FPS set, among the resampled frames).
	Number        int
	Width, Height int
	RGB           []byte
}

// stderrLimit bounds how much of ffmpeg's standard error is kept.
const stderrLimit = 4096

// Probe runs ffprobe on path, under the decoder's limits, and checks the
// file's size, resolution and duration against them.
func (d *Decoder) Probe(ctx context.Context, path string) (Info, error) {
	lim := d.Limits.withDefaults()
	_, ffprobe, err := d.binaries()
	if err != nil {
		return Info{}, err
	}
	if err := checkFile(path, lim.MaxBytes); err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	args := []string{
		"-v", "error", "-hide_banner",
		"-protocol_whitelist", "file",
		"-format_whitelist", strings.Join(lim.Formats, ","),
		"-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,avg_frame_rate,r_frame_rate:format=duration",
		"-of", "json",
		"file:" + path,
	}
	cmd := limitedCommand(ctx, lim.MemoryBytes, ffprobe, args...)
	var stdout bytes.Buffer
	stderr := &capped{max: stderrLimit}
	cmd.Stdout = &cappedWriter{w: &stdout, max: 1 << 20}
	cmd.Stderr = stderr
	runErr := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return Info{}, fmt.Errorf("%w (ffprobe ran over %v)", ErrTimeout, lim.Timeout)
	}
	if runErr != nil {
		return Info{}, classify(runErr, stderr.String())
	}
	var out struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Avg    string `json:"avg_frame_rate"`
			Real   string `json:"r_frame_rate"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return Info{}, fmt.Errorf("%w: unreadable ffprobe output", ErrDecoder)
	}
	if len(out.Streams) == 0 {
		return Info{}, fmt.Errorf("%w: no video stream", ErrInvalid)
	}
	s := out.Streams[0]
	info := Info{Width: s.Width, Height: s.Height, Codec: s.Codec}
	if info.Width <= 0 || info.Height <= 0 {
		return Info{}, fmt.Errorf("%w: video stream has no size", ErrInvalid)
	}
	if info.Width > lim.MaxSide || info.Height > lim.MaxSide || int64(info.Width)*int64(info.Height) > lim.MaxPixels {
		return Info{}, fmt.Errorf("%w: resolution %dx%d is over the limit (%d pixels, %d a side)",
			ErrTooLarge, info.Width, info.Height, lim.MaxPixels, lim.MaxSide)
	}
	info.FrameRate = parseRate(s.Avg)
	if info.FrameRate == 0 {
		info.FrameRate = parseRate(s.Real)
	}
	if info.FrameRate <= 0 || info.FrameRate > 1000 {
		return Info{}, fmt.Errorf("%w: no usable frame rate (%q)", ErrInvalid, s.Avg)
	}
	if dur, err := strconv.ParseFloat(out.Format.Duration, 64); err == nil && dur > 0 && !math.IsInf(dur, 0) {
		info.Duration = dur
		if dur > lim.MaxDuration.Seconds() {
			return Info{}, fmt.Errorf("%w: %.0f s is over the limit of %v", ErrTooLong, dur, lim.MaxDuration)
		}
	}
	return info, nil
}

// parseRate parses ffprobe's "num/den"; 0 if it is not a positive rate.
func parseRate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	n, err1 := strconv.ParseInt(num, 10, 64)
	m, err2 := strconv.ParseInt(den, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || m <= 0 {
		return 0
	}
	return float64(n) / float64(m)
}

// Frames probes path, then decodes it with ffmpeg in a child process and
// calls fn with each requested frame in order. Decoding stops with an
// error when fn does, and when a limit is reached: the child is killed.
func (d *Decoder) Frames(ctx context.Context, path string, req FrameRequest, fn func(Frame) error) (Info, error) {
	info, err := d.Probe(ctx, path)
	if err != nil {
		return info, err
	}
	err = d.frames(ctx, path, info, req, fn)
	return info, err
}

func (d *Decoder) frames(ctx context.Context, path string, info Info, req FrameRequest, fn func(Frame) error) error {
	return d.decode(ctx, path, info, []output{{req, fn}})
}

// output is one stream of frames ffmpeg writes: what to deliver, and to
// whom.
type output struct {
	req FrameRequest
	fn  func(Frame) error
}

// outputArgs returns the ffmpeg output options for one stream of raw
// RGB24 frames of size w x h written to pipe (an ffmpeg URL such as
// "pipe:1"). With several outputs ffmpeg decodes the input once and
// filters and converts it once per output; the options before each output
// URL apply to that output only (-sws_flags included).
func outputArgs(req FrameRequest, w, h, maxFrames int, pipe string) []string {
	every := max(req.Every, 1)
	scaler := req.Scaler
	if scaler == "" {
		scaler = "bicubic"
	}
	args := []string{"-map", "0:v:0", "-an", "-sn", "-dn", "-sws_flags", scaler}
	if req.FPS > 0 {
		args = append(args, "-r", strconv.Itoa(req.FPS))
	} else {
		args = append(args, "-fps_mode", "passthrough")
		if every > 1 {
			args = append(args, "-vf", fmt.Sprintf("select=not(mod(n\\,%d))", every))
		}
	}
	if req.Width > 0 && req.Height > 0 {
		args = append(args, "-s", fmt.Sprintf("%dx%d", w, h))
	}
	// One frame over the limit is asked for, so that reaching it is seen.
	return append(args, "-frames:v", strconv.Itoa(maxFrames+1),
		"-pix_fmt", "rgb24", "-f", "rawvideo", pipe)
}

// decode runs one ffmpeg child process that decodes path once and writes
// each output's frames to a pipe of its own (the first on standard
// output, the others on descriptors 3, 4, ...), and calls each output's fn
// with its frames, one goroutine per output. The limits hold for the one
// process (time, memory) and for each output (frames, duration). The
// first failure kills ffmpeg and is returned.
func (d *Decoder) decode(ctx context.Context, path string, info Info, outs []output) error {
	lim := d.Limits.withDefaults()
	ffmpeg, _, err := d.binaries()
	if err != nil {
		return err
	}
	if len(outs) == 0 {
		return fmt.Errorf("%w: no output requested", ErrDecoder)
	}
	type size struct{ w, h int }
	sizes := make([]size, len(outs))
	for i, o := range outs {
		w, h := info.Width, info.Height
		if o.req.Width > 0 && o.req.Height > 0 {
			w, h = o.req.Width, o.req.Height
		}
		if int64(w)*int64(h) > lim.MaxPixels {
			return fmt.Errorf("%w: frames of %dx%d requested", ErrTooLarge, w, h)
		}
		sizes[i] = size{w, h}
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	// kill stops ffmpeg without it counting as a timeout.
	runCtx, kill := context.WithCancel(ctx)
	defer kill()

	args := []string{
		"-nostdin", "-hide_banner", "-loglevel", "error",
		"-threads", "2",
		"-protocol_whitelist", "file",
		"-format_whitelist", strings.Join(lim.Formats, ","),
		"-noautorotate",
		"-i", "file:" + path,
	}
	// Output 0 goes to standard output; output i > 0 to descriptor 2+i,
	// the write end of a pipe passed as cmd.ExtraFiles[i-1].
	readers := make([]io.Reader, len(outs))
	var extraR, extraW []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for i, o := range outs {
		pipe := "pipe:1"
		if i > 0 {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll(extraR)
				closeAll(extraW)
				return fmt.Errorf("%w: %v", ErrDecoder, err)
			}
			extraR, extraW = append(extraR, r), append(extraW, w)
			readers[i] = r
			pipe = "pipe:" + strconv.Itoa(2+i)
		}
		args = append(args, outputArgs(o.req, sizes[i].w, sizes[i].h, lim.MaxFrames, pipe)...)
	}
	defer closeAll(extraR)

	cmd := limitedCommand(runCtx, lim.MemoryBytes, ffmpeg, args...)
	cmd.ExtraFiles = extraW
	// At -loglevel error anything on standard error means a damaged file,
	// which is refused: stop decoding a moment after the first message
	// (time for the rest of it to arrive) instead of decoding the rest.
	var killTimer *time.Timer
	stderr := &capped{max: stderrLimit, first: func() {
		killTimer = time.AfterFunc(200*time.Millisecond, kill)
	}}
	defer func() {
		stderr.mu.Lock()
		if killTimer != nil {
			killTimer.Stop()
		}
		stderr.mu.Unlock()
	}()
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		closeAll(extraW)
		return fmt.Errorf("%w: %v", ErrDecoder, err)
	}
	readers[0] = stdout
	err = cmd.Start()
	closeAll(extraW) // the child has its copies; EOF comes when it exits
	if err != nil {
		return fmt.Errorf("%w: starting ffmpeg: %v", ErrDecoder, err)
	}

	loopErrs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loopErrs[i] = readFrames(readers[i], sizes[i].w, sizes[i].h, info, o.req, lim, o.fn)
			if e := loopErrs[i]; e != nil && e != errNoFrames {
				// The other outputs cannot finish without this one
				// being read: stop ffmpeg.
				kill()
			}
		}()
	}
	wg.Wait()
	var loopErr error
	for _, e := range loopErrs {
		// A frame callback's or limit's error explains more than the
		// pipes it cut short for the other outputs.
		if e != nil && (loopErr == nil || loopErr == errCutShort || loopErr == errNoFrames) {
			loopErr = e
		}
	}
	// An output without frames is judged after ffmpeg's exit status,
	// which explains it better (killed by the memory limit, say).
	var noFrames error
	if loopErr == errNoFrames {
		loopErr, noFrames = nil, errNoFrames
	}
	if loopErr == errCutShort {
		loopErr = fmt.Errorf("%w: ffmpeg ended in the middle of a frame", ErrInvalid)
	}
	if loopErr != nil && stderr.String() == "" {
		kill()
		_ = cmd.Wait()
		if ctx.Err() == context.DeadlineExceeded && !errors.Is(loopErr, ErrTooLong) {
			return fmt.Errorf("%w (ran over %v)", ErrTimeout, lim.Timeout)
		}
		return loopErr
	}
	waitErr := cmd.Wait()
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		// ffmpeg's complaint explains a failure better than anything
		// else, including its being killed after it.
		if waitErr != nil {
			if err := classify(waitErr, msg); !errors.Is(err, ErrDecoder) {
				return err
			}
		}
		// ffmpeg exits 0 on many damaged files, after logging errors
		// for the parts it could not decode: refuse them.
		return fmt.Errorf("%w: %s", ErrInvalid, firstLines(msg))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (ran over %v)", ErrTimeout, lim.Timeout)
	}
	if waitErr != nil {
		return classify(waitErr, stderr.String())
	}
	if loopErr != nil {
		return loopErr
	}
	return noFrames
}

// errCutShort: a pipe ended in the middle of a frame.
var errCutShort = errors.New("cut short")

// readFrames reads w x h RGB24 frames from r until EOF and calls fn with
// each, enforcing the frame-count and duration limits. No frame at all is
// an error.
func readFrames(r io.Reader, w, h int, info Info, req FrameRequest, lim Limits, fn func(Frame) error) error {
	every := max(req.Every, 1)
	rate := info.FrameRate
	if req.FPS > 0 {
		rate = float64(req.FPS)
	}
	buf := make([]byte, 3*w*h)
	br := bufio.NewReaderSize(r, 1<<16)
	n := 0
	for {
		_, err := io.ReadFull(br, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				return errCutShort
			}
			return fmt.Errorf("%w: reading frames: %v", ErrDecoder, err)
		}
		if n >= lim.MaxFrames {
			return fmt.Errorf("%w: more than %d frames", ErrTooLong, lim.MaxFrames)
		}
		num := n * every
		if float64(num)/rate > lim.MaxDuration.Seconds() {
			return fmt.Errorf("%w: runs past the limit of %v", ErrTooLong, lim.MaxDuration)
		}
		if err := fn(Frame{Number: num, Width: w, Height: h, RGB: buf}); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errNoFrames
	}
	return nil
}

// errNoFrames: an output ended without a frame.
var errNoFrames = fmt.Errorf("%w: no frames decoded", ErrInvalid)

// limitedCommand runs name with args under a shell that first sets the
// address-space limit (ulimit -v, in KiB) and a CPU-time limit, then
// execs it, so that the limits hold from the child's first instruction.
func limitedCommand(ctx context.Context, memBytes int64, name string, args ...string) *exec.Cmd {
	script := fmt.Sprintf(`ulimit -v %d && ulimit -c 0 && exec "$0" "$@"`, memBytes/1024)
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, name}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	inOwnProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// checkFile refuses directories, empty files and files over max bytes.
func checkFile(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file", ErrInvalid)
	}
	if st.Size() == 0 {
		return fmt.Errorf("%w: empty file", ErrInvalid)
	}
	if st.Size() > max {
		return fmt.Errorf("%w: %d bytes is over the limit of %d", ErrTooLarge, st.Size(), max)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// classify turns a failed ffmpeg/ffprobe run into one of the package's
// errors, quoting ffmpeg's own message.
func classify(runErr error, stderr string) error {
	msg := firstLines(strings.TrimSpace(stderr))
	var ee *exec.ExitError
	if strings.Contains(msg, "error while loading shared libraries") {
		return fmt.Errorf("%w: ffmpeg could not start under its memory limit: %s", ErrDecoder, msg)
	}
	if errors.As(runErr, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return fmt.Errorf("%w: ffmpeg killed by %v (memory or CPU limit?) %s", ErrDecoder, st.Signal(), msg)
		}
		if strings.Contains(msg, "Cannot allocate memory") || strings.Contains(msg, "out of memory") {
			return fmt.Errorf("%w: ffmpeg ran out of memory under the limit: %s", ErrTooLarge, msg)
		}
		if msg == "" {
			msg = ee.Error()
		}
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return fmt.Errorf("%w: %v", ErrDecoder, runErr)
}

// firstLines keeps the first 3 lines of ffmpeg's messages, with the path
// prefix ffmpeg adds ("file:/tmp/x.mp4: ...") left as it is.
func firstLines(s string) string {
	lines := strings.SplitN(s, "\n", 4)
	if len(lines) > 3 {
		lines = lines[:3]
	}
	return strings.Join(lines, "; ")
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	max   int
	first func() // called (under mu) on the first non-empty write
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first != nil && len(p) > 0 {
		c.first()
		c.first = nil
	}
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// cappedWriter fails once more than max bytes are written.
type cappedWriter struct {
	w   io.Writer
	n   int
	max int
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.n+len(p) > c.max {
		return 0, fmt.Errorf("%w: ffprobe output over %d bytes", ErrDecoder, c.max)
	}
	c.n += len(p)
	return c.w.Write(p)
}
