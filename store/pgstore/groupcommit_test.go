package pgstore

import (
	"errors"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store"
)

// One group, run as the writers run it: every request gets its own
// answer, in each conversation the appends keep the order they were
// queued in (the group is sorted by conversation, stably), and a request
// that makes the database fail (a NUL byte PostgreSQL will not store in
// text) rolls the group back and then fails alone while the rest are
// stored once. Acks in the group run in their place too.
func TestGroupCommitAnswersEach(t *testing.T) {
	for _, poison := range []bool{false, true} {
		s := open(t, pgtest.DB(t))
		defer s.Close()
		for _, d := range []string{"a1", "b1", "c1"} {
			if err := s.CreateAccount(ctx, store.Device{ID: d, Username: d, PublicKey: []byte(d)}, ""); err != nil {
				t.Fatal(err)
			}
		}
		convs := [][]byte{[]byte("conv-z"), []byte("conv-a")}
		for _, c := range convs {
			if err := s.CreateConversation(ctx, c, "a1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, store.Append{ID: msgID(len(c) + int(c[5])), ConversationID: c, Kind: store.KindCommit, Sender: "a1", Added: []string{"b1"}}); err != nil {
				t.Fatal(err)
			}
		}
		req := func(a store.Append) *msgReq {
			if a.Kind == 0 {
				a.Kind = store.KindApplication
			}
			if a.Epoch == 0 {
				a.Epoch = 1
			}
			return &msgReq{a: a, payload: []byte("p"), done: make(chan msgResp, 1)}
		}
		dupID := msgID(99)
		group := []*msgReq{
			req(store.Append{ID: msgID(1), ConversationID: convs[0], Sender: "a1"}),
			req(store.Append{ID: msgID(2), ConversationID: convs[1], Sender: "b1"}),
			req(store.Append{ID: msgID(3), ConversationID: convs[0], Sender: "b1"}),
			req(store.Append{ID: msgID(4), ConversationID: convs[0], Sender: "c1"}),           // not a member
			req(store.Append{ID: msgID(5), ConversationID: convs[1], Sender: "a1", Epoch: 9}), // epoch ahead
			req(store.Append{ID: dupID, ConversationID: convs[1], Sender: "a1"}),
			req(store.Append{ID: dupID, ConversationID: convs[1], Sender: "a1"}), // the same again
			req(store.Append{ID: msgID(6), ConversationID: convs[0], Sender: "a1"}),
		}
		ack := func(conv []byte, dev string, seq int64) *msgReq {
			return &msgReq{a: store.Append{ConversationID: conv}, ack: &ackArgs{device: dev, seq: seq}, done: make(chan msgResp, 1)}
		}
		group = append(group,
			ack(convs[0], "b1", 4),  // after the appends queued before it
			ack(convs[1], "b1", 99)) // beyond the head
		if poison {
			group = append(group, req(store.Append{ID: msgID(7), ConversationID: convs[1], Sender: "a\x001"}))
		}
		queued := append([]*msgReq(nil), group...)
		s.runGroup(group)
		var resps []msgResp
		for _, r := range queued {
			resps = append(resps, <-r.done)
		}
		status := func(i int) appendStatus { return appendStatus(resps[i].row.status) }
		seq := func(i int) int64 { return *resps[i].row.seq }
		for _, i := range []int{0, 1, 2, 5, 6, 7} {
			if resps[i].err != nil {
				t.Fatalf("poison %v: request %d: %v", poison, i, resps[i].err)
			}
		}
		if status(0) != appendStored || status(2) != appendStored || status(7) != appendStored || seq(0) != 2 || seq(2) != 3 || seq(7) != 4 {
			t.Fatalf("poison %v: conversation z: statuses %d %d %d, seqs %d %d %d; want stored at 2, 3, 4 in queue order", poison, status(0), status(2), status(7), seq(0), seq(2), seq(7))
		}
		if status(3) != appendNotMember || status(4) != appendEpochAhead {
			t.Fatalf("poison %v: statuses %d, %d; want not member, epoch ahead", poison, status(3), status(4))
		}
		if status(1) != appendStored || status(5) != appendStored || status(6) != appendDuplicate || seq(5) != seq(6) {
			t.Fatalf("poison %v: conversation a: statuses %d %d %d; want stored, stored, duplicate of it", poison, status(1), status(5), status(6))
		}
		if resps[8].err != nil || resps[8].row.status != ackDone || resps[9].err != nil || resps[9].row.status != ackBeyondHead {
			t.Fatalf("poison %v: acks: %+v, %+v; want done, beyond head", poison, resps[8], resps[9])
		}
		var cursor int64
		if err := s.Pool().QueryRow(ctx, `SELECT cursor FROM members WHERE conversation_id = $1 AND device_id = 'b1'`, convs[0]).Scan(&cursor); err != nil || cursor != 4 {
			t.Fatalf("poison %v: b1's cursor %d, %v; want 4", poison, cursor, err)
		}
		if poison && resps[10].err == nil {
			t.Fatalf("the poisoned request was stored")
		}
		for i, c := range convs {
			conv, err := s.Conversation(ctx, c)
			if err != nil || conv.HeadSeq != 3+uint64(1-i) {
				t.Fatalf("poison %v: %s: %+v, %v", poison, c, conv, err)
			}
		}
	}
}

