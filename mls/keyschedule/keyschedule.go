// Package keyschedule derives MLS's per-epoch secrets (RFC 9420 §8), the
// pre-shared-key secret (§8.4), the transcript hashes (§8.2) and the
// secret tree of per-sender message keys (§9).
//
// It works on bytes: the GroupContext, PreSharedKeyID and
// AuthenticatedContent encodings are built by the callers (the group and
// framing code), which keeps this package free of message types. Secrets
// that the spec says are consumed are overwritten and dropped as soon as
// the values derived from them exist (§9.2).
package keyschedule

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
)

var (
	// ErrInvalidSecret means an input secret had the wrong length for the
	// suite (every key-schedule secret is KDF.Nh bytes).
	ErrInvalidSecret = errors.New("keyschedule: invalid secret")
	// ErrInvalidLength means a requested output length is out of range.
	ErrInvalidLength = errors.New("keyschedule: invalid length")
	// ErrConsumed means a secret was asked for after it had been used and
	// deleted (§9.2), e.g. the encryption secret after the secret tree was
	// built from it.
	ErrConsumed = errors.New("keyschedule: secret already consumed")
	// ErrConfirmationTag means a confirmation tag did not verify.
	ErrConfirmationTag = errors.New("keyschedule: confirmation tag mismatch")
)

// Epoch holds the secrets of one epoch (§8, "Epoch-Derived Secrets"). The
// fields are exported so group code can persist and use them; a field the
// spec says is consumed is nil once it has been.
type Epoch struct {
	Suite *ciphersuite.Suite

	// JoinerSecret and WelcomeSecret are what a committer needs to build
	// the Welcome for this epoch. ForgetJoinSecrets drops them.
	JoinerSecret  []byte
	WelcomeSecret []byte

	SenderDataSecret []byte
	// EncryptionSecret seeds the secret tree; NewSecretTree consumes it.
	EncryptionSecret   []byte
	ExporterSecret     []byte
	ExternalSecret     []byte
	ConfirmationKey    []byte
	MembershipKey      []byte
	ResumptionPSK      []byte
	EpochAuthenticator []byte
	// InitSecret is init_secret_[n], the input to the next epoch.
	InitSecret []byte
}

// zeros returns the all-zero Nh-byte string the spec writes as "0".
func zeros(s *ciphersuite.Suite) []byte { return make([]byte, s.Nh()) }

// orZero substitutes 0 (Nh zero bytes) for an absent secret and checks the
// length of a present one.
func orZero(s *ciphersuite.Suite, name string, secret []byte) ([]byte, error) {
	if secret == nil {
		return zeros(s), nil
	}
	if len(secret) != s.Nh() {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrInvalidSecret, name, len(secret), s.Nh())
	}
	return secret, nil
}

// JoinerSecret is ExpandWithLabel(Extract(init_secret_[n-1], commit_secret),
// "joiner", GroupContext_[n], Nh) (§8). A nil commitSecret is the all-zero
// commit secret of a Commit without a path.
func JoinerSecret(s *ciphersuite.Suite, initSecret, commitSecret, groupContext []byte) ([]byte, error) {
	if len(initSecret) != s.Nh() {
		return nil, fmt.Errorf("%w: init_secret is %d bytes, want %d", ErrInvalidSecret, len(initSecret), s.Nh())
	}
	commitSecret, err := orZero(s, "commit_secret", commitSecret)
	if err != nil {
		return nil, err
	}
	prk := s.KDFExtract(initSecret, commitSecret)
	defer clear(prk)
	return s.ExpandWithLabel(prk, "joiner", groupContext, s.Nh()), nil
}

// memberSecret is Extract(joiner_secret, psk_secret), the node from which
// both the welcome secret and the epoch secret hang.
func memberSecret(s *ciphersuite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	if len(joinerSecret) != s.Nh() {
		return nil, fmt.Errorf("%w: joiner_secret is %d bytes, want %d", ErrInvalidSecret, len(joinerSecret), s.Nh())
	}
	pskSecret, err := orZero(s, "psk_secret", pskSecret)
	if err != nil {
		return nil, err
	}
	return s.KDFExtract(joinerSecret, pskSecret), nil
}

// WelcomeSecret is DeriveSecret(Extract(joiner_secret, psk_secret),
// "welcome"). A joiner needs it before it has the GroupContext, to decrypt
// the GroupInfo (§12.4.3.1). A nil pskSecret means no PSKs.
func WelcomeSecret(s *ciphersuite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	m, err := memberSecret(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	return s.DeriveSecret(m, "welcome"), nil
}

// WelcomeKeyNonce derives the AEAD key and nonce that protect a Welcome's
// GroupInfo (§12.4.3.1).
func WelcomeKeyNonce(s *ciphersuite.Suite, welcomeSecret []byte) (key, nonce []byte) {
	return s.ExpandWithLabel(welcomeSecret, "key", nil, s.Nk()),
		s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.Nn())
}

// NewEpoch runs the key schedule of §8 from the previous epoch's
// init_secret: it is how a member moves to the next epoch, and how a group
// creator starts epoch 0 (with a random init_secret). commitSecret and
// pskSecret may be nil for the all-zero values. groupContext is the
// serialized GroupContext of the new epoch.
func NewEpoch(s *ciphersuite.Suite, initSecret, commitSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	joiner, err := JoinerSecret(s, initSecret, commitSecret, groupContext)
	if err != nil {
		return nil, err
	}
	return FromJoinerSecret(s, joiner, pskSecret, groupContext)
}

