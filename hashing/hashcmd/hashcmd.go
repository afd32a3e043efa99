// Package hashcmd implements "parley hash", which prints the PDQ, MD5 or
// SHA-256 hashes of files, in the forms that hash lists use.
package hashcmd

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

const usage = `usage: parley hash pdq|md5|sha256 [--json] [--max-pixels N] [--max-bytes N] FILE...
       parley hash vpdq [--seconds-per-hash S] [--prune D] [--json] FILE
       parley hash tmk [--out FILE.tmk] [--avg-only] FILE

Prints one line per FILE:

  pdq      <64 hex digits>,<quality 0-100>,<path>
  md5      <32 hex digits>,<path>
  sha256   <64 hex digits>,<path>

  vpdq     one line per hashed frame, the reference vPDQ format:
           <frame number>,<quality>,<PDQ 64 hex>,<timestamp seconds>
  tmk      the reference tmkdump text of the TMK+PDQF hash: four header
           lines, then <path>,<256 average-feature values>, then one
           <path>:<period>:<coefficient>:cos|sin,<256 values> line per
           feature vector

vpdq and tmk hash videos (MP4, MOV, WebM, MKV), decoded by ffmpeg (the
Debian package "ffmpeg" must be installed), one file at a time.

PDQ is Meta's perceptual image hash (JPEG, PNG, GIF, WebP, binary PPM);
hashes of quality below 50 are too featureless to match reliably. MD5
and SHA-256 are of the file's bytes, for any kind of file.

Options:
  --json          print one JSON object per line instead:
                  {"path":...,"pdq":...,"quality":...} or {"path":...,"md5":...}
  --max-pixels N  refuse images over N pixels before decoding them
                  (default 50000000)
  --max-bytes N   refuse files over N bytes (default 67108864; for
                  videos 268435456)
  --seconds-per-hash S   vpdq: hash one frame every S seconds (default 1;
                  0 hashes every frame, as the reference sample hashes)
  --prune D       vpdq: drop frames within PDQ distance D of the last
                  frame kept (default 0: keep all)
  --out FILE      tmk: also write the binary .tmk file
  --avg-only      tmk: print only the average-feature line

A file that cannot be read or decoded is reported on standard error and
the others are still hashed; the exit status is then 1. Usage errors exit
with status 2.
`

// Run runs "parley hash" with args (the words after "hash") and returns the
// process exit status.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parley hash", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "")
	maxPixels := fs.Int64("max-pixels", pdq.DefaultMaxPixels, "")
	maxBytes := fs.Int64("max-bytes", pdq.DefaultMaxBytes, "")
	secondsPerHash := fs.Float64("seconds-per-hash", 1, "")
	prune := fs.Int("prune", 0, "")
	tmkOut := fs.String("out", "", "")
	avgOnly := fs.Bool("avg-only", false, "")
	help := fs.Bool("help", false, "")
	fs.BoolVar(help, "h", false, "")

	// Accept flags anywhere among the arguments, until "--".
	var words []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			fmt.Fprintf(stderr, "parley hash: %v\n\n%s", err, usage)
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if isAfterDashDash(args, rest) {
			words = append(words, rest...)
			break
		}
		words = append(words, rest[0])
		rest = rest[1:]
	}
	if *help {
		io.WriteString(stdout, usage)
		return 0
	}
	if len(words) == 0 {
		fmt.Fprintf(stderr, "parley hash: missing algorithm\n\n%s", usage)
		return 2
	}
	algo, files := words[0], words[1:]
	switch algo {
	case "pdq", "md5", "sha256", "vpdq", "tmk":
	default:
		fmt.Fprintf(stderr, "parley hash: unknown algorithm %q (want pdq, md5, sha256, vpdq or tmk)\n\n%s", algo, usage)
		return 2
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "parley hash: no files\n\n%s", usage)
		return 2
	}
	if algo == "vpdq" || algo == "tmk" {
		if len(files) != 1 {
			fmt.Fprintf(stderr, "parley hash: %s hashes one video at a time (got %d files)\n", algo, len(files))
			return 2
		}
		if *secondsPerHash < 0 || *prune < 0 || *prune > 256 {
			fmt.Fprintf(stderr, "parley hash: --seconds-per-hash must be 0 or more and --prune 0-256\n")
			return 2
		}
		maxVideo := *maxBytes
		if !flagSet(fs, "max-bytes") {
			maxVideo = video.DefaultMaxBytes
		}
		d := &video.Decoder{Limits: video.Limits{MaxBytes: maxVideo}}
		var err error
		if algo == "vpdq" {
			err = hashVPDQ(d, files[0], *secondsPerHash, *prune, *jsonOut, stdout)
		} else {
			err = hashTMK(d, files[0], *tmkOut, *avgOnly, stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "parley hash: %s: %v\n", files[0], err)
			return 1
		}
		return 0
	}
	if *maxPixels <= 0 || *maxBytes <= 0 {
		fmt.Fprintf(stderr, "parley hash: --max-pixels and --max-bytes must be positive\n")
		return 2
	}
	opts := &pdq.Options{MaxPixels: *maxPixels, MaxBytes: *maxBytes}
	var hasher pdq.Hasher
	status := 0
	for _, path := range files {
		line, err := hashFile(&hasher, algo, path, opts, *jsonOut)
		if err != nil {
			fmt.Fprintf(stderr, "parley hash: %s: %v\n", path, err)
			status = 1
			continue
		}
		io.WriteString(stdout, line)
	}
	return status
}

