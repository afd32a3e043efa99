package legal

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	tlogpkg "github.com/parleychat/parley/transparency/log"
)

// Publication is what "legal publish" makes public about a request once
// its non-disclosure period is over: its salt, every event's public form
// and private hash, and proofs that the log holds each event's record in
// a signed checkpoint. Account names, the reference, what was asked and
// the data handed over are not in it.
type Publication struct {
	Log        string         `json:"log"`
	LogKey     string         `json:"log_key"`
	Checkpoint string         `json:"checkpoint"`
	Request    string         `json:"request"`
	Salt       string         `json:"salt"`
	Entries    []PublishedRec `json:"entries"`
}

// PublishedRec is one event of a published request.
type PublishedRec struct {
	Entry
	Proof []string `json:"proof"`
}

// Publish opens r's commitments at now: it fails while r is under
// non-disclosure, before it is answered, or if it is published already.
// logKey is the log's note verifier key, printed in the publication.
func (l *Log) Publish(r *Request, now time.Time, logKey string) (*Publication, error) {
	switch {
	case !r.Published.IsZero():
		return nil, fmt.Errorf("%w: %s on %s", ErrPublished, r.ID, r.Published.Format(time.DateOnly))
	case r.UnderNondisclosure(now):
		return nil, fmt.Errorf("%w: %s may not be disclosed before %s", ErrTooEarly, r.ID, r.NondisclosureUntil.Format(time.DateOnly))
	case r.Answer == nil:
		return nil, fmt.Errorf("%w: answer %s (or refuse it) before publishing it", ErrInvalid, r.ID)
	}
	cp, err := l.Checkpoint()
	if err != nil {
		return nil, err
	}
	p := &Publication{Log: l.origin, LogKey: logKey, Checkpoint: string(cp), Request: r.ID, Salt: hex.EncodeToString(r.Salt)}
	for _, e := range r.Entries {
		ph, err := hex.DecodeString(e.Private)
		if err != nil || len(ph) != 32 {
			return nil, fmt.Errorf("legal: %s: a malformed entry", r.ID)
		}
		rec := Record(e.Kind, e.Time, Commitment(r.Salt, e.Kind, []byte(e.Public), [32]byte(ph)))
		n, ok := l.find(rec)
		if !ok {
			return nil, fmt.Errorf("legal: %s's %v is not in the log", r.ID, e.Kind)
		}
		proof, err := tlog.ProveRecord(l.Size(), n, l.mem)
		if err != nil {
			return nil, err
		}
		pr := PublishedRec{Entry: e}
		pr.Index = n
		for _, h := range proof {
			pr.Proof = append(pr.Proof, hex.EncodeToString(h[:]))
		}
		p.Entries = append(p.Entries, pr)
	}
	r.Published = now.UTC().Truncate(time.Second)
	return p, nil
}

// ErrVerify: a publication does not check out against its checkpoint.
var ErrVerify = errors.New("legal: publication does not verify")

// VerifyPublication checks a published request with nothing but the
// published file and the log's verifier key (which a reader should get
// from more than one place): the checkpoint is signed by that key, and
// each event's record, recomputed from the salt and the public forms, is
// in the checkpoint's tree. It returns the checkpoint.
func VerifyPublication(file []byte, logKey string) (tlogpkg.Checkpoint, error) {
	var p Publication
	if err := json.Unmarshal(file, &p); err != nil {
		return tlogpkg.Checkpoint{}, fmt.Errorf("%w: %v", ErrVerify, err)
	}
	v, err := note.NewVerifier(logKey)
	if err != nil {
		return tlogpkg.Checkpoint{}, fmt.Errorf("legal: log key: %w", err)
	}
	cp, err := tlogpkg.OpenCheckpoint([]byte(p.Checkpoint), tlogpkg.Policy{Origin: p.Log, Log: v})
	if err != nil {
		return tlogpkg.Checkpoint{}, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	salt, err := hex.DecodeString(p.Salt)
	if err != nil || len(salt) != 32 {
		return cp.Checkpoint, fmt.Errorf("%w: malformed salt", ErrVerify)
	}
	if len(p.Entries) == 0 {
		return cp.Checkpoint, fmt.Errorf("%w: no entries", ErrVerify)
	}
	for _, e := range p.Entries {
		ph, err := hex.DecodeString(e.Private)
		if err != nil || len(ph) != 32 {
			return cp.Checkpoint, fmt.Errorf("%w: malformed private hash", ErrVerify)
		}
		rec := Record(e.Kind, e.Time, Commitment(salt, e.Kind, []byte(e.Public), [32]byte(ph)))
		if len(e.Proof) > 64 {
			return cp.Checkpoint, fmt.Errorf("%w: proof too long", ErrVerify)
		}
		var proof tlog.RecordProof
		for _, s := range e.Proof {
			h, err := hex.DecodeString(s)
			if err != nil || len(h) != 32 {
				return cp.Checkpoint, fmt.Errorf("%w: malformed proof", ErrVerify)
			}
			proof = append(proof, tlog.Hash(h))
		}
		if e.Index < 0 || e.Index >= cp.Size {
			return cp.Checkpoint, fmt.Errorf("%w: record %d outside a log of %d", ErrVerify, e.Index, cp.Size)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, e.Index, tlog.RecordHash(rec)); err != nil {
			return cp.Checkpoint, fmt.Errorf("%w: the %v of %s (record %d): %v", ErrVerify, e.Kind, p.Request, e.Index, err)
		}
	}
	return cp.Checkpoint, nil
}
