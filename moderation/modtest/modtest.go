// Package modtest is the contract suite every moderation.Store backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty
// store:
//
//	func TestContract(t *testing.T) {
//		modtest.Run(t, func(t *testing.T) moderation.Store { ... })
//	}
package modtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/moderation"
)

// Run runs the contract suite; it closes each store at the end of its
// subtest.
func Run(t *testing.T, newStore func(t *testing.T) moderation.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s moderation.Store)
	}{
		{"ImportIdempotent", testImportIdempotent},
		{"ImportRemovesWithdrawn", testImportRemovesWithdrawn},
		{"ImportRefusesInvalid", testImportRefusesInvalid},
		{"ApplyDeltaCheckpoint", testApplyDelta},
		{"RemoveBank", testRemoveBank},
		{"ChangesPerBank", testChangesPerBank},
		{"Position", testPosition},
		{"PublishToken", testPublishToken},
		{"Decisions", testDecisions},
		{"Cases", testCases},
		{"Holds", testHolds},
		{"Moderators", testModerators},
		{"ConsoleSessions", testConsoleSessions},
		{"TOTPStep", testTOTPStep},
		{"LoginFailures", testLoginFailures},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// Entry returns a valid entry of type t whose value is derived from n.
func Entry(t hashlist.SignalType, n int, tags ...string) hashlist.Entry {
	v := fmt.Sprintf("%0*x", t.HexLen(), n)
	e, err := hashlist.NewEntry(t, v, tags)
	if err != nil {
		panic(err)
	}
	return e
}

func meta(name string) moderation.Bank {
	return moderation.Bank{Name: name, Source: "test", Label: "terrorist content", Tags: []string{"tvec"}, Action: hashlist.Block}
}

func testImportIdempotent(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	entries := []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.MD5, 2), Entry(hashlist.SHA256, 3, "ideology:x")}
	b, d, err := s.ImportBank(ctx, meta("a"), entries)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 1 || b.Entries != 3 || len(d.Added) != 3 {
		t.Fatalf("first import: version %d, %d entries, diff %+v", b.Version, b.Entries, d)
	}
	seq1, _ := s.LastChange(ctx)
	b, d, err = s.ImportBank(ctx, meta("a"), slices.Clone(entries))
	if err != nil {
		t.Fatal(err)
	}
	seq2, _ := s.LastChange(ctx)
	if b.Version != 1 || !d.Empty() || seq1 != seq2 || seq1 == 0 {
		t.Fatalf("second import changed something: version %d, diff %+v, seq %d→%d", b.Version, d, seq1, seq2)
	}
	got, err := s.Entries(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Type != hashlist.SHA256 || !slices.Equal(got[2].Tags, []string{"ideology:x"}) {
		t.Fatalf("entries: %+v", got)
	}
	if b.Label != "terrorist content" || b.Action != hashlist.Block || !slices.Equal(b.Tags, []string{"tvec"}) {
		t.Fatalf("metadata: %+v", b)
	}
}

func testImportRemovesWithdrawn(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	if _, _, err := s.ImportBank(ctx, meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.PDQ, 2)}); err != nil {
		t.Fatal(err)
	}
	since, _ := s.LastChange(ctx)
	b, d, err := s.ImportBank(ctx, meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 2), Entry(hashlist.PDQ, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 2 || b.Entries != 2 || len(d.Added) != 1 || len(d.Removed) != 1 {
		t.Fatalf("version %d entries %d diff %+v", b.Version, b.Entries, d)
	}
	cs, err := s.Changes(ctx, "", since, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, c := range cs {
		ops = append(ops, string(c.Op)+" "+c.Entry.Value[62:])
	}
	want := []string{"delete 01", "upsert 03"}
	if !slices.Equal(ops, want) {
		t.Fatalf("change log %v, want %v", ops, want)
	}
}

func testImportRefusesInvalid(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	good := []hashlist.Entry{Entry(hashlist.PDQ, 1)}
	if _, _, err := s.ImportBank(ctx, meta("a"), good); err != nil {
		t.Fatal(err)
	}
	seq, _ := s.LastChange(ctx)
	bad := []struct {
		name    string
		meta    moderation.Bank
		entries []hashlist.Entry
	}{
		{"duplicate", meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 5), Entry(hashlist.PDQ, 5)}},
		{"bad hash", meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 6), {Type: hashlist.PDQ, Value: "zz"}}},
		{"bad action", moderation.Bank{Name: "a", Action: "delete"}, good},
		{"empty name", moderation.Bank{Action: hashlist.Block}, good},
	}
	for _, tc := range bad {
		if _, _, err := s.ImportBank(ctx, tc.meta, tc.entries); !errors.Is(err, moderation.ErrBadBank) {
			t.Errorf("%s: err %v, want ErrBadBank", tc.name, err)
		}
	}
	b, err := s.Bank(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.LastChange(ctx)
	if b.Entries != 1 || b.Version != 1 || after != seq {
		t.Fatalf("refused imports changed the bank: %+v, seq %d→%d", b, seq, after)
	}
}

