// Package storetest is the contract suite every store.Store backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty
// store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The rules it checks are the delivery rules of docs/protocol.md: append
// ordering and idempotency, first-commit-wins epochs, membership deltas,
// cursors and acknowledgement trimming, inboxes, key packages and
// retention.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// Run runs the contract suite. newStore must return a new empty store;
// Run closes it at the end of each subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Accounts", testAccounts},
		{"Invites", testInvites},
		{"Links", testLinks},
		{"KeyPackages", testKeyPackages},
		{"KeyPackageSuites", testKeyPackageSuites},
		{"ConversationLog", testConversationLog},
		{"Idempotency", testIdempotency},
		{"EpochConflict", testEpochConflict},
		{"Membership", testMembership},
		{"RefusedCommitChangesNothing", testRefusedCommitChangesNothing},
		{"Verdicts", testVerdicts},
		{"AckTrims", testAckTrims},
		{"Inbox", testInbox},
		{"InboxLimits", testInboxLimits},
		{"Privacy", testPrivacy},
		{"DeviceLists", testDeviceLists},
		{"Transparency", testTransparency},
		{"Legal", testLegal},
		{"RemoveDevice", testRemoveDevice},
		{"DevicesByID", testDevicesByID},
		{"DeleteAccount", testDeleteAccount},
		{"Retention", testRetention},
		{"Disappearing", testDisappearing},
		{"BadAppends", testBadAppends},
		{"ConcurrentAppends", testConcurrentAppends},
		{"LimitCounters", testLimitCounters},
		{"Slots", testSlots},
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

var ctx = context.Background()

func key() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func msgID() []byte {
	k := make([]byte, 16)
	rand.Read(k)
	return k
}

func mustAccount(t *testing.T, s store.Store, user string, devs ...string) {
	t.Helper()
	if err := s.CreateAccount(ctx, store.Device{ID: devs[0], Username: user, PublicKey: key()}, ""); err != nil {
		t.Fatalf("CreateAccount(%s): %v", user, err)
	}
	for i, d := range devs[1:] {
		code := fmt.Sprintf("%08d", i)
		if err := s.CreateLink(ctx, store.Link{Username: user, Code: code, PublicKey: key(), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("CreateLink: %v", err)
		}
		if _, err := s.ApproveLink(ctx, user, code, store.Device{ID: d}, nil, time.Now()); err != nil {
			t.Fatalf("ApproveLink: %v", err)
		}
	}
}

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testAccounts(t *testing.T, s store.Store) {
	k := key()
	if err := s.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: k}, ""); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "duplicate username", s.CreateAccount(ctx, store.Device{ID: "d2", Username: "alice", PublicKey: key()}, ""), store.ErrExists)
	mustErr(t, "duplicate key", s.CreateAccount(ctx, store.Device{ID: "d3", Username: "bob", PublicKey: k}, ""), store.ErrExists)
	mustErr(t, "duplicate device id", s.CreateAccount(ctx, store.Device{ID: "d1", Username: "carol", PublicKey: key()}, ""), store.ErrExists)
	for _, like := range []string{"a1ice", "al1ce", "alice.", "al.ice"} {
		mustErr(t, "look-alike "+like, s.CreateAccount(ctx, store.Device{ID: "d-" + like, Username: like, PublicKey: key()}, ""), store.ErrLookalike)
	}
	if err := s.CreateAccount(ctx, store.Device{ID: "d4", Username: "alicia", PublicKey: key()}, ""); err != nil {
		t.Fatalf("alicia refused next to alice: %v", err)
	}
	// The failed attempts left nothing behind.
	_, err := s.Devices(ctx, "bob")
	mustErr(t, "Devices(bob)", err, store.ErrNotFound)
	d, err := s.DeviceByKey(ctx, k)
	if err != nil || d.ID != "d1" || d.Username != "alice" {
		t.Fatalf("DeviceByKey = %+v, %v", d, err)
	}
	d, err = s.Device(ctx, "d1")
	if err != nil || !bytes.Equal(d.PublicKey, k) || d.Created.IsZero() {
		t.Fatalf("Device = %+v, %v", d, err)
	}
	_, err = s.Device(ctx, "nope")
	mustErr(t, "Device(nope)", err, store.ErrNotFound)
	_, err = s.DeviceByKey(ctx, key())
	mustErr(t, "DeviceByKey(unknown)", err, store.ErrNotFound)
	devs, err := s.Devices(ctx, "alice")
	if err != nil || len(devs) != 1 || devs[0].ID != "d1" {
		t.Fatalf("Devices = %+v, %v", devs, err)
	}
}

func testInvites(t *testing.T, s store.Store) {
	if err := s.CreateInvite(ctx, "inv1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvite(ctx, "old", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "duplicate invite", s.CreateInvite(ctx, "inv1", time.Now().Add(time.Hour)), store.ErrExists)
	mustErr(t, "unknown invite", s.CreateAccount(ctx, store.Device{ID: "a", Username: "alice", PublicKey: key()}, "nope"), store.ErrInvalidInvite)
	mustErr(t, "expired invite", s.CreateAccount(ctx, store.Device{ID: "a", Username: "alice", PublicKey: key()}, "old"), store.ErrInvalidInvite)
	if err := s.CreateAccount(ctx, store.Device{ID: "a", Username: "alice", PublicKey: key()}, "inv1"); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "reused invite", s.CreateAccount(ctx, store.Device{ID: "b", Username: "bob", PublicKey: key()}, "inv1"), store.ErrInvalidInvite)
	// A failed registration must not consume the invite.
	if err := s.CreateInvite(ctx, "inv2", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "taken name", s.CreateAccount(ctx, store.Device{ID: "c", Username: "alice", PublicKey: key()}, "inv2"), store.ErrExists)
	if err := s.CreateAccount(ctx, store.Device{ID: "c", Username: "carol", PublicKey: key()}, "inv2"); err != nil {
		t.Fatalf("invite consumed by a failed registration: %v", err)
	}
}

