package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/legal"
)

// legalServer runs "parleyd serve" with its log captured in logFile.
func legalServer(t *testing.T) (data, url, logFile string) {
	t.Helper()
	dir := t.TempDir()
	data = filepath.Join(dir, "data")
	logFile = filepath.Join(dir, "server.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
			maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second,
			kt: ktFlags{interval: 20 * time.Millisecond}}
		// Debug: the most the server ever logs.
		done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug})), ready)
	}()
	select {
	case addr := <-ready:
		url = "http://" + addr
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done; lf.Close() })
	return data, url, logFile
}

func legalCmd(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"admin"}, args...), &out, &errb)
	if code != wantCode {
		t.Fatalf("parleyd admin %s: exit %d, want %d: %s%s", strings.Join(args, " "), code, wantCode, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b
}

// A lawful request from record to publication, through the real
// commands: the answer is what the server holds and nothing else (the
// server was fed canaries: message bodies, an attachment, contacts, a
// block list; its log holds the client's IP address), bad input changes
// nothing, and a journalist checks the published request and the report
// with nothing but the files /transparency/ serves.
func TestLawfulRequestEndToEnd(t *testing.T) {
	ctx := context.Background()
	data, url, logFile := legalServer(t)

	// alice talks to bob (a contact), sends canary bodies, uploads a
	// canary file and blocks carol.
	const canaryBody, canaryFile = "CANARY-BODY-7f3a", "CANARY-FILE-91bc"
	reg := func(name string) *transport.Conn {
		c, err := transport.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Register(ctx, name, newKey(t), ""); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := reg("alice"), reg("bob")
	reg("carol").Close()
	defer a.Close()
	defer b.Close()
	conv := []byte("CANARY-CONVERSATION-id")
	if err := a.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	bob, err := b.ListDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte(canaryBody), Added: []string{bob[0].ID}, Welcome: []byte(canaryBody)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte(canaryBody)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UploadBlob(ctx, strings.NewReader(canaryFile), int64(len(canaryFile)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdatePrivacy(ctx, []string{"carol"}, nil, 0); err != nil {
		t.Fatal(err)
	}
	// alice's public channel post: public by design, so in the answer.
	api := channelClient{t: t, url: url, token: a.Session().BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"alices","title":"Alice"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	img, _ := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	if code, b := api.post("alices", "a public post by alice", img); code != http.StatusCreated {
		t.Fatalf("channel post: HTTP %d: %s", code, b)
	}
	imgSum := sha256.Sum256(img)

	// Bad input: a clear error, and nothing recorded.
	base := []string{"legal", "record", "--data", data, "--agency", "Met Police", "--reference", "R1", "--asks", "subscriber data"}
	for _, bad := range [][]string{
		{"--instrument", "hunch", "--country", "GB", "--accounts", "alice"},
		{"--instrument", "warrant", "--country", "Britain", "--accounts", "alice"},
		{"--instrument", "warrant", "--country", "GB", "--accounts", "alice", "--nondisclosure-until", "next year"},
		{"--instrument", "warrant", "--country", "GB", "--accounts", "alice", "--nondisclosure-until", "2020-01-01"},
		{"--instrument", "warrant", "--country", "GB", "--accounts", "../etc"},
		{"--instrument", "warrant", "--country", "GB"},
	} {
		legalCmd(t, 1, append(append([]string(nil), base...), bad...)...)
	}
	if out := strings.TrimSpace(legalCmd(t, 0, "legal", "list", "--data", data, "--json")); out != "null" && out != "[]" {
		t.Fatalf("bad input recorded something: %s", out)
	}
	legalCmd(t, 1, "legal", "answer", "lr-0000", "--data", data) // unknown request

	id := strings.TrimSpace(legalCmd(t, 0, "legal", "record", "--data", data, "--agency", "Met Police", "--country", "GB",
		"--instrument", "court-order", "--reference", "CO-2026-1", "--accounts", "alice,nobody", "--asks", "subscriber data and messages"))
	held := strings.TrimSpace(legalCmd(t, 0, "legal", "record", "--data", data, "--agency", "BKA", "--country", "DE",
		"--instrument", "warrant", "--reference", "W-9", "--accounts", "alice", "--asks", "everything",
		"--nondisclosure-until", time.Now().AddDate(1, 0, 0).Format(time.DateOnly)))

	legalCmd(t, 0, "legal", "preserve", id, "--data", data, "--until", time.Now().AddDate(0, 3, 0).Format(time.DateOnly))
	answer := legalCmd(t, 0, "legal", "answer", id, "--data", data, "--json")
	var a1 legal.Answer
	if err := json.Unmarshal([]byte(answer), &a1); err != nil {
		t.Fatal(err)
	}
	if len(a1.Accounts) != 2 || !a1.Accounts[0].Exists || len(a1.Accounts[0].Devices) != 1 || a1.Accounts[0].LastSeen.IsZero() ||
		a1.Accounts[1].Exists || a1.Preserved == nil || len(a1.CannotProduce) == 0 {
		t.Fatalf("answer: %s", answer)
	}
	if posts := a1.Accounts[0].ChannelPosts; len(posts) != 1 || posts[0].Channel != "alices" || posts[0].Text != "a public post by alice" ||
		len(posts[0].Media) != 1 || posts[0].Media[0] != hex.EncodeToString(imgSum[:]) {
		t.Fatalf("alice's public channel posts in the answer: %+v", posts)
	}
	if out := legalCmd(t, 1, "legal", "answer", id, "--data", data); !strings.Contains(out, "already answered") {
		t.Fatalf("second answer: %s", out)
	}
	legalCmd(t, 0, "legal", "answer", held, "--data", data, "--refuse", "not valid in this jurisdiction")
	if out := legalCmd(t, 1, "legal", "publish", held, "--data", data); !strings.Contains(out, "non-disclosure") {
		t.Fatalf("publish under non-disclosure: %s", out)
	}
	legalCmd(t, 0, "legal", "publish", id, "--data", data)
	legalCmd(t, 1, "legal", "publish", id, "--data", data) // twice
	legalCmd(t, 0, "transparency-report", "--data", data, "--period", time.Now().Format("2006"))
	legalCmd(t, 1, "transparency-report", "--data", data, "--period", "2026H3")

	// Nothing the server must not hand over is in any answer, listing,
	// publication or report; the canaries are in the store and the log.
	var everything strings.Builder
	everything.WriteString(answer)
	everything.WriteString(legalCmd(t, 0, "legal", "show", id, "--data", data))
	everything.WriteString(legalCmd(t, 0, "legal", "show", held, "--data", data))
	everything.WriteString(legalCmd(t, 0, "legal", "list", "--data", data))
	filepath.Walk(filepath.Join(data, transparencyDir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			everything.Write(b)
		}
		return nil
	})
	serverLog, _ := os.ReadFile(logFile)
	if !strings.Contains(string(serverLog), "127.0.0.1") {
		t.Log("note: the server log holds no IP address at debug level")
	}
	for _, canary := range []string{canaryBody, canaryFile, string(conv), "bob", "carol", "127.0.0.1"} {
		if strings.Contains(everything.String(), canary) {
			t.Errorf("the legal output contains %q, which the server must never hand over", canary)
		}
	}

	// A journalist: nothing but the published files and the log's key.
	logKey := strings.TrimSpace(string(httpGet(t, url+"/transparency/legal-log.pub")))
	pub := httpGet(t, url+"/transparency/requests/"+id+".json")
	if _, err := legal.VerifyPublication(pub, logKey); err != nil {
		t.Fatalf("the published request does not verify: %v", err)
	}
	rep := httpGet(t, url+"/transparency/reports/"+time.Now().Format("2006")+".json")
	r, err := legal.VerifyReport(rep, logKey)
	if err != nil {
		t.Fatalf("the report does not verify: %v", err)
	}
	if r.Requests != 2 || r.UnderNondisclosure != 1 || r.DataProduced != 1 || r.Preservations != 1 || r.ByCountry["DE"] != 0 || len(r.Published) != 1 {
		t.Fatalf("report: %+v", r)
	}
	httpGet(t, url+"/transparency/reports/"+time.Now().Format("2006")+".html")
	f := filepath.Join(t.TempDir(), "pub.json")
	os.WriteFile(f, pub, 0o600)
	legalCmd(t, 0, "legal", "verify", f, "--log-key", logKey)
	// Rewritten after the fact: the public form no longer matches.
	forged := bytes.Replace(pub, []byte(`\"country\":\"GB\"`), []byte(`\"country\":\"FR\"`), 1)
	if bytes.Equal(forged, pub) {
		t.Fatalf("the publication has no country to rewrite: %s", pub)
	}
	os.WriteFile(f, forged, 0o600)
	legalCmd(t, 1, "legal", "verify", f, "--log-key", logKey)
}
