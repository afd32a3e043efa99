package moderation_test

import (
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/moderation"
)

// The case state machine both stores apply (the contract suite runs it
// through each store; this pins every transition, allowed or not).
func TestNextCaseState(t *testing.T) {
	m := moderation.KindReport
	h := moderation.KindHold
	for _, tc := range []struct {
		kind, state, action string
		want                string
		err                 error
	}{
		{m, moderation.CaseOpen, moderation.ActionWarn, moderation.CaseDecided, nil},
		{m, moderation.CaseDecided, "appeal", moderation.CaseAppealed, nil},
		{m, moderation.CaseAppealed, moderation.ActionDismiss, moderation.CaseClosed, nil},
		{m, moderation.CaseOpen, "appeal", "", moderation.ErrCaseState},
		{m, moderation.CaseDecided, moderation.ActionBan, "", moderation.ErrCaseState},
		{m, moderation.CaseAppealed, "appeal", "", moderation.ErrCaseState}, // one appeal only
		{m, moderation.CaseClosed, moderation.ActionWarn, "", moderation.ErrCaseState},
		{m, moderation.CaseOpen, moderation.ActionRelease, "", moderation.ErrAction},
		{m, moderation.CaseOpen, "smite", "", moderation.ErrAction},
		{h, moderation.CaseOpen, moderation.ActionRemovePost, moderation.CaseClosed, nil},
		{h, moderation.CaseOpen, moderation.ActionBan, "", moderation.ErrAction},
		{h, moderation.CaseClosed, "appeal", "", moderation.ErrCaseState},
		{h, moderation.CaseClosed, moderation.ActionRelease, "", moderation.ErrCaseState},
	} {
		got, err := moderation.NextCaseState(tc.kind, tc.state, tc.action)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("NextCaseState(%s, %s, %s) = %q, %v; want %q, %v", tc.kind, tc.state, tc.action, got, err, tc.want, tc.err)
		}
	}
}

// CheckCaseEvent refuses an action no case takes, keeps a given time and
// stamps a zero one; the contract suite (modtest) checks the stores use it.
func TestCheckCaseEvent(t *testing.T) {
	if _, err := moderation.CheckCaseEvent(moderation.CaseEvent{Action: "explode"}); !errors.Is(err, moderation.ErrAction) {
		t.Fatalf("unknown action: err = %v, want ErrAction", err)
	}
	at := time.Unix(1700000000, 0)
	for _, action := range []string{"appeal", "warn", moderation.HoldActions[0]} {
		e, err := moderation.CheckCaseEvent(moderation.CaseEvent{Action: action, Time: at})
		if err != nil || !e.Time.Equal(at) {
			t.Fatalf("%s: %v, %v; want the given time and no error", action, e.Time, err)
		}
	}
	before := time.Now()
	e, err := moderation.CheckCaseEvent(moderation.CaseEvent{Action: "warn"})
	if err != nil || e.Time.Before(before) {
		t.Fatalf("zero time: %v, %v; want now", e.Time, err)
	}
}

func TestPageLimit(t *testing.T) {
	for _, tc := range []struct{ limit, def, want int }{{0, 100, 100}, {-3, 1000, 1000}, {7, 100, 7}} {
		if got := moderation.PageLimit(tc.limit, tc.def); got != tc.want {
			t.Errorf("PageLimit(%d, %d) = %d, want %d", tc.limit, tc.def, got, tc.want)
		}
	}
}
