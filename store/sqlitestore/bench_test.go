package sqlitestore

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/storetest"
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

// BenchmarkAppendAck1to1 is storetest's 1:1 chat benchmark on SQLite.
func BenchmarkAppendAck1to1(b *testing.B) {
	benchAppendAck1to1(b, 0, true)
}

func benchAppendAck1to1(b *testing.B, oldIDs int, firstSent bool) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "parley.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bench := storetest.BenchAppendAck1to1
	if !firstSent {
		bench = storetest.BenchAppendAck1to1NoFirstSent
	}
	bench(b, s, func() {
		if oldIDs == 0 {
			return
		}
		// Ids of messages long read and trimmed, spread over the
		// conversations and, when clients say when they sent them, over
		// the past oldIDs seconds, as a bulk insert in the database
		// itself.
		if _, err := s.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored)
			SELECT CASE WHEN ? THEN ? - (? - i) * 1000 ELSE 0 END, randomblob(16), CAST(printf('conv%04d', i % ?) AS BLOB), 0, 1, 3, 'old', 0 FROM n`,
			oldIDs, firstSent, time.Now().UnixMilli(), oldIDs, storetest.Conversations); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkAppendAck1to1Aged is BenchmarkAppendAck1to1 on a store that
// already remembers 2 million message ids (a server that has run for a
// while): every id insert lands on a random page of a large index.
func BenchmarkAppendAck1to1Aged(b *testing.B) {
	benchAppendAck1to1(b, 2_000_000, true)
}

// BenchmarkAppendAck1to1AgedNoFirstSent is BenchmarkAppendAck1to1Aged
// with clients that do not say when they first sent a message (all
// records keyed by first_sent 0, then by random id): every id insert
// lands on a random page of the large index, as every insert did before
// migration 9.
func BenchmarkAppendAck1to1AgedNoFirstSent(b *testing.B) {
	benchAppendAck1to1(b, 2_000_000, false)
}

// BenchmarkCommits is storetest's group management benchmark on SQLite:
// adds with Welcomes, update commits and removes, applied at once
// (Commits) or pending until a voter's verdicts (CommitsPending).
func BenchmarkCommits(b *testing.B)        { benchCommits(b, false) }
func BenchmarkCommitsPending(b *testing.B) { benchCommits(b, true) }

func benchCommits(b *testing.B, pending bool) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "parley.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchCommits(b, s, pending, nil)
}

// BenchmarkOpenWithBacklog measures opening a store whose log holds 1
// million undelivered messages (10 000 conversations of 100, as offline
// devices leave them): the message log's index is rebuilt by one scan of
// those rows (logindex.go). rows/s is that scan's rate, the whole Open
// included.
func BenchmarkOpenWithBacklog(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "parley.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	const convs, per = 10_000, 100
	if _, err := s.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored)
		SELECT CAST(printf('%016d', i % ?) AS BLOB), i / ? + 1, randomblob(16), 1, 3, 'd1', randomblob(200), 0 FROM n`,
		convs*per-1, convs, convs); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s, err := Open(ctx, path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n := s.LogIndexEntries(); n != convs*per {
			b.Fatalf("index of %d entries, want %d", n, convs*per)
		}
		s.Close()
	}
	b.ReportMetric(float64(convs*per)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkTrimStatements compares the two ways a trim deletes rows of
// the message log: a statement per row (deleteLogRow) and up to
// trimChunk rows per statement (deleteLogRows). Each round stores 8
// messages in each of 100 conversations, interleaved as live traffic
// leaves them, then deletes every conversation's 8 in one transaction.
// ns/row is the deleting transaction's time per row.
func BenchmarkTrimStatements(b *testing.B) {
	for _, chunked := range []bool{false, true} {
		name := "one-per-statement"
		if chunked {
			name = "eight-per-statement"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "parley.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const convs, per = 100, trimChunk
			payload := make([]byte, 100)
			var seq uint64
			var deleting time.Duration
			for range b.N {
				tx, err := s.w.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				rows := make([][]logRow, convs)
				for range per {
					seq++
					for c := range convs {
						r, err := tx.ExecContext(ctx, `INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored) VALUES (?, ?, ?, 1, 3, 'd', ?, 0)`,
							fmt.Appendf(nil, "conv%04d", c), seq, payload[:16], payload)
						if err != nil {
							b.Fatal(err)
						}
						rowid, _ := r.LastInsertId()
						rows[c] = append(rows[c], logRow{seq: seq, rowid: rowid})
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				tx, err = s.w.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for c := range convs {
					conv := fmt.Appendf(nil, "conv%04d", c)
					if chunked {
						err = deleteLogRows(ctx, tx, conv, rows[c])
					} else {
						for _, r := range rows[c] {
							if err = deleteLogRow(ctx, tx, conv, r); err != nil {
								break
							}
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				deleting += time.Since(start)
			}
			var left int
			if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&left); err != nil || left != 0 {
				b.Fatalf("%d rows left (%v)", left, err)
			}
			b.ReportMetric(float64(deleting.Nanoseconds())/float64(b.N*convs*per), "ns/row")
		})
	}
}
