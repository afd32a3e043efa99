package sqlitestore

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// BenchmarkAppend measures durable appends (synchronous=FULL) from many
// concurrent senders, where group commit shares one fsync among a batch.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	var batches, appends atomic.Int64
	s, err := Open(ctx, filepath.Join(b.TempDir(), "parley.db"), &Options{OnBatch: func(n int) {
		batches.Add(1)
		appends.Add(int64(n))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: []byte("k")}, ""); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateConversation(ctx, []byte("conv"), "d1"); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 512)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := make([]byte, 16)
			rand.Read(id)
			if _, err := s.Append(ctx, store.Append{ID: id, ConversationID: []byte("conv"), Kind: store.KindApplication, Sender: "d1", Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(appends.Load())/float64(n), "appends/batch")
	}
}

// BenchmarkAppendAck1to1 is the 1:1 chat pattern parleyd serves: in many
// two-device conversations, one device appends and the other acks it.
// Each op is one append and one ack; cpu-µs/op is the process's CPU time
// (user+system) per op, which is less sensitive than ns/op to other load.
func BenchmarkAppendAck1to1(b *testing.B) {
	benchAppendAck1to1(b, 0)
}

func benchAppendAck1to1(b *testing.B, oldIDs int) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "parley.db"), nil)
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
		if _, err := s.Append(ctx, store.Append{ID: randomID(), ConversationID: conv, Kind: store.KindCommit, Sender: a, Added: []string{p}}); err != nil {
			b.Fatal(err)
		}
	}
	if oldIDs > 0 {
		// Ids of messages long read and trimmed, spread over the
		// conversations, as a bulk insert in the database itself.
		if _, err := s.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
			SELECT CAST(printf('conv%04d', i % ?) AS BLOB), randomblob(16), 0, 1, 3, 'old', 0 FROM n`, oldIDs, convs); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 256)
	var next atomic.Int64
	b.SetParallelism(convs / runtime.GOMAXPROCS(0))
	before := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % convs
		a, p := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i)
		conv := []byte(fmt.Sprintf("conv%04d", i))
		for pb.Next() {
			r, err := s.Append(ctx, store.Append{ID: randomID(), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: a, Payload: payload})
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

func randomID() []byte {
	id := make([]byte, 16)
	rand.Read(id)
	return id
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendAck1to1Aged is BenchmarkAppendAck1to1 on a store that
// already remembers 2 million message ids (a server that has run for a
// while): every id insert lands on a random page of a large index.
func BenchmarkAppendAck1to1Aged(b *testing.B) {
	benchAppendAck1to1(b, 2_000_000)
}
