// Package hashing is the root of Parley's media-hashing code, which keeps
// known terrorist and violent-extremist media out of public (broadcast,
// non end-to-end encrypted) channels by matching uploads against
// industry-shared hash lists such as GIFCT's and Tech Against Terrorism's.
//
// The work is split into small packages:
//
//   - pdq computes Meta's PDQ perceptual hash (256 bits plus a 0-100
//     quality score, and the 8 dihedral variants) of images, decoding
//     untrusted files under pixel and byte limits.
//   - index is an in-memory matching index: PDQ hashes by Hamming distance
//     (multi-index hashing, identical results to a linear scan) and exact
//     MD5/SHA-256 digests.
//   - hashlist parses hash-list files (HMA local files, CSV, Tech Against
//     Terrorism JSON pages) into validated banks, and diffs bank versions so
//     that imports are idempotent and upstream deletions are honoured.
//   - video hashes videos with vPDQ and TMK+PDQF, decoding them with the
//     ffmpeg binary in a limited child process, and matches them as the
//     ThreatExchange references do (reads and writes .tmk files).
//   - hashcmd is the "parley hash" command-line tool.
//
// Private, end-to-end encrypted chats are never hashed by the server: it
// cannot see their content.
package hashing
