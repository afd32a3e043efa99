package moderation

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CaseMetrics are the moderation queue's numbers, as the console's
// dashboard shows them and /metrics exports them.
type CaseMetrics struct {
	// Open counts open cases of every kind, OpenHolds the held channel
	// posts among them; Appealed the appeals waiting.
	Open, OpenHolds, Appealed int
	// Decisions by action (dismiss, warn, suspend, ban, release,
	// remove_post, remove_channel), appeals decided included.
	Decisions map[string]int
	// Time from a report case's first report to its first decision, over
	// the decided report cases (nearest rank).
	P50, P95 time.Duration
	Decided  int
	WaitSum  time.Duration // the sum of those times
}

// ComputeCaseMetrics computes the metrics from cases (with their events).
func ComputeCaseMetrics(cases []Case) CaseMetrics {
	m := CaseMetrics{Decisions: map[string]int{}}
	var waits []time.Duration
	for _, c := range cases {
		switch c.State {
		case CaseOpen:
			m.Open++
			if c.Kind == KindHold {
				m.OpenHolds++
			}
		case CaseAppealed:
			m.Appealed++
		}
		first := c.Kind != KindHold
		for _, e := range c.Events {
			if e.Action == "appeal" {
				continue
			}
			m.Decisions[e.Action]++
			if first {
				waits = append(waits, e.Time.Sub(c.Opened))
				m.WaitSum += e.Time.Sub(c.Opened)
				first = false
			}
		}
	}
	m.Decided = len(waits)
	if len(waits) > 0 {
		slices.Sort(waits)
		rank := func(p int) time.Duration { return waits[max(0, (p*len(waits)+99)/100-1)] }
		m.P50, m.P95 = rank(50), rank(95)
	}
	return m
}

// MetricsCases is how many of the latest cases the metrics read at most
// (with case retention, the store holds few more).
const MetricsCases = 10000

// CaseCollector exports CaseMetrics to Prometheus, reading the store at
// each scrape (so that decisions made with "parleyd admin cases decide"
// in another process count too).
type CaseCollector struct {
	store                               Store
	open, appealed, decisions, firstDec *prometheus.Desc
}

// NewCaseCollector returns a collector over store; register it on the
// server's registry.
func NewCaseCollector(store Store) *CaseCollector {
	return &CaseCollector{store: store,
		open: prometheus.NewDesc("parleyd_moderation_cases_open",
			"Moderation cases waiting for a first decision, by kind (report: abuse reports; hold: channel posts held by a review list).", []string{"kind"}, nil),
		appealed: prometheus.NewDesc("parleyd_moderation_cases_appealed",
			"Decided report cases whose appeal waits for a lead.", nil, nil),
		decisions: prometheus.NewDesc("parleyd_moderation_case_decisions",
			"Decisions on the cases the server keeps, by action (appeals decided included).", []string{"action"}, nil),
		firstDec: prometheus.NewDesc("parleyd_moderation_report_to_first_decision_seconds",
			"Time from a report case's first report to its first decision, over the decided report cases kept.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *CaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.appealed
	ch <- c.decisions
	ch <- c.firstDec
}

// Collect implements prometheus.Collector. A store that fails yields no
// samples (and an invalid metric, which the scrape reports).
func (c *CaseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := c.store.Cases(ctx, "", MetricsCases)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.open, err)
		return
	}
	m := ComputeCaseMetrics(cs)
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(m.Open-m.OpenHolds), KindReport)
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(m.OpenHolds), KindHold)
	ch <- prometheus.MustNewConstMetric(c.appealed, prometheus.GaugeValue, float64(m.Appealed))
	for _, a := range append(slices.Clone(Actions), HoldActions...) {
		ch <- prometheus.MustNewConstMetric(c.decisions, prometheus.GaugeValue, float64(m.Decisions[a]), a)
	}
	ch <- prometheus.MustNewConstSummary(c.firstDec, uint64(m.Decided), m.WaitSum.Seconds(),
		map[float64]float64{0.5: m.P50.Seconds(), 0.95: m.P95.Seconds()})
}
