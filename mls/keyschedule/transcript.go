package keyschedule

import (
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ConfirmedTranscriptHash is Hash(interim_transcript_hash_[n-1] ||
// ConfirmedTranscriptHashInput_[n]) (§8.2). confirmedInput is the encoded
// ConfirmedTranscriptHashInput: wire_format, the FramedContent of the
// Commit and its signature<V>. The interim hash of epoch 0 is empty.
func ConfirmedTranscriptHash(s *ciphersuite.Suite, interim, confirmedInput []byte) []byte {
	buf := make([]byte, 0, len(interim)+len(confirmedInput))
	return s.Hash(append(append(buf, interim...), confirmedInput...))
}

// InterimTranscriptHash is Hash(confirmed_transcript_hash_[n] ||
// InterimTranscriptHashInput_[n]) (§8.2). confirmationTag is the raw MAC;
// it is encoded here as InterimTranscriptHashInput{MAC confirmation_tag},
// i.e. with its length header.
func InterimTranscriptHash(s *ciphersuite.Suite, confirmed, confirmationTag []byte) []byte {
	w := codec.NewWriter(make([]byte, 0, len(confirmed)+len(confirmationTag)+4))
	w.Raw(confirmed)
	if len(confirmationTag) > codec.MaxVarint {
		return nil
	}
	w.Opaque(confirmationTag)
	return s.Hash(w.Bytes())
}
