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
//
// Every append carries a first-send time of now, as Parley's clients
// send (store.Append.FirstSent); BenchAppendAck1to1NoFirstSent is the
// same for clients that do not say.
func BenchAppendAck1to1(b *testing.B, s store.Store, prepare func()) {
	benchAppendAck1to1(b, s, prepare, true)
}

// BenchAppendAck1to1NoFirstSent is BenchAppendAck1to1 with appends that
// carry no first-send time (FirstSent 0), as from older clients.
func BenchAppendAck1to1NoFirstSent(b *testing.B, s store.Store, prepare func()) {
	benchAppendAck1to1(b, s, prepare, false)
}

func benchAppendAck1to1(b *testing.B, s store.Store, prepare func(), firstSent bool) {
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
			var sent int64
			if firstSent {
				sent = time.Now().UnixMilli()
			}
			r, err := s.Append(ctx, store.Append{ID: benchID(), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: a, Payload: payload, FirstSent: sent})
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

// CommitConversations is how many conversations BenchCommits runs
// commits in at once, named commit00 … commit15.
const CommitConversations = 16

// CommitsPerOp is how many commits one op of BenchCommits makes.
const CommitsPerOp = 3

// BenchCommits is MLS group management on any backend: in
// CommitConversations conversations at once, each op is three commits
// by the owner a<i>, each for the epoch the previous one opened: one
// adding a device with a 1 KiB Welcome under the server's default inbox
// limits, a plain update commit (no membership change), and one removing
// that device again. Every conversation also has a member of another
// account, p<i>, whose device is the one active member besides a<i>.
//
// With pending false the added device is a<i>'s own second device
// (s<i>): adds and removes apply at once, as for a user linking a
// phone. With pending true it is a device of a third account (g<i>):
// each change is pending until p<i>, the voter, accepts it, which each op
// does with two Verdicts (the commits' path of docs/protocol.md §14,
// "Verdicts"); the op is then three commits and two verdicts.
//
// The added device acknowledges its inbox every 32 ops, so that the
// Welcomes the inbox limits count stay few. prepare (may be nil) runs
// before the timer starts. cpu-µs/op is this process's CPU per op, as in
// BenchAppendAck1to1.
func BenchCommits(b *testing.B, s store.Store, pending bool, prepare func()) {
	ctx := context.Background()
	guest := func(i int) string {
		if pending {
			return fmt.Sprintf("g%d", i)
		}
		return fmt.Sprintf("s%d", i)
	}
	for i := range CommitConversations {
		a, p := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i)
		devices := []store.Device{
			{ID: a, Username: a, PublicKey: []byte(a)},
			{ID: p, Username: p, PublicKey: []byte(p)},
		}
		if pending {
			devices = append(devices, store.Device{ID: guest(i), Username: guest(i), PublicKey: []byte(guest(i))})
		}
		for _, d := range devices {
			if err := s.CreateAccount(ctx, d, ""); err != nil {
				b.Fatal(err)
			}
		}
		if !pending {
			// a<i>'s second device, linked as parleyd links one.
			code := fmt.Sprintf("%08d", i)
			l := store.Link{Username: a, Code: code, PublicKey: []byte(guest(i)), Expires: time.Now().Add(time.Hour)}
			if err := s.CreateLink(ctx, l); err != nil {
				b.Fatal(err)
			}
			if _, err := s.ApproveLink(ctx, a, code, store.Device{ID: guest(i)}, nil, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		conv := []byte(fmt.Sprintf("commit%02d", i))
		if err := s.CreateConversation(ctx, conv, a); err != nil {
			b.Fatal(err)
		}
		id := benchID()
		if _, err := s.Append(ctx, store.Append{ID: id, ConversationID: conv, Kind: store.KindCommit, Sender: a, Added: []string{p}, Welcome: []byte("w")}); err != nil {
			b.Fatal(err)
		}
		// p<i> accepts its own addition (no voters): a full member.
		if _, err := s.Verdict(ctx, p, conv, id, false); err != nil {
			b.Fatal(err)
		}
	}
	if prepare != nil {
		prepare()
	}
	welcome := make([]byte, 1024)
	limits := store.InboxLimits{PerSender: 1 << 20, Total: 4 << 20, PerSenderCount: 64, TotalCount: 256}
	var next atomic.Int64
	b.SetParallelism(max(1, CommitConversations/runtime.GOMAXPROCS(0)))
	before := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % CommitConversations
		a, p, g := fmt.Sprintf("a%d", i), fmt.Sprintf("p%d", i), guest(i)
		conv := []byte(fmt.Sprintf("commit%02d", i))
		c, err := s.Conversation(ctx, conv)
		if err != nil {
			b.Error(err)
			return
		}
		epoch := c.Epoch
		commit := func(a store.Append) bool {
			a.ID, a.ConversationID, a.Epoch, a.Kind = benchID(), conv, epoch, store.KindCommit
			a.Payload = welcome[:200]
			r, err := s.Append(ctx, a)
			if err != nil {
				b.Error(err)
				return false
			}
			epoch = r.Epoch
			if pending && (len(a.Added) > 0 || len(a.Removed) > 0) {
				if _, err := s.Verdict(ctx, p, conv, a.ID, false); err != nil {
					b.Error(err)
					return false
				}
			}
			return true
		}
		for n := 0; pb.Next(); n++ {
			if !commit(store.Append{Sender: a, Added: []string{g}, Welcome: welcome, InboxLimits: limits}) ||
				!commit(store.Append{Sender: a}) ||
				!commit(store.Append{Sender: a, Removed: []string{g}}) {
				return
			}
			if n%32 == 31 {
				in, err := s.FetchInbox(ctx, g, 1000)
				if err == nil && len(in) > 0 {
					err = s.AckInbox(ctx, g, in[len(in)-1].Seq)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/op")
}