func testLinks(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	k := key()
	mustErr(t, "link to unknown account", s.CreateLink(ctx, store.Link{Username: "zed", Code: "1", PublicKey: k, Expires: time.Now().Add(time.Hour)}), store.ErrNotFound)
	if err := s.CreateLink(ctx, store.Link{Username: "alice", Code: "12345678", PublicKey: k, Expires: time.Now().Add(10 * time.Minute),
		MLSKey: []byte("mls-key"), MAC: []byte("mac")}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Link(ctx, "alice", "12345678", time.Now())
	if err != nil || !bytes.Equal(l.PublicKey, k) || string(l.MLSKey) != "mls-key" || string(l.MAC) != "mac" {
		t.Fatalf("Link = %+v, %v", l, err)
	}
	_, err = s.Link(ctx, "bob", "12345678", time.Now())
	mustErr(t, "another account's link", err, store.ErrNotFound)
	_, err = s.Link(ctx, "alice", "12345678", time.Now().Add(11*time.Minute))
	mustErr(t, "expired link", err, store.ErrNotFound)
	mustErr(t, "code in use", s.CreateLink(ctx, store.Link{Username: "alice", Code: "12345678", PublicKey: key(), Expires: time.Now().Add(time.Hour)}), store.ErrExists)
	_, err = s.ApproveLink(ctx, "bob", "12345678", store.Device{ID: "x"}, nil, time.Now())
	mustErr(t, "approve by other account", err, store.ErrNotFound)
	_, err = s.ApproveLink(ctx, "alice", "12345678", store.Device{ID: "a2"}, nil, time.Now().Add(11*time.Minute))
	mustErr(t, "approve after expiry", err, store.ErrNotFound)
	_, err = s.ApproveLink(ctx, "alice", "12345678", store.Device{ID: "a2", PublicKey: key()}, nil, time.Now())
	mustErr(t, "approve with another key than the link's", err, store.ErrBadRequest)
	d, err := s.ApproveLink(ctx, "alice", "12345678", store.Device{ID: "a2", PublicKey: k}, []byte("confirm"), time.Now())
	if err != nil || d.Username != "alice" || !bytes.Equal(d.PublicKey, k) {
		t.Fatalf("ApproveLink = %+v, %v", d, err)
	}
	// The confirmation is handed over once.
	for i, want := range []string{"confirm", ""} {
		if c, err := s.TakeLinkConfirmation(ctx, "a2"); err != nil || string(c) != want {
			t.Fatalf("TakeLinkConfirmation %d = %q, %v; want %q", i, c, err, want)
		}
	}
	_, err = s.ApproveLink(ctx, "alice", "12345678", store.Device{ID: "a3"}, nil, time.Now())
	mustErr(t, "approve twice", err, store.ErrNotFound)
	devs, _ := s.Devices(ctx, "alice")
	if len(devs) != 2 {
		t.Fatalf("alice has %d devices, want 2", len(devs))
	}
	// An expired link's code can be reused.
	if err := s.CreateLink(ctx, store.Link{Username: "bob", Code: "1", PublicKey: key(), Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateLink(ctx, store.Link{Username: "bob", Code: "1", PublicKey: key(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("reuse expired code: %v", err)
	}
}

func kp(s string) store.KeyPackage {
	return store.KeyPackage{Ref: []byte("ref-" + s), Data: []byte("kp-" + s)}
}

func testKeyPackages(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1", "a2")
	_, err := s.AddKeyPackages(ctx, "ghost", []store.KeyPackage{kp("x")}, nil)
	mustErr(t, "unknown device", err, store.ErrUnknownDevice)
	_, err = s.AddKeyPackages(ctx, "a1", []store.KeyPackage{{Ref: []byte("r")}}, nil)
	mustErr(t, "empty package", err, store.ErrBadRequest)
	n, err := s.AddKeyPackages(ctx, "a1", []store.KeyPackage{kp("1"), kp("2")}, &store.KeyPackage{Ref: []byte("lr"), Data: []byte("last")})
	if err != nil || n != 2 {
		t.Fatalf("AddKeyPackages = %d, %v", n, err)
	}
	// a2 has only a last-resort package.
	if _, err := s.AddKeyPackages(ctx, "a2", nil, &store.KeyPackage{Ref: []byte("lr2"), Data: []byte("last2")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsumeKeyPackages(ctx, "alice", nil, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("ConsumeKeyPackages = %+v, %v", got, err)
	}
	byDev := map[string]store.DeviceKeyPackage{}
	for _, g := range got {
		byDev[g.DeviceID] = g
	}
	if g := byDev["a1"]; string(g.KeyPackage.Data) != "kp-1" || g.LastResort || g.Remaining != 1 {
		t.Fatalf("a1 got %+v", g)
	}
	if g := byDev["a2"]; string(g.KeyPackage.Data) != "last2" || !g.LastResort || g.Remaining != 0 {
		t.Fatalf("a2 got %+v", g)
	}
	for i, want := range []string{"kp-2", "last", "last"} {
		got, err := s.ConsumeKeyPackages(ctx, "alice", []string{"a1"}, 0)
		if err != nil || len(got) != 1 || string(got[0].KeyPackage.Data) != want {
			t.Fatalf("consume %d: %+v, %v (want %s)", i, got, err, want)
		}
		if got[0].LastResort != (want == "last") {
			t.Fatalf("consume %d: LastResort = %v", i, got[0].LastResort)
		}
	}
	if n, _ := s.CountKeyPackages(ctx, "a1"); n != 0 {
		t.Fatalf("count = %d", n)
	}
	_, err = s.ConsumeKeyPackages(ctx, "nobody", nil, 0)
	mustErr(t, "unknown user", err, store.ErrNotFound)
	mustAccount(t, s, "bob", "b1")
	_, err = s.ConsumeKeyPackages(ctx, "alice", []string{"b1"}, 0)
	mustErr(t, "device of another user", err, store.ErrUnknownDevice)
	// Replacing the last-resort package.
	if _, err := s.AddKeyPackages(ctx, "a1", nil, &store.KeyPackage{Data: []byte("last-new")}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ConsumeKeyPackages(ctx, "alice", []string{"a1"}, 0)
	if len(got) != 1 || string(got[0].KeyPackage.Data) != "last-new" {
		t.Fatalf("after replacement got %+v", got)
	}
	// Naming a device twice would hand out two of its packages for one
	// request: refused, and nothing consumed.
	s.AddKeyPackages(ctx, "a1", []store.KeyPackage{kp("d1"), kp("d2")}, nil)
	_, err = s.ConsumeKeyPackages(ctx, "alice", []string{"a1", "a2", "a1"}, 0)
	mustErr(t, "repeated device id", err, store.ErrBadRequest)
	if n, _ := s.CountKeyPackages(ctx, "a1"); n != 2 {
		t.Fatalf("a refused request consumed packages: %d of 2 left", n)
	}
}

// testKeyPackageSuites: a device holds packages of several MLS cipher
// suites; a fetch names one and gets only that suite's, each suite has its
// own last-resort package, and counts are per suite.
func testKeyPackageSuites(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1", "a2")
	const pq = 0xF001
	sk := func(name string, suite uint16) store.KeyPackage {
		return store.KeyPackage{Ref: []byte("ref-" + name), Data: []byte("kp-" + name), Suite: suite}
	}
	// a1 is an up-to-date device with both suites; a2 only has suite 1
	// (a zero suite, as from a client that declares none).
	if _, err := s.AddKeyPackages(ctx, "a1", []store.KeyPackage{sk("c1", 1), sk("q1", pq), sk("q2", pq)}, &store.KeyPackage{Ref: []byte("lr1"), Data: []byte("last-c"), Suite: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKeyPackages(ctx, "a1", nil, &store.KeyPackage{Ref: []byte("lrq"), Data: []byte("last-q"), Suite: pq}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKeyPackages(ctx, "a2", []store.KeyPackage{kp("old")}, nil); err != nil {
		t.Fatal(err)
	}
	counts, err := s.KeyPackageCounts(ctx, "a1")
	if err != nil || len(counts) != 2 || counts[1] != 1 || counts[pq] != 2 {
		t.Fatalf("KeyPackageCounts(a1) = %v, %v; want map[1:1 %d:2]", counts, err, pq)
	}
	if counts, _ := s.KeyPackageCounts(ctx, "a2"); len(counts) != 1 || counts[1] != 1 {
		t.Fatalf("KeyPackageCounts(a2) = %v; want map[1:1] (a zero suite is suite 1)", counts)
	}
	if n, _ := s.CountKeyPackages(ctx, "a1"); n != 3 {
		t.Fatalf("CountKeyPackages(a1) = %d, want 3 (all suites)", n)
	}
	got, err := s.ConsumeKeyPackages(ctx, "alice", nil, pq)
	if err != nil || len(got) != 1 || got[0].DeviceID != "a1" || string(got[0].KeyPackage.Data) != "kp-q1" || got[0].KeyPackage.Suite != pq || got[0].Remaining != 1 {
		t.Fatalf("ConsumeKeyPackages(suite %#x) = %+v, %v; want a1's kp-q1 only, 1 left", pq, got, err)
	}
	for _, want := range []string{"kp-q2", "last-q", "last-q"} {
		got, err := s.ConsumeKeyPackages(ctx, "alice", []string{"a1"}, pq)
		if err != nil || len(got) != 1 || string(got[0].KeyPackage.Data) != want {
			t.Fatalf("ConsumeKeyPackages = %+v, %v; want %s", got, err, want)
		}
	}
	// Suite 1 is untouched by all that, and 0 means 1.
	got, err = s.ConsumeKeyPackages(ctx, "alice", nil, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("ConsumeKeyPackages(suite 1) = %+v, %v", got, err)
	}
	for _, g := range got {
		if want := map[string]string{"a1": "kp-c1", "a2": "kp-old"}[g.DeviceID]; string(g.KeyPackage.Data) != want || g.KeyPackage.Suite != 1 {
			t.Fatalf("%s got %q (suite %d), want %q (suite 1)", g.DeviceID, g.KeyPackage.Data, g.KeyPackage.Suite, want)
		}
	}
	// Replacing the suite-1 last-resort package keeps the X-Wing one.
	if _, err := s.AddKeyPackages(ctx, "a1", nil, &store.KeyPackage{Ref: []byte("lr2"), Data: []byte("last-c2"), Suite: 1}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsumeKeyPackages(ctx, "alice", []string{"a1"}, pq); len(got) != 1 || string(got[0].KeyPackage.Data) != "last-q" {
		t.Fatalf("X-Wing last resort after replacing suite 1's: %+v", got)
	}
	if got, _ := s.ConsumeKeyPackages(ctx, "alice", []string{"a1"}, 1); len(got) != 1 || string(got[0].KeyPackage.Data) != "last-c2" {
		t.Fatalf("suite-1 last resort after replacement: %+v", got)
	}
	if counts, _ := s.KeyPackageCounts(ctx, "a1"); len(counts) != 2 || counts[1] != 0 || counts[pq] != 0 {
		t.Fatalf("KeyPackageCounts(a1) = %v; want both suites at 0 (last resort only)", counts)
	}
	// A suite nobody has: no packages, not an error.
	if got, err := s.ConsumeKeyPackages(ctx, "alice", nil, 2); err != nil || len(got) != 0 {
		t.Fatalf("ConsumeKeyPackages(suite 2) = %+v, %v", got, err)
	}
}

type app = store.Append

func send(t *testing.T, s store.Store, a app) store.AppendResult {
	t.Helper()
	if a.ID == nil {
		a.ID = msgID()
	}
	r, err := s.Append(ctx, a)
	if err != nil {
		t.Fatalf("Append(%v from %s epoch %d): %v", a.Kind, a.Sender, a.Epoch, err)
	}
	return r
}

// group makes conversation "g" with the given devices (first creates,
// one commit adds the rest) and returns the epoch (1).
func group(t *testing.T, s store.Store, devs ...string) []byte {
	t.Helper()
	conv := []byte("g-" + devs[0])
	if err := s.CreateConversation(ctx, conv, devs[0]); err != nil {
		t.Fatal(err)
	}
	if len(devs) > 1 {
		r := send(t, s, app{ConversationID: conv, Epoch: 0, Kind: store.KindCommit, Sender: devs[0], Payload: []byte("c0"),
			Added: devs[1:], Welcome: []byte("welcome")})
		if r.Epoch != 1 || r.Message.Seq != 1 {
			t.Fatalf("first commit: %+v", r)
		}
		// No one else was a member before: each added device's own
		// verdict decides its addition.
		for _, d := range devs[1:] {
			if _, err := s.Verdict(ctx, d, conv, r.Message.ID, false); err != nil {
				t.Fatalf("Verdict on the first commit: %v", err)
			}
		}
	}
	return conv
}

func payloads(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

func testConversationLog(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1")
	mustErr(t, "creator unknown", s.CreateConversation(ctx, []byte("x"), "ghost"), store.ErrUnknownDevice)
	mustErr(t, "empty id", s.CreateConversation(ctx, nil, "a1"), store.ErrBadRequest)
	conv := group(t, s, "a1", "b1", "c1")
	mustErr(t, "duplicate conversation", s.CreateConversation(ctx, conv, "a1"), store.ErrExists)
	c, err := s.Conversation(ctx, conv)
	if err != nil || c.Epoch != 1 || !slices.Equal(c.Members, []string{"a1", "b1", "c1"}) || c.HeadSeq != 1 {
		t.Fatalf("Conversation = %+v, %v", c, err)
	}
	for i, from := range []string{"a1", "b1", "c1", "a1"} {
		r := send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: from, Payload: []byte(fmt.Sprint("m", i))})
		if r.Message.Seq != uint64(i+2) || r.Duplicate || r.Epoch != 1 {
			t.Fatalf("append %d: %+v", i, r)
		}
		if !slices.Equal(r.Recipients, []string{"a1", "b1", "c1"}) {
			t.Fatalf("recipients = %v", r.Recipients)
		}
	}
	// c1 joined with the commit: it sees the application messages in
	// order, including its own (it was not caught up when it sent it).
	ms, err := s.Fetch(ctx, "c1", conv, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m0", "m1", "m2", "m3"}; !slices.Equal(payloads(ms), want) {
		t.Fatalf("c1 fetched %v, want %v", payloads(ms), want)
	}
	// a1 was caught up when it sent m0, so m0 counts as acknowledged.
	ms, _ = s.Fetch(ctx, "a1", conv, 100)
	if want := []string{"m1", "m2", "m3"}; !slices.Equal(payloads(ms), want) {
		t.Fatalf("a1 fetched %v, want %v", payloads(ms), want)
	}
	ms, _ = s.Fetch(ctx, "b1", conv, 2)
	if want := []string{"m0", "m1"}; !slices.Equal(payloads(ms), want) {
		t.Fatalf("b1 fetched %v with limit 2, want %v", payloads(ms), want)
	}
	if ms[0].Seq != 2 || ms[0].Sender != "a1" || ms[0].Kind != store.KindApplication || ms[0].Stored.IsZero() {
		t.Fatalf("message fields: %+v", ms[0])
	}
	_, err = s.Fetch(ctx, "b1", []byte("nope"), 10)
	mustErr(t, "fetch unknown conversation", err, store.ErrNotMember)
	mustAccount(t, s, "eve", "e1")
	_, err = s.Fetch(ctx, "e1", conv, 10)
	mustErr(t, "fetch by non-member", err, store.ErrNotMember)
	if err := s.Ack(ctx, "b1", conv, 3); err != nil {
		t.Fatal(err)
	}
	ms, _ = s.Fetch(ctx, "b1", conv, 10)
	if want := []string{"m2", "m3"}; !slices.Equal(payloads(ms), want) {
		t.Fatalf("after ack b1 fetched %v, want %v", payloads(ms), want)
	}
	// Acks never move backwards.
	if err := s.Ack(ctx, "b1", conv, 1); err != nil {
		t.Fatal(err)
	}
	ms, _ = s.Fetch(ctx, "b1", conv, 10)
	if len(ms) != 2 {
		t.Fatalf("ack moved cursor backwards: %v", payloads(ms))
	}
	mustErr(t, "ack beyond head", s.Ack(ctx, "b1", conv, 99), store.ErrBadRequest)
	mustErr(t, "ack by non-member", s.Ack(ctx, "e1", conv, 1), store.ErrNotMember)
	mem, err := s.Memberships(ctx, "b1")
	if err != nil || len(mem) != 1 || mem[0].Cursor != 3 || mem[0].HeadSeq != 5 || mem[0].RemovedAt != 0 {
		t.Fatalf("Memberships = %+v, %v", mem, err)
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	// Clients that say when they first sent a message (store.Append.FirstSent)
	// and clients that do not: a retry repeating both is a duplicate.
	for i, sent := range []int64{0, time.Now().UnixMilli(), 1} {
		a, b := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		mustAccount(t, s, "alice"+a, a)
		mustAccount(t, s, "bob"+b, b)
		conv := group(t, s, a, b)
		id := msgID()
		msg := func(sender string, kind store.Kind, id []byte, payload string) store.Append {
			return app{ID: id, ConversationID: conv, Epoch: 1, Kind: kind, Sender: sender, Payload: []byte(payload), FirstSent: sent}
		}
		r1 := send(t, s, msg(a, store.KindApplication, id, "once"))
		r2 := send(t, s, msg(a, store.KindApplication, id, "once"))
		if !r2.Duplicate || r2.Message.Seq != r1.Message.Seq || r1.Duplicate {
			t.Fatalf("first sent %d: resend: %+v then %+v", sent, r1, r2)
		}
		_, err := s.Append(ctx, msg(b, store.KindApplication, id, "x"))
		mustErr(t, "id reused by another device", err, store.ErrExists)
		ms, _ := s.Fetch(ctx, b, conv, 10)
		if len(ms) != 1 {
			t.Fatalf("first sent %d: stored %d copies, want 1", sent, len(ms))
		}
		// Still a duplicate after everyone acknowledged (and the message is gone).
		s.Ack(ctx, b, conv, ms[0].Seq)
		r3 := send(t, s, msg(a, store.KindApplication, id, "once"))
		if !r3.Duplicate || r3.Message.Seq != r1.Message.Seq {
			t.Fatalf("first sent %d: resend after ack: %+v", sent, r3)
		}
		// A resent winning commit is a duplicate, not a conflict.
		cid := msgID()
		send(t, s, msg(a, store.KindCommit, cid, "c1"))
		r4 := send(t, s, msg(a, store.KindCommit, cid, "c1"))
		if !r4.Duplicate || r4.Epoch != 2 {
			t.Fatalf("first sent %d: resent commit: %+v", sent, r4)
		}
		if i == 0 {
			continue
		}
		// The same id with another first-send time, in the same
		// conversation: a store keyed by (first-send time, id) stores it
		// as a new message, one keyed by id alone answers as for a
		// duplicate; neither may fail or hand the record to another
		// device.
		r5, err := s.Append(ctx, app{ID: id, ConversationID: conv, Epoch: 2, Kind: store.KindApplication, Sender: a, Payload: []byte("again"), FirstSent: sent + 1})
		if err != nil || (r5.Duplicate && r5.Message.Seq != r1.Message.Seq) {
			t.Fatalf("first sent %d, resent as %d: %+v, %v", sent, sent+1, r5, err)
		}
	}
	conv := []byte("g-a0")
	_, err := s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 2, Kind: store.KindApplication, Sender: "a0", Payload: []byte("x"), FirstSent: -1})
	mustErr(t, "first-send time before 1970", err, store.ErrBadRequest)
}

func testEpochConflict(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	conv := group(t, s, "a1", "b1")
	win := send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "b1", Payload: []byte("bob's commit")})
	if win.Epoch != 2 {
		t.Fatalf("epoch after commit = %d", win.Epoch)
	}
	_, err := s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Payload: []byte("alice's commit")})
	var ce *store.EpochConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrEpochConflict) {
		t.Fatalf("second commit: %v, want EpochConflictError", err)
	}
	if string(ce.Winner.Payload) != "bob's commit" || ce.Winner.Seq != win.Message.Seq || ce.Winner.Sender != "b1" ||
		!bytes.Equal(ce.Winner.ID, win.Message.ID) || ce.Winner.Epoch != 1 {
		t.Fatalf("winner = %+v", ce.Winner)
	}
	c, _ := s.Conversation(ctx, conv)
	if c.Epoch != 2 || c.HeadSeq != 2 {
		t.Fatalf("conflict changed state: %+v", c)
	}
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 3, Kind: store.KindApplication, Sender: "a1", Payload: []byte("x")})
	mustErr(t, "future epoch", err, store.ErrWrongEpoch)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindProposal, Sender: "a1", Payload: []byte("x")})
	mustErr(t, "stale proposal", err, store.ErrWrongEpoch)
	// Application messages from the previous epoch are still delivered:
	// receivers may keep old epoch secrets for a while.
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("late")})
	// The rebased commit wins the next epoch.
	r := send(t, s, app{ConversationID: conv, Epoch: 2, Kind: store.KindCommit, Sender: "a1", Payload: []byte("rebased")})
	if r.Epoch != 3 {
		t.Fatalf("rebased commit epoch = %d", r.Epoch)
	}
}

