package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
)

// An auditor follows a server whose every epoch waits for its
// cosignature: "parleyd audit --once" checks the log and the server then
// serves the epoch. A server that rewrites a stored epoch's changes fails
// the audit (exit 3) and its epochs are no longer served.
func TestAuditCosignsAndCatchesRewrites(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "auditor.key")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"audit", "keygen", "--name", "auditor.test", "--key", keyFile}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	vkey := strings.TrimSpace(out.String())

	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
			maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second,
			kt: ktFlags{origin: "audit.test/kt", interval: 20 * time.Millisecond, heartbeat: 50 * time.Millisecond, witnesses: stringsFlag{vkey}}}
		done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	url := "http://" + addr
	keys := func() server.KTKeysJSON {
		t.Helper()
		resp, err := http.Get(url + wire.PathKT + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var k server.KTKeysJSON
		if err := json.NewDecoder(resp.Body).Decode(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	waitFor := func(what string, ok func(server.KTKeysJSON) bool) server.KTKeysJSON {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if k := keys(); ok(k) {
				return k
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, keys())
			}
		}
	}
	k := waitFor("the first epoch", func(k server.KTKeysJSON) bool { return k.Size >= 1 })
	if k.Published != 0 || len(k.Witnesses) != 1 {
		t.Fatalf("an epoch was served before its auditor cosigned it: %+v", k)
	}
	audit := func() (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"audit", "--server", url, "--key", keyFile, "--once"}, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, msg := audit(); code != 0 || !strings.Contains(msg, "cosigned") {
		t.Fatalf("audit: %d %s", code, msg)
	}
	waitFor("the cosigned epoch to be served", func(k server.KTKeysJSON) bool { return k.Published >= 1 })

	// The server rewrites what it stored for epoch 1, waiting for its
	// cosignature.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, deliveryDB)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor("a second epoch", func(k server.KTKeysJSON) bool { return k.Size >= 2 })
	if _, err := db.Exec(`UPDATE kt_epochs SET record = zeroblob(48) WHERE epoch = 1`); err != nil {
		t.Fatal(err)
	}
	if code, msg := audit(); code != 3 || !strings.Contains(msg, "FAILED ITS AUDIT") {
		t.Fatalf("audit of a rewritten epoch: exit %d, %s", code, msg)
	}
	if k := keys(); k.Published != 1 {
		t.Fatalf("served %d epochs after its auditor refused epoch 1", k.Published)
	}
	cancel()
	<-done
}
