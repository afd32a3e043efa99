package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store/storetest"
)

// BenchmarkAppendAck1to1 is storetest's 1:1 chat benchmark on
// PostgreSQL (the database's own CPU is not in cpu-µs/op, but in
// pg-cpu-µs/op); writes/group is the group commit's mean batch (appends
// and acks).
func BenchmarkAppendAck1to1(b *testing.B) { benchAppendAck1to1(b, 0, true) }

// BenchmarkAppendAck1to1Aged is BenchmarkAppendAck1to1 on a store that
// already remembers 2 million message ids (a server that has run for a
// while), as sqlitestore's of the same name.
func BenchmarkAppendAck1to1Aged(b *testing.B) { benchAppendAck1to1(b, 2_000_000, true) }

// BenchmarkAppendAck1to1AgedNoFirstSent is BenchmarkAppendAck1to1Aged
// with clients that do not say when they first sent a message: every id
// record lands on a random page of the large index.
func BenchmarkAppendAck1to1AgedNoFirstSent(b *testing.B) { benchAppendAck1to1(b, 2_000_000, false) }

func benchAppendAck1to1(b *testing.B, oldIDs int, firstSent bool) {
	var groups, grouped atomic.Int64
	s, err := Open(ctx, pgtest.DB(b), &Options{MaxConns: 16, OnGroup: func(n int) {
		groups.Add(1)
		grouped.Add(int64(n))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pid, err := postmasterPID(s)
	if err != nil {
		b.Fatal(err)
	}
	bench := storetest.BenchAppendAck1to1
	if !firstSent {
		bench = storetest.BenchAppendAck1to1NoFirstSent
	}
	var pgBefore time.Duration
	bench(b, s, func() {
		if oldIDs > 0 {
			insertOldIDs(b, s, oldIDs, firstSent)
		}
		groups.Store(0)
		grouped.Store(0)
		pgBefore = processTreeCPU(pid)
	})
	b.ReportMetric(float64((processTreeCPU(pid)-pgBefore).Microseconds())/float64(b.N), "pg-cpu-µs/op")
	if n := groups.Load(); n > 0 {
		b.ReportMetric(float64(grouped.Load())/float64(n), "writes/group")
	}
}

// insertOldIDs adds n idempotency records of messages long read and
// trimmed, spread over storetest's conversations and, when clients say
// when they sent them, over the past n seconds, as a bulk insert in the
// database itself, then VACUUM ANALYZEs the table so that the timed
// appends do not pay for the bulk insert's hint bits and statistics.
func insertOldIDs(b *testing.B, s *Store, n int, firstSent bool) {
	if _, err := s.Pool().Exec(ctx, `INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored)
		SELECT CASE WHEN $3 THEN $4 - ($1 - i) * 1000 ELSE 0 END, uuid_send(gen_random_uuid()),
			convert_to(format('conv%s', lpad((i % $2)::text, 4, '0')), 'UTF8'), 0, 1, 3, 'old', 0
		FROM generate_series(1, $1::bigint) i`, n, storetest.Conversations, firstSent, time.Now().UnixMilli()); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE message_ids`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommits is storetest's group management benchmark on
// PostgreSQL: adds with Welcomes, update commits and removes, applied at
// once. rt/commit is the round trips to the database per commit (every
// query, batch and prepare pgx sends, BEGIN and COMMIT included);
// pg-cpu-µs/op is the database's CPU per op (its processes' user+system
// time, read from /proc: the server must run on this machine, as
// internal/pgtest's does).
func BenchmarkCommits(b *testing.B) { benchCommits(b, false) }

// BenchmarkCommitsPending is BenchmarkCommits with the added and removed
// device another account's: each change pending until the voter's
// Verdict (two per op; rt/op then counts them too).
func BenchmarkCommitsPending(b *testing.B) { benchCommits(b, true) }

func benchCommits(b *testing.B, pending bool) {
	var rt roundTrips
	s, err := Open(ctx, pgtest.DB(b), &Options{MaxConns: 16, Tracer: &rt})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var pgBefore time.Duration
	pid, err := postmasterPID(s)
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchCommits(b, s, pending, func() {
		rt.n.Store(0)
		pgBefore = processTreeCPU(pid)
	})
	pgCPU := processTreeCPU(pid) - pgBefore
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "rt/op")
	if !pending {
		b.ReportMetric(float64(rt.n.Load())/float64(b.N*storetest.CommitsPerOp), "rt/commit")
	}
	b.ReportMetric(float64(pgCPU.Microseconds())/float64(b.N), "pg-cpu-µs/op")
}

// roundTrips counts what pgx sends and waits for: each query (including
// BEGIN and COMMIT), each pipelined batch, each prepare.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (r *roundTrips) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// postmasterPID is the PostgreSQL server's main process: the parent of
// this session's backend.
func postmasterPID(s *Store) (int, error) {
	var backend int
	if err := s.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, err
	}
	st, err := procStat(backend)
	if err != nil {
		return 0, fmt.Errorf("the database must run on this machine: %w", err)
	}
	return strconv.Atoi(st[1])
}

// procStat is /proc/PID/stat's fields from the third (state) on: the
// command name, in parentheses, may hold spaces.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// processTreeCPU is the user+system time of pid, its reaped children and
// its live children (clock ticks of 10 ms).
func processTreeCPU(pid int) time.Duration {
	ticks := func(st []string, fields ...int) (n int64) {
		for _, f := range fields {
			v, _ := strconv.ParseInt(st[f-3], 10, 64) // f is man proc's 1-based field number
			n += v
		}
		return n
	}
	var total int64
	if st, err := procStat(pid); err == nil {
		total += ticks(st, 14, 15, 16, 17)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStat(child)
		if err != nil || st[1] != strconv.Itoa(pid) {
			continue
		}
		total += ticks(st, 14, 15)
	}
	return time.Duration(total) * 10 * time.Millisecond
}
