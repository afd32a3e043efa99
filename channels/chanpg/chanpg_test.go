package chanpg

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chantest"
	"github.com/parleychat/parley/internal/pgtest"
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
	chantest.Run(t, func(t *testing.T) channels.Store { return open(t, pgtest.DB(t)) })
}

// Posts reach one channel through two nodes at once while a follower
// reads the feed with its cursor: it sees every post event exactly once.
// Event sequence numbers taken without the channel's row lock commit out
// of order, and a follower past seq 5 would miss a 4 committed later.
func TestFeedInOrderAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	if err := a.CreateChannel(ctx, channels.Channel{ID: "news", Title: "News", Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 6, 15
	var wg sync.WaitGroup
	for w := range writers {
		node := []*Store{a, b}[w%2]
		wg.Go(func() {
			for range perWriter {
				if _, err := node.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Text: "x", Status: channels.Published}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]bool{}
	var since int64
	follow := func() {
		for {
			evs, err := b.Events(ctx, "news", since, 4)
			if err != nil {
				t.Error(err)
				return
			}
			if len(evs) == 0 {
				return
			}
			for _, e := range evs {
				if seen[e.PostID] {
					t.Errorf("post %d seen twice", e.PostID)
				}
				seen[e.PostID] = true
				since = e.Seq
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
		t.Fatalf("the follower saw %d posts, want %d", len(seen), writers*perWriter)
	}
}
