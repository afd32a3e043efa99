package moderation

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/video"
)

// BenchmarkTMKEntryMemory measures the heap an index keeps per TMK entry:
// "decoded" is the form before the compact one (the decoded hash, the
// entry with its 350 KB value, and the value again in the map key),
// "compact" the current one (level-1 vector in memory, full hash in the
// spill file). Each entry's value is a fresh string, as each change-log
// record is. Reported per 10 000 entries (measured on fewer for the
// decoded form, which would need about 10 GB).
//
//	go test -run '^$' -bench TMKEntryMemory -benchtime 1x ./moderation/
func BenchmarkTMKEntryMemory(b *testing.B) {
	raw, err := os.ReadFile("../../shared/testdata/video/tmk/chair-orig-22-sd-bar.tmk")
	if err != nil {
		b.Fatal(err)
	}
	h, err := video.ReadTMK(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	entryN := func(i int) hashlist.Entry {
		h.FrameCount = int32(i + 1) // distinct values
		v, err := hashlist.TMKValue(h)
		if err != nil {
			b.Fatal(err)
		}
		return hashlist.Entry{Type: hashlist.TMK, Value: v}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	type decoded struct {
		ref
		tmk *video.TMK
	}
	for _, c := range []struct {
		name string
		n    int
		keep func(e hashlist.Entry, spill *tmkSpill) any
	}{
		{"decoded", 300, func(e hashlist.Entry, _ *tmkSpill) any {
			t, err := hashlist.ParseTMKValue(e.Value)
			if err != nil {
				b.Fatal(err)
			}
			return map[string]decoded{"bank\x00" + e.Key(): {ref{bank: "bank", entry: e}, t}}
		}},
		{"compact", 10000, func(e hashlist.Entry, spill *tmkSpill) any {
			v, err := newVideoEntry("bank", e, spill)
			if err != nil {
				b.Fatal(err)
			}
			return map[string]videoEntry{"bank\x00" + v.Key(): v}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				var spill tmkSpill
				kept := make([]any, 0, c.n)
				before := heap()
				for i := range c.n {
					kept = append(kept, c.keep(entryN(i), &spill))
				}
				after := heap()
				runtime.KeepAlive(kept)
				per := float64(after-before) / float64(c.n)
				b.ReportMetric(per, "B/entry")
				b.ReportMetric(per*10000/(1<<20), "MiB/10k-entries")
				b.ReportMetric(float64(spill.size)/float64(c.n), "disk-B/entry")
				if spill.f != nil {
					spill.f.Close()
				}
			}
		})
	}
}
