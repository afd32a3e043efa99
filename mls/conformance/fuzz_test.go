package conformance

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzRun feeds arbitrary vector files of every kind through Run. Run
// turns a panic in an entry into a failed result, so the target fails on
// any result whose reason is a panic: no decoder of the mls packages may
// panic, whatever the bytes. And the verdicts are a function of the
// input: running the same file again gives the same results (no state
// leaks from one entry or run into the next).
func FuzzRun(f *testing.F) {
	kinds := Kinds()
	f.Add(uint8(0), []byte(`[{"vlbytes_header":"40ff","length":255}]`))
	f.Add(uint8(1), []byte(`[{"cipher_suite":1,"tree":"00","group_id":"","resolutions":[],"tree_hashes":[]}]`))
	f.Add(uint8(2), []byte(`[{"mls_welcome":"0001000300","mls_group_info":"","ratchet_tree":"00"}]`))
	f.Add(uint8(3), []byte(`[{"cipher_suite":1,"key_package":"00010005","welcome":"00010003","ratchet_tree":null,"epochs":[]}]`))
	f.Add(uint8(4), []byte(`[{"cipher_suite":2,"ratchet_tree":"0101","leaves_private":[],"update_paths":[{"update_path":"00"}]}]`))
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		results, err := Run(kind, data)
		if err != nil {
			return
		}
		for _, r := range results {
			if strings.HasPrefix(r.Reason, "panic:") {
				t.Fatalf("%s entry %d: %s", kind, r.Index, r.Reason)
			}
		}
		again, err := Run(kind, data)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(results) {
			t.Fatalf("%s: a second run gave %v, %v; the first %v", kind, again, err, results)
		}
	})
}
