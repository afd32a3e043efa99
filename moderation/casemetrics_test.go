package moderation_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

func TestComputeCaseMetrics(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var cs []moderation.Case
	for i := 1; i <= 20; i++ {
		cs = append(cs, moderation.Case{Kind: moderation.KindReport, Opened: t0, State: moderation.CaseClosed, Events: []moderation.CaseEvent{
			{Time: t0.Add(time.Duration(i) * time.Minute), Action: moderation.ActionWarn},
			{Time: t0.Add(time.Hour), Action: "appeal"}, {Time: t0.Add(2 * time.Hour), Action: moderation.ActionDismiss}}})
	}
	// A hold decided after a day does not count in the report-to-decision
	// times, but its decision counts by kind.
	cs = append(cs, moderation.Case{Kind: moderation.KindHold, Opened: t0, State: moderation.CaseClosed,
		Events: []moderation.CaseEvent{{Time: t0.Add(24 * time.Hour), Action: moderation.ActionRelease}}})
	cs = append(cs, moderation.Case{Kind: moderation.KindReport, Opened: t0, State: moderation.CaseOpen},
		moderation.Case{Kind: moderation.KindHold, Opened: t0, State: moderation.CaseOpen})
	m := moderation.ComputeCaseMetrics(cs)
	if m.Open != 2 || m.OpenHolds != 1 || m.Decided != 20 || m.P50 != 10*time.Minute || m.P95 != 19*time.Minute ||
		m.Decisions["warn"] != 20 || m.Decisions["dismiss"] != 20 || m.Decisions["release"] != 1 || m.WaitSum != 210*time.Minute {
		t.Fatalf("%+v", m)
	}
}

// /metrics carries the queue: open cases by kind, decisions by action and
// report-to-first-decision quantiles, read from the store at the scrape.
func TestCaseCollector(t *testing.T) {
	ctx := context.Background()
	st, err := modsqlite.Open(ctx, filepath.Join(t.TempDir(), "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(moderation.NewCaseCollector(st))
	now := time.Now().Truncate(time.Millisecond)
	msg := func(tag string) []moderation.CaseMessage {
		return []moderation.CaseMessage{{Tag: []byte(tag), Conversation: []byte("c"), SenderUser: "m", SenderDevice: "d", Accepted: now, Content: []byte("x"), Salt: []byte("s"), Frank: []byte("f")}}
	}
	a, _ := st.FileReport(ctx, moderation.CaseReport{Reporter: "r", Reason: "spam", Received: now}, "m", msg("a"))
	st.FileReport(ctx, moderation.CaseReport{Reporter: "r", Reason: "spam", Received: now}, "n", msg("b"))
	st.FileHold(ctx, moderation.Hold{Post: 1, Channel: "c", Author: "p"}, now)
	if _, err := st.ActOnCase(ctx, a, moderation.CaseEvent{Time: now.Add(90 * time.Second), Action: moderation.ActionWarn, Moderator: "mod", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "{" + l.GetValue() + "}"
			}
			switch {
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Summary != nil:
				got[key+"_count"] = float64(m.GetSummary().GetSampleCount())
				got[key+"_sum"] = m.GetSummary().GetSampleSum()
				for _, q := range m.GetSummary().Quantile {
					got[fmt.Sprintf("%s{%g}", key, q.GetQuantile())] = q.GetValue()
				}
			}
		}
	}
	for k, v := range map[string]float64{
		"parleyd_moderation_cases_open{hold}": 1, "parleyd_moderation_cases_open{report}": 1, "parleyd_moderation_cases_appealed": 0,
		"parleyd_moderation_case_decisions{warn}": 1, "parleyd_moderation_case_decisions{ban}": 0, "parleyd_moderation_case_decisions{release}": 0,
		"parleyd_moderation_report_to_first_decision_seconds_count": 1, "parleyd_moderation_report_to_first_decision_seconds_sum": 90,
		"parleyd_moderation_report_to_first_decision_seconds{0.5}": 90, "parleyd_moderation_report_to_first_decision_seconds{0.95}": 90,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
