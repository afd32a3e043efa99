package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
)

// TestMain lets the test binary act as the spawned server or relay, as
// the real binary does (spawn re-executes os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && strings.HasPrefix(os.Args[1], "internal-") {
		main()
		return
	}
	// pgtest.Main stops the PostgreSQL server TestSpawnedCluster starts.
	os.Exit(pgtest.Main(m))
}

// Two spawned nodes on one PostgreSQL database, joined by a spawned NATS
// server, accounts spread over both: 1:1 messages cross nodes, and
// nothing acknowledged is lost, duplicated or reordered.
func TestSpawnedCluster(t *testing.T) {
	rep := runJSON(t, "--spawn", "--db", pgtest.DB(t), "--nodes", "2", "--accounts", "8", "--devices", "2", "--groups", "2", "--group-size", "4",
		"--mix", "direct=3,group=2", "--rate", "200", "--duration", "1s", "--offline", "100")
	if rep.Nodes != 2 || !strings.Contains(rep.Store, "PostgreSQL") {
		t.Fatalf("store %q on %d nodes", rep.Store, rep.Nodes)
	}
	if rep.Acked == 0 || rep.Delivered == 0 {
		t.Fatalf("nothing happened: %+v", rep)
	}
	if rep.Errors != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Reordered != 0 {
		t.Fatalf("errors %d, lost %d, duplicated %d, reordered %d: %v", rep.Errors, rep.Lost, rep.Duplicated, rep.Reordered, rep.FirstErrors)
	}
	if rep.Drain == nil || rep.Drain.Drained != 100 {
		t.Fatalf("drain: %+v", rep.Drain)
	}
	// Half the recipients are on the other node: without NATS they would
	// find their messages only in the final fetch.
	if rep.ByFetch*10 > rep.Delivered {
		t.Fatalf("%d of %d deliveries by the final fetch: pushes did not cross nodes", rep.ByFetch, rep.Delivered)
	}
}

func runJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	var rep Report
	runJSONInto(t, &rep, args...)
	return &rep
}

// runJSONInto runs parley-load with --json and decodes its output into v.
func runJSONInto(t *testing.T, v any, args ...string) {
	t.Helper()
	var out bytes.Buffer
	if code := run(context.Background(), append(args, "--json"), &out, io.Discard); code != 0 {
		t.Fatalf("parley-load %q exited %d", args, code)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("report: %v\n%s", err, out.Bytes())
	}
}

// A small spawned run with every kind of traffic, an offline drain and
// the relay baseline: nothing acknowledged may be lost or duplicated.
func TestSpawnedRun(t *testing.T) {
	rep := runJSON(t, "--spawn", "--accounts", "6", "--devices", "2", "--groups", "2", "--group-size", "3",
		"--mix", "direct=3,group=2,attach=1", "--attach-size", "2000", "--rate", "200", "--duration", "1s",
		"--idle", "20", "--offline", "300", "--baseline", "--baseline-durable")
	if rep.Acked == 0 || rep.Delivered == 0 || rep.Attachments == 0 {
		t.Fatalf("nothing happened: %+v", rep)
	}
	if rep.Errors != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Reordered != 0 {
		t.Fatalf("errors %d, lost %d, duplicated %d, reordered %d: %v", rep.Errors, rep.Lost, rep.Duplicated, rep.Reordered, rep.FirstErrors)
	}
	if rep.AckEvery != 100 || rep.AcksSent == 0 {
		t.Fatalf("receivers did not ack during the run: every %v ms, %d acks", rep.AckEvery, rep.AcksSent)
	}
	// Every device acknowledges what it has, its own messages included,
	// so the server trims its log during the run: the catch-up finds
	// little. (When conversations' creators never acknowledged, it
	// fetched nearly everything and the server never trimmed.)
	if rep.CatchUp > rep.Acked/3 {
		t.Fatalf("the catch-up fetched %d of %d acknowledged messages: devices did not acknowledge during the run", rep.CatchUp, rep.Acked)
	}
	if rep.Server == nil || rep.Server.RSSMiB <= 0 {
		t.Fatalf("no server figures: %+v", rep.Server)
	}
	if rep.Idle == nil || rep.Idle.Connections != 20 || rep.Idle.Failed != 0 {
		t.Fatalf("idle: %+v", rep.Idle)
	}
	if rep.Drain == nil || rep.Drain.Drained != 300 {
		t.Fatalf("drain: %+v", rep.Drain)
	}
	if rep.Baseline == nil || rep.Baseline.Delivered == 0 || rep.Ratio <= 0 {
		t.Fatalf("baseline: %+v", rep.Baseline)
	}
	if b := rep.DurableBaseline; b == nil || b.Delivered == 0 || b.Lost != 0 || rep.DurableRatio <= 0 || !strings.Contains(b.Payloads, "fdatasync") {
		t.Fatalf("durable baseline: %+v", b)
	}
}

