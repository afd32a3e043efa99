package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// TestMain lets the test binary act as the spawned server or relay, as
// the real binary does (spawn re-executes os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && (os.Args[1] == "internal-serve" || os.Args[1] == "internal-relay") {
		main()
		return
	}
	os.Exit(m.Run())
}

func runJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	var out bytes.Buffer
	if code := run(context.Background(), append(args, "--json"), &out, io.Discard); code != 0 {
		t.Fatalf("parley-load %q exited %d", args, code)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.Bytes())
	}
	return &rep
}

// A small spawned run with every kind of traffic, an offline drain and
// the relay baseline: nothing acknowledged may be lost or duplicated.
func TestSpawnedRun(t *testing.T) {
	rep := runJSON(t, "--spawn", "--accounts", "6", "--devices", "2", "--groups", "2", "--group-size", "3",
		"--mix", "direct=3,group=2,attach=1", "--attach-size", "2000", "--rate", "200", "--duration", "1s",
		"--idle", "20", "--offline", "300", "--baseline")
	if rep.Acked == 0 || rep.Delivered == 0 || rep.Attachments == 0 {
		t.Fatalf("nothing happened: %+v", rep)
	}
	if rep.Errors != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Reordered != 0 {
		t.Fatalf("errors %d, lost %d, duplicated %d, reordered %d: %v", rep.Errors, rep.Lost, rep.Duplicated, rep.Reordered, rep.FirstErrors)
	}
	if rep.AckEvery != 100 || rep.AcksSent == 0 {
		t.Fatalf("receivers did not ack during the run: every %v ms, %d acks", rep.AckEvery, rep.AcksSent)
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
}
