// Package bytesize writes byte counts for people ("100 MiB", "1.5 GiB"),
// the same way in the server's messages and the client's progress bars.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

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

// units are the suffixes Parse accepts, as GOMEMLIMIT writes them.
var units = []struct {
	suffix string
	size   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// Parse reads a positive byte count written as Format writes it or as
// GOMEMLIMIT is ("512MiB", "1 GiB", "1048576"): a whole number, then
// optionally B, KiB, MiB, GiB or TiB.
func Parse(s string) (int64, error) {
	num, size := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, size = strings.TrimSpace(rest), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("want a size such as 512MiB or 20GiB, not %q", s)
	}
	return n * size, nil
}
