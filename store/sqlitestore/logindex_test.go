package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// The message log's index is rebuilt from the table at open: after a
// restart, a device that has not read everything fetches exactly what is
// left, in order, past a message that disappeared in the middle and
// the ones every member acknowledged; the next message takes the next
// seq; and the index holds the table's rows and nothing else.
func TestLogIndexRebuiltOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := twoDeviceConversationAt(t, path)
	var seqs []uint64
	for i := byte(1); i <= 6; i++ {
		a := appMessage(i, "d1")
		if i == 4 {
			a.Expires = time.Unix(100, 0)
		}
		r, err := s.Append(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Message.Seq)
	}
	// d2 reads the first two (both members have: trimmed); the fourth
	// disappears.
	if err := s.Ack(ctx, "d2", []byte("c"), seqs[1]); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.DeleteDisappeared(ctx, time.Unix(200, 0)); err != nil || n != 1 {
		t.Fatalf("DeleteDisappeared = %d, %v", n, err)
	}
	want := []uint64{seqs[2], seqs[4], seqs[5]}
	fetchSeqs := func(s *Store, limit int) []uint64 {
		t.Helper()
		ms, err := s.Fetch(ctx, "d2", []byte("c"), limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, m := range ms {
			if len(m.Payload) != 1 || m.Seq != seqs[m.Payload[0]-1] {
				t.Fatalf("seq %d holds payload %x", m.Seq, m.Payload)
			}
			got = append(got, m.Seq)
		}
		return got
	}
	if got := fetchSeqs(s, 10); !slices.Equal(got, want) {
		t.Fatalf("before the restart d2 fetches %v, want %v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if got := fetchSeqs(s, 10); !slices.Equal(got, want) {
		t.Fatalf("after the restart d2 fetches %v, want %v", got, want)
	}
	// A limit past the hole still fills up.
	if got := fetchSeqs(s, 2); !slices.Equal(got, want[:2]) {
		t.Fatalf("fetching 2: %v, want %v", got, want[:2])
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if live := len(s.log.read([]byte("c"), 0, 1<<62, 0)); live != rows || rows != 3 {
		t.Fatalf("the index has %d live entries, the table %d rows; want 3", live, rows)
	}
	r, err := s.Append(ctx, appMessage(7, "d1"))
	if err != nil || r.Message.Seq != seqs[5]+1 {
		t.Fatalf("append after the restart: %+v, %v; want seq %d", r, err, seqs[5]+1)
	}
	seqs = append(seqs, r.Message.Seq)
	if got := fetchSeqs(s, 10); !slices.Equal(got, append(want, r.Message.Seq)) {
		t.Fatalf("d2 fetches %v after the new message", got)
	}
}

// A database from before the log lost its on-disk index migrates with
// its messages, and the index built from them serves Fetch.
func TestMigrationMessageLog(t *testing.T) {
	ctx := context.Background()
	s := openAtVersion(t, 9,
		`INSERT INTO accounts (username, created, skeleton) VALUES ('alice', 0, 'alice'), ('bob', 0, 'bob')`,
		`INSERT INTO devices (id, username, public_key, created) VALUES ('a1', 'alice', x'01', 0), ('b1', 'bob', x'02', 0)`,
		`INSERT INTO conversations (id, epoch, head_seq, created) VALUES (x'c0', 1, 3, 0), (x'c1', 1, 1, 0)`,
		`INSERT INTO members (conversation_id, device_id, cursor) VALUES (x'c0', 'a1', 3), (x'c0', 'b1', 0), (x'c1', 'a1', 1), (x'c1', 'b1', 0)`,
		// Inserted out of seq order, across conversations, as rowids
		// of an old database may be.
		`INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored) VALUES
			(x'c0', 3, x'03', 1, 3, 'a1', x'03', 0),
			(x'c1', 1, x'11', 1, 3, 'a1', x'11', 0),
			(x'c0', 1, x'01', 1, 3, 'a1', x'01', 0),
			(x'c0', 2, x'02', 1, 3, 'a1', x'02', 0)`)
	for conv, want := range map[byte][]byte{0xc0: {1, 2, 3}, 0xc1: {0x11}} {
		ms, err := s.Fetch(ctx, "b1", []byte{conv}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for i, m := range ms {
			if m.Seq != uint64(i+1) {
				t.Fatalf("conversation %x: message %d has seq %d", conv, i, m.Seq)
			}
			got = append(got, m.Payload...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("conversation %x: b1 fetches %x, want %x", conv, got, want)
		}
	}
	r, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{4}, 16), ConversationID: []byte{0xc0}, Epoch: 1,
		Kind: store.KindApplication, Sender: "a1", Payload: []byte{4}})
	if err != nil || r.Message.Seq != 4 {
		t.Fatalf("append after the migration: %+v, %v", r, err)
	}
	if err := s.Ack(ctx, "b1", []byte{0xc0}, 4); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE conversation_id = x'c0'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("conversation c0 keeps %d messages after everyone read them (%v)", left, err)
	}
}