// FromJoinerSecret runs the key schedule from joiner_secret onwards: it is
// how a new member that received a Welcome starts (§12.4.3.1). The Epoch
// keeps joinerSecret (not a copy).
func FromJoinerSecret(s *ciphersuite.Suite, joinerSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	m, err := memberSecret(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	epochSecret := s.ExpandWithLabel(m, "epoch", groupContext, s.Nh())
	defer clear(epochSecret)
	return &Epoch{
		Suite:              s,
		JoinerSecret:       joinerSecret,
		WelcomeSecret:      s.DeriveSecret(m, "welcome"),
		SenderDataSecret:   s.DeriveSecret(epochSecret, "sender data"),
		EncryptionSecret:   s.DeriveSecret(epochSecret, "encryption"),
		ExporterSecret:     s.DeriveSecret(epochSecret, "exporter"),
		ExternalSecret:     s.DeriveSecret(epochSecret, "external"),
		ConfirmationKey:    s.DeriveSecret(epochSecret, "confirm"),
		MembershipKey:      s.DeriveSecret(epochSecret, "membership"),
		ResumptionPSK:      s.DeriveSecret(epochSecret, "resumption"),
		EpochAuthenticator: s.DeriveSecret(epochSecret, "authentication"),
		InitSecret:         s.DeriveSecret(epochSecret, "init"),
	}, nil
}

// ForgetJoinSecrets deletes the joiner and welcome secrets once the
// Welcome for this epoch has been sent or processed.
func (e *Epoch) ForgetJoinSecrets() {
	clear(e.JoinerSecret)
	clear(e.WelcomeSecret)
	e.JoinerSecret, e.WelcomeSecret = nil, nil
}

// ExternalKeyPair is KEM.DeriveKeyPair(external_secret) (§8): the group's
// external_priv and the external_pub it publishes in GroupInfo.
func (e *Epoch) ExternalKeyPair() (priv, pub []byte, err error) {
	if e.ExternalSecret == nil {
		return nil, nil, fmt.Errorf("external key pair: %w", ErrConsumed)
	}
	return e.Suite.DeriveKeyPair(e.ExternalSecret)
}

// Export is MLS-Exporter(Label, Context, Length) (§8.5):
// ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported",
// Hash(Context), Length).
func (e *Epoch) Export(label string, context []byte, length int) ([]byte, error) {
	if e.ExporterSecret == nil {
		return nil, fmt.Errorf("MLS-Exporter: %w", ErrConsumed)
	}
	if length < 0 || length > 0xffff || length > 255*e.Suite.Nh() {
		return nil, fmt.Errorf("MLS-Exporter: %w: %d bytes", ErrInvalidLength, length)
	}
	secret := e.Suite.DeriveSecret(e.ExporterSecret, label)
	defer clear(secret)
	out := e.Suite.ExpandWithLabel(secret, "exported", e.Suite.Hash(context), length)
	if out == nil {
		return nil, fmt.Errorf("MLS-Exporter: %w: label too long", ErrInvalidLength)
	}
	return out, nil
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash)
// (§6.1).
func (e *Epoch) ConfirmationTag(confirmedTranscriptHash []byte) []byte {
	return e.Suite.MAC(e.ConfirmationKey, confirmedTranscriptHash)
}

// VerifyConfirmationTag checks tag in constant time; it returns
// ErrConfirmationTag on mismatch.
func (e *Epoch) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) error {
	if subtle.ConstantTimeCompare(e.ConfirmationTag(confirmedTranscriptHash), tag) != 1 {
		return ErrConfirmationTag
	}
	return nil
}

// MembershipTag is MAC(membership_key, AuthenticatedContentTBM) (§6.2); the
// framing code builds the TBM bytes.
func (e *Epoch) MembershipTag(tbm []byte) []byte {
	return e.Suite.MAC(e.MembershipKey, tbm)
}

// externalInitLabel is the HPKE exporter context of §8.3.
const externalInitLabel = "MLS 1.0 external init secret"

// ExternalInit is the joiner's side of §8.3: it encapsulates to the
// group's external_pub and returns the kem_output for the ExternalInit
// proposal and the init_secret to run the key schedule with.
func ExternalInit(s *ciphersuite.Suite, externalPub []byte) (kemOutput, initSecret []byte, err error) {
	kemOutput, initSecret, err = s.HPKEExport(externalPub, nil, []byte(externalInitLabel), s.Nh())
	if err != nil {
		return nil, nil, fmt.Errorf("external init: %w", err)
	}
	return kemOutput, initSecret, nil
}

// ExternalInitOpen is the members' side of §8.3: it recovers init_secret
// from an ExternalInit proposal's kem_output with external_priv.
func ExternalInitOpen(s *ciphersuite.Suite, externalPriv, kemOutput []byte) ([]byte, error) {
	initSecret, err := s.HPKEExportOpen(externalPriv, kemOutput, nil, []byte(externalInitLabel), s.Nh())
	if err != nil {
		return nil, fmt.Errorf("external init: %w", err)
	}
	return initSecret, nil
}
