package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/syncbuf"
)

// parley runs the CLI in this process.
func parley(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("parley %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

type rpcClient struct {
	t    *testing.T
	conn net.Conn
	sc   *bufio.Scanner
	id   int
}

func (rc *rpcClient) send(method string, params any) int {
	rc.t.Helper()
	rc.id++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": rc.id, "method": method, "params": params})
	if _, err := rc.conn.Write(append(b, '\n')); err != nil {
		rc.t.Fatal(err)
	}
	return rc.id
}

// next reads the next line (answer or notification).
func (rc *rpcClient) next() map[string]any {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if !rc.sc.Scan() {
		rc.t.Fatalf("daemon connection: %v", rc.sc.Err())
	}
	var v map[string]any
	if err := json.Unmarshal(rc.sc.Bytes(), &v); err != nil {
		rc.t.Fatalf("not JSON from the daemon: %q", rc.sc.Text())
	}
	if v["jsonrpc"] != "2.0" {
		rc.t.Fatalf("not JSON-RPC 2.0: %q", rc.sc.Text())
	}
	return v
}

// call sends a request and returns its answer, skipping notifications.
func (rc *rpcClient) call(method string, params any) map[string]any {
	rc.t.Helper()
	id := rc.send(method, params)
	for {
		v := rc.next()
		if v["method"] == nil && v["id"] == float64(id) {
			return v
		}
	}
}

// TestDaemon: the daemon unlocks the profile once, answers JSON-RPC on a
// 0600 socket, pushes an event when another user writes, serves the CLI
// (which then needs no passphrase) and stops cleanly on its signal.
func TestDaemon(t *testing.T) {
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
	// Not a test of message requests (on by default): bob's first message
	// must reach alice's daemon as a message.
	parley(t, "--profile", alice, "settings", "requests", "off")
	parley(t, "--profile", bob, "channel", "create", "bobnews")
	parley(t, "--profile", alice, "channel", "follow", "bobnews")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var dout, derr syncbuf.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--profile", alice, "daemon", "--channel-poll", "200ms"}, strings.NewReader(""), &dout, &derr)
	}()
	sock := filepath.Join(alice, "daemon.sock")
	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("daemon exited with %d:\n%s", code, derr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no daemon socket: %v\n%s", err, derr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v: want a socket with mode 0600", fi.Mode(), err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 1<<20)
	rc := &rpcClient{t: t, conn: conn, sc: sc}

	if v := rc.call("self", nil); v["result"].(map[string]any)["user"] != "alice" {
		t.Fatalf("self: %v", v)
	}
	if v := rc.call("frobnicate", nil); v["error"].(map[string]any)["code"] != float64(rpcMethodNotFound) {
		t.Fatalf("unknown method: %v", v)
	}
	if v := rc.call("send", map[string]string{"to": "@bob"}); v["error"].(map[string]any)["code"] != float64(rpcInvalidParams) {
		t.Fatalf("send without text: %v", v)
	}
	if v := rc.call("subscribe", nil); v["result"].(map[string]any)["subscribed"] != true {
		t.Fatalf("subscribe: %v", v)
	}

	// bob writes; alice's daemon pushes it.
	parley(t, "--profile", bob, "send", "@alice", "hello daemon")
	parley(t, "--profile", bob, "channel", "post", "bobnews", "a public post")
	gotMsg, gotPost := false, false
	for !gotMsg || !gotPost {
		v := rc.next()
		if v["method"] != "event" {
			continue
		}
		p := v["params"].(map[string]any)
		switch p["type"] {
		case "message":
			m := p["message"].(map[string]any)
			if m["text"] == "hello daemon" && m["conversation"] == "@bob" {
				gotMsg = true
			}
		case "channel_post":
			cp := p["channel_post"].(map[string]any)
			if cp["public"] != true || cp["channel"] != "bobnews" {
				t.Fatalf("channel post event: %v", cp)
			}
			gotPost = true
		}
	}

	// A bot answers through the daemon.
	v := rc.call("send", map[string]string{"to": "@bob", "text": "from the bot"})
	res, ok := v["result"].(map[string]any)
	if !ok || res["seq"] == nil || res["conversation"] != "@bob" {
		t.Fatalf("send: %v", v)
	}
	// sync answers what arrived since the last sync call.
	v = rc.call("sync", nil)
	msgs := v["result"].(map[string]any)["messages"].([]any)
	if len(msgs) == 0 || !strings.Contains(rc.sc.Text(), "hello daemon") {
		t.Fatalf("sync: %v", v)
	}
	if v := rc.call("sync", nil); len(v["result"].(map[string]any)["messages"].([]any)) != 0 {
		t.Fatalf("second sync repeats: %v", v)
	}

	// The CLI uses the daemon: no passphrase needed.
	t.Setenv("PARLEY_PASSPHRASE", "not the passphrase")
	out, _ := parley(t, "--profile", alice, "send", "@bob", "from the CLI via the daemon")
	if !strings.Contains(out, "Sent message") {
		t.Fatalf("send via the daemon: %q", out)
	}
	out, _ = parley(t, "--profile", alice, "history", "@bob", "--json")
	for _, want := range []string{"hello daemon", "from the bot", "from the CLI via the daemon"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history via the daemon lacks %q:\n%s", want, out)
		}
	}
	t.Setenv("PARLEY_PASSPHRASE", "correct horse battery staple")
	out, _ = parley(t, "--profile", bob, "sync")
	if strings.Count(out, "from the bot") != 1 || strings.Count(out, "from the CLI via the daemon") != 1 {
		t.Fatalf("bob's sync:\n%s", out)
	}

	// A second daemon on the same profile is refused.
	var e2 bytes.Buffer
	if code := run(context.Background(), []string{"--profile", alice, "daemon"}, strings.NewReader(""), &e2, &e2); code == 0 || !strings.Contains(e2.String(), "already serves") {
		t.Fatalf("second daemon: exit %d: %s", code, e2.String())
	}

	// SIGTERM (the context main cancels): a clean exit, socket removed.
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("daemon exit %d:\n%s", code, derr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if !strings.Contains(derr.String(), "daemon ready") || !strings.Contains(derr.String(), "shutting down") {
		t.Fatalf("daemon log:\n%s", derr.String())
	}
}