func testApplyDelta(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	d := hashlist.Delta{Added: []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.MD5, 1)}}
	b, err := s.ApplyDelta(ctx, meta("x"), d, "7")
	if err != nil {
		t.Fatal(err)
	}
	if b.Checkpoint != "7" || b.Entries != 2 || b.Version != 1 {
		t.Fatalf("after first page: %+v", b)
	}
	// A retried page changes nothing but may move the checkpoint.
	if b, err = s.ApplyDelta(ctx, meta("x"), d, "7"); err != nil || b.Version != 1 {
		t.Fatalf("retried page: %+v, %v", b, err)
	}
	d2 := hashlist.Delta{Removed: []hashlist.Entry{Entry(hashlist.MD5, 1), Entry(hashlist.SHA256, 9)}}
	if b, err = s.ApplyDelta(ctx, meta("x"), d2, "9"); err != nil {
		t.Fatal(err)
	}
	if b.Checkpoint != "9" || b.Entries != 1 || b.Version != 2 {
		t.Fatalf("after deletion page: %+v", b)
	}
	bad := hashlist.Delta{Added: []hashlist.Entry{{Type: hashlist.MD5, Value: "nothex"}}}
	if _, err := s.ApplyDelta(ctx, meta("x"), bad, "10"); !errors.Is(err, moderation.ErrBadBank) {
		t.Fatalf("bad entry: %v", err)
	}
	if b, _ = s.Bank(ctx, "x"); b.Checkpoint != "9" {
		t.Fatalf("refused page moved the checkpoint to %q", b.Checkpoint)
	}
}

func testRemoveBank(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	if _, _, err := s.ImportBank(ctx, meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.MD5, 2)}); err != nil {
		t.Fatal(err)
	}
	since, _ := s.LastChange(ctx)
	if err := s.RemoveBank(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bank(ctx, "a"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("removed bank: %v", err)
	}
	if _, err := s.Entries(ctx, "a"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("entries of removed bank: %v", err)
	}
	cs, _ := s.Changes(ctx, "", since, 0)
	if len(cs) != 2 || cs[0].Op != moderation.OpDelete || cs[1].Op != moderation.OpDelete {
		t.Fatalf("removal log: %+v", cs)
	}
	if err := s.RemoveBank(ctx, "a"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("second removal: %v", err)
	}
}

func testChangesPerBank(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	s.ImportBank(ctx, meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 1)})
	s.ImportBank(ctx, meta("b"), []hashlist.Entry{Entry(hashlist.PDQ, 2), Entry(hashlist.PDQ, 3)})
	s.ImportBank(ctx, meta("a"), []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.PDQ, 4)})
	all, err := s.Changes(ctx, "", 0, 0)
	if err != nil || len(all) != 4 {
		t.Fatalf("all changes: %d, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("sequence not increasing: %+v", all)
		}
	}
	a, _ := s.Changes(ctx, "a", 0, 0)
	if len(a) != 2 || a[0].Bank != "a" || a[1].Entry.Key() != all[3].Entry.Key() {
		t.Fatalf("bank a changes: %+v", a)
	}
	page, _ := s.Changes(ctx, "", all[0].Seq, 2)
	if len(page) != 2 || page[0].Seq != all[1].Seq {
		t.Fatalf("paged changes: %+v", page)
	}
	last, _ := s.LastChange(ctx)
	if last != all[3].Seq {
		t.Fatalf("LastChange %d, want %d", last, all[3].Seq)
	}
}

