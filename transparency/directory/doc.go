// Package directory is Parley's key transparency directory: it puts the
// pieces of transparency/ together into the three roles of
// draft-ietf-keytrans-architecture-09 (§"Protocol Overview"): the
// directory itself, run by the server (Directory); the client's checks of
// what the directory answers (VerifySearch, VerifyHistory); and a
// third-party auditor that follows every epoch and cosigns checkpoints
// (Auditor).
//
// Each label (a username) has one leaf in the prefix tree, at index
// VRF(label) (package transparency/vrf, truncated to 32 bytes as
// KT_128_SHA256_Ed25519 does, draft-ietf-keytrans-protocol-05 §17.1).
// The leaf's value chains every version the label has had:
//
//	leaf_k = SHA-256("parley kt leaf v1" || 0x00 || leaf_{k-1} || uint64(epoch_k) || commitment_k)
//
// where leaf_0 is 32 zero bytes, epoch_k is the epoch in which version k
// was published and commitment_k is the hiding commitment to (label,
// version, value) of package transparency/commit. The value is the
// account's signed device list, exactly as it signed it.
//
// The chain is what makes monitoring cheap. An auditor recomputes every
// leaf from the previous one (it is given only the index and commitment of
// each change, so it learns no names and no lists) and cosigns a
// checkpoint only if the published prefix root is the one it computed. So
// the leaf at any epoch commits to the label's whole history, and the
// owner of a label checks that history from the last leaf it verified to
// the current one with one prefix proof and the versions in between,
// however many epochs have passed: nothing a day when nothing changed but
// the proof. A server that put a ghost device list into the tree for an
// epoch, to show it to someone else, cannot take it out of the chain
// again without the auditor refusing to cosign.
//
// Parley keys the tree by label and replaces the value (an upsert), not by
// label and version as the draft does; docs/transparency.md says why and
// what it costs.
//
// The package is pure, like the rest of transparency/: no network, no SQL,
// and the caller passes in times and randomness. The server persists what
// Prepare returns before it calls Commit, so no checkpoint is served that
// does not match stored state.
package directory
