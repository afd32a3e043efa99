package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/syncbuf"
)

// startDaemonFor runs "parley daemon" on profile and connects to it.
func startDaemonFor(t *testing.T, profile string) *rpcClient {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var derr syncbuf.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--profile", profile, "daemon"}, strings.NewReader(""), &syncbuf.Buffer{}, &derr)
	}()
	t.Cleanup(func() {
		stop()
		<-exited
	})
	sock := filepath.Join(profile, "daemon.sock")
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			sc := bufio.NewScanner(conn)
			sc.Buffer(nil, 1<<20)
			return &rpcClient{t: t, conn: conn, sc: sc}
		}
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("daemon exited with %d:\n%s", code, derr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no daemon socket: %v\n%s", err, derr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonSafety: the daemon's methods for info, settings, blocking,
// requests, mute and export match the CLI, and its message events are
// marked muted.
func TestDaemonSafety(t *testing.T) {
	dir := t.TempDir()
	ss := &scriptServer{dataDir: filepath.Join(dir, "server")}
	if err := os.MkdirAll(ss.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ss.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.stop() })
	t.Setenv("PARLEY_KDF", "t=1,m=64,p=1")
	t.Setenv("PARLEY_PASSPHRASE", "correct horse battery staple")
	server := "http://" + ss.addr
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	parley(t, "--profile", alice, "init", "--server", server, "--name", "alice")
	parley(t, "--profile", bob, "init", "--server", server, "--name", "bob")
	parley(t, "--profile", alice, "send", "@bob", "hi bob")
	rc := startDaemonFor(t, alice)

	result := func(v map[string]any) map[string]any {
		t.Helper()
		r, ok := v["result"].(map[string]any)
		if !ok {
			t.Fatalf("no result: %v", v)
		}
		return r
	}
	if r := result(rc.call("mute", map[string]string{"conversation": "@bob", "for": "8h"})); r["conversation"] != "@bob" || r["until"] == nil {
		t.Fatalf("mute: %v", r)
	}
	if v := rc.call("mute", map[string]string{"conversation": "@bob", "for": "soon"}); v["error"].(map[string]any)["code"] != float64(rpcInvalidParams) {
		t.Fatalf("mute with a bad duration: %v", v)
	}
	if v := rc.call("subscribe", nil); result(v)["subscribed"] != true {
		t.Fatal(v)
	}
	parley(t, "--profile", bob, "sync")
	parley(t, "--profile", bob, "send", "@alice", "muted hello")
	var id string
	for id == "" {
		v := rc.next()
		if v["method"] != "event" {
			continue
		}
		p := v["params"].(map[string]any)
		if m, ok := p["message"].(map[string]any); ok && m["text"] == "muted hello" {
			if m["muted"] != true {
				t.Fatalf("event of a muted conversation not marked: %v", m)
			}
			id = m["id"].(string)
		}
	}
	sent := result(rc.call("send", map[string]string{"to": "@bob", "text": "how are you"}))
	parley(t, "--profile", bob, "sync")
	info := result(rc.call("info", map[string]string{"id": sent["id"].(string)}))
	members := info["members"].([]any)
	// One line, bob's (sent or read: the daemon may or may not have his
	// receipt yet).
	if len(members) != 1 || members[0].(map[string]any)["user"] != "bob" {
		t.Fatalf("info of alice's message: %v", info)
	}
	if info := result(rc.call("info", map[string]string{"id": id})); len(info["members"].([]any)) != 0 {
		t.Fatalf("info of bob's message lists someone: %v", info)
	}
	if r := result(rc.call("settings", map[string]any{"name": "receipts", "on": false})); r["read_receipts"] != false {
		t.Fatalf("settings: %v", r)
	}
	if r := result(rc.call("block", map[string]any{"users": []string{"bob"}})); len(r["blocked"].([]any)) != 1 {
		t.Fatalf("block: %v", r)
	}
	if r := result(rc.call("blocked", nil)); len(r["blocked"].([]any)) != 1 {
		t.Fatalf("blocked: %v", r)
	}
	if v := rc.call("requests", nil); v["result"] == nil {
		t.Fatalf("requests: %v", v)
	}
	if v := rc.call("acceptRequest", map[string]string{"user": "@carol"}); v["error"] == nil {
		t.Fatalf("accepted a request that does not exist: %v", v)
	}
	out := filepath.Join(dir, "alice.history")
	if r := result(rc.call("export", map[string]string{"path": out, "passphrase": "export passphrase"})); r["messages"] == nil {
		t.Fatalf("export: %v", r)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi, err)
	}
	if v := rc.call("export", map[string]string{"path": out, "passphrase": "export passphrase"}); v["error"] == nil {
		t.Fatal("export overwrote a file")
	}
	if r := result(rc.call("unmute", map[string]string{"conversation": "@bob"})); r["unmuted"] != true {
		t.Fatalf("unmute: %v", r)
	}
}