// isAfterDashDash reports whether rest is what follows a "--" in args.
func isAfterDashDash(args, rest []string) bool {
	i := len(args) - len(rest) - 1
	return i >= 0 && args[i] == "--"
}

func hashFile(h *pdq.Hasher, algo, path string, opts *pdq.Options, jsonOut bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", unwrapPath(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return "", errors.New("is a directory")
	}
	if algo == "pdq" {
		img, _, err := pdq.Decode(f, opts)
		if err != nil {
			return "", err
		}
		r := h.Image(img)
		if jsonOut {
			return jsonLine(struct {
				Path    string `json:"path"`
				PDQ     string `json:"pdq"`
				Quality int    `json:"quality"`
			}{path, r.Hash.String(), r.Quality})
		}
		return fmt.Sprintf("%s,%d,%s\n", r.Hash, r.Quality, path), nil
	}
	d, err := hashing.Digest(f, opts.MaxBytes)
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(d.MD5[:])
	if algo == "sha256" {
		sum = hex.EncodeToString(d.SHA256[:])
	}
	if jsonOut {
		m := map[string]string{"path": path, algo: sum}
		return jsonLine(m)
	}
	return sum + "," + path + "\n", nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func hashVPDQ(d *video.Decoder, path string, secondsPerHash float64, prune int, jsonOut bool, stdout io.Writer) error {
	feats, _, err := d.HashVPDQ(context.Background(), path, video.VPDQOptions{SecondsPerHash: secondsPerHash, PruneDistance: prune})
	if err != nil {
		return err
	}
	if !jsonOut {
		return video.FormatVPDQ(stdout, feats)
	}
	for _, f := range feats {
		line, err := jsonLine(struct {
			Path      string  `json:"path"`
			Frame     int     `json:"frame"`
			Quality   int     `json:"quality"`
			PDQ       string  `json:"pdq"`
			Timestamp float64 `json:"timestamp"`
		}{path, f.Frame, f.Quality, f.Hash.String(), math.Round(f.Timestamp*1000) / 1000})
		if err != nil {
			return err
		}
		io.WriteString(stdout, line)
	}
	return nil
}

func hashTMK(d *video.Decoder, path, out string, avgOnly bool, stdout io.Writer) error {
	t, _, err := d.HashTMK(context.Background(), path)
	if err != nil {
		return err
	}
	if out != "" {
		var b bytes.Buffer
		if err := video.WriteTMK(&b, t); err != nil {
			return err
		}
		if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
			return unwrapPath(err)
		}
	}
	return video.DumpTMK(stdout, path, t, avgOnly)
}

func jsonLine(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

// unwrapPath drops the path that *os.PathError repeats, since the caller
// prints it already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