// The writer's changes are seen by readers only once published, and a
// savepoint's rollback undoes exactly what came after it, a hole set in
// rows that were published included.
func TestLogIndexTransactions(t *testing.T) {
	x := newLogIndex()
	c := []byte("c")
	seqsOf := func(rs []logRow) []uint64 {
		var out []uint64
		for _, r := range rs {
			out = append(out, r.seq)
		}
		return out
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := x.added(c, seq, int64(10+seq)); err != nil {
			t.Fatal(err)
		}
	}
	if got := x.read(c, 0, 100, 0); got != nil {
		t.Fatalf("readers see %v before the commit", got)
	}
	x.publish()
	if got := seqsOf(x.read(c, 0, 100, 0)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("after the commit: %v", got)
	}
	published := x.read(c, 0, 100, 0)

	pub := x.convs["c"] // what a reader holds: the published rows
	m := x.mark()
	x.removed(c, 2)
	if err := x.added(c, 4, 14); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(x.writerRows(c, 0, 100)); !slices.Equal(got, []uint64{1, 3, 4}) {
		t.Fatalf("the writer's view: %v", got)
	}
	if got := seqsOf(x.read(c, 0, 100, 0)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("readers see the open transaction: %v", got)
	}
	x.rollbackTo(m)
	if got := seqsOf(x.writerRows(c, 0, 100)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("after the rollback to the savepoint: %v", got)
	}
	if err := x.added(c, 4, 24); err != nil {
		t.Fatal(err)
	}
	x.trimmed(c, 1)
	x.publish()
	got := x.read(c, 0, 100, 0)
	if !slices.Equal(got, []logRow{{2, 12}, {3, 13}, {4, 24}}) {
		t.Fatalf("published after the second commit: %v", got)
	}
	if !slices.Equal(published, []logRow{{1, 11}, {2, 12}, {3, 13}}) || !slices.Equal(pub.rows(0, 100, 0), published) {
		t.Fatalf("a reader's earlier rows changed under it: %v", pub.rows(0, 100, 0))
	}
	if x.size() != 3 {
		t.Fatalf("size %d, want 3", x.size())
	}
	// A seq at or below the last indexed is refused, and a discarded
	// transaction leaves nothing.
	if err := x.added(c, 4, 99); err == nil {
		t.Fatal("seq 4 indexed twice")
	}
	x.trimmed(c, 4)
	x.discard()
	if got := seqsOf(x.read(c, 0, 100, 0)); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("after a discarded trim: %v", got)
	}
	x.trimmed(c, 4)
	x.publish()
	if got := x.read(c, 0, 100, 0); got != nil || x.size() != 0 {
		t.Fatalf("after trimming everything: %v, size %d", got, x.size())
	}
}

