package client

import (
	"context"
	"slices"
	"testing"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
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
