// Package bytesize writes byte counts for people ("100 MiB", "1.5 GiB"),
// the same way in the server's messages and the client's progress bars.
package bytesize

import "fmt"

// Format writes n in the largest binary unit it reaches: exact multiples
// without decimals ("100 MiB"), others with one ("1.5 GiB").
func Format(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