func testMembership(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1")
	mustAccount(t, s, "dave", "d1")
	conv := group(t, s, "a1", "b1", "c1")
	_, err := s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "d1", Payload: []byte("x")})
	mustErr(t, "non-member posts", err, store.ErrNotMember)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Added: []string{"ghost"}})
	mustErr(t, "add unknown device", err, store.ErrUnknownDevice)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Added: []string{"b1"}})
	mustErr(t, "add member again", err, store.ErrBadRequest)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Removed: []string{"d1"}})
	mustErr(t, "remove non-member", err, store.ErrNotMember)
	if c, _ := s.Conversation(ctx, conv); c.Epoch != 1 || c.HeadSeq != 1 {
		t.Fatalf("refused commits changed the conversation: %+v", c)
	}
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("before")})
	r := send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Payload: []byte("remove c1"), Removed: []string{"c1"}})
	if !slices.Equal(r.Recipients, []string{"a1", "b1", "c1"}) {
		t.Fatalf("removing commit recipients = %v (the removed device must learn of it)", r.Recipients)
	}
	// b1, the other member, accepts the removal (testVerdicts has more).
	if v, err := s.Verdict(ctx, "b1", conv, r.Message.ID, false); err != nil || v != store.VerdictDecided {
		t.Fatalf("Verdict = %v, %v; want decided", v, err)
	}
	r = send(t, s, app{ConversationID: conv, Epoch: 2, Kind: store.KindApplication, Sender: "a1", Payload: []byte("after")})
	if !slices.Equal(r.Recipients, []string{"a1", "b1"}) {
		t.Fatalf("recipients after removal = %v", r.Recipients)
	}
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 2, Kind: store.KindApplication, Sender: "c1", Payload: []byte("x")})
	mustErr(t, "removed device posts", err, store.ErrNotMember)
	// c1 reads up to and including its removal, nothing after.
	ms, err := s.Fetch(ctx, "c1", conv, 10)
	if err != nil || !slices.Equal(payloads(ms), []string{"before", "remove c1"}) {
		t.Fatalf("removed device fetched %v, %v", payloads(ms), err)
	}
	mem, _ := s.Memberships(ctx, "c1")
	if len(mem) != 1 || mem[0].RemovedAt != r.Message.Seq-1 {
		t.Fatalf("memberships of removed device: %+v", mem)
	}
	if err := s.Ack(ctx, "c1", conv, ms[1].Seq); err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(ctx, "c1", conv, 10)
	mustErr(t, "fetch after leaving", err, store.ErrNotMember)
	if mem, _ := s.Memberships(ctx, "c1"); len(mem) != 0 {
		t.Fatalf("left device still has memberships %+v", mem)
	}
	// Re-adding a removed device.
	r = send(t, s, app{ConversationID: conv, Epoch: 2, Kind: store.KindCommit, Sender: "b1", Added: []string{"c1", "d1"}, Welcome: []byte("w")})
	c, _ := s.Conversation(ctx, conv)
	if !slices.Equal(c.Members, []string{"a1", "b1", "c1", "d1"}) || c.Epoch != 3 {
		t.Fatalf("after re-add: %+v", c)
	}
	if ms, _ := s.Fetch(ctx, "d1", conv, 10); len(ms) != 0 {
		t.Fatalf("new member sees history: %v", payloads(ms))
	}
}

func testAckTrims(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1")
	conv := group(t, s, "a1", "b1", "c1")
	var last uint64
	for i := range 3 {
		last = send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte{byte(i)}}).Message.Seq
	}
	if err := s.Ack(ctx, "b1", conv, last); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.Fetch(ctx, "c1", conv, 10); len(ms) != 3 {
		t.Fatalf("c1 lost messages acked only by b1: %d", len(ms))
	}
	if err := s.Ack(ctx, "c1", conv, last-1); err != nil {
		t.Fatal(err)
	}
	// A device re-reading is not possible for others' acks, so check the
	// log through a newly-fetched view of c1: one message left.
	if ms, _ := s.Fetch(ctx, "c1", conv, 10); len(ms) != 1 {
		t.Fatalf("c1 sees %d messages", len(ms))
	}
	// Everything acked by everyone is deleted: a re-added device would see
	// nothing, and the removed-device path reads nothing old.
	if err := s.Ack(ctx, "c1", conv, last); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpired(ctx, time.Now().Add(time.Hour), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Only the idempotency and epoch-commit records remain to expire:
	// 4 message ids + 1 epoch commit + 2 welcomes (inbox of b1 and c1).
	if n != 7 {
		t.Fatalf("DeleteExpired removed %d rows; acked messages were not trimmed (want 7)", n)
	}
}

