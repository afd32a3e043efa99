package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/parleychat/parley/client/transport"
)

// Deleting an account through the real parleyd wiring (serveWith, as
// "parleyd serve" runs it) deletes the account's public channels and
// posts too (Config.ForgetAccount): the promise of DESIGN.md's "What the
// server knows" table, held here against the program users run rather
// than a test copy of its wiring.
func TestDeleteAccountForgetsChannels(t *testing.T) {
	ctx := context.Background()
	_, url, _ := legalServer(t)
	conn, err := transport.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.Register(ctx, "alice", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	api := channelClient{t: t, url: url, token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news","title":"News"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	img, _ := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	if code, b := api.post("news", "hello", img); code != http.StatusCreated {
		t.Fatalf("post: HTTP %d: %s", code, b)
	}
	bob, err := transport.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	bs, err := bob.Register(ctx, "bob", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	reader := channelClient{t: t, url: url, token: bs.BlobToken}
	if code, b := reader.do("GET", "/v1/channels/news", "", nil); code != http.StatusOK {
		t.Fatalf("read the channel before: HTTP %d: %s", code, b)
	}
	if err := conn.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if code, b := reader.do("GET", "/v1/channels/news", "", nil); code != http.StatusNotFound && code != http.StatusGone {
		t.Fatalf("alice's channel after she deleted her account: HTTP %d: %s", code, b)
	}
}
