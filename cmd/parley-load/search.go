package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The issue's capacity figure is "persisted 1:1 messages per second at
// p99 under 100 ms": not the rate a saturated server reaches (its queues
// then make p99 whatever the run's length allows) but the highest offered
// rate it keeps up with while 99 % of messages arrive within the target.
// --p99-under finds it by bisection: one saturated run gives an upper
// bound, then paced runs (--rate) halve the interval between the highest
// rate that passed and the lowest that failed. Every probe starts a fresh
// server (with --spawn), so no probe inherits another's backlog.

// RateSearch is the outcome of --p99-under.
type RateSearch struct {
	TargetP99Ms float64 `json:"target_p99_ms"`
	// Best is the highest delivered rate of a probe that passed; 0 if
	// none did.
	Best   float64 `json:"best_delivered_per_second"`
	Probes []Probe `json:"probes"`
	// Baseline is the same search through the bare relay (--baseline),
	// and Ratio parleyd's Best over the relay's.
	Baseline *RateSearch `json:"baseline,omitempty"`
	Ratio    float64     `json:"ratio_vs_baseline,omitempty"`
}

// Probe is one run of the search.
type Probe struct {
	Offered   float64 `json:"offered_per_second"` // 0: as fast as acks allow
	Delivered float64 `json:"delivered_per_second"`
	P99Ms     float64 `json:"p99_ms"`
	Lost      int64   `json:"lost"`
	Errors    int64   `json:"errors"`
	// ServerCPUUs is the server's CPU per delivered message (0 for a
	// server not spawned by this process).
	ServerCPUUs float64 `json:"server_cpu_us_per_message,omitempty"`
	Passed      bool    `json:"passed"`
	Why         string  `json:"why,omitempty"` // why it failed
}

// keptUp is the share of the offered rate a probe must deliver: below
// it the server fell behind, and its queue would grow without bound in a
// longer run even if this run's p99 stayed under the target.
const keptUp = 0.95

// judge decides whether a run met the target.
func judge(rep *Report, offered float64, target time.Duration) Probe {
	p := Probe{Offered: offered, Delivered: rep.DelivPerSec, P99Ms: rep.P99, Lost: rep.Lost, Errors: rep.Errors}
	if rep.Server != nil {
		p.ServerCPUUs = rep.Server.CPUPerMessageUs
	}
	limit := float64(target) / float64(time.Millisecond)
	switch {
	case rep.Lost > 0 || rep.Errors > 0:
		p.Why = fmt.Sprintf("%d lost, %d errors", rep.Lost, rep.Errors)
	case rep.Delivered == 0:
		p.Why = "nothing delivered"
	case rep.P99 > limit:
		p.Why = fmt.Sprintf("p99 %.1f ms over %.0f ms", rep.P99, limit)
	case offered > 0 && rep.DelivPerSec < keptUp*offered:
		p.Why = fmt.Sprintf("delivered %.0f/s of %.0f/s offered: fell behind", rep.DelivPerSec, offered)
	default:
		p.Passed = true
	}
	return p
}

// searchRate bisects the offered rate for the highest one run meets
// p99 <= target at. steps is the number of paced probes after the
// saturated one.
func searchRate(ctx context.Context, target time.Duration, steps int, progress io.Writer,
	run func(ctx context.Context, rate float64) (*Report, error)) (*RateSearch, error) {
	s := &RateSearch{TargetP99Ms: float64(target) / float64(time.Millisecond)}
	probe := func(rate float64) (Probe, error) {
		rep, err := run(ctx, rate)
		if err != nil {
			return Probe{}, err
		}
		p := judge(rep, rate, target)
		s.Probes = append(s.Probes, p)
		if p.Passed {
			s.Best = max(s.Best, p.Delivered)
		}
		verdict := "passed"
		if !p.Passed {
			verdict = "failed: " + p.Why
		}
		offered := "saturated"
		if rate > 0 {
			offered = fmt.Sprintf("%.0f/s offered", rate)
		}
		fmt.Fprintf(progress, "probe %d (%s): %.0f delivered/s, p99 %.1f ms: %s\n", len(s.Probes), offered, p.Delivered, p.P99Ms, verdict)
		return p, nil
	}
	sat, err := probe(0)
	if err != nil {
		return nil, err
	}
	if sat.Passed || sat.Delivered == 0 {
		// Saturated and still under the target (or broken): no rate to
		// search between.
		return s, nil
	}
	lo, hi := 0.0, sat.Delivered
	for range steps {
		mid := (lo + hi) / 2
		p, err := probe(mid)
		if err != nil {
			return nil, err
		}
		if p.Passed {
			lo = mid
		} else {
			hi = mid
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return s, nil
}

func (s *RateSearch) print(w io.Writer, what string) {
	fmt.Fprintf(w, "%s: highest rate with p99 under %.0f ms: %.0f delivered/s\n", what, s.TargetP99Ms, s.Best)
	for i, p := range s.Probes {
		offered := "saturated"
		if p.Offered > 0 {
			offered = fmt.Sprintf("%.0f/s", p.Offered)
		}
		verdict := "passed"
		if !p.Passed {
			verdict = p.Why
		}
		cpu := ""
		if p.ServerCPUUs > 0 {
			cpu = fmt.Sprintf(", server %.1f µs/msg", p.ServerCPUUs)
		}
		fmt.Fprintf(w, "  probe %d, offered %s: %.0f delivered/s, p99 %.1f ms%s: %s\n", i+1, offered, p.Delivered, p.P99Ms, cpu, verdict)
	}
}

// runSearch is run for --p99-under.
func runSearch(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	if cfg.rate > 0 || cfg.idle > 0 || cfg.offline > 0 || cfg.durableBaseline || cfg.searchSteps < 1 {
		fmt.Fprintln(stderr, "parley-load: --p99-under chooses --rate itself, needs --search-steps >= 1, and runs without --idle, --offline and --baseline-durable")
		return 2
	}
	withBaseline := cfg.baseline
	cfg.baseline = false
	s, err := searchRate(ctx, cfg.p99Under, cfg.searchSteps, stderr, func(ctx context.Context, rate float64) (*Report, error) {
		c := cfg
		c.rate = rate
		return runLoad(ctx, c, io.Discard)
	})
	if err != nil {
		fmt.Fprintln(stderr, "parley-load:", err)
		return 1
	}
	if withBaseline {
		b, err := searchRate(ctx, cfg.p99Under, cfg.searchSteps, stderr, func(ctx context.Context, rate float64) (*Report, error) {
			c := cfg
			c.rate = rate
			return runRelay(ctx, c, io.Discard, false)
		})
		if err != nil {
			fmt.Fprintln(stderr, "parley-load: baseline:", err)
			return 1
		}
		s.Baseline = b
		if b.Best > 0 {
			s.Ratio = s.Best / b.Best
		}
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return 0
	}
	s.print(stdout, "parleyd")
	if b := s.Baseline; b != nil {
		b.print(stdout, "bare relay")
		fmt.Fprintf(stdout, "parleyd / relay at p99 under %.0f ms: %.2f\n", s.TargetP99Ms, s.Ratio)
	}
	return 0
}