// testPosition checks that Position moves with every change a matcher
// must apply (entries, and a bank's existence, label and action) and
// stays put when nothing changed.
func testPosition(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	pos := func() moderation.Position {
		t.Helper()
		p, err := s.Position(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p0 := pos()
	entries := []hashlist.Entry{Entry(hashlist.PDQ, 1), Entry(hashlist.MD5, 2)}
	if _, _, err := s.ImportBank(ctx, meta("a"), entries); err != nil {
		t.Fatal(err)
	}
	p1 := pos()
	if last, _ := s.LastChange(ctx); p1.Change != last || p1.Change <= p0.Change || p1.Meta <= p0.Meta {
		t.Fatalf("after creating a bank: %+v (was %+v, last change %d)", p1, p0, last)
	}
	if !p1.Covers(p0) || p0.Covers(p1) {
		t.Fatalf("Covers: %+v vs %+v", p1, p0)
	}
	// The same import again changes nothing.
	s.ImportBank(ctx, meta("a"), slices.Clone(entries))
	if p := pos(); p != p1 {
		t.Fatalf("unchanged import moved the position: %+v -> %+v", p1, p)
	}
	// Only the action changes: no entry is logged, but Meta moves.
	m := meta("a")
	m.Action = hashlist.Review
	s.ImportBank(ctx, m, slices.Clone(entries))
	p2 := pos()
	if p2.Change != p1.Change || p2.Meta <= p1.Meta {
		t.Fatalf("action change: %+v -> %+v", p1, p2)
	}
	m.Label = "another label"
	if _, err := s.ApplyDelta(ctx, m, hashlist.Delta{}, "cp"); err != nil {
		t.Fatal(err)
	}
	p3 := pos()
	if p3.Change != p2.Change || p3.Meta <= p2.Meta {
		t.Fatalf("label change: %+v -> %+v", p2, p3)
	}
	// Decisions and publishing are not bank changes.
	s.RecordDecision(ctx, moderation.Decision{Kind: moderation.DecisionBlock, Subject: "x"})
	s.SetPublishToken(ctx, "a", []byte("t"))
	if p := pos(); p != p3 {
		t.Fatalf("decision or publish token moved the position: %+v -> %+v", p3, p)
	}
	if err := s.RemoveBank(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if p := pos(); p.Change <= p3.Change || p.Meta <= p3.Meta {
		t.Fatalf("removal: %+v -> %+v", p3, p)
	}
}

func testPublishToken(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	if err := s.SetPublishToken(ctx, "nope", []byte("x")); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("unknown bank: %v", err)
	}
	s.ImportBank(ctx, meta("a"), nil)
	if _, err := s.PublishToken(ctx, "a"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("unpublished bank: %v", err)
	}
	tok := make([]byte, 32)
	tok[0] = 7
	if err := s.SetPublishToken(ctx, "a", tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.PublishToken(ctx, "a")
	if err != nil || !slices.Equal(got, tok) {
		t.Fatalf("PublishToken = %x, %v", got, err)
	}
	s.SetPublishToken(ctx, "a", nil)
	if _, err := s.PublishToken(ctx, "a"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("unpublished again: %v", err)
	}
}

func testDecisions(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	for i := range 3 {
		d := moderation.Decision{Kind: moderation.DecisionBlock, Bank: "a", Type: hashlist.PDQ, Hash: Entry(hashlist.PDQ, i).Value, Distance: i, Subject: fmt.Sprintf("post:%d", i%2)}
		if _, err := s.RecordDecision(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Decisions(ctx, "", 0)
	if err != nil || len(all) != 3 || all[0].Distance != 2 || all[0].Time.IsZero() {
		t.Fatalf("decisions: %+v, %v", all, err)
	}
	p0, _ := s.Decisions(ctx, "post:0", 0)
	if len(p0) != 2 || p0[0].Subject != "post:0" || p0[0].Type != hashlist.PDQ {
		t.Fatalf("decisions of post:0: %+v", p0)
	}
	one, _ := s.Decisions(ctx, "", 1)
	if len(one) != 1 {
		t.Fatalf("limit 1 gave %d", len(one))
	}
}

func testCases(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	msg := func(tag string) moderation.CaseMessage {
		return moderation.CaseMessage{Tag: []byte(tag), Conversation: []byte("conv"), SenderUser: "mallory", SenderDevice: "d1",
			Accepted: now, Content: []byte("content " + tag), Salt: []byte("salt"), Frank: []byte("frank")}
	}
	id, err := s.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "harassment", Note: "threats", Received: now}, "mallory",
		[]moderation.CaseMessage{msg("t1"), msg("t2")})
	if err != nil {
		t.Fatal(err)
	}
	// bob reports one of the same messages and a new one: the same case.
	id2, err := s.FileReport(ctx, moderation.CaseReport{Reporter: "bob", Reason: "harassment", Received: now}, "mallory",
		[]moderation.CaseMessage{msg("t2"), msg("t3")})
	if err != nil || id2 != id {
		t.Fatalf("coalescing: case %d, %v (want %d)", id2, err, id)
	}
	// Another account's messages: another case.
	other := msg("t9")
	other.SenderUser = "eve"
	id3, err := s.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "spam", Received: now}, "eve", []moderation.CaseMessage{other})
	if err != nil || id3 == id {
		t.Fatalf("another account's case: %d %v", id3, err)
	}
	c, err := s.Case(ctx, id)
	if err != nil || len(c.Reports) != 2 || len(c.Messages) != 3 || c.State != moderation.CaseOpen || c.Reported != "mallory" {
		t.Fatalf("case: %+v %v", c, err)
	}
	if cs, err := s.Cases(ctx, moderation.CaseOpen, 0); err != nil || len(cs) != 2 || cs[0].ID != id3 || cs[1].Messages != nil {
		t.Fatalf("open cases: %+v %v", cs, err)
	}
	if _, err := s.ActOnCase(ctx, id, moderation.CaseEvent{Action: "appeal"}); !errors.Is(err, moderation.ErrCaseState) {
		t.Fatalf("appeal of an open case: %v", err)
	}
	if _, err := s.ActOnCase(ctx, id, moderation.CaseEvent{Action: "shout"}); !errors.Is(err, moderation.ErrAction) {
		t.Fatalf("unknown action: %v", err)
	}
	until := now.Add(7 * 24 * time.Hour)
	c, err = s.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionSuspend, Moderator: "mod1", Reason: "threats", Until: until})
	if err != nil || c.State != moderation.CaseDecided || len(c.Events) != 1 || !c.Events[0].Until.Equal(until) {
		t.Fatalf("decide: %+v %v", c, err)
	}
	if sn, err := s.Sanction(ctx, "mallory", now); err != nil || !sn.Until.Equal(until) || sn.Banned || sn.Case != id {
		t.Fatalf("sanction in force: %+v %v", sn, err)
	}
	// Many accounts at once: only those with a sanction in force.
	if m, err := s.Sanctions(ctx, []string{"alice", "mallory", "nobody", "mallory"}, now); err != nil || len(m) != 1 || !m["mallory"].Until.Equal(until) || m["mallory"].Case != id {
		t.Fatalf("Sanctions: %+v %v", m, err)
	}
	many := []string{}
	for i := range 1200 {
		many = append(many, fmt.Sprintf("absent%04d", i))
	}
	if m, err := s.Sanctions(ctx, append(many, "mallory"), now); err != nil || len(m) != 1 || m["mallory"].Case != id {
		t.Fatalf("Sanctions of 1 201 accounts: %d found, %v", len(m), err)
	}
	if m, err := s.Sanctions(ctx, nil, now); err != nil || len(m) != 0 {
		t.Fatalf("Sanctions(nil): %+v %v", m, err)
	}
	if m, err := s.Sanctions(ctx, []string{"mallory"}, until.Add(time.Hour)); err != nil || len(m) != 0 {
		t.Fatalf("Sanctions after the suspension ended: %+v %v", m, err)
	}
	if sn, _ := s.Sanction(ctx, "mallory", until.Add(time.Hour)); sn.Active() {
		t.Fatalf("a suspension past its end: %+v", sn)
	}
	if _, err := s.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionBan, Moderator: "mod1"}); !errors.Is(err, moderation.ErrCaseState) {
		t.Fatalf("deciding twice: %v", err)
	}
	if c, err = s.ActOnCase(ctx, id, moderation.CaseEvent{Action: "appeal", Reason: "it was a joke"}); err != nil || c.State != moderation.CaseAppealed {
		t.Fatalf("appeal: %+v %v", c, err)
	}
	// Appealing does not lift the suspension: only the appeal's decision
	// does.
	if sn, err := s.Sanction(ctx, "mallory", now); err != nil || !sn.Until.Equal(until) || sn.Case != id {
		t.Fatalf("sanction while the appeal waits: %+v %v", sn, err)
	}
	if c, err = s.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionDismiss, Moderator: "lead1", Reason: "upheld appeal"}); err != nil || c.State != moderation.CaseClosed {
		t.Fatalf("appeal decided: %+v %v", c, err)
	}
	// The appeal dismissed the suspension: nothing in force.
	if sn, err := s.Sanction(ctx, "mallory", now); err != nil || sn.Active() {
		t.Fatalf("sanction after the appeal: %+v %v", sn, err)
	}
	ds, err := s.Decisions(ctx, "case:"+strconv.FormatInt(id, 10), 0)
	if err != nil || len(ds) != 3 || ds[0].Kind != "case:dismiss" || ds[2].Actor != "mod1" {
		t.Fatalf("the decisions log of the case: %+v %v", ds, err)
	}
	if _, err := s.Case(ctx, 9999); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("unknown case: %v", err)
	}
	// A report against a closed case's messages opens a new case.
	id4, err := s.FileReport(ctx, moderation.CaseReport{Reporter: "carol", Reason: "harassment", Received: now}, "mallory", []moderation.CaseMessage{msg("t1")})
	if err != nil || id4 == id {
		t.Fatalf("report after the case closed: %d %v", id4, err)
	}
	if _, err := s.ActOnCase(ctx, id4, moderation.CaseEvent{Action: moderation.ActionBan, Moderator: "mod2", Reason: "again"}); err != nil {
		t.Fatal(err)
	}
	if sn, err := s.Sanction(ctx, "mallory", now); err != nil || !sn.Banned || sn.Case != id4 {
		t.Fatalf("ban: %+v %v", sn, err)
	}
	// What mallory is told: the ban (appealable), the appeal's outcome
	// and the suspension it overturned, newest first; eve's open case
	// tells her nothing.
	about, err := s.CasesAbout(ctx, "mallory", 0)
	if err != nil || len(about) != 2 || about[0].ID != id4 || about[1].ID != id || len(about[1].Events) != 3 {
		t.Fatalf("CasesAbout: %+v %v", about, err)
	}
	ns := moderation.NoticesOf(about)
	if len(ns) != 3 || ns[0].Case != id4 || ns[0].Action != moderation.ActionBan || !ns[0].Appealable ||
		ns[1].Action != moderation.ActionDismiss || !ns[1].Appeal || ns[1].Appealable ||
		ns[2].Action != moderation.ActionSuspend || ns[2].Appealable || !ns[2].Until.Equal(until) {
		t.Fatalf("notices: %+v", ns)
	}
	if about, err := s.CasesAbout(ctx, "eve", 0); err != nil || len(about) != 1 || len(moderation.NoticesOf(about)) != 0 {
		t.Fatalf("eve: %+v %v", about, err)
	}
	// A first decision that dismisses is not told.
	if _, err := s.ActOnCase(ctx, id3, moderation.CaseEvent{Action: moderation.ActionDismiss, Moderator: "mod1", Reason: "not spam"}); err != nil {
		t.Fatal(err)
	}
	if about, _ := s.CasesAbout(ctx, "eve", 0); len(moderation.NoticesOf(about)) != 0 {
		t.Fatalf("a dismissal told: %+v", moderation.NoticesOf(about))
	}
}

