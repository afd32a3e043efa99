package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// TestWriteFailuresAreStorageUnavailable makes the running server's real
// file writes fail, as on a full disk: the child parleyd's RLIMIT_FSIZE is
// lowered to the size of its largest file, so the kernel refuses every
// write that would grow one (EFBIG; a Go process ignores SIGXFSZ). Sends
// are refused with STORAGE_UNAVAILABLE and a retry-after, attachments with
// 507; reads keep working; when the limit is lifted ("space returns")
// everything works again, and every acknowledged message is delivered
// exactly once, also after a restart, with the database intact.
// (Unprivileged tests cannot fill or remount a real file system; a file
// size limit makes the same system calls fail.)
func TestWriteFailuresAreStorageUnavailable(t *testing.T) {
	srv := startCrashServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dial := func() *transport.Conn {
		c, err := transport.Dial(ctx, srv.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := dial(), dial()
	defer func() { alice.Close(); bob.Close() }()
	aliceKey, bobKey := newKey(t), newKey(t)
	if _, err := alice.Register(ctx, "alice", aliceKey, ""); err != nil {
		t.Fatal(err)
	}
	bs, err := bob.Register(ctx, "bob", bobKey, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := []byte("disk-full-group")
	if err := alice.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv,
		Payload: []byte("commit"), Added: []string{bs.DeviceID}, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	var acked []string
	send := func(text string) error {
		_, err := alice.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte(text))
		if err == nil {
			acked = append(acked, text)
		}
		return err
	}
	for i := range 5 {
		if err := send("before " + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}

	// The disk "fills": no file of the server may grow.
	var largest int64
	filepath.Walk(srv.data, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			largest = max(largest, fi.Size())
		}
		return nil
	})
	pid := srv.cmd.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: uint64(largest), Max: old.Max}, nil); err != nil {
		t.Fatalf("lower the server's file size limit: %v", err)
	}
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		full = send("while full")
	}
	var we *wire.Error
	if !errors.As(full, &we) || we.Code != parleypb.ErrorCode_STORAGE_UNAVAILABLE || we.RetryAfter <= 0 {
		t.Fatalf("send on a full disk: %v, want STORAGE_UNAVAILABLE with a retry-after", full)
	}
	if err := send("still full"); !errors.As(err, &we) || we.Code != parleypb.ErrorCode_STORAGE_UNAVAILABLE {
		t.Fatalf("second send on a full disk: %v", err)
	}
	_, err = alice.UploadBlob(ctx, bytes.NewReader(make([]byte, largest+4096)), largest+4096, nil)
	var he *transport.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 507 {
		t.Fatalf("upload on a full disk: %v, want HTTP 507", err)
	}
	// Reads keep working.
	ms, _, err := bob.Fetch(ctx, conv, 100)
	if err != nil || len(ms) != len(acked) {
		t.Fatalf("fetch on a full disk: %d messages, %v; want %d", len(ms), err, len(acked))
	}

	// Space returns.
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil); err != nil {
		t.Fatal(err)
	}
	if err := send("after"); err != nil {
		t.Fatalf("send after space returned: %v", err)
	}
	if _, err := alice.UploadBlob(ctx, bytes.NewReader(make([]byte, 10_000)), 10_000, nil); err != nil {
		t.Fatalf("upload after space returned: %v", err)
	}
	check := func(when string, c *transport.Conn) {
		t.Helper()
		ms, _, err := c.Fetch(ctx, conv, 100)
		if err != nil {
			t.Fatalf("%s: fetch: %v", when, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, string(m.Payload))
		}
		if strings.Join(got, "|") != strings.Join(acked, "|") {
			t.Fatalf("%s: bob has %q, want exactly the acknowledged %q", when, got, acked)
		}
	}
	check("after space returned", bob)

	// A restart loses nothing, and the database is intact.
	alice.Close()
	bob.Close()
	srv.stop()
	db, err := sql.Open("sqlite", filepath.Join(srv.data, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
	db.Close()
	srv.start()
	bob2, _, err := transport.Connect(ctx, srv.url(), bobKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	check("after a restart", bob2)
}
