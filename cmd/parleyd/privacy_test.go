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

	"github.com/parleychat/parley/internal/syncbuf"

	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/moderation/modsqlite"
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
	logs := &syncbuf.Buffer{}
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

// Private chats are never scanned (DESIGN.md): with an image on a block
// list, the same image sent in a private conversation (as a message
// payload and as an attachment, which in real use are encrypted anyway)
// is stored and delivered, and no moderation decision is recorded; on a
// public channel the same image is refused.
func TestPrivateChatsNeverScanned(t *testing.T) {
	srv := startCrashServer(t)
	ctx := context.Background()
	listed, listedHash := sharedImage(t, "reg-test-input", "pen-and-coaster.png")
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte("pdq "+listedHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"admin", "lists", "import", "--data", srv.data, "--name", "gifct", list}, &out, &errb); code != 0 {
		t.Fatalf("import: %d %s%s", code, out.String(), errb.String())
	}
	a, err := transport.Dial(ctx, srv.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sess, err := a.Register(ctx, "alice", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	conv := []byte("private")
	if err := a.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	b, err := transport.Dial(ctx, srv.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Register(ctx, "bob", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	bd, _ := b.ListDevices(ctx)
	if _, err := a.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0, Payload: []byte("c"),
		Added: []string{bd[0].ID}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendApplication(ctx, transport.NewMessageID(), conv, 1, listed); err != nil {
		t.Fatalf("a private message carrying a listed image: %v", err)
	}
	msgs, _, err := b.Fetch(ctx, conv, 10)
	if err != nil || len(msgs) == 0 || !bytes.Equal(msgs[len(msgs)-1].Payload, listed) {
		t.Fatalf("bob's fetch: %d messages, %v", len(msgs), err)
	}
	if _, err := a.UploadBlob(ctx, bytes.NewReader(listed), int64(len(listed)), nil); err != nil {
		t.Fatalf("an attachment carrying a listed image: %v", err)
	}
	api := channelClient{t: t, url: srv.url(), token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"pub"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: %d %s", code, b)
	}
	if code, _ := api.post("pub", "the same image in public", listed); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("the listed image on a public channel: HTTP %d, want 451", code)
	}
	srv.stop()
	ms, err := modsqlite.Open(ctx, filepath.Join(srv.data, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ds, err := ms.Decisions(ctx, "", 0)
	if err != nil || len(ds) != 1 || !strings.HasPrefix(ds[0].Subject, "channel:pub") {
		t.Fatalf("decisions: %+v %v (want only the channel upload's)", ds, err)
	}
}
