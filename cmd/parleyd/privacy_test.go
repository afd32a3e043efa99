package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
)

// IP addresses are never stored (DESIGN.md, "What the server knows"):
// clients behind a trusted proxy, with a canary address in
// X-Forwarded-For (which the server does read, for its per-address
// limits), register, link a device, send, upload and delete; afterwards no
// file the server wrote holds the address, as text or as bytes.
func TestClientAddressesNeverStored(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	const canary = "203.0.113.77"
	runCtx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
			"--trusted-proxy", "127.0.0.1", "--kt-interval", "20ms"}, io.Discard, logs)
	}()
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if i := strings.Index(logs.String(), `url=http://`); i >= 0 {
			url = strings.Fields(logs.String()[i+4:])[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("parleyd did not start: %s", logs.String())
		}
	}
	opts := &transport.Options{HTTPClient: &http.Client{Transport: forwardedFor(canary)}}
	dial := func() *transport.Conn {
		c, err := transport.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	if _, err := a.Register(ctx, "alice", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Register(ctx, "bob", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	conv := []byte("conversation")
	if err := a.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	bd, _ := b.ListDevices(ctx)
	if _, err := a.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0, Payload: []byte("c"),
		Added: []string{bd[0].ID}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial().RequestLink(ctx, "alice", newKey(t)); err != nil {
		t.Fatal(err)
	}
	id, err := a.UploadBlob(ctx, strings.NewReader("file"), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteBlob(ctx, id); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("parleyd serve exited %d", code)
	}
	files := 0
	err = filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte{203, 0, 113, 77}) {
			t.Errorf("%s holds the client's address %s", p, canary)
		}
		return nil
	})
	if err != nil || files < 3 {
		t.Fatalf("walked %d files: %v", files, err)
	}
	if strings.Contains(logs.String(), canary) {
		t.Logf("note: the info-level log mentions %s", canary)
	}
}
