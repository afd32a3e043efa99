package store

import (
	"fmt"
	"slices"
)

// CheckConversationID reports ErrBadRequest for a conversation id no
// backend stores: empty or longer than 64 bytes.
func CheckConversationID(id []byte) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("conversation id must be 1-64 bytes: %w", ErrBadRequest)
	}
	return nil
}

// CheckAppend reports ErrBadRequest for an Append that no backend may
// store, whatever the conversation's state: every backend calls it
// before touching its database, so that they refuse the same requests.
func CheckAppend(a Append) error {
	if len(a.ID) != 16 {
		return fmt.Errorf("message id must be 16 bytes: %w", ErrBadRequest)
	}
	if err := CheckConversationID(a.ConversationID); err != nil {
		return err
	}
	if a.Sender == "" {
		return fmt.Errorf("no sender: %w", ErrBadRequest)
	}
	// Both backends keep epochs and times in signed 64-bit integers.
	if a.Epoch > 1<<62 {
		return fmt.Errorf("epoch %d out of range: %w", a.Epoch, ErrBadRequest)
	}
	if a.FirstSent < 0 {
		return fmt.Errorf("first-send time before 1970: %w", ErrBadRequest)
	}
	switch a.Kind {
	case KindCommit:
		if len(a.Welcome) > 0 && len(a.Added) == 0 {
			return fmt.Errorf("welcome without added devices: %w", ErrBadRequest)
		}
		seen := make(map[string]bool)
		for _, d := range slices.Concat(a.Added, a.Removed) {
			if d == "" || seen[d] {
				return fmt.Errorf("empty or repeated device id %q in membership delta: %w", d, ErrBadRequest)
			}
			seen[d] = true
		}
	case KindProposal, KindApplication:
		if len(a.Added) > 0 || len(a.Removed) > 0 || len(a.Welcome) > 0 {
			return fmt.Errorf("membership delta on a %v: %w", a.Kind, ErrBadRequest)
		}
	default:
		return fmt.Errorf("cannot append a %v: %w", a.Kind, ErrBadRequest)
	}
	if !a.Expires.IsZero() && a.Kind != KindApplication {
		return fmt.Errorf("an expiry on a %v: %w", a.Kind, ErrBadRequest)
	}
	return nil
}
