package modpg

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	modtest.Run(t, func(t *testing.T) moderation.Store { return open(t, pgtest.DB(t)) })
}

// Two nodes file reports of the same message at once: one case holds
// them all. Without the per-account lock each transaction sees no open
// case and opens its own.
func TestTwoNodesOneCase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	now := time.Now()
	msg := moderation.CaseMessage{Tag: []byte("tag"), Conversation: []byte("c"), SenderUser: "mallory", SenderDevice: "m1", Accepted: now}
	const n = 12
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		node := []*Store{a, b}[i%2]
		wg.Go(func() {
			id, err := node.FileReport(ctx, moderation.CaseReport{Reporter: "r", Reason: "spam", Received: now}, "mallory", []moderation.CaseMessage{msg})
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("reports of one message went to several cases: %v", ids)
		}
	}
	c, err := a.Case(ctx, ids[0])
	if err != nil || len(c.Reports) != n || len(c.Messages) != 1 {
		t.Fatalf("case: %d reports, %d messages, %v; want %d and 1", len(c.Reports), len(c.Messages), err, n)
	}
}

// Bank changes made on two nodes at once reach a reader that follows the
// change log with a cursor completely: every change is seen, none twice.
// Sequence numbers taken from an identity column would otherwise commit
// out of order, and a reader at seq 5 would skip a 4 committed later.
func TestChangeLogInOrderAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	const writers, perWriter = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		node := []*Store{a, b}[w%2]
		wg.Go(func() {
			for i := range perWriter {
				meta := moderation.Bank{Name: "bank" + string(rune('a'+w)), Action: "block"}
				d := hashlist.Delta{Added: []hashlist.Entry{modtest.Entry(hashlist.MD5, w*1000+i)}}
				if _, err := node.ApplyDelta(ctx, meta, d, ""); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[int64]bool{}
	var since int64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	follow := func() {
		for {
			cs, err := a.Changes(ctx, "", since, 3)
			if err != nil {
				t.Error(err)
				return
			}
			if len(cs) == 0 {
				return
			}
			for _, c := range cs {
				if seen[c.Seq] {
					t.Errorf("change %d seen twice", c.Seq)
				}
				seen[c.Seq] = true
				since = c.Seq
			}
		}
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		follow()
	}
	follow()
	if len(seen) != writers*perWriter {
		t.Fatalf("the follower saw %d changes, want %d", len(seen), writers*perWriter)
	}
}
