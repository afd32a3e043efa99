// Package legal answers lawful requests with exactly what a Parley server
// holds, keeps a tamper-evident log of every request, answer and
// preservation, and builds the public transparency report
// (docs/lawful-requests.md).
//
// Parley has no way to read private messages and this package adds none:
// an answer is generated from the store's account facts (creation time,
// the day each device was last seen, devices and when they were added)
// and the public channel posts an account wrote, never typed by hand, and
// it says what cannot be produced and why.
//
// Every event is appended to the legal log, a golang.org/x/mod/sumdb/tlog
// Merkle log with signed checkpoints like the key transparency log's, as
// a salted commitment: the record names the kind of event and its time
// and commits to a public form of the event (no account names) and to a
// hash of its private form. Publishing a request after its non-disclosure
// period reveals the salt and the public forms, and anyone can check them
// against a checkpoint with nothing but the published files
// (VerifyPublication).
package legal
