package hashing

import "errors"

// ErrTooLarge is returned when an input exceeds a configured byte limit.
var ErrTooLarge = errors.New("hashing: input too large")
