package keyschedule

import (
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// PSKType is PreSharedKeyID.psktype (§8.4).
type PSKType uint8

const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionUsage is ResumptionPSKUsage (§8.4).
type ResumptionUsage uint8

const (
	UsageApplication ResumptionUsage = 1
	UsageReinit      ResumptionUsage = 2
	UsageBranch      ResumptionUsage = 3
)

// PreSharedKeyID names a PSK (§8.4). For PSKExternal only ExternalID is
// used; for PSKResumption, Usage, GroupID and Epoch. Nonce is the fresh
// Nh-byte psk_nonce.
type PreSharedKeyID struct {
	Type       PSKType
	ExternalID []byte
	Usage      ResumptionUsage
	GroupID    []byte
	Epoch      uint64
	Nonce      []byte
}

// Encode appends the PreSharedKeyID encoding to w.
func (id *PreSharedKeyID) Encode(w *codec.Writer) {
	w.U8(uint8(id.Type))
	switch id.Type {
	case PSKExternal:
		w.Opaque(id.ExternalID)
	case PSKResumption:
		w.U8(uint8(id.Usage))
		w.Opaque(id.GroupID)
		w.U64(id.Epoch)
	}
	w.Opaque(id.Nonce)
}

// MarshalBinary returns the PreSharedKeyID encoding. It fails for an
// unknown type or usage, which Encode would write but no peer could read.
func (id *PreSharedKeyID) MarshalBinary() ([]byte, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(nil)
	id.Encode(w)
	return w.Bytes(), nil
}

func (id *PreSharedKeyID) check() error {
	for _, b := range [][]byte{id.ExternalID, id.GroupID, id.Nonce} {
		if len(b) > codec.MaxVarint {
			return fmt.Errorf("PreSharedKeyID: %w: field too long", codec.ErrInvalidValue)
		}
	}
	switch id.Type {
	case PSKExternal:
	case PSKResumption:
		if id.Usage < UsageApplication || id.Usage > UsageBranch {
			return fmt.Errorf("PreSharedKeyID: %w: resumption usage %d", codec.ErrInvalidValue, id.Usage)
		}
	default:
		return fmt.Errorf("PreSharedKeyID: %w: psktype %d", codec.ErrInvalidValue, id.Type)
	}
	return nil
}

// DecodePreSharedKeyID reads a PreSharedKeyID; errors (including an unknown
// psktype or usage) stick on r.
func DecodePreSharedKeyID(r *codec.Reader) PreSharedKeyID {
	var id PreSharedKeyID
	id.Type = PSKType(r.U8())
	switch id.Type {
	case PSKExternal:
		id.ExternalID = r.Opaque()
	case PSKResumption:
		id.Usage = ResumptionUsage(r.U8())
		id.GroupID = r.Opaque()
		id.Epoch = r.U64()
	}
	id.Nonce = r.Opaque()
	if r.Err() == nil {
		if err := id.check(); err != nil {
			r.Fail(err)
		}
	}
	if r.Err() != nil {
		return PreSharedKeyID{}
	}
	return id
}

// PSK is one pre-shared key to inject: the encoded PreSharedKeyID and the
// PSK value itself.
type PSK struct {
	ID     []byte
	Secret []byte
}

// PSKSecret folds psks into psk_secret (§8.4):
//
//	psk_extracted_[i] = Extract(0, psk_[i])
//	psk_input_[i] = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, Nh)
//	psk_secret_[i] = Extract(psk_input_[i-1], psk_secret_[i-1])
//
// with PSKLabel{PreSharedKeyID id; uint16 index; uint16 count}. With no
// PSKs it is Nh zero bytes.
func PSKSecret(s *ciphersuite.Suite, psks []PSK) ([]byte, error) {
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("psk_secret: %w: %d PSKs", ErrInvalidLength, len(psks))
	}
	secret := zeros(s)
	for i, p := range psks {
		extracted := s.KDFExtract(zeros(s), p.Secret)
		w := codec.NewWriter(make([]byte, 0, len(p.ID)+4))
		w.Raw(p.ID)
		w.U16(uint16(i))
		w.U16(uint16(len(psks)))
		input := s.ExpandWithLabel(extracted, "derived psk", w.Bytes(), s.Nh())
		if input == nil {
			return nil, fmt.Errorf("psk_secret: %w: PreSharedKeyID too long", ErrInvalidLength)
		}
		next := s.KDFExtract(input, secret)
		clear(extracted)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}