func testHolds(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	h := moderation.Hold{Post: 42, Channel: "news", Author: "mallory", Text: "look",
		Matches: []moderation.HoldMatch{{Media: 0, List: "review-list", Label: "extremism", Type: "pdq", Hash: "ab12", Distance: 7, Detail: "frames 3 of 10"}}}
	id, err := s.FileHold(ctx, h, now)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.FileHold(ctx, h, now); err != nil || again != id {
		t.Fatalf("filing the same post's hold again: %d %v (want %d)", again, err, id)
	}
	if got, err := s.OpenHold(ctx, 42); err != nil || got != id {
		t.Fatalf("OpenHold: %d %v", got, err)
	}
	if _, err := s.OpenHold(ctx, 43); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("OpenHold of a post with none: %v", err)
	}
	c, err := s.Case(ctx, id)
	if err != nil || c.Kind != moderation.KindHold || c.State != moderation.CaseOpen || c.Reported != "mallory" || c.Hold == nil ||
		c.Hold.Post != 42 || len(c.Hold.Matches) != 1 || c.Hold.Matches[0] != h.Matches[0] {
		t.Fatalf("hold case: %+v %v", c, err)
	}
	// It is in the queue with the report cases.
	rid, err := s.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "spam", Received: now}, "eve",
		[]moderation.CaseMessage{{Tag: []byte("x"), Conversation: []byte("c"), SenderUser: "eve", SenderDevice: "d", Accepted: now, Content: []byte("c"), Salt: []byte("s"), Frank: []byte("f")}})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Cases(ctx, moderation.CaseOpen, 0)
	if err != nil || len(cs) != 2 || cs[0].ID != rid || cs[1].ID != id || cs[1].Hold == nil || cs[0].Kind != moderation.KindReport {
		t.Fatalf("the queue: %+v %v", cs, err)
	}
	// Report actions do not decide a hold, nor hold actions a report.
	if _, err := s.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionBan, Moderator: "m"}); !errors.Is(err, moderation.ErrAction) {
		t.Fatalf("ban on a hold: %v", err)
	}
	if _, err := s.ActOnCase(ctx, rid, moderation.CaseEvent{Action: moderation.ActionRelease, Moderator: "m"}); !errors.Is(err, moderation.ErrAction) {
		t.Fatalf("release on a report: %v", err)
	}
	c, err = s.ActOnCase(ctx, id, moderation.CaseEvent{Action: moderation.ActionRemovePost, Moderator: "m", Reason: "recruiting"})
	if err != nil || c.State != moderation.CaseClosed {
		t.Fatalf("decide a hold: %+v %v", c, err)
	}
	if _, err := s.ActOnCase(ctx, id, moderation.CaseEvent{Action: "appeal"}); !errors.Is(err, moderation.ErrCaseState) {
		t.Fatalf("appeal of a hold: %v", err)
	}
	if _, err := s.OpenHold(ctx, 42); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("OpenHold after the decision: %v", err)
	}
	// A hold decision never bars the author.
	if sn, err := s.Sanction(ctx, "mallory", now); err != nil || sn.Active() {
		t.Fatalf("sanction: %+v %v", sn, err)
	}
	// The post held again later: a new case.
	if id2, err := s.FileHold(ctx, h, now); err != nil || id2 == id {
		t.Fatalf("a new hold of the post: %d %v", id2, err)
	}
	ds, err := s.Decisions(ctx, "case:"+strconv.FormatInt(id, 10), 0)
	if err != nil || len(ds) != 1 || ds[0].Kind != "case:remove_post" {
		t.Fatalf("decisions: %+v %v", ds, err)
	}
}

