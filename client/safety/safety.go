// Package safety computes Parley safety numbers: a 60-digit number two
// people compare (aloud or side by side) to check that no one, the server
// included, has slipped a device of their own into their conversation.
//
// Each user's half is a 30-digit fingerprint of the user name and the
// signature keys of all of that user's devices (as seen in the MLS group,
// sorted so that order does not matter). The fingerprint is an iterated
// SHA-512 — the same idea as Signal's numeric fingerprints, iterated to
// make a search for a colliding key set expensive — whose first 30 bytes
// are read as six 40-bit numbers, each reduced mod 100000 to five digits.
// The two halves are concatenated in user-name order, so both sides
// display the same number.
package safety

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Version is bound into every fingerprint.
const Version = 1

// Iterations of SHA-512 per fingerprint.
const Iterations = 5200

// Party is one side of a conversation.
type Party struct {
	User string
	// Keys are the MLS signature public keys of every device of User.
	Keys [][]byte
}

// Fingerprint returns the 30-digit fingerprint of p.
func Fingerprint(p Party) (string, error) {
	if p.User == "" || len(p.Keys) == 0 {
		return "", errors.New("safety: a party needs a user name and at least one key")
	}
	keys := slices.Clone(p.Keys)
	slices.SortFunc(keys, bytes.Compare)
	var all []byte
	for _, k := range keys {
		all = binary.BigEndian.AppendUint32(all, uint32(len(k)))
		all = append(all, k...)
	}
	h := sha512.New()
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], Version)
	h.Write(v[:])
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p.User))))
	h.Write([]byte(p.User))
	h.Write(all)
	sum := h.Sum(nil)
	for range Iterations {
		h.Reset()
		h.Write(sum)
		h.Write(all)
		sum = h.Sum(sum[:0])
	}
	var b strings.Builder
	for i := range 6 {
		var chunk [8]byte
		copy(chunk[3:], sum[i*5:i*5+5])
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return b.String(), nil
}

// Number returns the 60-digit safety number of a and b, the same whichever
// side computes it.
func Number(a, b Party) (string, error) {
	if a.User == b.User {
		return "", errors.New("safety: both parties are the same user")
	}
	if a.User > b.User {
		a, b = b, a
	}
	fa, err := Fingerprint(a)
	if err != nil {
		return "", err
	}
	fb, err := Fingerprint(b)
	if err != nil {
		return "", err
	}
	return fa + fb, nil
}

// Format splits a number into space-separated groups of five digits.
func Format(number string) string {
	var groups []string
	for i := 0; i < len(number); i += 5 {
		groups = append(groups, number[i:min(i+5, len(number))])
	}
	return strings.Join(groups, " ")
}