// With --tls the spawned server speaks TLS 1.3 and the devices trust its
// throwaway certificate; traffic and idle connections work as on plain
// sockets.
func TestSpawnedRunTLS(t *testing.T) {
	rep := runJSON(t, "--spawn", "--tls", "--accounts", "4", "--rate", "200", "--duration", "1s", "--idle", "10", "--idle-settle", "300ms")
	if !strings.Contains(rep.Transport, "TLS 1.3") {
		t.Fatalf("transport %q", rep.Transport)
	}
	if rep.Delivered == 0 || rep.Errors != 0 || rep.Lost != 0 || rep.Duplicated != 0 {
		t.Fatalf("delivered %d, errors %d, lost %d, duplicated %d: %v", rep.Delivered, rep.Errors, rep.Lost, rep.Duplicated, rep.FirstErrors)
	}
	if rep.Idle == nil || rep.Idle.Connections != 10 || rep.Idle.Failed != 0 || rep.Idle.SettleSeconds != 0.3 {
		t.Fatalf("idle: %+v", rep.Idle)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--spawn", "--tls", "--baseline"}, &out, &out); code != 2 || !strings.Contains(out.String(), "without --tls") {
		t.Fatalf("--tls --baseline: exit %d: %s", code, out.String())
	}
}

// --help explains what the tool does and shows examples, on stdout.
func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{"load generator", "Examples", "--spawn", "-tls", "-inflight"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
	if errb.Len() != 0 {
		t.Errorf("--help wrote to stderr: %s", errb.String())
	}
}

// With --mls every delivery was decrypted by its recipient's MLS group:
// a message that fails to open counts as an error and not as delivered.
func TestSpawnedRunMLS(t *testing.T) {
	rep := runJSON(t, "--spawn", "--mls", "--accounts", "4", "--devices", "2", "--groups", "1", "--group-size", "3",
		"--mix", "direct=1,group=1", "--inflight", "3", "--rate", "200", "--duration", "1s", "--offline", "200")
	if !strings.Contains(rep.Payloads, "real MLS") {
		t.Fatalf("payloads: %q", rep.Payloads)
	}
	if rep.Acked == 0 || rep.Delivered != rep.Expected || rep.Errors != 0 || rep.Duplicated != 0 {
		t.Fatalf("acked %d, delivered %d of %d, errors %d (%v), duplicated %d", rep.Acked, rep.Delivered, rep.Expected, rep.Errors, rep.FirstErrors, rep.Duplicated)
	}
	if rep.Drain == nil || rep.Drain.Drained != 200 {
		t.Fatalf("drain: %+v", rep.Drain)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--spawn", "--mls", "--baseline"}, &out, &out); code != 2 || !strings.Contains(out.String(), "without --mls") {
		t.Fatalf("--mls --baseline: exit %d, %q; want 2 and a hint", code, out.String())
	}
}

// The decrypting path refuses what is not a message of the group.
func TestMLSDeviceRefusesGarbage(t *testing.T) {
	a, err := newMLSDevice("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := newMLSDevice("b")
	if err != nil {
		t.Fatal(err)
	}
	cv := &conversation{id: []byte("conv"), members: []*device{{mls: a}, {mls: b}}}
	if _, _, err := createMLSGroup(cv); err != nil {
		t.Fatal(err)
	}
	ct, epoch, err := a.encrypt(cv.id, []byte("hello, bob"))
	if err != nil || epoch != 1 {
		t.Fatalf("encrypt: epoch %d, %v", epoch, err)
	}
	if pt, err := b.decrypt(cv.id, ct); err != nil || string(pt) != "hello, bob" {
		t.Fatalf("decrypt: %q, %v", pt, err)
	}
	if _, err := b.decrypt(cv.id, ct); err == nil {
		t.Fatal("a replayed message decrypted twice")
	}
	if _, err := b.decrypt(cv.id, []byte("not mls")); err == nil {
		t.Fatal("garbage decrypted")
	}
	if _, err := b.decrypt([]byte("other"), ct); err == nil {
		t.Fatal("a message decrypted in a conversation the device is not in")
	}
}
