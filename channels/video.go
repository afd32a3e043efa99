package channels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/video"
)

// ErrVideoUnavailable is returned by Analyse for a video when the server
// cannot decode videos (ffmpeg is not installed). Its message names the
// Debian package to install; images and text posts are unaffected.
var ErrVideoUnavailable = errors.New("this server cannot check videos, so it does not accept them")

// videoTimeout bounds the decoding of one uploaded video (one ffmpeg
// process for both hashes).
const videoTimeout = 2 * time.Minute

// sniffVideo returns the content type of a video container by its magic
// bytes (ISO BMFF "ftyp": MP4, MOV, M4V, 3GP; EBML: WebM, Matroska), or "".
func sniffVideo(data []byte) string {
	if len(data) >= 12 && string(data[4:8]) == "ftyp" {
		switch string(data[8:12]) {
		case "heic", "heix", "mif1", "msf1", "avif", "avis":
			return "" // HEIF and AVIF images share the container
		case "qt  ":
			return "video/quicktime"
		}
		return "video/mp4"
	}
	if len(data) >= 4 && bytes.Equal(data[:4], []byte{0x1a, 0x45, 0xdf, 0xa3}) {
		if bytes.Contains(data[:min(len(data), 64)], []byte("webm")) {
			return "video/webm"
		}
		return "video/x-matroska"
	}
	return ""
}

// analyseVideo hashes an uploaded video: MD5 and SHA-256 of the file, its
// vPDQ hash at one frame a second and its TMK+PDQF hash, decoded by ffmpeg
// in a child process under the decoder's limits. Anything that does not
// decode as a video within them is refused with ErrMediaRefused.
func (s *Service) analyseVideo(data []byte, ct string) (Media, error) {
	if int64(len(data)) > s.cfg.MaxVideoBytes {
		return Media{}, fmt.Errorf("%w: video larger than %d bytes", ErrMediaRefused, s.cfg.MaxVideoBytes)
	}
	if err := s.cfg.Video.Available(); err != nil {
		return Media{}, fmt.Errorf("%w: %v", ErrVideoUnavailable, err)
	}
	d, err := hashing.Digest(bytes.NewReader(data), 0)
	if err != nil {
		return Media{}, err
	}
	m := Media{MD5: d.MD5, SHA256: d.SHA256, Size: d.Size, ContentType: ct}
	// ffmpeg reads a file, not a pipe, so that MP4s with the index at the
	// end decode and a container cannot make it wait for input.
	f, err := os.CreateTemp("", "parley-video-*")
	if err != nil {
		return Media{}, fmt.Errorf("channels: store the video for decoding: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return Media{}, fmt.Errorf("channels: store the video for decoding: %w", err)
	}
	if err := f.Close(); err != nil {
		return Media{}, fmt.Errorf("channels: store the video for decoding: %w", err)
	}
	s.hashes <- struct{}{}
	defer func() { <-s.hashes }()
	ctx, cancel := context.WithTimeout(context.Background(), videoTimeout)
	defer cancel()
	// One ffmpeg decode feeds both hashers (video.Decoder.Hash).
	h, _, err := s.cfg.Video.Hash(ctx, f.Name(), video.VPDQOptions{SecondsPerHash: 1, RemoveBorders: s.cfg.VideoRemoveBorders})
	if err != nil {
		return Media{}, videoRefusal(err)
	}
	if len(h.VPDQ) == 0 {
		return Media{}, fmt.Errorf("%w: the video has no frames", ErrMediaRefused)
	}
	m.VPDQ, m.TMK, m.VPDQBorderless = h.VPDQ, h.TMK, h.VPDQBorderless
	return m, nil
}

// videoRefusal turns a decoder error into a refusal that says why, without
// ffmpeg's full output.
func videoRefusal(err error) error {
	switch {
	case errors.Is(err, video.ErrNoFFmpeg):
		return fmt.Errorf("%w: %v", ErrVideoUnavailable, video.ErrNoFFmpeg)
	case errors.Is(err, video.ErrTooLarge):
		return fmt.Errorf("%w: the video is over a size limit (file size, resolution or frame rate)", ErrMediaRefused)
	case errors.Is(err, video.ErrTooLong):
		return fmt.Errorf("%w: the video is too long", ErrMediaRefused)
	case errors.Is(err, video.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: the video took too long to decode", ErrMediaRefused)
	case errors.Is(err, video.ErrInvalid):
		return fmt.Errorf("%w: the video is malformed, truncated or of an unsupported format", ErrMediaRefused)
	}
	return fmt.Errorf("%w: the video could not be decoded", ErrMediaRefused)
}

// EncodeVideoHashes serialises a video's hashes for a store: the vPDQ hash
// in the reference text format and the TMK hash as a .tmk file. Both are
// empty for other media.
func EncodeVideoHashes(m Media) (vpdq string, tmk []byte, err error) {
	if len(m.VPDQ) > 0 {
		var b strings.Builder
		if err := video.FormatVPDQ(&b, m.VPDQ); err != nil {
			return "", nil, err
		}
		vpdq = b.String()
	}
	if m.TMK != nil {
		var b bytes.Buffer
		if err := video.WriteTMK(&b, m.TMK); err != nil {
			return "", nil, err
		}
		tmk = b.Bytes()
	}
	return vpdq, tmk, nil
}

// DecodeVideoHashes is EncodeVideoHashes' inverse, into m.
func DecodeVideoHashes(m *Media, vpdq string, tmk []byte) error {
	if vpdq != "" {
		feats, err := video.ParseVPDQ(strings.NewReader(vpdq), 0)
		if err != nil {
			return err
		}
		m.VPDQ = feats
	}
	if len(tmk) > 0 {
		t, err := video.ReadTMK(bytes.NewReader(tmk))
		if err != nil {
			return err
		}
		m.TMK = t
	}
	return nil
}
