package log

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a statement of the log's state: the tree of the first Size
// records has root Hash.
type Checkpoint struct {
	// Origin names the log, as a schema-less URL ("parley.example/kt"); it
	// keeps one log's checkpoints from passing for another's.
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// MaxNoteSize bounds a signed checkpoint: its text and up to 100
// signatures (note.Open's own limit) fit well inside it. OpenCheckpoint
// refuses larger input before parsing it.
const MaxNoteSize = 16 << 10

// maxOriginLen bounds the origin line.
const maxOriginLen = 256

var (
	// ErrMalformedCheckpoint is returned for a note whose text is not a
	// checkpoint in the form Text produces, or that is too large.
	ErrMalformedCheckpoint = errors.New("log: malformed checkpoint")
	// ErrWrongOrigin is returned for a checkpoint of another log.
	ErrWrongOrigin = errors.New("log: checkpoint is for another log")
	// ErrSignature is returned for a checkpoint that the log's key has not
	// validly signed, or that carries an invalid signature from any key the
	// policy knows.
	ErrSignature = errors.New("log: checkpoint signature missing or invalid")
	// ErrQuorum is returned for a checkpoint, validly signed by the log,
	// that fewer witnesses have cosigned than the policy requires.
	ErrQuorum = errors.New("log: checkpoint lacks the witness cosignatures the policy requires")
)

// Text returns the checkpoint's note text, in the C2SP tlog-checkpoint
// form: the origin, the size in decimal, the root hash in standard base64,
// one per line, with no extension lines.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint's note text, accepting only the exact
// form Text produces (so each checkpoint has one text, and one set of bytes
// for its signatures to cover): a non-empty origin of printable characters
// without leading or trailing space, a decimal size without sign or leading
// zeros, a canonical base64 hash of 32 bytes, and nothing else (extension
// lines are refused: Parley's checkpoints have none).
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	if len(text) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrMalformedCheckpoint, len(text))
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want 3 lines each ending in a newline", ErrMalformedCheckpoint)
	}
	origin, size, hash := lines[0], lines[1], lines[2]
	if err := checkOrigin(origin); err != nil {
		return Checkpoint{}, err
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return Checkpoint{}, fmt.Errorf("%w: size %q", ErrMalformedCheckpoint, size)
	}
	// encoding/base64 skips CR even in strict mode: refuse it, so that a
	// checkpoint has one spelling.
	h, err := base64.StdEncoding.Strict().DecodeString(hash)
	if err != nil || len(h) != len(tlog.Hash{}) || strings.Contains(hash, "\r") {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q", ErrMalformedCheckpoint, hash)
	}
	c := Checkpoint{Origin: origin, Size: n}
	copy(c.Hash[:], h)
	return c, nil
}

func checkOrigin(origin string) error {
	if origin == "" || len(origin) > maxOriginLen || strings.TrimSpace(origin) != origin {
		return fmt.Errorf("%w: origin %q", ErrMalformedCheckpoint, origin)
	}
	for _, r := range origin {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character in origin", ErrMalformedCheckpoint)
		}
	}
	return nil
}

// Sign returns c as a note signed by the log's key (and by any other
// signers given).
func Sign(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	if err := checkOrigin(c.Origin); err != nil {
		return nil, err
	}
	if c.Size < 0 {
		return nil, fmt.Errorf("%w: size %d", ErrMalformedCheckpoint, c.Size)
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Text())}, signers...)
	if err != nil {
		return nil, fmt.Errorf("log: signing checkpoint: %w", err)
	}
	return msg, nil
}

// Policy is what a client requires of a checkpoint before it believes it.
type Policy struct {
	// Origin is the log's name; checkpoints of other logs are refused.
	Origin string
	// Log verifies the directory's own signature, which is always required.
	Log note.Verifier
	// Witnesses verify the auditors' cosignatures. A signature by any of
	// them is checked, and a bad one refuses the checkpoint.
	Witnesses []note.Verifier
	// Quorum is how many distinct Witnesses must have signed. Set it to
	// len(Witnesses) to require them all; 0 requires none.
	Quorum int
}

// SignedCheckpoint is a checkpoint opened under a Policy.
type SignedCheckpoint struct {
	Checkpoint
	// Note is the signed note exactly as received: the evidence to publish
	// if the log turns out to have lied.
	Note []byte
	// Witnesses names the witnesses whose valid signatures it carries.
	Witnesses []string

	note *note.Note
}

// OpenCheckpoint verifies a signed checkpoint under policy and parses it.
// It refuses, with the sentinel errors of this package: input larger than
// MaxNoteSize or not a note (ErrMalformedCheckpoint); a missing or invalid
// signature by the log or an invalid one by a witness (ErrSignature); a
// checkpoint of another log (ErrWrongOrigin); fewer witness signatures than
// the quorum (ErrQuorum). Signatures by keys the policy does not know are
// kept (Cosign passes them on) but count for nothing.
func OpenCheckpoint(msg []byte, policy Policy) (*SignedCheckpoint, error) {
	if len(msg) > MaxNoteSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedCheckpoint, len(msg), MaxNoteSize)
	}
	if policy.Log == nil {
		return nil, errors.New("log: policy has no log verifier")
	}
	if policy.Quorum < 0 || policy.Quorum > len(policy.Witnesses) {
		return nil, fmt.Errorf("log: policy quorum %d of %d witnesses", policy.Quorum, len(policy.Witnesses))
	}
	verifiers := append([]note.Verifier{policy.Log}, policy.Witnesses...)
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("%w: no signature by %s", ErrSignature, policy.Log.Name())
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("%w: %v", ErrSignature, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	logSigned := false
	signed := map[int]bool{}
	for _, s := range n.Sigs {
		if s.Name == policy.Log.Name() && s.Hash == policy.Log.KeyHash() {
			logSigned = true
			continue
		}
		for i, w := range policy.Witnesses {
			if s.Name == w.Name() && s.Hash == w.KeyHash() {
				signed[i] = true
			}
		}
	}
	if !logSigned {
		return nil, fmt.Errorf("%w: no signature by %s", ErrSignature, policy.Log.Name())
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if c.Origin != policy.Origin {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongOrigin, c.Origin, policy.Origin)
	}
	if len(signed) < policy.Quorum {
		return nil, fmt.Errorf("%w: %d of %d required", ErrQuorum, len(signed), policy.Quorum)
	}
	sc := &SignedCheckpoint{Checkpoint: c, Note: bytes.Clone(msg), note: n}
	for i, w := range policy.Witnesses {
		if signed[i] {
			sc.Witnesses = append(sc.Witnesses, w.Name())
		}
	}
	return sc, nil
}

// Cosign adds signer's signature to a checkpoint and returns the note with
// every signature it already had, verified or not. A witness calls it only
// after its own Verifier has accepted the checkpoint, that is after
// checking it extends every checkpoint the witness signed before: a
// cosignature says "this log has not forked from what I have seen".
func Cosign(sc *SignedCheckpoint, signer note.Signer) ([]byte, error) {
	if sc == nil || sc.note == nil {
		return nil, errors.New("log: Cosign needs a checkpoint from OpenCheckpoint")
	}
	n := *sc.note
	msg, err := note.Sign(&n, signer)
	if err != nil {
		return nil, fmt.Errorf("log: cosigning checkpoint: %w", err)
	}
	return msg, nil
}