func testInbox(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1", "b2")
	conv := []byte("conv")
	if err := s.CreateConversation(ctx, conv, "a1"); err != nil {
		t.Fatal(err)
	}
	r := send(t, s, app{ConversationID: conv, Epoch: 0, Kind: store.KindCommit, Sender: "a1", Payload: []byte("c"),
		Added: []string{"b1", "b2"}, Welcome: []byte("welcome-bytes")})
	if len(r.Welcomes) != 2 {
		t.Fatalf("welcomes = %+v", r.Welcomes)
	}
	for _, d := range []string{"b1", "b2"} {
		ms, err := s.FetchInbox(ctx, d, 10)
		if err != nil || len(ms) != 1 {
			t.Fatalf("inbox of %s: %+v, %v", d, ms, err)
		}
		w := ms[0]
		if w.Kind != store.KindWelcome || string(w.Payload) != "welcome-bytes" || !bytes.Equal(w.ConversationID, conv) || w.Epoch != 1 || w.Seq != 1 {
			t.Fatalf("welcome = %+v", w)
		}
	}
	if ms, _ := s.FetchInbox(ctx, "a1", 10); len(ms) != 0 {
		t.Fatalf("committer got a welcome")
	}
	mustErr(t, "ack beyond inbox head", s.AckInbox(ctx, "b1", 5), store.ErrBadRequest)
	if err := s.AckInbox(ctx, "b1", 1); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.FetchInbox(ctx, "b1", 10); len(ms) != 0 {
		t.Fatalf("acked welcome still in inbox")
	}
	if ms, _ := s.FetchInbox(ctx, "b2", 10); len(ms) != 1 {
		t.Fatalf("b1's ack emptied b2's inbox")
	}
	// Inbox sequence numbers keep growing after acks.
	conv2 := []byte("conv2")
	s.CreateConversation(ctx, conv2, "a1")
	send(t, s, app{ConversationID: conv2, Epoch: 0, Kind: store.KindCommit, Sender: "a1", Added: []string{"b1"}, Welcome: []byte("w2")})
	ms, _ := s.FetchInbox(ctx, "b1", 10)
	if len(ms) != 1 || ms[0].Seq != 2 {
		t.Fatalf("second welcome = %+v", ms)
	}
}

// Welcomes count against the added device's inbox limits, per sending
// account (all its devices together) and in total; a refused commit
// changes nothing, and an acknowledged Welcome frees its room.
// A commit refused on its second added device, after the first (another
// account's, so a pending change with a voter) could have been applied,
// leaves no trace: no member, no Welcome, no inbox seq taken, no pending
// change, no epoch.
func testRefusedCommitChangesNothing(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1")
	conv := group(t, s, "a1", "b1")
	refused := msgID()
	_, err := s.Append(ctx, app{ID: refused, ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1",
		Added: []string{"c1", "b1"}, Welcome: []byte("welcome"), InboxLimits: store.InboxLimits{TotalCount: 10}})
	mustErr(t, "add carol and bob, a member already", err, store.ErrBadRequest)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1",
		Added: []string{"c1"}, Removed: []string{"b1", "a1x"}})
	if err != nil {
		// a1x is unknown: a deleted device, skipped; nothing refused.
		t.Fatalf("add carol, remove bob and a deleted device: %v", err)
	}
	// That one was stored: start again from a fresh group.
	mustAccount(t, s, "dave", "d1")
	mustAccount(t, s, "erin", "e1")
	conv = group(t, s, "d1", "b1")
	_, err = s.Append(ctx, app{ID: refused, ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "d1",
		Added: []string{"e1", "ghost"}, Welcome: []byte("welcome")})
	mustErr(t, "add erin and an unknown device", err, store.ErrUnknownDevice)
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "d1",
		Added: []string{"e1"}, Removed: []string{"c1"}, Welcome: []byte("welcome")})
	mustErr(t, "add erin and remove carol, no member", err, store.ErrNotMember)
	if c, err := s.Conversation(ctx, conv); err != nil || c.Epoch != 1 || c.HeadSeq != 1 || !slices.Equal(c.Members, []string{"b1", "d1"}) {
		t.Fatalf("refused commits changed the conversation: %+v, %v", c, err)
	}
	if ms, err := s.FetchInbox(ctx, "e1", 10); err != nil || len(ms) != 0 {
		t.Fatalf("erin's inbox after refused commits: %d welcomes, %v", len(ms), err)
	}
	if ms, err := s.Memberships(ctx, "e1"); err != nil || len(ms) != 0 {
		t.Fatalf("erin's memberships after refused commits: %+v, %v", ms, err)
	}
	if v, err := s.Verdict(ctx, "b1", conv, refused, false); err != nil || v != store.VerdictIgnored {
		t.Fatalf("verdict on a refused commit: %v, %v; want ignored (nothing pending)", v, err)
	}
	// The same commit, now valid, takes epoch 1, seq 2 and erin's first
	// inbox seq; its addition waits for bob's verdict.
	r := send(t, s, app{ID: refused, ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "d1",
		Added: []string{"e1"}, Welcome: []byte("welcome")})
	if r.Duplicate || r.Message.Seq != 2 || r.Epoch != 2 || len(r.Welcomes) != 1 || r.Welcomes[0].Message.Seq != 1 {
		t.Fatalf("commit after the refused ones: %+v", r)
	}
	if v, err := s.Verdict(ctx, "b1", conv, refused, false); err != nil || v != store.VerdictDecided {
		t.Fatalf("bob's verdict on erin's addition: %v, %v", v, err)
	}
}

func testInboxLimits(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "mallory", "m1", "m2")
	mustAccount(t, s, "carol", "c1")
	limits := store.InboxLimits{PerSender: 250, Total: 350}
	welcome := bytes.Repeat([]byte("w"), 100)
	invite := func(sender, conv string) error {
		id := []byte(conv)
		if err := s.CreateConversation(ctx, id, sender); err != nil {
			t.Fatal(err)
		}
		_, err := s.Append(ctx, app{ID: msgID(), ConversationID: id, Epoch: 0, Kind: store.KindCommit, Sender: sender,
			Payload: []byte("c"), Added: []string{"a1"}, Welcome: welcome, InboxLimits: limits})
		return err
	}
	for i, sender := range []string{"m1", "m2"} { // two devices, one account
		if err := invite(sender, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatalf("invitation %d from mallory: %v", i+1, err)
		}
	}
	mustErr(t, "third invitation from mallory's other device", invite("m1", "m3"), store.ErrInboxFull)
	if c, err := s.Conversation(ctx, []byte("m3")); err != nil || c.Epoch != 0 || len(c.Members) != 1 {
		t.Fatalf("refused commit changed the conversation: %+v %v", c, err)
	}
	if err := invite("c1", "c0"); err != nil {
		t.Fatalf("carol's invitation refused because of mallory's: %v", err)
	}
	mustErr(t, "inbox over its total", invite("c1", "c1"), store.ErrInboxFull)
	ms, _ := s.FetchInbox(ctx, "a1", 10)
	if len(ms) != 3 {
		t.Fatalf("inbox holds %d welcomes, want 3", len(ms))
	}
	if err := s.AckInbox(ctx, "a1", ms[len(ms)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := invite("m1", "m4"); err != nil {
		t.Fatalf("invitation after alice read her inbox: %v", err)
	}
	// Counts: tiny Welcomes still count one each.
	limits = store.InboxLimits{PerSenderCount: 2, TotalCount: 3}
	welcome = []byte("w")
	if err := invite("m2", "m5"); err != nil { // mallory's 2nd unread
		t.Fatalf("second invitation from mallory: %v", err)
	}
	mustErr(t, "third unread invitation from mallory", invite("m1", "m6"), store.ErrInboxFull)
	if err := invite("c1", "c2"); err != nil { // 3rd in all
		t.Fatalf("carol's invitation: %v", err)
	}
	mustErr(t, "fourth unread invitation in all", invite("c1", "c3"), store.ErrInboxFull)
}

func testPrivacy(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "mallory", "m1")
	mustAccount(t, s, "bob", "b1")
	p, err := s.Privacy(ctx, "alice")
	if err != nil || len(p.Blocked) != 0 || p.GroupInvites != store.GroupInvitesEveryone {
		t.Fatalf("default privacy = %+v, %v", p, err)
	}
	_, err = s.Privacy(ctx, "nobody")
	mustErr(t, "privacy of no account", err, store.ErrNotFound)
	p, err = s.UpdatePrivacy(ctx, "alice", []string{"mallory", "bob"}, nil, store.GroupInvitesContacts)
	if err != nil || !slices.Equal(p.Blocked, []string{"bob", "mallory"}) || p.GroupInvites != store.GroupInvitesContacts {
		t.Fatalf("after blocking = %+v, %v", p, err)
	}
	// Failures change nothing.
	_, err = s.UpdatePrivacy(ctx, "alice", []string{"nobody"}, []string{"bob"}, store.GroupInvitesEveryone)
	mustErr(t, "blocking no account", err, store.ErrNotFound)
	_, err = s.UpdatePrivacy(ctx, "alice", []string{"alice"}, []string{"bob"}, 0)
	mustErr(t, "blocking oneself", err, store.ErrBadRequest)
	_, err = s.UpdatePrivacy(ctx, "alice", nil, nil, 9)
	mustErr(t, "unknown setting", err, store.ErrBadRequest)
	if p, _ := s.Privacy(ctx, "alice"); len(p.Blocked) != 2 || p.GroupInvites != store.GroupInvitesContacts {
		t.Fatalf("a failed update changed %+v", p)
	}
	p, err = s.UpdatePrivacy(ctx, "alice", []string{"mallory"}, []string{"bob"}, 0) // blocking twice is harmless
	if err != nil || !slices.Equal(p.Blocked, []string{"mallory"}) || p.GroupInvites != store.GroupInvitesContacts {
		t.Fatalf("after unblocking bob = %+v, %v", p, err)
	}
	if p, _ := s.Privacy(ctx, "bob"); len(p.Blocked) != 0 {
		t.Fatalf("alice's blocks show up for bob: %+v", p)
	}
	// (see testInboxLimits for counts)
	// Deleting alice's account deletes her settings; mallory's block of a
	// deleted account would stay.
	if _, err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Privacy(ctx, "alice"); err != nil || len(p.Blocked) != 0 || p.GroupInvites != store.GroupInvitesEveryone {
		t.Fatalf("deleted account's privacy = %+v, %v", p, err)
	}
}

