package moderation_test

import (
	"errors"
	"testing"

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
