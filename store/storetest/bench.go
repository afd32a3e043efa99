package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// Conversations is how many two-device conversations BenchAppendAck1to1
// makes, named conv0000 … conv0063 (a backend's prepare hook may fill
// them with more).
const Conversations = 64

// BenchAppendAck1to1 is the 1:1 chat pattern parleyd serves, on any
// backend: in Conversations two-device conversations one device appends
// and the other acks it. Each op is one durable append and one ack.
// prepare (may be nil) runs once the conversations exist, before the
// timer starts. cpu-µs/op is this process's CPU time (user+system) per
// op, less sensitive than ns/op to other load; a database server's own
// CPU is not included.
func BenchAppendAck1to1(b *testing.B, s store.Store, prepare func()) {
	ctx := context.Background()
	for i := range Conversations {
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
		if _, err := s.Append(ctx, store.Append{ID: benchID(), ConversationID: conv, Kind: store.KindCommit, Sender: a, Added: []string{p}}); err != nil {
			b.Fatal(err)
		}
	}
	if prepare != nil {
		prepare()
	}
	payload := make([]byte, 256)
	var next atomic.Int64
	b.SetParallelism(Conversations / runtime.GOMAXPROCS(0))
	before := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % Conversations
		a, p := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i)
		conv := []byte(fmt.Sprintf("conv%04d", i))
		for pb.Next() {
			r, err := s.Append(ctx, store.Append{ID: benchID(), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: a, Payload: payload})
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
}

func benchID() []byte {
	id := make([]byte, 16)
	rand.Read(id)
	return id
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