// A request that fails after its message row was inserted (here its id's
// row is refused, which the plain path writes after the message) is
// rolled back to its savepoint, and so is its entry in the log's index:
// the next message takes the same seq, and readers never see the
// rolled-back one.
func TestSavepointRollbackUndoesIndexEntry(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	if _, err := s.w.ExecContext(ctx, `CREATE TEMP TRIGGER refuse BEFORE INSERT ON message_ids
		WHEN NEW.id = X'66666666666666666666666666666666' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	res, got := appendInOneBatch(t, s, appMessage(0x65, "d1"), appMessage(0x66, "d1"), appMessage(0x67, "d1"))
	var seqs []uint64
	for _, r := range res {
		seqs = append(seqs, r.Message.Seq)
	}
	if got[0] != nil || got[2] != nil || got[1] == nil || seqs[2] != seqs[0]+1 {
		t.Fatalf("results %v at seqs %v, want only the second to fail and the third right after the first", got, seqs)
	}
	if payloads := fetchedPayloads(t, s, "d2", "c"); !bytes.Equal(payloads, []byte{0x65, 0x67}) {
		t.Fatalf("d2 reads payloads %x, want 6567", payloads)
	}
}

// Fetch reads a conversation's rows whether they lie together in the log
// (one range scan) or scattered among another conversation's (one
// lookup each), and returns each conversation's own, in order.
func TestFetchScatteredRows(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	if err := s.CreateConversation(ctx, []byte("e"), "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{0xef}, 16), ConversationID: []byte("e"),
		Kind: store.KindCommit, Sender: "d1", Added: []string{"d2"}}); err != nil {
		t.Fatal(err)
	}
	var wantC, wantE []byte
	for i := range 10 {
		a := appMessage(byte(i), "d1")
		if _, err := s.Append(ctx, a); err != nil {
			t.Fatal(err)
		}
		wantC = append(wantC, byte(i))
		for j := range 5 {
			p := byte(100 + 5*i + j)
			if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{p}, 16), ConversationID: []byte("e"), Epoch: 1,
				Kind: store.KindApplication, Sender: "d1", Payload: []byte{p}}); err != nil {
				t.Fatal(err)
			}
			wantE = append(wantE, p)
		}
	}
	for _, tc := range []struct {
		conv  string
		want  []byte
		limit int
	}{{"c", wantC, 100}, {"c", wantC[:3], 3}, {"e", wantE, 100}, {"e", wantE[:7], 7}} {
		ms, err := s.Fetch(ctx, "d2", []byte(tc.conv), tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for i, m := range ms {
			if i > 0 && m.Seq != ms[i-1].Seq+1 {
				t.Fatalf("%s: seq %d after %d", tc.conv, m.Seq, ms[i-1].Seq)
			}
			got = append(got, m.Payload...)
		}
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("conversation %s, limit %d: d2 fetches %x, want %x", tc.conv, tc.limit, got, tc.want)
		}
	}
}

// While messages are appended, acknowledged and trimmed, every Fetch
// returns the messages after the device's cursor with no gap, and in the
// end every message was read once: the index's publication after commit
// and Fetch's snapshot agree (run it with -race).
func TestLogIndexConcurrentFetch(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversation(t)
	convs := [][]byte{[]byte("c")}
	for _, id := range []string{"e", "f", "g"} {
		if err := s.CreateConversation(ctx, []byte(id), "d1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte(id), 16), ConversationID: []byte(id),
			Kind: store.KindCommit, Sender: "d1", Added: []string{"d2"}}); err != nil {
			t.Fatal(err)
		}
		convs = append(convs, []byte(id))
	}
	const perConv = 200
	heads := make([]uint64, len(convs))
	for i, c := range convs {
		// d2 reads from just after the commit that added it.
		if err := s.r.QueryRowContext(ctx, `SELECT cursor FROM members WHERE conversation_id = ? AND device_id = 'd2'`, c).Scan(&heads[i]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2*len(convs))
	for i, c := range convs {
		go func() {
			for n := range perConv {
				id := make([]byte, 16)
				copy(id, c)
				id[14], id[15] = byte(n>>8), byte(n)
				if _, err := s.Append(ctx, store.Append{ID: id, ConversationID: c, Epoch: 1, Kind: store.KindApplication,
					Sender: "d1", Payload: []byte{byte(n >> 8), byte(n)}}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		go func() {
			cursor, read := heads[i], 0
			for read < perConv {
				ms, err := s.Fetch(ctx, "d2", c, 16)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range ms {
					if m.Seq != cursor+1 {
						errs <- fmt.Errorf("conversation %s: fetched seq %d after %d", c, m.Seq, cursor)
						return
					}
					if n := int(m.Payload[0])<<8 | int(m.Payload[1]); n != read {
						errs <- fmt.Errorf("conversation %s: message %d where %d was due", c, n, read)
						return
					}
					cursor++
					read++
				}
				if len(ms) > 0 {
					if err := s.Ack(ctx, "d2", c, cursor); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 2 * len(convs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.LogIndexEntries(); n != 0 {
		t.Fatalf("the index holds %d entries once every message was read by both devices", n)
	}
}

// Only one server opens a database at a time (Options.OneServer): a
// second would keep its own index and cache and give out the same seqs.
// A store opened without it (the admin commands) still opens beside the
// server, and once the server closes, the next one starts.
func TestOneServer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	first, err := Open(ctx, path, &Options{OneServer: true})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, path, &Options{OneServer: true}); !errors.Is(err, ErrServerRunning) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("second server: %v, want ErrServerRunning", err)
	}
	admin, err := Open(ctx, path, &Options{NoCreate: true})
	if err != nil {
		t.Fatalf("an admin command beside the server: %v", err)
	}
	admin.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	next, err := Open(ctx, path, &Options{OneServer: true})
	if err != nil {
		t.Fatalf("the next server after the first closed: %v", err)
	}
	next.Close()
}

// Trims delete up to trimChunk rows per statement: acks that trim one,
// two, three, eight, nine and ten messages at a time leave exactly the
// unacknowledged rows of the conversation, and every row of another
// conversation whose rows lie between them.
func TestTrimInChunks(t *testing.T) {
	ctx := context.Background()
	s := twoDeviceConversationAt(t, filepath.Join(t.TempDir(), "parley.db"))
	other := []byte("o")
	if err := s.CreateConversation(ctx, other, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{0xef}, 16), ConversationID: other,
		Kind: store.KindCommit, Sender: "d1", Added: []string{"d2"}}); err != nil {
		t.Fatal(err)
	}
	var first, last uint64
	for i := byte(1); i <= 33; i++ {
		r, err := s.Append(ctx, appMessage(i, "d1"))
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = r.Message.Seq
		}
		last = r.Message.Seq
		o := appMessage(100+i, "d1")
		o.ConversationID = other
		if _, err := s.Append(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	seqsIn := func(conv []byte) []uint64 {
		t.Helper()
		rows, err := s.r.QueryContext(ctx, `SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq`, conv)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []uint64
		for rows.Next() {
			var seq uint64
			if err := rows.Scan(&seq); err != nil {
				t.Fatal(err)
			}
			out = append(out, seq)
		}
		return out
	}
	otherRows := seqsIn(other)
	if len(otherRows) != 33 { // its messages; the commit adding d2 is trimmed (both read it)
		t.Fatalf("the other conversation holds %d rows, want 33", len(otherRows))
	}
	if got := seqsIn([]byte("c")); len(got) != 33 || got[0] != first {
		t.Fatalf("c holds %v, want its 33 messages from seq %d", got, first)
	}
	acked := first - 1
	for _, n := range []uint64{1, 2, 3, 8, 9, 10} {
		acked += n
		if err := s.Ack(ctx, "d2", []byte("c"), acked); err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for seq := acked + 1; seq <= last; seq++ {
			want = append(want, seq)
		}
		if got := seqsIn([]byte("c")); !slices.Equal(got, want) {
			t.Fatalf("after an ack up to %d (trimming %d) the log holds %v, want %v", acked, n, got, want)
		}
		if got := seqsIn(other); !slices.Equal(got, otherRows) {
			t.Fatalf("after an ack up to %d in c, the other conversation holds %v, want %v", acked, got, otherRows)
		}
		ms, err := s.Fetch(ctx, "d2", []byte("c"), 100)
		if err != nil || len(ms) != len(want) || (len(ms) > 0 && ms[0].Seq != acked+1) {
			t.Fatalf("d2 fetches %d messages (%v) after acking %d, want %d", len(ms), err, acked, len(want))
		}
	}
}

// A database whose message log breaks the log's rules is refused at open
// with errCorruptLog, saying what is wrong, rather than served or
// allocated: a seq stored twice in a conversation, and a seq so far
// from the others that the index would need gigabytes of holes.
func TestOpenRefusesCorruptLog(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, corrupt, says string
	}{
		{"seq twice", `INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored)
			SELECT conversation_id, seq, X'00', epoch, kind, sender, payload, stored FROM messages WHERE conversation_id = CAST('c' AS BLOB) ORDER BY seq DESC LIMIT 1`, "twice"},
		{"seq far away", `UPDATE messages SET seq = 4611686018427387000 WHERE rowid = (SELECT MAX(rowid) FROM messages WHERE conversation_id = CAST('c' AS BLOB))`, "jumps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			s := twoDeviceConversationAt(t, path)
			for i := byte(1); i <= 3; i++ {
				if _, err := s.Append(ctx, appMessage(i, "d1")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.w.ExecContext(ctx, tc.corrupt); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(ctx, path, nil)
			if err == nil {
				s2.Close()
				t.Fatal("a corrupt message log was opened")
			}
			if !errors.Is(err, errCorruptLog) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Open: %v; want errCorruptLog saying %q", err, tc.says)
			}
		})
	}
}
