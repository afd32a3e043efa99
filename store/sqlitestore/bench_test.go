package sqlitestore

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync/atomic"
	"testing"

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
