package transport

import "time"

// SetRequestTimeout sets the default request timeout until the returned
// func restores it.
func SetRequestTimeout(d time.Duration) (restore func()) {
	old := requestTimeout
	requestTimeout = d
	return func() { requestTimeout = old }
}
