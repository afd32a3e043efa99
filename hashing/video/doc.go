// Package video hashes videos with the two perceptual video hashes the
// industry shares: vPDQ (Meta's video PDQ, ThreatExchange vpdq/) and
// TMK+PDQF (ThreatExchange tmk/), and matches them as the references do.
//
// Videos are untrusted input. They are decoded by the ffmpeg binary (Debian
// package "ffmpeg") in a child process that writes raw RGB24 frames to a
// pipe, under limits on file size, resolution, frame count, duration,
// wall-clock time and the child's address space (Limits); only local files
// and the demuxers in Limits.Formats are allowed. Every failure is one of
// the package's errors (ErrNoFFmpeg, ErrTooLarge, ErrTooLong, ErrTimeout,
// ErrInvalid, ErrDecoder) with ffmpeg's own message attached.
//
// Decoder.Hash makes both hashes of an upload from one decode: one ffmpeg
// process writes two frame streams (full size for vPDQ, 64x64 at 15 frames
// a second for TMK) to two pipes. With VPDQOptions.RemoveBorders it also
// hashes the frames with their uniform borders (letterbox and pillarbox
// bars, FindBorders) cut off, which the reference does not do (borders.go).
//
// VPDQIndex matches one video against many listed ones through the PDQ
// multi-index of package index, with the same decisions as Match.
//
// Conformance with the reference sample hashes (../shared/testdata/video)
// is tested in conformance_test.go and reported in docs/benchmarks.md.
package video
