package directory

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// noteKey is a note signer that keeps its verifier, which the directory
// needs to open cosigned checkpoints of its own.
type noteKey struct {
	note.Signer
	Verifier note.Verifier
}

// NewNoteKey returns the signer for an encoded note private key (as
// note.GenerateKey makes), for Config.Signer, and its verifier key.
func NewNoteKey(skey string) (note.Signer, string, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", err
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, "", err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", err
	}
	return &noteKey{Signer: s, Verifier: v}, vkey, nil
}

// GenerateNoteKey makes a new note key named name: the encoded private
// key (keep it secret) and verifier key (publish it).
func GenerateNoteKey(rand io.Reader, name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand, name)
}

// verifierKey derives the verifier key of an encoded Ed25519 note private
// key ("PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>", the format of
// golang.org/x/mod/sumdb/note).
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5) // base64 may hold "+"
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("directory: malformed note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("directory: note private key is not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
