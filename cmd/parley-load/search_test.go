package main

import (
	"context"
	"io"
	"math"
	"testing"
	"time"
)

// A server that keeps p99 under 100 ms up to 700 messages/s and
// saturates at 1 000: the search must end between 700 × (1 - 2^-steps)
// and 700, never above, and never report a failed probe's rate.
func TestSearchRateBisects(t *testing.T) {
	const knee, saturated = 700.0, 1000.0
	fake := func(_ context.Context, rate float64) (*Report, error) {
		rep := &Report{Delivered: 1}
		switch {
		case rate == 0:
			rep.DelivPerSec, rep.P99 = saturated, 450
		case rate <= knee:
			rep.DelivPerSec, rep.P99 = rate, 20
		default:
			rep.DelivPerSec, rep.P99 = rate, 180
		}
		return rep, nil
	}
	s, err := searchRate(context.Background(), 100*time.Millisecond, 8, io.Discard, fake)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Probes) != 9 || s.Probes[0].Passed {
		t.Fatalf("probes %+v: want a failed saturated run and 8 paced ones", s.Probes)
	}
	if low := knee - saturated/math.Pow(2, 8); s.Best > knee || s.Best < low {
		t.Fatalf("best %.1f/s, want within [%.1f, %.0f]", s.Best, low, knee)
	}
	for _, p := range s.Probes {
		if p.Passed != (p.Offered > 0 && p.Offered <= knee) {
			t.Fatalf("probe %+v judged wrongly", p)
		}
	}
}

func TestJudge(t *testing.T) {
	target := 100 * time.Millisecond
	for _, c := range []struct {
		name    string
		rep     Report
		offered float64
		pass    bool
	}{
		{"under target", Report{Delivered: 10, DelivPerSec: 500, P99: 40}, 500, true},
		{"saturated under target", Report{Delivered: 10, DelivPerSec: 900, P99: 99}, 0, true},
		{"p99 over", Report{Delivered: 10, DelivPerSec: 500, P99: 101}, 500, false},
		{"a message lost", Report{Delivered: 10, DelivPerSec: 500, P99: 40, Lost: 1}, 500, false},
		{"errors", Report{Delivered: 10, DelivPerSec: 500, P99: 40, Errors: 3}, 500, false},
		{"fell behind", Report{Delivered: 10, DelivPerSec: 400, P99: 40}, 500, false},
		{"nothing delivered", Report{}, 500, false},
	} {
		if p := judge(&c.rep, c.offered, target); p.Passed != c.pass {
			t.Errorf("%s: passed %v (%s), want %v", c.name, p.Passed, p.Why, c.pass)
		}
	}
}

// End to end on a spawned server and relay: the search runs, every
// probe delivers without loss, and the answer is a rate a probe passed
// at.
func TestP99UnderSpawned(t *testing.T) {
	var s RateSearch
	runJSONInto(t, &s, "--spawn", "--accounts", "8", "--duration", "1s", "--p99-under", "2s", "--search-steps", "1", "--baseline")
	if s.TargetP99Ms != 2000 || len(s.Probes) == 0 || s.Baseline == nil || len(s.Baseline.Probes) == 0 {
		t.Fatalf("search %+v", s)
	}
	for _, p := range append(s.Probes, s.Baseline.Probes...) {
		if p.Lost != 0 || p.Errors != 0 {
			t.Fatalf("probe %+v lost messages", p)
		}
	}
	found := false
	for _, p := range s.Probes {
		found = found || (p.Passed && p.Delivered == s.Best)
	}
	if !found || s.Best == 0 || s.Ratio <= 0 {
		t.Fatalf("best %.0f, ratio %.2f not from a passed probe: %+v", s.Best, s.Ratio, s.Probes)
	}
}

// The search picks --rate itself; flags that fight it are refused.
func TestP99UnderRefusesConflictingFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--spawn", "--p99-under", "100ms", "--rate", "50"},
		{"--spawn", "--p99-under", "100ms", "--offline", "10"},
		{"--spawn", "--p99-under", "100ms", "--search-steps", "0"},
	} {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