func testModerators(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	if _, err := s.Moderator(ctx, "ana"); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("an unknown moderator: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ana := moderation.Moderator{Name: "ana", Lead: true, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", TOTPSecret: []byte("0123456789abcdefghij"), Created: now}
	if err := s.AddModerator(ctx, ana); err != nil {
		t.Fatal(err)
	}
	if err := s.AddModerator(ctx, moderation.Moderator{Name: "ana", PasswordHash: "x", TOTPSecret: []byte("y")}); !errors.Is(err, moderation.ErrExists) {
		t.Fatalf("a taken name: %v", err)
	}
	if err := s.AddModerator(ctx, moderation.Moderator{Name: "bo"}); err == nil {
		t.Fatal("a moderator without password hash or TOTP secret was added")
	}
	if err := s.AddModerator(ctx, moderation.Moderator{Name: "bo", PasswordHash: "h", TOTPSecret: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Moderator(ctx, "ana")
	if err != nil || got.Name != "ana" || !got.Lead || got.PasswordHash != ana.PasswordHash || string(got.TOTPSecret) != string(ana.TOTPSecret) || !got.Created.Equal(now) {
		t.Fatalf("ana: %+v %v", got, err)
	}
	ms, err := s.Moderators(ctx)
	if err != nil || len(ms) != 2 || ms[0].Name != "ana" || ms[1].Name != "bo" || ms[1].Lead {
		t.Fatalf("moderators: %+v %v", ms, err)
	}
	// Removing: the last active lead stays; bo goes, recorded in the log,
	// and his name is not given again.
	if err := s.RemoveModerator(ctx, "ana", "ana", now); !errors.Is(err, moderation.ErrLastLead) {
		t.Fatalf("removing the last lead: %v", err)
	}
	if err := s.RemoveModerator(ctx, "bo", "ana", now); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Moderator(ctx, "bo"); err != nil || got.Active() || !got.Removed.Equal(now) {
		t.Fatalf("bo after removal: %+v %v", got, err)
	}
	if err := s.RemoveModerator(ctx, "bo", "ana", now); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("removing bo twice: %v", err)
	}
	if err := s.AddModerator(ctx, moderation.Moderator{Name: "bo", PasswordHash: "h", TOTPSecret: []byte("s")}); !errors.Is(err, moderation.ErrExists) {
		t.Fatalf("reusing a removed moderator's name: %v", err)
	}
	ds, err := s.Decisions(ctx, "moderator:bo", 0)
	if err != nil || len(ds) != 1 || ds[0].Kind != "moderator:remove" || ds[0].Actor != "ana" {
		t.Fatalf("the removal in the log: %+v %v", ds, err)
	}
}

func testConsoleSessions(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	for _, name := range []string{"ana", "bo"} {
		if err := s.AddModerator(ctx, moderation.Moderator{Name: name, Lead: true, PasswordHash: "h", TOTPSecret: []byte("s")}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	hash := func(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }
	add := func(h []byte, name string, created time.Time) {
		t.Helper()
		if err := s.AddConsoleSession(ctx, moderation.ConsoleSession{TokenHash: h, Moderator: name, Created: created, Expires: created.Add(8 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	found := func(h []byte, at time.Time) bool {
		t.Helper()
		_, err := s.ConsoleSession(ctx, h, at)
		if err != nil && !errors.Is(err, moderation.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	add(hash(1), "ana", now)
	got, err := s.ConsoleSession(ctx, hash(1), now.Add(time.Minute))
	if err != nil || got.Moderator != "ana" || !got.Created.Equal(now) || !got.Expires.Equal(now.Add(8*time.Hour)) || !bytes.Equal(got.TokenHash, hash(1)) {
		t.Fatalf("a new session: %+v %v", got, err)
	}
	if found(hash(2), now) {
		t.Fatal("an unknown token hash was accepted")
	}
	// A token hash is unique; bad sessions are refused.
	if err := s.AddConsoleSession(ctx, moderation.ConsoleSession{TokenHash: hash(1), Moderator: "bo", Created: now, Expires: now.Add(time.Hour)}); err == nil {
		t.Fatal("a second session with the same token hash was stored")
	}
	for _, bad := range []moderation.ConsoleSession{
		{TokenHash: hash(3)[:31], Moderator: "ana", Created: now, Expires: now.Add(time.Hour)},
		{TokenHash: hash(3), Created: now, Expires: now.Add(time.Hour)},
		{TokenHash: hash(3), Moderator: "ana", Created: now, Expires: now},
	} {
		if err := s.AddConsoleSession(ctx, bad); err == nil {
			t.Fatalf("a bad session was stored: %+v", bad)
		}
	}
	// It expires; a later sign-in deletes the expired rows.
	if found(hash(1), now.Add(8*time.Hour)) {
		t.Fatal("a session was accepted at its expiry")
	}
	add(hash(4), "bo", now.Add(9*time.Hour))
	if found(hash(1), now) {
		t.Fatal("an expired session was not deleted by a later sign-in")
	}
	// Sign-out ends one session; ending it twice is fine.
	add(hash(5), "ana", now)
	add(hash(6), "ana", now)
	if err := s.EndConsoleSession(ctx, hash(5)); err != nil {
		t.Fatal(err)
	}
	if err := s.EndConsoleSession(ctx, hash(5)); err != nil {
		t.Fatalf("ending a session twice: %v", err)
	}
	if found(hash(5), now) || !found(hash(6), now) {
		t.Fatal("sign-out ended the wrong sessions")
	}
	// Deactivation ends all of the account's sessions, and only its.
	if err := s.RemoveModerator(ctx, "ana", "bo", now); err != nil {
		t.Fatal(err)
	}
	if found(hash(6), now) {
		t.Fatal("a removed moderator's session was accepted")
	}
	if !found(hash(4), now.Add(9*time.Hour)) {
		t.Fatal("removing ana ended bo's session")
	}
}

// testTOTPStep: a step is accepted once and only if later than the last
// one, per moderator; racing callers with one step get it exactly once.
func testTOTPStep(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	for _, name := range []string{"ana", "bo"} {
		if err := s.AddModerator(ctx, moderation.Moderator{Name: name, Lead: true, PasswordHash: "h", TOTPSecret: []byte("s")}); err != nil {
			t.Fatal(err)
		}
	}
	const step = 59_000_000 // about 2026 in 30-second steps
	if err := s.UseTOTPStep(ctx, "ana", step); err != nil {
		t.Fatalf("a first step: %v", err)
	}
	for _, old := range []uint64{step, step - 1} {
		if err := s.UseTOTPStep(ctx, "ana", old); !errors.Is(err, moderation.ErrTOTPUsed) {
			t.Fatalf("step %d after %d: %v, want ErrTOTPUsed", old, uint64(step), err)
		}
	}
	if err := s.UseTOTPStep(ctx, "bo", step); err != nil {
		t.Fatalf("another moderator's step is their own: %v", err)
	}
	if err := s.UseTOTPStep(ctx, "ana", step+1); err != nil {
		t.Fatalf("a later step: %v", err)
	}
	if err := s.UseTOTPStep(ctx, "nobody", step); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("an unknown moderator: %v", err)
	}
	for _, bad := range []uint64{0, 1 << 63} {
		if err := s.UseTOTPStep(ctx, "bo", bad); err == nil || errors.Is(err, moderation.ErrTOTPUsed) {
			t.Fatalf("step %d: %v, want a plain refusal", bad, err)
		}
	}
	// Racing: n callers with the same new step, exactly one wins.
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.UseTOTPStep(ctx, "bo", step+5) }()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, moderation.ErrTOTPUsed):
			t.Fatalf("a racing caller: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing callers had the same step accepted, want 1", won, n)
	}
	if err := s.RemoveModerator(ctx, "bo", "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.UseTOTPStep(ctx, "bo", step+9); !errors.Is(err, moderation.ErrNotFound) {
		t.Fatalf("a removed moderator's step: %v, want ErrNotFound", err)
	}
}

// testLoginFailures: failures add up in a window that opens at the first
// one; racing adds are all counted; a closed window counts 0.
func testLoginFailures(t *testing.T, s moderation.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	const window = 15 * time.Minute
	count := func(subject string, at time.Time) int {
		t.Helper()
		n, err := s.LoginFailures(ctx, subject, at, window)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("name:ana", now); n != 0 {
		t.Fatalf("no failures yet: %d", n)
	}
	for i := 1; i <= 3; i++ {
		n, err := s.AddLoginFailure(ctx, "name:ana", now.Add(time.Duration(i)*time.Minute), window)
		if err != nil || n != i {
			t.Fatalf("failure %d: %d %v", i, n, err)
		}
	}
	if n := count("name:ana", now.Add(5*time.Minute)); n != 3 {
		t.Fatalf("three failures: %d", n)
	}
	if n := count("addr:192.0.2.1", now.Add(5*time.Minute)); n != 0 {
		t.Fatalf("another subject: %d", n)
	}
	// The window opened at the first failure (now+1m) and closes 15 min later.
	if n := count("name:ana", now.Add(time.Minute+window)); n != 0 {
		t.Fatalf("after the window: %d", n)
	}
	if n, err := s.AddLoginFailure(ctx, "name:ana", now.Add(time.Minute+window), window); err != nil || n != 1 {
		t.Fatalf("the first failure of a new window: %d %v", n, err)
	}
	if _, err := s.AddLoginFailure(ctx, "", now, window); err == nil {
		t.Fatal("a failure without a subject was counted")
	}
	// Racing adds (as from several nodes) are all counted.
	const racers = 8
	errs := make(chan error, racers)
	for range racers {
		go func() { _, err := s.AddLoginFailure(ctx, "addr:192.0.2.9", now, window); errs <- err }()
	}
	for range racers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := count("addr:192.0.2.9", now); n != racers {
		t.Fatalf("%d racing failures counted %d", racers, n)
	}
	// A later failure deletes other subjects' closed windows.
	if _, err := s.AddLoginFailure(ctx, "name:bo", now.Add(2*window), window); err != nil {
		t.Fatal(err)
	}
	if n := count("addr:192.0.2.9", now); n != 0 {
		t.Fatalf("a closed window's row was kept: %d", n)
	}
}
