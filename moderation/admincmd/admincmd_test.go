package admincmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

func run(t *testing.T, dir string, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Run(channelsrv.Where{Data: dir}, args, &out, &errb); code != want {
		t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

// serverDir returns a data directory as "parleyd serve" leaves it, with
// both databases the commands work on (they never create them).
func serverDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	ms, err := modsqlite.Open(ctx, filepath.Join(dir, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	ms.Close()
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, channelsrv.ChannelsDB))
	if err != nil {
		t.Fatal(err)
	}
	cs.Close()
	return dir
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hexN(n, digits int) string { return fmt.Sprintf("%0*x", digits, n) }

func pdqH(n int) string {
	var h pdq.Hash
	for i := range h {
		h[i] = byte(n*97 + i*31 + (n*i)%13)
	}
	return h.String()
}

func banks(t *testing.T, dir string) []bankJSON {
	t.Helper()
	var bs []bankJSON
	if err := json.Unmarshal([]byte(run(t, dir, 0, "lists", "list", "--json")), &bs); err != nil {
		t.Fatal(err)
	}
	return bs
}

// matches loads a fresh matcher from the data dir and counts matches of
// each hash.
func matches(t *testing.T, dir string, hashes []string) []int {
	t.Helper()
	ctx := context.Background()
	st, err := modsqlite.Open(ctx, filepath.Join(dir, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := moderation.New(ctx, moderation.Config{Store: st, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, h := range hashes {
		ph, err := pdq.ParseHash(h)
		if err != nil {
			t.Fatal(err)
		}
		d := &pdq.Dihedral{Quality: 100}
		for i := range d.Hashes {
			d.Hashes[i] = ph
		}
		out = append(out, len(s.Match(moderation.Media{PDQ: d})))
	}
	return out
}

func TestImportIdempotentAndWithdrawals(t *testing.T) {
	dir := serverDir(t)
	list := write(t, dir, "gifct.txt", "# GIFCT sample\npdq "+pdqH(1)+"\npdq "+pdqH(2)+"\nvideo_md5 "+hexN(7, 32)+"\n")
	out := run(t, dir, 0, "lists", "import", "--name", "gifct", "--tags", "tvec", list)
	if !strings.Contains(out, "3 added") {
		t.Fatalf("first import: %s", out)
	}
	out = run(t, dir, 0, "lists", "import", list, "--name", "gifct", "--tags", "tvec")
	if !strings.Contains(out, "unchanged") {
		t.Fatalf("second import: %s", out)
	}
	bs := banks(t, dir)
	if len(bs) != 1 || bs[0].Version != 1 || bs[0].Entries != 3 || bs[0].Action != "block" || bs[0].Label != "terrorist content" || bs[0].Tags[0] != "tvec" {
		t.Fatalf("banks %+v", bs)
	}
	// Upstream withdraws pdq 1 and adds 3.
	write(t, dir, "gifct.txt", "pdq "+pdqH(2)+"\npdq "+pdqH(3)+"\nmd5 "+hexN(7, 32)+"\n")
	var res bankJSON
	json.Unmarshal([]byte(run(t, dir, 0, "lists", "import", "--name", "gifct", "--json", list)), &res)
	if *res.Added != 1 || *res.Removed != 1 || res.Version != 2 || res.Entries != 3 {
		t.Fatalf("update %+v", res)
	}
	if got := matches(t, dir, []string{pdqH(1), pdqH(2), pdqH(3)}); fmt.Sprint(got) != "[0 1 1]" {
		t.Fatalf("matches after update %v", got)
	}
	exp := run(t, dir, 0, "lists", "export", "gifct")
	if !strings.Contains(exp, "md5 "+hexN(7, 32)) || strings.Contains(exp, pdqH(1)) || strings.Count(exp, "\n") != 3 {
		t.Fatalf("export:\n%s", exp)
	}
	csvOut := run(t, dir, 0, "lists", "export", "gifct", "--format", "csv")
	reimport := write(t, dir, "round.csv", csvOut)
	run(t, dir, 0, "lists", "import", "--name", "copy", "--action", "review", reimport)
	if bs := banks(t, dir); len(bs) != 2 || bs[0].Name != "copy" || bs[0].Entries != 3 || bs[0].Action != "review" {
		t.Fatalf("csv round trip %+v", bs)
	}
	run(t, dir, 0, "lists", "remove", "copy")
	run(t, dir, 1, "lists", "remove", "copy")
	if bs := banks(t, dir); len(bs) != 1 {
		t.Fatalf("after remove %+v", bs)
	}
}

func TestCorruptImportChangesNothing(t *testing.T) {
	dir := serverDir(t)
	good := write(t, dir, "list.csv", "signal_type,signal,tags\npdq,"+pdqH(1)+",ideology:x\npdq,"+pdqH(2)+",\n")
	run(t, dir, 0, "lists", "import", "--name", "tat", good)
	probe := []string{pdqH(1), pdqH(2), pdqH(3), pdqH(4)}
	before, beforeMatches := banks(t, dir), matches(t, dir, probe)

	cases := map[string]struct{ name, content, want string }{
		"bad hex":        {"bad.csv", "signal_type,signal\npdq," + pdqH(3) + "\npdq," + strings.Repeat("zz", 32) + "\n", "line 3"},
		"short hash":     {"bad.csv", "signal_type,signal\npdq," + pdqH(3) + "\nmd5,abc\n", "line 3"},
		"unknown type":   {"bad.txt", "pdq " + pdqH(3) + "\nphash " + pdqH(4) + "\n", "line 2"},
		"no header":      {"bad.csv", pdqH(3) + "\n", "line 1"},
		"tcap record":    {"bad.json", `{"checkpoint":"1","results":[{"hash_digest":"` + pdqH(3) + `","algorithm":"PDQ","deleted":false},{"algorithm":"PDQ"}]}`, "record 2"},
		"truncated json": {"bad.json", `{"checkpoint":"1","results":[{"hash_digest":"`, "syntax"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := write(t, dir, tc.name, tc.content)
			out := run(t, dir, 1, "lists", "import", "--name", "tat", p)
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "nothing imported") {
				t.Fatalf("error does not say where: %s", out)
			}
		})
	}
	after, afterMatches := banks(t, dir), matches(t, dir, probe)
	if fmt.Sprint(before) != fmt.Sprint(after) || fmt.Sprint(beforeMatches) != fmt.Sprint(afterMatches) {
		t.Fatalf("corrupt imports changed the bank:\n%+v\n%+v\nmatches %v → %v", before, after, beforeMatches, afterMatches)
	}
	if fmt.Sprint(afterMatches) != "[1 1 0 0]" {
		t.Fatalf("matches %v", afterMatches)
	}
}

func TestSyncCommand(t *testing.T) {
	a, b := serverDir(t), serverDir(t)
	run(t, a, 0, "lists", "confirm", "--bank", "confirmed", "--type", "md5", hexN(1, 32), hexN(2, 32))
	out := run(t, a, 0, "lists", "publish", "confirmed")
	tok := strings.TrimSpace(out[strings.Index(out, "token: ")+len("token: "):])
	st, err := modsqlite.Open(context.Background(), filepath.Join(a, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(moderation.ExchangeHandler(st))
	defer srv.Close()
	url := srv.URL + moderation.PathExchange + "confirmed"
	out = run(t, b, 0, "lists", "sync", "--from", url, "--token", tok, "--bank", "from-a")
	if !strings.Contains(out, "2 added") {
		t.Fatalf("sync: %s", out)
	}
	run(t, a, 0, "lists", "unconfirm", "--bank", "confirmed", "--type", "md5", hexN(1, 32))
	out = run(t, b, 0, "lists", "sync", "--from", url, "--token", tok, "--bank", "from-a")
	if !strings.Contains(out, "1 removed") || !strings.Contains(out, "1 entries") {
		t.Fatalf("second sync: %s", out)
	}
	out = run(t, b, 1, "lists", "sync", "--from", url, "--token", "wrong", "--bank", "from-a")
	if !strings.Contains(out, "refused the token") {
		t.Fatalf("wrong token: %s", out)
	}
	run(t, b, 2, "lists", "sync", "--from", url)
}

func TestTakedownsCommands(t *testing.T) {
	dir := serverDir(t)
	ctx := context.Background()
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, channelsrv.ChannelsDB))
	if err != nil {
		t.Fatal(err)
	}
	cs.CreateChannel(ctx, channels.Channel{ID: "news", Owner: "alice"})
	data := []byte("a file")
	d, _ := hashing.Digest(bytes.NewReader(data), 0)
	p, err := cs.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Held, Reason: "held for review: matched hash list \"x\"",
		Media: []channels.Media{{ContentType: "application/octet-stream", MD5: d.MD5, SHA256: d.SHA256}}}, [][]byte{data})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := cs.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Held}, nil)
	cs.Close()

	var list struct {
		Held      []heldJSON     `json:"held"`
		Decisions []decisionJSON `json:"decisions"`
	}
	json.Unmarshal([]byte(run(t, dir, 0, "takedowns", "--json")), &list)
	if len(list.Held) != 2 || list.Held[0].Post != p.ID || list.Held[0].Media != 1 {
		t.Fatalf("held %+v", list)
	}
	run(t, dir, 0, "takedowns", "approve", fmt.Sprint(q.ID), "--moderator", "mo")
	run(t, dir, 1, "takedowns", "approve", fmt.Sprint(q.ID))
	out := run(t, dir, 0, "takedowns", "reject", fmt.Sprint(p.ID), "--confirm", "confirmed", "--moderator", "mo")
	if !strings.Contains(out, "confirmed in bank confirmed") {
		t.Fatalf("reject: %s", out)
	}
	json.Unmarshal([]byte(run(t, dir, 0, "takedowns", "list", "--json")), &list)
	if len(list.Held) != 0 || len(list.Decisions) != 4 {
		t.Fatalf("after decisions %+v", list)
	}
	kinds := ""
	for _, d := range list.Decisions {
		kinds += d.Kind + " "
	}
	if kinds != "confirm confirm reject approve " {
		t.Fatalf("decision kinds %q", kinds)
	}
	text := run(t, dir, 0, "takedowns")
	if !strings.Contains(text, "Held for review (0)") || !strings.Contains(text, "reject") {
		t.Fatalf("text listing:\n%s", text)
	}
	if bs := banks(t, dir); len(bs) != 1 || bs[0].Entries != 2 {
		t.Fatalf("confirmed bank %+v", bs)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	if out := run(t, dir, 0, "lists", "import", "--help"); !strings.Contains(out, "-name") {
		t.Fatalf("help: %s", out)
	}
	run(t, dir, 0, "--help")
	run(t, dir, 2)
	run(t, dir, 2, "lists", "frobnicate")
	run(t, dir, 2, "lists", "import", "x.txt")
	run(t, dir, 2, "lists", "import", "--name", "a", "--action", "delete", "x.txt")
	run(t, dir, 1, "lists", "import", "--name", "a", filepath.Join(dir, "missing.txt"))
	run(t, dir, 2, "takedowns", "approve", "abc")
}

func TestCSVQualityColumn(t *testing.T) {
	dir := serverDir(t)
	list := write(t, dir, "q.csv", "signal_type,signal,quality\npdq,"+pdqH(1)+",90\npdq,"+pdqH(2)+",30\nmd5,"+hexN(1, 32)+",\n")
	run(t, dir, 0, "lists", "import", "--name", "q", list)
	if got := matches(t, dir, []string{pdqH(1), pdqH(2)}); fmt.Sprint(got) != "[1 0]" {
		t.Fatalf("matches %v: the quality-30 hash should be ignored", got)
	}
	if exp := run(t, dir, 0, "lists", "export", "q", "--format", "csv"); !strings.Contains(exp, "quality:30") {
		t.Fatalf("export lost the quality tag:\n%s", exp)
	}
	bad := write(t, dir, "bad.csv", "signal_type,signal,quality\npdq,"+pdqH(3)+",high\n")
	if out := run(t, dir, 1, "lists", "import", "--name", "q", bad); !strings.Contains(out, "line 2") {
		t.Fatalf("bad quality: %s", out)
	}
}

// The commands never create a database: pointed at a directory without
// the server's databases they fail, say where they looked and how to point
// at the right place, and leave the directory as it was.
func TestNeverCreatesDatabases(t *testing.T) {
	dir := t.TempDir()
	list := write(t, t.TempDir(), "gifct.txt", "md5 "+hexN(1, 32)+"\n")
	for _, args := range [][]string{
		{"lists", "import", "--name", "gifct", list},
		{"lists", "list"},
		{"lists", "confirm", "--type", "md5", hexN(2, 32)},
		{"takedowns"},
		{"takedowns", "reject", "1"},
	} {
		out := run(t, dir, 1, args...)
		for _, want := range []string{dir, "--data DIR", "PARLEY_DATA", "never create"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: error %q does not say %q", args, out, want)
			}
		}
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("the commands created %v", names)
	}
	// With only the moderation database there, takedowns (which needs
	// both) does not create channels.db either.
	ms, err := modsqlite.Open(context.Background(), filepath.Join(dir, channelsrv.ModerationDB))
	if err != nil {
		t.Fatal(err)
	}
	ms.Close()
	if out := run(t, dir, 1, "takedowns"); !strings.Contains(out, channelsrv.ChannelsDB) {
		t.Errorf("takedowns without channels.db: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, channelsrv.ChannelsDB)); !os.IsNotExist(err) {
		t.Fatalf("takedowns created %s: %v", channelsrv.ChannelsDB, err)
	}
}