// Many devices appending at once through the store's writers: every
// append is answered, each conversation's log is dense, and groups of
// more than one append were formed.
func TestGroupCommitConcurrent(t *testing.T) {
	var largest int
	groups := make(chan int, 10000)
	s, err := Open(ctx, pgtest.DB(t), &Options{OnGroup: func(n int) {
		select {
		case groups <- n:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const convs, senders, each = 8, 4, 15
	for i := range convs {
		c := []byte{'c', byte(i)}
		var added []string
		for j := range senders {
			d := string([]byte{'d', byte('a' + i), byte('a' + j)})
			if err := s.CreateAccount(ctx, store.Device{ID: d, Username: d, PublicKey: []byte(d)}, ""); err != nil {
				t.Fatal(err)
			}
			added = append(added, d)
		}
		if err := s.CreateConversation(ctx, c, added[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, store.Append{ID: msgID(1000 + i), ConversationID: c, Kind: store.KindCommit, Sender: added[0], Added: added[1:]}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, convs*senders)
	for i := range convs {
		for j := range senders {
			go func() {
				d := string([]byte{'d', byte('a' + i), byte('a' + j)})
				var last uint64
				for k := range each {
					r, err := s.Append(ctx, store.Append{ID: msgID(10000*i + 100*j + k), ConversationID: []byte{'c', byte(i)}, Epoch: 1, Kind: store.KindApplication, Sender: d, Payload: []byte{byte(k)}})
					if err == nil && r.Message.Seq <= last {
						err = errors.New("a device's appends went out of order")
					}
					if err != nil {
						errs <- err
						return
					}
					last = r.Message.Seq
				}
				errs <- nil
			}()
		}
	}
	for range convs * senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range convs {
		c, err := s.Conversation(ctx, []byte{'c', byte(i)})
		if err != nil || c.HeadSeq != 1+senders*each {
			t.Fatalf("conversation %d: %+v, %v; want head %d", i, c, err, 1+senders*each)
		}
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT COUNT(DISTINCT seq) FROM message_ids WHERE conversation_id = $1`, []byte{'c', byte(i)}).Scan(&n); err != nil || n != 1+senders*each {
			t.Fatalf("conversation %d: %d distinct seqs, %v", i, n, err)
		}
	}
	close(groups)
	for n := range groups {
		largest = max(largest, n)
	}
	t.Logf("largest group: %d appends", largest)
}

// Pipelined appends (StartAppend, not waiting) to one conversation are
// stored in the order they were started, commits included: the messages
// for the epoch a commit opens succeed only if that commit ran first.
func TestStartAppendKeepsOrder(t *testing.T) {
	s := open(t, pgtest.DB(t))
	defer s.Close()
	for _, d := range []string{"a1", "b1", "c1"} {
		if err := s.CreateAccount(ctx, store.Device{ID: d, Username: d, PublicKey: []byte(d)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	conv := []byte("pipelined")
	if err := s.CreateConversation(ctx, conv, "a1"); err != nil {
		t.Fatal(err)
	}
	var waits []func() (store.AppendResult, error)
	start := func(a store.Append) {
		a.ConversationID, a.Sender, a.ID = conv, "a1", msgID(len(waits))
		w, err := s.StartAppend(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	start(store.Append{Kind: store.KindCommit, Added: []string{"b1"}})
	for epoch := uint64(1); epoch <= 3; epoch++ {
		for range 20 {
			start(store.Append{Kind: store.KindApplication, Epoch: epoch, Payload: []byte("m")})
		}
		switch epoch {
		case 1:
			start(store.Append{Kind: store.KindCommit, Epoch: epoch, Added: []string{"c1"}})
		case 2:
			start(store.Append{Kind: store.KindCommit, Epoch: epoch}) // no membership change
		}
	}
	for i, w := range waits {
		r, err := w()
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if r.Message.Seq != uint64(i+1) {
			t.Fatalf("append %d stored at seq %d", i, r.Message.Seq)
		}
	}
}
