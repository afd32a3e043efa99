package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parleychat/parley/client/transport"
)

// TestFsyncBeforeAck holds the promise that nothing acknowledged is lost
// on a power cut (DESIGN.md: "fsync before ack"), which SIGKILL cannot
// show: a killed process's writes survive in the operating system's page
// cache, a power cut's do not. Following the ALICE study of crash
// consistency (Pillai et al., OSDI 2014), the server runs under strace,
// which records every write, sync and rename with its data and file, in
// the order the kernel saw them. Under load (three devices sending at
// once, attachments uploaded, channel posts published), the test then
// checks each acknowledgement the clients received against the trace:
//
//   - a message's SendResponse (written to the sender's socket) comes
//     after an fsync of the delivery database's WAL that started after
//     the WAL write holding the message;
//   - a blob upload's answer comes after an fsync of the blob's file, the
//     rename into place and an fsync of the directory after it, and an
//     fsync of the blob index's WAL after the write of its row;
//   - a channel post's answer comes after an fsync of the channel
//     database's WAL after the write holding the post.
//
// Data written but not synced when the answer left is exactly what a power
// cut at that moment loses. The mutants this fails on (scripts/mutants):
// synchronous(OFF) or NORMAL for the message store or the other SQLite
// databases, a blob written without its fsync or its directory's.
func TestFsyncBeforeAck(t *testing.T) {
	st, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is not installed: this test needs it (Debian package strace; scripts/test installs it)")
	}
	trace := filepath.Join(t.TempDir(), "trace")
	if p := os.Getenv("KEEP_TRACE"); p != "" {
		trace = p
	}
	srv := startServerUnder(t, []string{st, "-f", "-qq", "--seccomp-bpf", "-o", trace, "-yy", "-xx", "-s", "70000",
		"-e", "trace=write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,fsync,fdatasync,rename,renameat,renameat2",
		"-e", "signal=none"})
	ctx := context.Background()

	type promise struct {
		what string
		ack  []byte // bytes of the answer on the socket
		// steps are the writes that must be durable before ack.
		steps []durable
	}
	var mu sync.Mutex
	var promises []promise
	keep := func(p promise) {
		mu.Lock()
		promises = append(promises, p)
		mu.Unlock()
	}

	// Three senders in one conversation, so that their messages share
	// group commits.
	owner, err := transport.Dial(ctx, srv.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	sess, err := owner.Register(ctx, "owner", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	conv := []byte("durable")
	if err := owner.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	var senders []*transport.Conn
	var ids []string
	for i := range 3 {
		c, err := transport.Dial(ctx, srv.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Register(ctx, fmt.Sprintf("sender%d", i), newKey(t), "")
		if err != nil {
			t.Fatal(err)
		}
		senders, ids = append(senders, c), append(ids, s.DeviceID)
	}
	if _, err := owner.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("commit"), Added: ids, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	api := channelClient{t: t, url: srv.url(), token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"durable"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: %d %s", code, b)
	}

	const perSender = 25
	var wg sync.WaitGroup
	for _, c := range senders {
		wg.Go(func() {
			for range perSender {
				payload := canary("message")
				r, err := c.SendApplication(ctx, transport.NewMessageID(), conv, 1, payload)
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				keep(promise{what: fmt.Sprintf("message seq %d", r.Seq), ack: sendResponseBytes(r.Seq, r.Epoch),
					steps: []durable{{data: payload, file: suffix("/parley.db-wal")}}})
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			data := canary("blob")
			id, err := owner.UploadBlob(ctx, bytes.NewReader(data), int64(len(data)), nil)
			if err != nil {
				t.Errorf("upload: %v", err)
				return
			}
			keep(promise{what: "blob " + id, ack: []byte(`"id":"` + id + `"`), steps: []durable{
				{data: data, file: suffix("/blobs/tmp/" + id), renamedTo: "/blobs/" + id},
				{data: []byte(id), file: suffix("/blobs.db-wal")},
			}})
		}
	})
	wg.Go(func() {
		for range 10 {
			text := canary("post")
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			mw.WriteField("text", string(text))
			mw.Close()
			code, b := api.do("POST", "/v1/channels/durable/posts", mw.FormDataContentType(), &body)
			if code != http.StatusCreated {
				t.Errorf("post: HTTP %d %s", code, b)
				return
			}
			var resp struct {
				Post struct{ ID int64 } `json:"post"`
			}
			if err := json.Unmarshal(b, &resp); err != nil {
				t.Errorf("post answer %s: %v", b, err)
				return
			}
			keep(promise{what: fmt.Sprintf("channel post %d", resp.Post.ID), ack: text,
				steps: []durable{{data: text, file: suffix("/channels.db-wal")}}})
		}
	})
	wg.Wait()
	srv.stop()
	if t.Failed() {
		return
	}

	events := parseTrace(t, trace)
	if len(events) == 0 {
		t.Fatal("the trace is empty: is ptrace allowed here?")
	}
	failures := 0
	for _, p := range promises {
		if err := checkDurableBeforeAck(events, p.ack, p.steps); err != nil {
			failures++
			if failures <= 5 {
				t.Errorf("%s: %v", p.what, err)
			}
		}
	}
	t.Logf("%d acknowledgements checked against %d traced system calls; %d acknowledged before their data was synced", len(promises), len(events), failures)
	if len(promises) != 3*perSender+20 {
		t.Errorf("checked %d acknowledgements, want %d", len(promises), 3*perSender+20)
	}
}

// canary returns a unique printable marker to find in the trace.
func canary(kind string) []byte {
	var b [12]byte
	rand.Read(b[:])
	return []byte(kind + "-canary-" + hex.EncodeToString(b[:]))
}

// sendResponseBytes is the SendResponse field of a ServerFrame as it goes
// over the wire (field 12, length-delimited; seq and epoch inside), the
// part of the answer's frame that names which message it acknowledges.
func sendResponseBytes(seq, epoch uint64) []byte {
	var inner []byte
	inner = protowire.AppendTag(inner, 1, protowire.VarintType)
	inner = protowire.AppendVarint(inner, seq)
	inner = protowire.AppendTag(inner, 2, protowire.VarintType)
	inner = protowire.AppendVarint(inner, epoch)
	out := protowire.AppendTag(nil, 12, protowire.BytesType)
	return protowire.AppendBytes(out, inner)
}

func suffix(s string) func(string) bool {
	return func(path string) bool { return strings.HasSuffix(path, s) }
}

// durable is one write that must reach the disk before an answer: the
// first write of data to a file that file accepts, then a sync of that
// file; with renamedTo, also the rename of that file to a path ending so,
// and then a sync of the directory it was renamed into.
type durable struct {
	data      []byte
	file      func(path string) bool
	renamedTo string
}

// syscallEvent is one system call in an strace -f -yy -xx trace. start and
// end are the positions of the lines where it began and returned (equal
// unless strace split it around another thread's calls).
type syscallEvent struct {
	name       string
	path       string // the first argument's file, from -yy: a path or TCP:[...]
	data       []byte // every string argument, decoded and concatenated
	ret        int64
	start, end int
}

var (
	traceLine    = regexp.MustCompile(`^(\d+)\s+(.*)$`)
	traceResumed = regexp.MustCompile(`^<\.\.\. (\w+) resumed>(.*)$`)
	traceCall    = regexp.MustCompile(`^(\w+)\((.*)$`)
	traceFD      = regexp.MustCompile(`^-?\d+<([^>]*)>`)
	traceString  = regexp.MustCompile(`"((?:\\x[0-9a-f]{2})*)"`)
	traceReturn  = regexp.MustCompile(`\)\s+= (-?\d+)`)
	traceHexByte = regexp.MustCompile(`\\x[0-9a-f]{2}`)
)

// parseTrace reads an strace -f -yy -xx output file.
func parseTrace(t *testing.T, path string) []syscallEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the strace output: %v", err)
	}
	defer f.Close()
	type pending struct {
		name, text string
		start      int
	}
	open := map[string]*pending{}
	var out []syscallEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for n := 0; sc.Scan(); n++ {
		m := traceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, rest := m[1], m[2]
		var p *pending
		if r := traceResumed.FindStringSubmatch(rest); r != nil {
			if p = open[pid]; p == nil || p.name != r[1] {
				continue
			}
			delete(open, pid)
			p.text += r[2]
		} else if c := traceCall.FindStringSubmatch(rest); c != nil {
			p = &pending{name: c[1], text: c[2], start: n}
		} else {
			continue
		}
		if strings.HasSuffix(p.text, "<unfinished ...>") {
			p.text = strings.TrimSuffix(p.text, "<unfinished ...>")
			open[pid] = p
			continue
		}
		ev := syscallEvent{name: p.name, start: p.start, end: n, ret: -1}
		if fd := traceFD.FindStringSubmatch(p.text); fd != nil {
			ev.path = unescapeHex(fd[1])
		}
		for _, s := range traceString.FindAllStringSubmatch(p.text, -1) {
			b, err := hex.DecodeString(strings.ReplaceAll(s[1], `\x`, ""))
			if err == nil {
				ev.data = append(ev.data, b...)
			}
		}
		if r := traceReturn.FindAllStringSubmatch(p.text, -1); r != nil {
			ev.ret, _ = strconv.ParseInt(r[len(r)-1][1], 10, 64)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the strace output: %v", err)
	}
	return out
}

// unescapeHex decodes the \xNN escapes strace -xx writes in paths.
func unescapeHex(s string) string {
	return traceHexByte.ReplaceAllStringFunc(s, func(x string) string {
		b, _ := hex.DecodeString(x[2:])
		return string(b)
	})
}

func isWrite(name string) bool {
	switch name {
	case "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg":
		return true
	}
	return false
}

func isSync(name string) bool { return name == "fsync" || name == "fdatasync" }

// checkDurableBeforeAck checks, in a trace, that every step was written
// and synced (and renamed and its directory synced) before the first write
// of ack to a TCP socket began.
func checkDurableBeforeAck(events []syscallEvent, ack []byte, steps []durable) error {
	answer := -1
	for _, e := range events {
		if isWrite(e.name) && strings.HasPrefix(e.path, "TCP") && bytes.Contains(e.data, ack) {
			answer = e.start
			break
		}
	}
	if answer < 0 {
		return fmt.Errorf("its answer (%x) is not in the trace", ack)
	}
	// syncedAfter reports whether a successful sync of path began after
	// position from and returned before the answer left.
	syncedAfter := func(path string, from int) bool {
		for _, e := range events {
			if isSync(e.name) && e.path == path && e.ret == 0 && e.start > from && e.end < answer {
				return true
			}
		}
		return false
	}
	for _, s := range steps {
		w := -1
		var file string
		for _, e := range events {
			if e.start > answer {
				break
			}
			if isWrite(e.name) && s.file(e.path) && bytes.Contains(e.data, s.data) {
				w, file = e.end, e.path
				break
			}
		}
		if w < 0 {
			return fmt.Errorf("answered before %q was written to its file", s.data)
		}
		if !syncedAfter(file, w) {
			return fmt.Errorf("answered before %s was synced after %q was written to it: a power cut would lose it", file, s.data)
		}
		if s.renamedTo == "" {
			continue
		}
		renamed := -1
		var dir string
		for _, e := range events {
			// renameat's strings are the old path and the new one.
			if strings.HasPrefix(e.name, "rename") && e.ret == 0 && e.end < answer &&
				bytes.HasPrefix(e.data, []byte(file)) && bytes.HasSuffix(e.data, []byte(s.renamedTo)) {
				renamed, dir = e.end, filepath.Dir(string(e.data[len(file):]))
				break
			}
		}
		if renamed < 0 {
			return fmt.Errorf("answered before %s was renamed into place", file)
		}
		if !syncedAfter(dir, renamed) {
			return fmt.Errorf("answered before the directory %s was synced after the rename: a power cut would lose the file's name", dir)
		}
	}
	return nil
}

// The trace check itself, on hand-written strace output: a sync that
// returns only after the answer began does not count (strace splits it
// into <unfinished ...> and resumed lines), one that returned before
// does, and a write after the sync is not covered by it.
func TestCheckDurableBeforeAckOnTraces(t *testing.T) {
	x := func(s string) string { // strace -xx's form of a string
		var b strings.Builder
		for _, c := range []byte(s) {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
		return b.String()
	}
	wal, sock := x("/d/parley.db-wal"), "TCP:[127.0.0.1:1->127.0.0.1:2]"
	write := `10 pwrite64(5<` + wal + `>, "` + x("..payload..") + `", 11, 0) = 11`
	ack := `11 write(7<` + sock + `>, "` + x("ACK") + `", 3) = 3`
	syncDone := `10 fdatasync(5<` + wal + `>) = 0`
	syncStart, syncEnd := `10 fdatasync(5<`+wal+`> <unfinished ...>`, `10 <... fdatasync resumed>) = 0`
	syncFailed := `10 fdatasync(5<` + wal + `>) = -1 EIO (Input/output error)`
	step := []durable{{data: []byte("payload"), file: suffix("/parley.db-wal")}}
	for _, c := range []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"synced before the answer", []string{write, syncDone, ack}, true},
		{"sync returned after the answer began", []string{write, syncStart, ack, syncEnd}, false},
		{"sync before the write", []string{syncDone, write, ack}, false},
		{"sync failed", []string{write, syncFailed, ack}, false},
		{"answer before the write", []string{ack, write, syncDone}, false},
		{"no answer", []string{write, syncDone}, false},
	} {
		path := filepath.Join(t.TempDir(), "trace")
		if err := os.WriteFile(path, []byte(strings.Join(c.lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkDurableBeforeAck(parseTrace(t, path), []byte("ACK"), step)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
