package pgstore

import (
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store/storetest"
)

// BenchmarkAppendAck1to1 is storetest's 1:1 chat benchmark on
// PostgreSQL (the database's own CPU is not in cpu-µs/op);
// writes/group is the group commit's mean batch (appends and acks).
func BenchmarkAppendAck1to1(b *testing.B) {
	var groups, grouped atomic.Int64
	s, err := Open(ctx, pgtest.DB(b), &Options{MaxConns: 16, OnGroup: func(n int) {
		groups.Add(1)
		grouped.Add(int64(n))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchAppendAck1to1(b, s, func() {
		groups.Store(0)
		grouped.Store(0)
	})
	if n := groups.Load(); n > 0 {
		b.ReportMetric(float64(grouped.Load())/float64(n), "writes/group")
	}
}
