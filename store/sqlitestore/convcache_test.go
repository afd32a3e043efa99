package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// twoDeviceConversation opens a store with conversation "c" of devices
// d1 (creator) and d2, at epoch 1.
func twoDeviceConversation(t *testing.T) *Store {
	return twoDeviceConversationAt(t, filepath.Join(t.TempDir(), "parley.db"))
}

func twoDeviceConversationAt(t *testing.T, path string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, d := range []string{"d1", "d2"} {
		if err := s.CreateAccount(ctx, store.Device{ID: d, Username: d, PublicKey: []byte(d)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateConversation(ctx, []byte("c"), "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{0xee}, 16), ConversationID: []byte("c"),
		Kind: store.KindCommit, Sender: "d1", Added: []string{"d2"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func appMessage(id byte, sender string) store.Append {
	return store.Append{ID: bytes.Repeat([]byte{id}, 16), ConversationID: []byte("c"), Epoch: 1,
		Kind: store.KindApplication, Sender: sender, Payload: []byte{id}}
}

// The group-commit writer caches members; a write outside it (removing a
// device) must not leave the removed device able to send.
func TestCacheFollowsOtherWrites(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	if _, err := s.Append(ctx, appMessage(1, "d2")); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, appMessage(2, "d2")); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("send from a removed device: %v, want ErrNotMember", err)
	}
	r, err := s.Append(ctx, appMessage(3, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Recipients) != 1 || r.Recipients[0] != "d1" {
		t.Fatalf("recipients after removal: %v, want [d1]", r.Recipients)
	}
}

// Cursors and heads kept in memory reach the database with the batch:
// a reopened store (empty cache) sees the same head, cursors and trims.
func TestCachedStateIsDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := twoDeviceConversationAt(t, path)
	var last uint64
	for i := range 5 {
		r, err := s.Append(ctx, appMessage(byte(i+1), "d1"))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Message.Seq
	}
	if err := s.Ack(ctx, "d2", []byte("c"), last-2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Conversation(ctx, []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadSeq != last || c.Epoch != 1 {
		t.Fatalf("after reopen: head %d epoch %d, want %d and 1", c.HeadSeq, c.Epoch, last)
	}
	ms, err := s.Fetch(ctx, "d2", []byte("c"), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Seq != last-1 {
		t.Fatalf("d2 fetches %d messages from seq %v, want 2 from %d", len(ms), ms, last-1)
	}
	// d1 read its own messages as it sent them: nothing left for it.
	if ms, err := s.Fetch(ctx, "d1", []byte("c"), 100); err != nil || len(ms) != 0 {
		t.Fatalf("d1 fetches %d messages (%v), want 0", len(ms), err)
	}
	var kept int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE conversation_id = ?`, []byte("c")).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 2 {
		t.Fatalf("log holds %d messages after both read up to seq %d, want 2", kept, last-2)
	}
	// The message ids are durable too: a retry is a duplicate.
	r, err := s.Append(ctx, appMessage(5, "d1"))
	if err != nil || !r.Duplicate || r.Message.Seq != last {
		t.Fatalf("retry after reopen: %+v, %v; want duplicate of seq %d", r, err, last)
	}
}

// appendInOneBatch holds the writer while the appends queue up, so that
// they share one batch, and returns each one's result.
func appendInOneBatch(t *testing.T, s *Store, appends ...store.Append) ([]store.AppendResult, []error) {
	t.Helper()
	s.wmu.Lock()
	var waits []func() (store.AppendResult, error)
	for _, a := range appends {
		w, err := s.StartAppend(context.Background(), a)
		if err != nil {
			s.wmu.Unlock()
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	s.wmu.Unlock()
	res, errs := make([]store.AppendResult, len(waits)), make([]error, len(waits))
	for i, w := range waits {
		res[i], errs[i] = w()
	}
	return res, errs
}

// fetchedPayloads is what device fetches of conv (up to 100 messages),
// the payloads one after another.
func fetchedPayloads(t *testing.T, s *Store, device, conv string) []byte {
	t.Helper()
	ms, err := s.Fetch(context.Background(), device, []byte(conv), 100)
	if err != nil {
		t.Fatal(err)
	}
	var payloads []byte
	for _, m := range ms {
		payloads = append(payloads, m.Payload...)
	}
	return payloads
}

// A request that fails after the batch's transaction was written to (an
// INSERT refused by the database) fails alone: its neighbours in the same
// batch are stored, it leaves no trace (its id is not taken), and a retry
// once the cause is gone succeeds.
func TestFailedWriteFailsAlone(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	// Refuse one payload, the way a full disk or a constraint would.
	if _, err := s.w.ExecContext(ctx, `CREATE TEMP TRIGGER refuse BEFORE INSERT ON messages
		WHEN NEW.payload = X'66' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	res, got := appendInOneBatch(t, s, appMessage(0x65, "d1"), appMessage(0x66, "d1"), appMessage(0x67, "d2"))
	if got[0] != nil || got[2] != nil || got[1] == nil {
		t.Fatalf("results %v, want only the second to fail", got)
	}
	if payloads := fetchedPayloads(t, s, "d2", "c"); !bytes.Equal(payloads, []byte{0x65, 0x67}) {
		t.Fatalf("d2 reads payloads %x, want 6567", payloads)
	}
	if _, err := s.w.ExecContext(ctx, `DROP TRIGGER refuse`); err != nil {
		t.Fatal(err)
	}
	r, err := s.Append(ctx, appMessage(0x66, "d1"))
	if err != nil || r.Duplicate {
		t.Fatalf("retry of the failed message: %+v, %v; want stored anew", r, err)
	}
	if r.Message.Seq != res[2].Message.Seq+1 {
		t.Fatalf("retry stored at seq %d, want %d", r.Message.Seq, res[2].Message.Seq+1)
	}
}

// A removed device acking up to its removal leaves; trimming then only
// waits for the remaining members.
func TestAckAfterRemovalLeaves(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	if _, err := s.Append(ctx, appMessage(1, "d1")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{0xdd}, 16), ConversationID: []byte("c"), Epoch: 1,
		Kind: store.KindCommit, Sender: "d1", Removed: []string{"d2"}})
	if err != nil {
		t.Fatal(err)
	}
	// With no other member, the removed device's verdict decides.
	if v, err := s.Verdict(ctx, "d2", []byte("c"), r.Message.ID, false); err != nil || v != store.VerdictDecided {
		t.Fatalf("Verdict = %v, %v", v, err)
	}
	if err := s.Ack(ctx, "d2", []byte("c"), r.Message.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "d2", []byte("c"), r.Message.Seq); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("second ack from a device that left: %v, want ErrNotMember", err)
	}
	if _, err := s.Fetch(ctx, "d2", []byte("c"), 10); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("fetch from a device that left: %v, want ErrNotMember", err)
	}
	var kept int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Fatalf("log holds %d messages once every member read them, want 0", kept)
	}
}

// The oldest cursor, kept incrementally, always equals a scan of every
// member's cursor.
func TestMinCursorIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		st := &convState{members: make(map[string]*memberState)}
		n := 1 + rng.IntN(20)
		for i := range n {
			st.members[fmt.Sprint(i)] = &memberState{cursor: uint64(rng.IntN(5))}
		}
		for step := range 100 {
			d := fmt.Sprint(rng.IntN(n))
			m := st.members[d]
			switch {
			case m == nil:
			case rng.IntN(10) == 0:
				st.leaveCursor(m.cursor)
				delete(st.members, d)
			default:
				st.advance(m, m.cursor+uint64(rng.IntN(3)))
			}
			got, ok := st.minCursor()
			var want uint64
			first := true
			for _, m := range st.members {
				if first || m.cursor < want {
					want, first = m.cursor, false
				}
			}
			if ok == first || (ok && got != want) {
				t.Fatalf("round %d step %d: minCursor = %d, %v; scan gives %d over %d members", round, step, got, ok, want, len(st.members))
			}
		}
	}
}

// A wait function called a second time returns its answer again: it does
// not read the (pooled) answer channel, which may by then carry another
// request's answer.
func TestWaitCalledTwice(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	w1, err := s.StartAppend(ctx, appMessage(1, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	r1, err := w1()
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.StartAppend(ctx, appMessage(2, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	again := make(chan store.AppendResult, 1)
	go func() { r, _ := w1(); again <- r }()
	select {
	case r := <-again:
		if r.Message.Seq != r1.Message.Seq {
			t.Fatalf("the second wait returned seq %d, the first %d", r.Message.Seq, r1.Message.Seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second wait blocked")
	}
	done := make(chan store.AppendResult, 1)
	go func() { r, _ := w2(); done <- r }()
	select {
	case r2 := <-done:
		if r2.Message.Seq != r1.Message.Seq+1 {
			t.Fatalf("the next append's wait returned seq %d, want %d", r2.Message.Seq, r1.Message.Seq+1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next append's wait blocked: its answer was taken")
	}
}
