package moderation

// SetServePageBytes sets the byte bound of served exchange pages for a
// test and returns a function that restores it.
func SetServePageBytes(n int) (restore func()) {
	old := servePageBytes
	servePageBytes = n
	return func() { servePageBytes = old }
}