func testRemoveDevice(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1", "a2")
	mustAccount(t, s, "bob", "b1")
	s.AddKeyPackages(ctx, "a1", []store.KeyPackage{kp("1")}, nil)
	s.AddKeyPackages(ctx, "a2", []store.KeyPackage{kp("2")}, &store.KeyPackage{Data: []byte("lr")})
	conv := group(t, s, "b1", "a1", "a2")
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "b1", Payload: []byte("hi")})
	if err := s.RemoveDevice(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "remove twice", s.RemoveDevice(ctx, "a2"), store.ErrNotFound)
	if _, err := s.Device(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed device still there: %v", err)
	}
	if n, _ := s.CountKeyPackages(ctx, "a2"); n != 0 {
		t.Fatalf("removed device keeps %d key packages", n)
	}
	got, _ := s.ConsumeKeyPackages(ctx, "alice", nil, 0)
	if len(got) != 1 || got[0].DeviceID != "a1" {
		t.Fatalf("key packages after removal: %+v", got)
	}
	c, _ := s.Conversation(ctx, conv)
	if !slices.Equal(c.Members, []string{"a1", "b1"}) {
		t.Fatalf("members after device removal: %v", c.Members)
	}
	_, err := s.Fetch(ctx, "a2", conv, 10)
	mustErr(t, "removed device fetches", err, store.ErrNotMember)
	// The group's commit removing the deleted device is accepted.
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "b1", Removed: []string{"a2"}})
}

func testDeleteAccount(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1", "a2")
	mustAccount(t, s, "bob", "b1")
	s.AddKeyPackages(ctx, "a1", []store.KeyPackage{kp("1")}, &store.KeyPackage{Data: []byte("lr")})
	conv := group(t, s, "b1", "a1", "a2")
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "b1", Payload: []byte("hi")})
	if err := s.CreateLink(ctx, store.Link{Username: "alice", Code: "55555555", PublicKey: key(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.DeleteAccount(ctx, "alice")
	if err != nil || !slices.Equal(ids, []string{"a1", "a2"}) {
		t.Fatalf("DeleteAccount = %v, %v; want [a1 a2]", ids, err)
	}
	_, err = s.DeleteAccount(ctx, "nobody")
	mustErr(t, "delete unknown account", err, store.ErrNotFound)
	if devs, err := s.Devices(ctx, "alice"); err != nil || len(devs) != 0 {
		t.Fatalf("devices of a deleted account: %v, %v", devs, err)
	}
	for _, d := range ids {
		if _, err := s.Device(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("device %s of a deleted account: %v", d, err)
		}
	}
	if got, _ := s.ConsumeKeyPackages(ctx, "alice", nil, 0); len(got) != 0 {
		t.Fatalf("key packages of a deleted account: %+v", got)
	}
	if _, err := s.ApproveLink(ctx, "alice", "55555555", store.Device{ID: "a3"}, nil, time.Now()); err == nil {
		t.Fatal("a link made before the deletion was approved after it")
	}
	c, _ := s.Conversation(ctx, conv)
	if !slices.Equal(c.Members, []string{"b1"}) {
		t.Fatalf("members after account deletion: %v", c.Members)
	}
	mustErr(t, "register a deleted name", s.CreateAccount(ctx, store.Device{ID: "x1", Username: "alice", PublicKey: key()}, ""), store.ErrExists)
	// The group's commit removing the deleted devices is accepted.
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "b1", Removed: []string{"a1", "a2"}})
}

func testRetention(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	conv := group(t, s, "a1", "b1")
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("old")})
	s.CreateLink(ctx, store.Link{Username: "alice", Code: "1", PublicKey: key(), Expires: time.Now().Add(time.Minute)})
	n, err := s.DeleteExpired(ctx, time.Now().Add(-time.Hour), time.Now())
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpired(past) = %d, %v", n, err)
	}
	if ms, _ := s.Fetch(ctx, "b1", conv, 10); len(ms) != 1 {
		t.Fatalf("fresh message expired")
	}
	n, err = s.DeleteExpired(ctx, time.Now().Add(time.Second), time.Now().Add(time.Hour))
	if err != nil || n == 0 {
		t.Fatalf("DeleteExpired(future) = %d, %v", n, err)
	}
	if ms, _ := s.Fetch(ctx, "b1", conv, 10); len(ms) != 0 {
		t.Fatalf("expired message still delivered")
	}
	if ms, _ := s.FetchInbox(ctx, "b1", 10); len(ms) != 0 {
		t.Fatalf("expired welcome still delivered")
	}
	_, err = s.ApproveLink(ctx, "alice", "1", store.Device{ID: "a2"}, nil, time.Now())
	mustErr(t, "expired link", err, store.ErrNotFound)
	// The conversation itself and its epoch survive.
	c, err := s.Conversation(ctx, conv)
	if err != nil || c.Epoch != 1 || c.HeadSeq != 2 {
		t.Fatalf("conversation after retention: %+v, %v", c, err)
	}
	r := send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("new")})
	if r.Message.Seq != 3 {
		t.Fatalf("seq reused after retention: %d", r.Message.Seq)
	}
}

func testDisappearing(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	conv := group(t, s, "a1", "b1")
	base := time.Unix(1_900_000_000, 0)
	// Only application messages may carry an expiry.
	_, err := s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindProposal, Sender: "a1",
		Payload: []byte("p"), Expires: base})
	mustErr(t, "expiry on a proposal", err, store.ErrBadRequest)
	if n, next, err := s.DeleteDisappeared(ctx, base); err != nil || n != 0 || !next.IsZero() {
		t.Fatalf("DeleteDisappeared(nothing stored) = %d, %v, %v", n, next, err)
	}
	soonID, soonSent := msgID(), base.UnixMilli()
	send(t, s, app{ID: soonID, ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1",
		Payload: []byte("soon"), Expires: base.Add(time.Minute), FirstSent: soonSent})
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("kept")})
	send(t, s, app{ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1",
		Payload: []byte("later"), Expires: base.Add(time.Hour)})
	// Before the first expiry nothing goes, and the first expiry is named.
	n, next, err := s.DeleteDisappeared(ctx, base.Add(time.Minute-time.Second))
	if err != nil || n != 0 || !next.Equal(base.Add(time.Minute)) {
		t.Fatalf("DeleteDisappeared(before) = %d, %v, %v; want 0, %v", n, next, err, base.Add(time.Minute))
	}
	// At its expiry, the message is gone, fetched or not; the rest stay.
	n, next, err = s.DeleteDisappeared(ctx, base.Add(time.Minute))
	if err != nil || n != 1 || !next.Equal(base.Add(time.Hour)) {
		t.Fatalf("DeleteDisappeared(at expiry) = %d, %v, %v; want 1, %v", n, next, err, base.Add(time.Hour))
	}
	ms, err := s.Fetch(ctx, "b1", conv, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(ms); !slices.Equal(got, []string{"kept", "later"}) {
		t.Fatalf("after the first expiry bob fetches %q; want kept, later", got)
	}
	// Its idempotency record went with it: the id is unknown now.
	r := send(t, s, app{ID: soonID, ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Payload: []byte("again"), FirstSent: soonSent})
	if r.Duplicate {
		t.Fatalf("the id of a disappeared message is still recorded: %+v", r)
	}
	// A message already trimmed by acknowledgements is no obstacle.
	if err := s.Ack(ctx, "b1", conv, r.Message.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "a1", conv, r.Message.Seq); err != nil {
		t.Fatal(err)
	}
	n, next, err = s.DeleteDisappeared(ctx, base.Add(2*time.Hour))
	if err != nil || n != 1 || !next.IsZero() {
		t.Fatalf("DeleteDisappeared(after all) = %d, %v, %v; want 1, zero", n, next, err)
	}
}

func testBadAppends(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	conv := group(t, s, "a1", "b1")
	for _, tc := range []struct {
		name string
		a    app
		want error
	}{
		{"short id", app{ID: []byte("x"), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1"}, store.ErrBadRequest},
		{"unknown conversation", app{ID: msgID(), ConversationID: []byte("nope"), Epoch: 1, Kind: store.KindApplication, Sender: "a1"}, store.ErrNotFound},
		{"welcome kind", app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindWelcome, Sender: "a1"}, store.ErrBadRequest},
		{"zero kind", app{ID: msgID(), ConversationID: conv, Epoch: 1, Sender: "a1"}, store.ErrBadRequest},
		{"delta on application", app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindApplication, Sender: "a1", Removed: []string{"b1"}}, store.ErrBadRequest},
		{"welcome without adds", app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Welcome: []byte("w")}, store.ErrBadRequest},
		{"repeated device", app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Removed: []string{"b1", "b1"}}, store.ErrBadRequest},
		{"add and remove", app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: store.KindCommit, Sender: "a1", Added: []string{"b1"}, Removed: []string{"b1"}}, store.ErrBadRequest},
	} {
		if _, err := s.Append(ctx, tc.a); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if c, _ := s.Conversation(ctx, conv); c.HeadSeq != 1 || c.Epoch != 1 {
		t.Fatalf("bad appends changed the conversation: %+v", c)
	}
}

// testConcurrentAppends checks that concurrent appends (which a backend may
// group-commit) get distinct, gap-free sequence numbers and that exactly
// one of many concurrent commits for one epoch wins.
func testConcurrentAppends(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	conv := group(t, s, "a1", "b1")
	const n = 40
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			kind := store.KindApplication
			if i%10 == 0 {
				kind = store.KindCommit
			}
			r, err := s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: 1, Kind: kind, Sender: "a1", Payload: []byte{byte(i)}})
			seqs[i], errs[i] = r.Message.Seq, err
		})
	}
	wg.Wait()
	var ok []uint64
	conflicts := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok = append(ok, seqs[i])
		case errors.Is(err, store.ErrEpochConflict):
			conflicts++
		default:
			t.Fatalf("append %d: %v", i, err)
		}
	}
	// One commit won epoch 1; the other three conflict. Application
	// messages for epoch 1 are all accepted.
	if conflicts != 3 {
		t.Fatalf("%d commits conflicted, want 3", conflicts)
	}
	slices.Sort(ok)
	for i, seq := range ok {
		if seq != uint64(i+2) {
			t.Fatalf("sequence numbers not dense: %v", ok)
		}
	}
	ms, _ := s.Fetch(ctx, "b1", conv, 100)
	if len(ms) != len(ok) {
		t.Fatalf("b1 fetched %d, %d were stored", len(ms), len(ok))
	}
}

