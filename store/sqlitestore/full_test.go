package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/store"
)

// A database that cannot grow (SQLite's max_page_count stands in for a
// full disk: it makes SQLite fail with SQLITE_FULL exactly as ENOSPC
// would) reports store.ErrUnavailable, changes nothing, keeps serving
// reads, and works again once it may grow.
func TestDiskFullIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: []byte("k1")}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Device{ID: "d2", Username: "bob", PublicKey: []byte("k2")}, ""); err != nil {
		t.Fatal(err)
	}
	conv := []byte("c")
	if err := s.CreateConversation(ctx, conv, "d1"); err != nil {
		t.Fatal(err)
	}
	// bob never acks, so the log keeps every message.
	if _, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{0}, 16), ConversationID: conv, Epoch: 0,
		Kind: store.KindCommit, Sender: "d1", Payload: []byte("add"), Added: []string{"d2"}}); err != nil {
		t.Fatal(err)
	}
	send := func(i int) error {
		_, err := s.Append(ctx, store.Append{ID: bytes.Repeat([]byte{byte(i)}, 16), ConversationID: conv, Epoch: 1,
			Kind: store.KindApplication, Sender: "d1", Payload: bytes.Repeat([]byte{'x'}, 3000)})
		return err
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 2; i < 50 && full == nil; i++ {
		full = send(i)
	}
	if !errors.Is(full, store.ErrUnavailable) {
		t.Fatalf("append on a full database: %v, want ErrUnavailable", full)
	}
	err = s.CreateAccount(ctx, store.Device{ID: "d3", Username: "carol", PublicKey: bytes.Repeat([]byte("k"), 4000)}, "")
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write on a full database: %v, want nil or ErrUnavailable", err)
	}
	ms, err := s.Fetch(ctx, "d2", conv, 1000)
	if err != nil || len(ms) == 0 {
		t.Fatalf("read on a full database: %d messages, %v", len(ms), err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := send(99); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
}
