package pgstore

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store"
)

// BenchmarkAppendAck1to1 is store/sqlitestore's benchmark of the same
// name on PostgreSQL: in 64 two-device conversations one device appends
// and the other acks, each op one durable append and one ack. cpu-µs/op
// is this process's CPU (user+system) per op, the database's not
// included; writes/group is the group commit's mean batch (appends and acks).
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
	const convs = 64
	for i := range convs {
		a, p := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i)
		for _, d := range []string{a, p} {
			if err := s.CreateAccount(ctx, store.Device{ID: d, Username: d, PublicKey: []byte(d)}, ""); err != nil {
				b.Fatal(err)
			}
		}
		conv := []byte(fmt.Sprintf("conv%04d", i))
		if err := s.CreateConversation(ctx, conv, a); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(ctx, store.Append{ID: msgID(i), ConversationID: conv, Kind: store.KindCommit, Sender: a, Added: []string{p}}); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 256)
	var next atomic.Int64
	groups.Store(0)
	grouped.Store(0)
	b.SetParallelism(convs / runtime.GOMAXPROCS(0))
	before := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % convs
		a, p := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i)
		conv := []byte(fmt.Sprintf("conv%04d", i))
		n := 0
		for pb.Next() {
			n++
			r, err := s.Append(ctx, store.Append{ID: msgID(1_000_000*i + n), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: a, Payload: payload})
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Ack(ctx, p, conv, r.Message.Seq); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/op")
	if n := groups.Load(); n > 0 {
		b.ReportMetric(float64(grouped.Load())/float64(n), "writes/group")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