// The first signed list binds the account key; later ones need that key
// and a higher version; a failed publish changes nothing.
func testDeviceLists(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	_, err := s.DeviceList(ctx, "alice")
	mustErr(t, "no list yet", err, store.ErrNotFound)
	mustErr(t, "no account", s.PublishDeviceList(ctx, store.DeviceList{Username: "nobody", AccountKey: []byte("k"), Version: 1, Signed: []byte("l")}), store.ErrNotFound)
	if err := s.PublishDeviceList(ctx, store.DeviceList{Username: "alice", AccountKey: []byte("k1"), Version: 1, Signed: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "same version", s.PublishDeviceList(ctx, store.DeviceList{Username: "alice", AccountKey: []byte("k1"), Version: 1, Signed: []byte("v1b")}), store.ErrStaleVersion)
	mustErr(t, "other key", s.PublishDeviceList(ctx, store.DeviceList{Username: "alice", AccountKey: []byte("k2"), Version: 5, Signed: []byte("v5")}), store.ErrAccountKey)
	if err := s.PublishDeviceList(ctx, store.DeviceList{Username: "alice", AccountKey: []byte("k1"), Version: 3, Signed: []byte("v3")}); err != nil {
		t.Fatal(err)
	}
	l, err := s.DeviceList(ctx, "alice")
	if err != nil || l.Version != 3 || string(l.Signed) != "v3" || string(l.AccountKey) != "k1" {
		t.Fatalf("DeviceList = %+v, %v", l, err)
	}
	if _, err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeviceList(ctx, "alice")
	mustErr(t, "list after account deletion", err, store.ErrNotFound)
}

func pendingNames(t *testing.T, s store.Store) []string {
	t.Helper()
	ls, err := s.KTPending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s:%d:%s", l.Username, l.Version, l.Signed))
	}
	return out
}

