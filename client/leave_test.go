package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
)

func groupUsers(t *testing.T, c *Client, target string) []string {
	t.Helper()
	var users []string
	for s := range groupDevices(groupState(t, c, target)) {
		if !slices.Contains(users, s.User) {
			users = append(users, s.User)
		}
	}
	slices.Sort(users)
	return users
}

// A member's clients commit only a user's proposal to remove their own
// devices: carol proposing bob's removal changes nothing; carol leaving
// is completed by the next member to sync, and she cannot read what is
// sent after.
func TestLeaveCommitsOnlySelfRemoval(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSync(t, carol)

	// carol, through the raw MLS API, proposes removing bob.
	var convID []byte
	var proposal []byte
	var epoch uint64
	if err := carol.store.Update(func(tx *profile.Tx) error {
		r, err := lookupLocal(tx, "carol", "#team")
		if err != nil {
			return err
		}
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		for s, leaf := range groupDevices(g) {
			if s.User == "bob" {
				if proposal, _, err = g.ProposeRemove(leaf); err != nil {
					return err
				}
			}
		}
		convID, epoch = r.ID, g.Epoch()
		return saveGroup(tx, g)
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := carol.connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.SendProposal(ctx, transport.NewMessageID(), convID, epoch, proposal); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	mustSync(t, bob)
	if got := groupUsers(t, alice, "#team"); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("after carol proposed removing bob: members %v", got)
	}

	if err := carol.LeaveGroup(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob) // commits carol's leaving
	if got := groupUsers(t, bob, "#team"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("after bob's sync: members %v, want alice and bob", got)
	}
	msgs := mustSync(t, alice)
	if !slices.ContainsFunc(msgs, func(m Message) bool { return m.Kind == KindMembership && m.Text == "carol left" }) {
		t.Fatalf("alice did not see carol leave: %v", texts(msgs))
	}
	mustSend(t, alice, "#team", "after carol")
	msgs = mustSync(t, carol)
	if slices.ContainsFunc(msgs, func(m Message) bool { return m.Text == "after carol" }) {
		t.Fatal("carol read a message sent after she left")
	}
	var removed bool
	carol.store.Update(func(tx *profile.Tx) error {
		r, err := getConv(tx, convID)
		removed = err == nil && r.Removed
		return err
	})
	if !removed {
		t.Fatal("carol's client does not know she left")
	}
	if err := carol.LeaveGroup(ctx, "team"); err == nil {
		t.Fatal("leaving a group twice succeeded")
	}
}

// pairGroup has alice create group "pair" with bob, and bob join it.
func pairGroup(t *testing.T, srv *testServer) (alice, bob *Client) {
	t.Helper()
	alice, bob = srv.newUser(t, "alice"), srv.newUser(t, "bob")
	if _, err := alice.CreateGroup(context.Background(), "pair", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	return alice, bob
}

// A leave run twice in one epoch re-sends the same Remove proposal, byte
// for byte (Ed25519 signatures are deterministic); members take it as a
// repeat (mls.ErrDuplicateProposal) and the leave completes.
func TestLeaveTwiceInOneEpoch(t *testing.T) {
	ctx := context.Background()
	alice, bob := pairGroup(t, startServer(t))
	for i := 0; i < 2; i++ {
		if err := bob.LeaveGroup(ctx, "pair"); err != nil {
			t.Fatalf("leave %d: %v", i+1, err)
		}
	}
	mustSync(t, alice) // commits bob's leaving
	if got := groupUsers(t, alice, "#pair"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("members %v, want alice alone", got)
	}
}

// failSecondProposal makes the server refuse the second Remove proposal
// it is sent once armed, as a lost connection or a full disk would.
type failSecondProposal struct {
	store.Store
	armed     atomic.Bool
	proposals atomic.Int32
}

func (f *failSecondProposal) Append(ctx context.Context, a store.Append) (store.AppendResult, error) {
	if a.Kind == store.KindProposal && f.armed.Load() && f.proposals.Add(1) == 2 {
		return store.AppendResult{}, fmt.Errorf("%w: injected", store.ErrUnavailable)
	}
	return f.Store.Append(ctx, a)
}

// A leave whose second proposal fails (bob has two devices) is recorded
// as begun. The leaving device proposes its own removal first, so alice
// commits that one; bob's other device, which learnt of the leave from the
// proposal, proposes its own removal for the new epoch, and alice's next
// sync completes the leave. (Without the other device taking the leave
// on, bob2 stays in the group for good.)
func TestLeavePartlyFailed(t *testing.T) {
	ctx := context.Background()
	var fault *failSecondProposal
	srv := startServerWith(t, func(c *server.Config) {
		fault = &failSecondProposal{Store: c.Store}
		c.Store = fault
	})
	alice, bob := pairGroup(t, srv)
	bob2 := srv.linkDevice(t, bob, "bob")
	mustSync(t, bob)
	mustSync(t, bob2)
	mustSync(t, alice)
	if got := len(groupDevices(groupState(t, alice, "#pair"))); got != 3 {
		t.Fatalf("%d devices in the group, want 3", got)
	}
	fault.armed.Store(true)
	err := bob.LeaveGroup(ctx, "pair")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 devices proposed") {
		t.Fatalf("leave with the second proposal refused: %v", err)
	}
	mustSync(t, alice) // commits the removal of one of bob's devices
	if got := len(groupDevices(groupState(t, alice, "#pair"))); got != 2 {
		t.Fatalf("after the first commit: %d devices, want 2", got)
	}
	// Whichever of bob's devices is still in, it carries the leave on
	// and proposes its own removal for the new epoch.
	mustSync(t, bob)
	mustSync(t, bob2)
	mustSync(t, alice) // commits it
	if got := groupUsers(t, alice, "#pair"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("members %v, want alice alone", got)
	}
}

// Two different proposals removing the same device (a hostile or retried
// leave under a suite with randomized signatures) become one Remove in
// the commit: two would make the commit invalid (§12.2) and block every
// other self-removal with it.
func TestSelfRemovalPlanOneRemovePerDevice(t *testing.T) {
	alice, _ := pairGroup(t, startServer(t))
	var r *convRecord
	var g *mls.Group
	if err := alice.store.Update(func(tx *profile.Tx) (err error) {
		lr, err := lookupLocal(tx, "alice", "#pair")
		if err != nil {
			return err
		}
		if r, err = getConv(tx, lr.ID); err != nil {
			return err
		}
		g, err = loadGroup(tx, r.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var bobDev string
	for s := range groupDevices(g) {
		if s.User == "bob" {
			bobDev = s.Device
		}
	}
	r.SelfRemovals = []selfRemoval{
		{Epoch: g.Epoch(), Ref: []byte("ref-1"), User: "bob", Device: bobDev},
		{Epoch: g.Epoch(), Ref: []byte("ref-2"), User: "bob", Device: bobDev},
	}
	plan, err := alice.selfRemovalPlan(r)(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.opts.ProposalRefs) != 1 || len(plan.removed) != 1 || string(plan.opts.ProposalRefs[0]) != "ref-1" {
		t.Fatalf("plan commits refs %q removing %v, want only ref-1", plan.opts.ProposalRefs, plan.removed)
	}
}
