package mls

import (
	"errors"
	"fmt"
)

// Errors returned by Group methods. They are sentinels: test for them with
// errors.Is; the returned errors wrap them with context. (ErrMalformed,
// ErrInvalidTree, ErrInvalidLeafNode, ErrInvalidKeyPackage and
// ErrInvalidUpdatePath are declared beside the structures they concern.)
var (
	// ErrWrongGroup means a message names another group.
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrWrongEpoch means a message's epoch is in the future, or too old:
	// older than the epochs whose secrets are kept, or a handshake message
	// for an epoch other than the current one.
	ErrWrongEpoch = errors.New("mls: message for the wrong epoch")
	// ErrReplay means the key generation a PrivateMessage uses was already
	// used (and deleted), or fell out of the out-of-order window.
	ErrReplay = errors.New("mls: generation already used")
	// ErrDuplicateProposal means a proposal with the same reference is
	// already cached for this epoch: a harmless repeat (a PublicMessage
	// proposal sent twice is byte for byte the same). It wraps ErrReplay.
	ErrDuplicateProposal = fmt.Errorf("%w: proposal already received", ErrReplay)
	// ErrTooFarAhead means a PrivateMessage's generation is beyond the
	// out-of-order window.
	ErrTooFarAhead = errors.New("mls: generation too far ahead")
	// ErrBadSignature means a message, GroupInfo or KeyPackage signature
	// did not verify.
	ErrBadSignature = errors.New("mls: bad signature")
	// ErrBadMembershipTag means a PublicMessage's membership tag did not
	// verify.
	ErrBadMembershipTag = errors.New("mls: bad membership tag")
	// ErrBadConfirmationTag means a commit's or GroupInfo's confirmation
	// tag did not verify.
	ErrBadConfirmationTag = errors.New("mls: bad confirmation tag")
	// ErrInvalidCommit means a Commit breaks a rule of RFC 9420 §12.4.2.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidProposal means a proposal breaks a rule of §12.1/§12.2.
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrUnknownSender means the sender is not a member (blank or out of
	// range leaf) or not a configured external sender.
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrTooLarge means an application message (plaintext plus
	// authenticated data) exceeds MaxApplicationData.
	ErrTooLarge = errors.New("mls: application message too large")
	// ErrRemoved means this member has been removed from the group: the
	// group can no longer send or receive.
	ErrRemoved = errors.New("mls: removed from the group")
	// ErrDecrypt means a PrivateMessage, Welcome or path secret did not
	// decrypt.
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrPendingCommit means an operation needs no pending commit, or a
	// pending commit is needed and there is none.
	ErrPendingCommit = errors.New("mls: pending commit state")
	// ErrUnknownPSK means a PSK named by a proposal or Welcome is not
	// available.
	ErrUnknownPSK = errors.New("mls: unknown pre-shared key")
	// ErrUnsupported means a valid message uses something this
	// implementation does not handle (e.g. an unknown wire format here).
	ErrUnsupported = errors.New("mls: unsupported")
)