func testTransparency(t *testing.T, s store.Store) {
	st, err := s.KTLoad(ctx)
	if err != nil || len(st.Records) != 0 || len(st.Labels) != 0 || st.Published != nil {
		t.Fatalf("empty directory: %+v, %v", st, err)
	}
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1") // never publishes a list
	for _, u := range []string{"alice", "bob"} {
		if err := s.PublishDeviceList(ctx, store.DeviceList{Username: u, AccountKey: []byte("k"), Version: 1, Signed: []byte(u + "1")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(pendingNames(t, s)); got != "[alice:1:alice1 bob:1:bob1]" {
		t.Fatalf("pending = %s", got)
	}
	label := func(u string, epoch uint64, v uint32) (store.KTLabel, store.KTVersion) {
		return store.KTLabel{Label: u, Index: []byte("i-" + u), VRFProof: []byte("p"), Leaf: []byte(fmt.Sprint("leaf", epoch)), Epoch: epoch, Version: v},
			store.KTVersion{Label: u, Epoch: epoch, Version: v, Prev: []byte("prev"), Opening: []byte("o"), Value: []byte(fmt.Sprint(u, v))}
	}
	al, av := label("alice", 0, 1)
	bl, bv := label("bob", 0, 1)
	e0 := store.KTEpoch{Epoch: 0, Record: []byte("r0"), Changes: []byte("c0"), Labels: []store.KTLabel{al, bl}, Versions: []store.KTVersion{av, bv}}
	mustErr(t, "epoch 1 first", s.KTCommitEpoch(ctx, store.KTEpoch{Epoch: 1, Record: []byte("r1"), Changes: []byte("c1")}), store.ErrBadRequest)
	if err := s.KTCommitEpoch(ctx, e0); err != nil {
		t.Fatal(err)
	}
	mustErr(t, "epoch 0 again", s.KTCommitEpoch(ctx, e0), store.ErrExists)
	if got := pendingNames(t, s); len(got) != 0 {
		t.Fatalf("pending after the epoch: %v", got)
	}
	// alice publishes version 2 while the epoch that takes version 1 is
	// being prepared: her account stays pending.
	if err := s.PublishDeviceList(ctx, store.DeviceList{Username: "alice", AccountKey: []byte("k"), Version: 2, Signed: []byte("alice2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAccount(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pendingNames(t, s)); got != "[alice:2:alice2 bob:1:]" {
		t.Fatalf("pending = %s (bob's deletion shows with no list)", got)
	}
	al2, av2 := label("alice", 1, 2)
	e1 := store.KTEpoch{Epoch: 1, Record: []byte("r1"), Changes: []byte("c1"), Labels: []store.KTLabel{al2}, Versions: []store.KTVersion{av2}, Removed: []string{"bob"}}
	if err := s.KTCommitEpoch(ctx, e1); err != nil {
		t.Fatal(err)
	}
	if got := pendingNames(t, s); len(got) != 0 {
		t.Fatalf("pending after epoch 1: %v", got)
	}
	if err := s.KTSetPublished(ctx, []byte("note1")); err != nil {
		t.Fatal(err)
	}
	st, err = s.KTLoad(ctx)
	if err != nil || fmt.Sprintf("%s", st.Records) != "[r0 r1]" || len(st.Labels) != 1 || st.Labels[0].Version != 2 || string(st.Labels[0].Leaf) != "leaf1" || string(st.Published) != "note1" {
		t.Fatalf("loaded %+v, %v", st, err)
	}
	v, err := s.KTVersion(ctx, "alice", 0)
	if err != nil || string(v.Value) != "alice1" || string(v.Opening) != "o" {
		t.Fatalf("alice at epoch 0: %+v %v", v, err)
	}
	_, err = s.KTVersion(ctx, "bob", 0)
	mustErr(t, "removed label's versions", err, store.ErrNotFound)
	vs, err := s.KTVersions(ctx, "alice", 0, true, 10)
	if err != nil || len(vs) != 2 || vs[1].Version != 2 {
		t.Fatalf("alice from start: %+v %v", vs, err)
	}
	vs, err = s.KTVersions(ctx, "alice", 0, false, 10)
	if err != nil || len(vs) != 1 || vs[0].Epoch != 1 {
		t.Fatalf("alice after epoch 0: %+v %v", vs, err)
	}
	if vs, _ := s.KTVersions(ctx, "alice", 0, true, 1); len(vs) != 1 {
		t.Fatalf("limit 1: %d", len(vs))
	}
	rec, ch, err := s.KTEpoch(ctx, 1)
	if err != nil || string(rec) != "r1" || string(ch) != "c1" {
		t.Fatalf("epoch 1: %q %q %v", rec, ch, err)
	}
	_, _, err = s.KTEpoch(ctx, 2)
	mustErr(t, "epoch 2", err, store.ErrNotFound)
}

func testLegal(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1")
	if _, err := s.AccountCreated(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := s.AccountCreated(ctx, "nobody")
	mustErr(t, "created of no account", err, store.ErrNotFound)
	d, err := s.Device(ctx, "a1")
	if err != nil || !d.LastSeen.IsZero() {
		t.Fatalf("new device: %+v %v", d, err)
	}
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if err := s.SeenDevice(ctx, "a1", day.Add(13*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SeenDevice(ctx, "a1", day.Add(-48*time.Hour)); err != nil { // never goes back
		t.Fatal(err)
	}
	if d, _ = s.Device(ctx, "a1"); !d.LastSeen.Equal(day) {
		t.Fatalf("last seen %v, want the day %v only", d.LastSeen, day)
	}

	mustErr(t, "empty request", func() error { _, err := s.LegalPut(ctx, store.LegalRequest{ID: "r1"}, []byte("x")); return err }(), store.ErrBadRequest)
	if n, err := s.LegalPut(ctx, store.LegalRequest{ID: "r0", Recorded: day, Data: []byte("v0")}, nil); err != nil || n != -1 {
		t.Fatalf("put without a record: %d %v", n, err)
	}
	n, err := s.LegalPut(ctx, store.LegalRequest{ID: "r1", Recorded: day, Data: []byte("v1")}, []byte("rec0"))
	if err != nil || n != 0 {
		t.Fatalf("put: %d %v", n, err)
	}
	until := day.Add(90 * 24 * time.Hour)
	if n, err = s.LegalPut(ctx, store.LegalRequest{ID: "r1", Recorded: day, Data: []byte("v2"), PreservedUntil: until}, []byte("rec1")); err != nil || n != 1 {
		t.Fatalf("update: %d %v", n, err)
	}
	if n, err = s.LegalAppend(ctx, []byte("rec2")); err != nil || n != 2 {
		t.Fatalf("append: %d %v", n, err)
	}
	r, err := s.LegalGet(ctx, "r1")
	if err != nil || string(r.Data) != "v2" || !r.PreservedUntil.Equal(until) || !r.Recorded.Equal(day) {
		t.Fatalf("get: %+v %v", r, err)
	}
	_, err = s.LegalGet(ctx, "r2")
	mustErr(t, "unknown request", err, store.ErrNotFound)
	if rs, err := s.LegalList(ctx); err != nil || len(rs) != 2 {
		t.Fatalf("list: %d %v", len(rs), err)
	}
	recs, err := s.LegalLog(ctx)
	if err != nil || fmt.Sprintf("%s", recs) != "[rec0 rec1 rec2]" {
		t.Fatalf("log: %s %v", recs, err)
	}
}

// testVerdicts: a commit's changes to other accounts' devices wait for the
// members' verdicts (store.Store.Verdict, docs/protocol.md §14).
func testVerdicts(t *testing.T, s store.Store) {
	for _, u := range []string{"alice", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan"} {
		mustAccount(t, s, u, u[:1]+"1")
	}
	mustAccount(t, s, "mallory", "m1", "m2")
	var conv []byte
	epochs := map[string]uint64{}
	commit := func(sender string, added, removed []string) store.AppendResult {
		t.Helper()
		var w []byte
		if len(added) > 0 {
			w = []byte("welcome")
		}
		r := send(t, s, app{ConversationID: conv, Epoch: epochs[string(conv)], Kind: store.KindCommit, Sender: sender, Added: added, Removed: removed, Welcome: w})
		epochs[string(conv)]++
		return r
	}
	verdict := func(dev string, r store.AppendResult, refuse bool, want store.VerdictOutcome) {
		t.Helper()
		got, err := s.Verdict(ctx, dev, conv, r.Message.ID, refuse)
		if err != nil || got != want {
			t.Fatalf("Verdict(%s, refuse=%v) = %v, %v; want %v", dev, refuse, got, err, want)
		}
	}
	members := func(want ...string) {
		t.Helper()
		c, err := s.Conversation(ctx, conv)
		if err != nil || !slices.Equal(c.Members, want) {
			t.Fatalf("members = %v, %v; want %v", c.Members, err, want)
		}
	}
	conv = group(t, s, "a1", "b1", "c1", "m1")
	epochs[string(conv)] = 1

	// Mallory's device adds her second device: her own account's change
	// needs no verdict.
	commit("m1", []string{"m2"}, nil)
	members("a1", "b1", "c1", "m1", "m2")

	// Mallory removes bob: pending, bob stays a member and gets what is
	// sent after. Mallory's devices have no say, bob's own verdict does
	// not count while others have a say, and one refusal (carol's) is
	// enough to keep him: it decides the removal dropped at once, so
	// alice's acceptance after it finds nothing pending.
	rm := commit("m1", nil, []string{"b1"})
	members("a1", "b1", "c1", "m1", "m2")
	if !slices.Contains(rm.Recipients, "b1") {
		t.Fatalf("removing commit recipients %v lack b1", rm.Recipients)
	}
	verdict("m1", rm, false, store.VerdictIgnored)
	verdict("m2", rm, false, store.VerdictIgnored)
	verdict("b1", rm, false, store.VerdictCounted)
	verdict("c1", rm, true, store.VerdictDecided)
	verdict("a1", rm, false, store.VerdictIgnored)
	verdict("c1", rm, false, store.VerdictIgnored)
	members("a1", "b1", "c1", "m1", "m2")
	r := send(t, s, app{ConversationID: conv, Epoch: epochs[string(conv)], Kind: store.KindApplication, Sender: "a1", Payload: []byte("still here")})
	if !slices.Contains(r.Recipients, "b1") {
		t.Fatalf("recipients after a refused removal %v lack b1", r.Recipients)
	}
	if ms, err := s.Fetch(ctx, "b1", conv, 100); err != nil || !slices.Contains(payloads(ms), "still here") {
		t.Fatalf("b1 fetched %v, %v after a refused removal", payloads(ms), err)
	}
	if mem, _ := s.Memberships(ctx, "b1"); len(mem) != 1 || mem[0].RemovedAt != 0 {
		t.Fatalf("b1's memberships after a refused removal: %+v", mem)
	}

	// Mallory adds eve (pending), then removes carol: eve, whose own
	// addition is pending, has no say on it. The addition is undone once
	// every voter refused it: eve is no member, and an admin's later
	// addition of her works.
	add := commit("m1", []string{"e1"}, nil)
	members("a1", "b1", "c1", "e1", "m1", "m2")
	rm2 := commit("m1", nil, []string{"c1"})
	verdict("e1", rm2, false, store.VerdictIgnored)
	verdict("a1", rm2, true, store.VerdictDecided)
	verdict("e1", add, false, store.VerdictCounted)
	verdict("b1", add, true, store.VerdictCounted)
	verdict("a1", add, true, store.VerdictCounted)
	members("a1", "b1", "c1", "e1", "m1", "m2")
	verdict("c1", add, true, store.VerdictDecided)
	members("a1", "b1", "c1", "m1", "m2")
	_, err := s.Fetch(ctx, "e1", conv, 10)
	mustErr(t, "fetch by a device whose addition was refused", err, store.ErrNotMember)
	// eve's device, which had joined, is told in its inbox, after the
	// Welcome: an entry of kind refused with the commit's id.
	if ms, err := s.FetchInbox(ctx, "e1", 10); err != nil || len(ms) != 2 || ms[0].Kind != store.KindWelcome ||
		ms[1].Kind != store.KindRefused || !bytes.Equal(ms[1].ID, add.Message.ID) || !bytes.Equal(ms[1].ConversationID, conv) || ms[1].Seq <= ms[0].Seq {
		t.Fatalf("e1's inbox after the members undid its addition: %+v, %v; want the Welcome, then the refused notice", ms, err)
	}
	_, err = s.Verdict(ctx, "e1", conv, add.Message.ID, false)
	mustErr(t, "verdict of a non-member", err, store.ErrNotMember)

	// Alice adds dave: one acceptance keeps the addition, whatever
	// mallory says.
	add = commit("a1", []string{"d1"}, nil)
	verdict("m1", add, true, store.VerdictCounted)
	verdict("b1", add, false, store.VerdictDecided)
	verdict("c1", add, true, store.VerdictIgnored)
	members("a1", "b1", "c1", "d1", "m1", "m2")

	// Alice removes bob: his refusal does not count when others have a
	// say; once every voter accepted he is removed, as Append used to at
	// once: he may read up to the commit and no longer post.
	rm3 := commit("a1", nil, []string{"b1"})
	verdict("b1", rm3, true, store.VerdictCounted)
	verdict("c1", rm3, false, store.VerdictCounted)
	verdict("d1", rm3, false, store.VerdictCounted)
	verdict("m1", rm3, false, store.VerdictCounted)
	members("a1", "b1", "c1", "d1", "m1", "m2")
	verdict("m2", rm3, false, store.VerdictDecided)
	members("a1", "c1", "d1", "m1", "m2")
	if mem, _ := s.Memberships(ctx, "b1"); len(mem) != 1 || mem[0].RemovedAt != rm3.Message.Seq {
		t.Fatalf("b1's memberships after its removal: %+v", mem)
	}
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: epochs[string(conv)], Kind: store.KindApplication, Sender: "b1", Payload: []byte("x")})
	mustErr(t, "removed device posts", err, store.ErrNotMember)

	_, err = s.Verdict(ctx, "a1", conv, []byte("short"), false)
	mustErr(t, "short commit id", err, store.ErrBadRequest)
	verdict("a1", r, false, store.VerdictIgnored) // an application message

	// A voter that leaves stops holding up what waited for it: frank
	// removes grace, ivan says nothing; frank removes ivan, and with ivan
	// gone grace's removal is decided too. Deleting a silent device does
	// the same.
	conv = group(t, s, "f1", "g1", "h1", "i1")
	epochs[string(conv)] = 1
	rmG := commit("f1", nil, []string{"g1"})
	verdict("h1", rmG, false, store.VerdictCounted)
	rmI := commit("f1", nil, []string{"i1"})
	verdict("g1", rmI, false, store.VerdictCounted)
	members("f1", "g1", "h1", "i1")
	verdict("h1", rmI, false, store.VerdictDecided)
	members("f1", "h1")
	conv = group(t, s, "h1", "a1", "c1")
	epochs[string(conv)] = 1
	rmA := commit("h1", nil, []string{"a1"})
	if err := s.RemoveDevice(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	members("a1", "h1")
	verdict("a1", rmA, false, store.VerdictDecided) // now the only one with a say
	members("h1")

	// Two members: no one but the removed device has a say.
	for _, refuse := range []bool{true, false} {
		conv = []byte(fmt.Sprintf("two-%v", refuse))
		if err := s.CreateConversation(ctx, conv, "f1"); err != nil {
			t.Fatal(err)
		}
		a := commit("f1", []string{"g1"}, nil)
		verdict("g1", a, false, store.VerdictDecided)
		rm := commit("f1", nil, []string{"g1"})
		verdict("f1", rm, false, store.VerdictIgnored)
		verdict("g1", rm, refuse, store.VerdictDecided)
		if refuse {
			members("f1", "g1")
		} else {
			members("f1")
		}
	}

	// A joiner's refusal, when no one else has a say, undoes its addition.
	conv = []byte("joiner")
	if err := s.CreateConversation(ctx, conv, "f1"); err != nil {
		t.Fatal(err)
	}
	a := commit("f1", []string{"g1"}, nil)
	verdict("g1", a, true, store.VerdictDecided)
	members("f1")
	if ms, err := s.FetchInbox(ctx, "g1", 100); err != nil || len(ms) == 0 || ms[len(ms)-1].Kind != store.KindWelcome {
		t.Fatalf("g1's inbox after its own refusal: %+v, %v; want no refused notice (it knows)", ms, err)
	}
	commit("f1", []string{"g1"}, nil)
	members("f1", "g1")

	// When others have a say, a joiner that refused its Welcome stays
	// until they refuse too, but may be added again meanwhile (it reads
	// nothing of the group: its cursor starts anew); one that did not
	// refuse may not.
	conv = group(t, s, "d1", "f1", "m1")
	epochs[string(conv)] = 1
	a = commit("m1", []string{"g1", "i1"}, nil)
	verdict("g1", a, true, store.VerdictCounted)
	members("d1", "f1", "g1", "i1", "m1")
	_, err = s.Append(ctx, app{ID: msgID(), ConversationID: conv, Epoch: epochs[string(conv)], Kind: store.KindCommit, Sender: "d1", Added: []string{"i1"}, Welcome: []byte("w")})
	mustErr(t, "add again a device that did not refuse", err, store.ErrBadRequest)
	again := commit("d1", []string{"g1"}, nil)
	members("d1", "f1", "g1", "i1", "m1")
	if ms, err := s.FetchInbox(ctx, "g1", 10); err != nil || len(ms) == 0 || !bytes.Equal(ms[len(ms)-1].ID, again.Message.ID) {
		t.Fatalf("g1's inbox after it was added again: %v, %v", ms, err)
	}
	verdict("f1", a, true, store.VerdictCounted)
	verdict("d1", a, true, store.VerdictDecided) // undoes i1's addition only
	members("d1", "f1", "g1", "m1")
	verdict("f1", again, false, store.VerdictDecided)
	members("d1", "f1", "g1", "m1")

	// A device whose removal is pending, added again (an admin adds back
	// whom she just removed): it stays the member it was, cursor and
	// all, its removal dropped, and gets the Welcome.
	conv = group(t, s, "e1", "f1", "h1")
	epochs[string(conv)] = 1
	rm = commit("e1", nil, []string{"h1"})
	send(t, s, app{ConversationID: conv, Epoch: epochs[string(conv)], Kind: store.KindApplication, Sender: "f1", Payload: []byte("between")})
	again = commit("e1", []string{"h1"}, nil)
	members("e1", "f1", "h1")
	verdict("f1", rm, false, store.VerdictIgnored)
	members("e1", "f1", "h1")
	if ms, err := s.Fetch(ctx, "h1", conv, 100); err != nil || !slices.Contains(payloads(ms), "between") {
		t.Fatalf("h1 fetched %v, %v after it was added back", payloads(ms), err)
	}
	if ms, err := s.FetchInbox(ctx, "h1", 10); err != nil || len(ms) == 0 || !bytes.Equal(ms[len(ms)-1].ID, again.Message.ID) {
		t.Fatalf("h1's inbox after it was added back: %v, %v", ms, err)
	}
}

// PendingBound checks store.MaxPendingRemovals against a hostile member
// who mints removals of another member's device, commit after commit.
// rows counts the backend's rows of pending changes and of voters on
// them (all conversations), which the Store interface does not show.
// While an honest voter answers, each removal is dropped at its first
// refusal and nothing stays; while none answers, the oldest removals past
// the bound are dropped. Either way the rows stay bounded, and the
// device whose removal was refused stays a member that receives what is
// sent.
func PendingBound(t *testing.T, s store.Store, rows func() int) {
	t.Helper()
	mustAccount(t, s, "alice", "a1")
	mustAccount(t, s, "bob", "b1")
	mustAccount(t, s, "carol", "c1")
	mustAccount(t, s, "mallory", "m1")
	conv := group(t, s, "a1", "b1", "c1", "m1")
	epoch := uint64(1)
	remove := func() store.AppendResult {
		t.Helper()
		r := send(t, s, app{ConversationID: conv, Epoch: epoch, Kind: store.KindCommit, Sender: "m1", Removed: []string{"b1"}})
		epoch++
		return r
	}
	n := 3 * store.MaxPendingRemovals
	for i := range n {
		r := remove()
		if v, err := s.Verdict(ctx, "a1", conv, r.Message.ID, true); err != nil || v != store.VerdictDecided {
			t.Fatalf("alice's refusal of removal %d: %v, %v; want decided", i, v, err)
		}
		if got := rows(); got != 0 {
			t.Fatalf("%d pending rows after removal %d was refused, want 0", got, i)
		}
	}
	// No voter answers: alice and carol have a say on each (bob is the
	// device changed, mallory the committer).
	var rs []store.AppendResult
	for range n {
		rs = append(rs, remove())
	}
	if got, most := rows(), store.MaxPendingRemovals*(1+2); got > most {
		t.Fatalf("%d pending rows after %d unanswered removals, want at most %d", got, n, most)
	}
	if v, err := s.Verdict(ctx, "c1", conv, rs[0].Message.ID, false); err != nil || v != store.VerdictIgnored {
		t.Fatalf("carol's verdict on the oldest removal past the bound: %v, %v; want ignored (dropped)", v, err)
	}
	if v, err := s.Verdict(ctx, "c1", conv, rs[n-1].Message.ID, true); err != nil || v != store.VerdictDecided {
		t.Fatalf("carol's refusal of the newest removal: %v, %v; want decided", v, err)
	}
	c, err := s.Conversation(ctx, conv)
	if err != nil || !slices.Equal(c.Members, []string{"a1", "b1", "c1", "m1"}) {
		t.Fatalf("members = %v, %v; want bob still among them", c.Members, err)
	}
	r := send(t, s, app{ConversationID: conv, Epoch: epoch, Kind: store.KindApplication, Sender: "a1", Payload: []byte("still with bob")})
	if !slices.Contains(r.Recipients, "b1") {
		t.Fatalf("recipients %v lack bob", r.Recipients)
	}
	var got []string
	for {
		ms, err := s.Fetch(ctx, "b1", conv, 100)
		if err != nil {
			t.Fatalf("bob's fetch: %v", err)
		}
		if len(ms) == 0 {
			break
		}
		got = append(got, payloads(ms)...)
		if err := s.Ack(ctx, "b1", conv, ms[len(ms)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(got, "still with bob") {
		t.Fatalf("bob fetched no message after the removals")
	}
}

// testLimitCounters: CountLimit adds up within a window (from any
// goroutine: nodes count concurrently), starts a window at the first
// count after one ended, keeps keys apart, reads with n = 0, and refuses
// nonsense; DeleteEndedLimits forgets only ended windows.
func testLimitCounters(t *testing.T, s store.Store) {
	now := time.UnixMilli(1_800_000_000_000)
	per := time.Minute
	count := func(key string, n int, at time.Time) (int, time.Time) {
		t.Helper()
		total, ends, err := s.CountLimit(ctx, key, n, per, at)
		if err != nil {
			t.Fatalf("CountLimit(%s, %d): %v", key, n, err)
		}
		return total, ends
	}
	if total, ends := count("send:alice", 3, now); total != 3 || !ends.Equal(now.Add(per)) {
		t.Fatalf("first count: total %d, ends %v; want 3, %v", total, ends, now.Add(per))
	}
	if total, ends := count("send:alice", 4, now.Add(30*time.Second)); total != 7 || !ends.Equal(now.Add(per)) {
		t.Fatalf("second count: total %d, ends %v; want 7 in the same window", total, ends)
	}
	if total, _ := count("send:alice", 0, now.Add(31*time.Second)); total != 7 {
		t.Fatalf("a read (n = 0) gave %d, want 7", total)
	}
	if total, _ := count("send:bob", 1, now); total != 1 {
		t.Fatalf("another key: total %d, want 1", total)
	}
	next := now.Add(per) // the window has ended: a new one starts here
	if total, ends := count("send:alice", 2, next); total != 2 || !ends.Equal(next.Add(per)) {
		t.Fatalf("after the window: total %d, ends %v; want 2, %v", total, ends, next.Add(per))
	}
	for _, bad := range []struct {
		n   int
		per time.Duration
	}{{-1, time.Minute}, {1, 0}, {1, -time.Second}} {
		if _, _, err := s.CountLimit(ctx, "send:alice", bad.n, bad.per, next); !errors.Is(err, store.ErrBadRequest) {
			t.Fatalf("CountLimit(n %d, per %v): %v, want ErrBadRequest", bad.n, bad.per, err)
		}
	}
	if total, _ := count("send:alice", 0, next); total != 2 {
		t.Fatalf("refused counts changed the total to %d", total)
	}

	// bob's window (ended at now+per) is forgotten, alice's (ends at
	// next+per) kept: a read at a time inside bob's old window shows it.
	if err := s.DeleteEndedLimits(ctx, next.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if total, _ := count("send:bob", 0, now.Add(time.Second)); total != 0 {
		t.Fatalf("an ended window survived DeleteEndedLimits: total %d", total)
	}
	if total, _ := count("send:alice", 0, next.Add(time.Second)); total != 2 {
		t.Fatalf("a current window was deleted: total %d, want 2", total)
	}

	// Concurrent counts all add up.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, _, err := s.CountLimit(ctx, "send:carol", 1, per, now); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if total, _ := count("send:carol", 0, now); total != 200 {
		t.Fatalf("200 concurrent counts gave a total of %d", total)
	}
}

// testSlots: counts of two nodes add up against max; a release makes room;
// a node's count stops counting for others once its lease ends unrenewed
// (a node killed without releasing), while renewed leases keep counting;
// concurrent acquisitions never pass max.
func testSlots(t *testing.T, s store.Store) {
	now := time.UnixMilli(1_800_000_000_000)
	lease := 90 * time.Second
	acquire := func(node string, at time.Time, want bool) {
		t.Helper()
		ok, err := s.AcquireSlot(ctx, "conns:alice", node, 3, at.Add(lease), at)
		if err != nil || ok != want {
			t.Fatalf("AcquireSlot(%s) at %v: %v, %v; want %v", node, at.Sub(now), ok, err, want)
		}
	}
	acquire("a", now, true)
	acquire("b", now, true)
	acquire("a", now, true)
	acquire("b", now, false) // 3 held across the nodes
	acquire("a", now, false)
	if ok, _ := s.AcquireSlot(ctx, "conns:bob", "a", 3, now.Add(lease), now); !ok {
		t.Fatal("another key was refused")
	}
	if err := s.ReleaseSlot(ctx, "conns:alice", "b"); err != nil {
		t.Fatal(err)
	}
	acquire("b", now, true)
	// b dies: its lease (now+90s) ends; a renews.
	later := now.Add(60 * time.Second)
	if err := s.RenewSlots(ctx, "a", later.Add(lease), later); err != nil {
		t.Fatal(err)
	}
	acquire("c", later, false) // b's lease has not ended yet
	end := now.Add(lease)
	acquire("c", end, true) // b's count stopped counting; a's 2 still do
	acquire("c", end, false)
	if err := s.RenewSlots(ctx, "a", end.Add(lease), end); err != nil {
		t.Fatal(err)
	}
	// Releases past zero stay at zero.
	for range 3 {
		if err := s.ReleaseSlot(ctx, "conns:carol", "a"); err != nil {
			t.Fatal(err)
		}
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				ok, err := s.AcquireSlot(ctx, "conns:carol", fmt.Sprintf("node%d", i%3), 10, end.Add(lease), end)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != 10 {
		t.Fatalf("32 concurrent acquisitions of 10 slots got %d", got.Load())
	}
}

// DevicesByID finds the devices among many ids at once (more than one
// query's worth), leaves out the others, and no longer finds a removed
// device.
func testDevicesByID(t *testing.T, s store.Store) {
	mustAccount(t, s, "alice", "a1", "a2")
	mustAccount(t, s, "bob", "b1")
	if got, err := s.DevicesByID(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("DevicesByID(nil) = %v, %v", got, err)
	}
	ids := []string{"a1", "nobody", "b1", "a1"}
	for i := range 1200 {
		ids = append(ids, fmt.Sprintf("absent%04d", i))
	}
	ids = append(ids, "a2")
	got, err := s.DevicesByID(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["a1"].Username != "alice" || got["a2"].Username != "alice" || got["b1"].Username != "bob" || got["b1"].ID != "b1" {
		t.Fatalf("DevicesByID = %v", got)
	}
	if err := s.RemoveDevice(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DevicesByID(ctx, []string{"a1", "a2"}); err != nil || len(got) != 1 || got["a1"].ID != "a1" {
		t.Fatalf("DevicesByID after a2 was removed = %v, %v", got, err)
	}
}
