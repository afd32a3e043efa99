package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
)

// withConn runs fn with c's server connection, as a modified client
// would use it.
func withConn(t *testing.T, c *Client, fn func(conn *transport.Conn) error) {
	t.Helper()
	ctx := context.Background()
	if err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		return fn(conn)
	}); err != nil {
		t.Fatalf("%s: %v", c.Self().User, err)
	}
}

// serverView is the server's view of the conversation for c's device:
// whether it is listed, and removed.
func serverView(t *testing.T, c *Client, conv []byte) (listed, removed bool) {
	t.Helper()
	withConn(t, c, func(conn *transport.Conn) error {
		infos, err := conn.ListConversations(context.Background())
		for _, ci := range infos {
			if bytes.Equal(ci.ID, conv) {
				listed, removed = true, ci.RemovedAt != 0
			}
		}
		return err
	})
	return listed, removed
}

// devicesOf returns the device ids of user's leaves in c's group state.
func devicesOf(g *mls.Group, user string) (ids []string, leaves []uint32) {
	for s, l := range groupDevices(g) {
		if s.User == user {
			ids, leaves = append(ids, s.Device), append(leaves, l)
		}
	}
	return ids, leaves
}

// TestNonAdminRemovalKeepsDelivery: mallory's modified client commits a
// removal of bob and tells the server so. Every member's client refuses
// the commit and says so in its acknowledgement (a verdict), so the
// server keeps delivering the group to bob: he reads alice's next
// message. (Before verdicts, the server applied the declared removal at
// once and bob's device was cut off the group.) Then alice, an admin,
// removes bob; bob's device lies and refuses, but the other members
// accepted, and the server removes him.
func TestNonAdminRemovalKeepsDelivery(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	mallory := srv.newUser(t, "mallory")
	created, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol", "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	conv, _ := hex.DecodeString(created.ID)
	for _, c := range []*Client{bob, carol, mallory} {
		mustSync(t, c)
	}

	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		ids, leaves := devicesOf(g, "bob")
		return mls.CommitOptions{Removes: leaves}, nil, ids
	})
	for _, c := range []*Client{alice, carol, bob} {
		if _, ws := syncWarnings(t, c); !hasPolicyWarning(ws, "removed bob") {
			t.Fatalf("%s's warnings: %+v, want mallory's removal refused", c.Self().User, ws)
		}
	}
	if listed, removed := serverView(t, bob, conv); !listed || removed {
		t.Fatalf("bob's device on the server after a refused removal: listed %v, removed %v", listed, removed)
	}
	mustSend(t, alice, "#team", "still with bob")
	if got := texts(mustSync(t, bob)); !slices.Equal(got, []string{"alice: still with bob"}) {
		t.Fatalf("bob got %q after mallory's refused removal, want alice's message", got)
	}
	mustSend(t, bob, "#team", "bob here")
	if got := texts(mustSync(t, carol)); !slices.Equal(got, []string{"alice: still with bob", "bob: bob here"}) {
		t.Fatalf("carol got %q", got)
	}

	// The admin removes bob. Bob's device, before its client reads the
	// commit, refuses it to the server: a lie that does not count while
	// others have a say.
	if err := alice.RemoveMembers(ctx, "team", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	withConn(t, bob, func(conn *transport.Conn) error {
		ms, _, err := conn.Fetch(ctx, conv, 0)
		if err != nil {
			return err
		}
		var commit []byte
		for _, m := range ms {
			if m.Kind == transport.KindCommit {
				commit = m.ID
			}
		}
		if commit == nil {
			t.Fatal("bob fetched no commit")
		}
		return conn.Ack(ctx, conv, 0, transport.Verdict{CommitID: commit, Refuse: true})
	})
	if _, removed := serverView(t, bob, conv); removed {
		t.Fatal("bob removed before the other members gave their verdicts")
	}
	for _, c := range []*Client{carol, mallory} {
		mustSync(t, c)
		if ws := c.Warnings(); len(ws) > 0 {
			t.Fatalf("%s's warnings: %+v", c.Self().User, ws)
		}
	}
	if listed, removed := serverView(t, bob, conv); listed && !removed {
		t.Fatal("bob still a member on the server after every other member accepted his removal")
	}
	mustSend(t, alice, "#team", "without bob")
	if got := texts(mustSync(t, bob)); slices.Contains(got, "alice: without bob") {
		t.Fatalf("bob got %q after his removal", got)
	}
	if got := texts(mustSync(t, carol)); !slices.Equal(got, []string{"alice: without bob"}) {
		t.Fatalf("carol got %q", got)
	}
}

// teamWithMallory starts a server where alice (admin) made #team with bob
// and mallory (members, synced), and dave is a user outside it; conv is
// the group's id.
func teamWithMallory(t *testing.T) (alice, bob, mallory, dave *Client, conv []byte) {
	t.Helper()
	srv := startServer(t)
	alice = srv.newUser(t, "alice")
	bob = srv.newUser(t, "bob")
	mallory = srv.newUser(t, "mallory")
	dave = srv.newUser(t, "dave")
	created, err := alice.CreateGroup(context.Background(), "team", []string{"bob", "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	conv, _ = hex.DecodeString(created.ID)
	for _, c := range []*Client{bob, mallory} {
		mustSync(t, c)
	}
	return alice, bob, mallory, dave, conv
}

// TestRefusedJoinerAddedAgain: mallory's modified client adds dave; dave's
// client refuses the Welcome (mallory is no admin) and tells the server.
// alice, an admin, can then add dave at once (the server no longer
// answers "already a member", as it did before verdicts), and he reads
// the group.
func TestRefusedJoinerAddedAgain(t *testing.T) {
	ctx := context.Background()
	alice, _, mallory, dave, conv := teamWithMallory(t)
	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		kps, _, err := mallory.fetchKeyPackages(ctx, conn, "dave", g.Suite().ID())
		if err != nil {
			t.Fatal(err)
		}
		return mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}}, []string{kps[0].DeviceID}, nil
	})
	if _, ws := syncWarnings(t, dave); !hasPolicyWarning(ws, "mallory, not an admin of the group, added this device") {
		t.Fatalf("dave's warnings: %+v, want the Welcome refused", ws)
	}
	// alice has read (and refused) mallory's commit before she adds.
	if _, ws := syncWarnings(t, alice); !hasPolicyWarning(ws, "added dave") {
		t.Fatalf("alice's warnings: %+v", ws)
	}
	if err := alice.AddMembers(ctx, "team", []string{"dave"}); err != nil {
		t.Fatalf("alice adds dave after his client refused mallory's Welcome: %v", err)
	}
	mustSync(t, dave)
	mustSend(t, alice, "#team", "welcome dave")
	if got := texts(mustSync(t, dave)); !slices.Equal(got, []string{"alice: welcome dave"}) {
		t.Fatalf("dave got %q", got)
	}
	if listed, removed := serverView(t, dave, conv); !listed || removed {
		t.Fatalf("dave on the server: listed %v, removed %v", listed, removed)
	}
}

// TestRefusedJoinerTold: mallory, no admin, adds dave in a commit that
// also writes her into the admin list. Dave's client cannot tell when it
// joins (it sees only the state after the commit) and joins; alice and
// bob refuse the commit, and their verdicts take dave off the server's
// delivery. The server tells dave's device (an inbox notice): his client
// raises a security alert, marks the group refused and refuses to send
// to it, saying why. (Before the notice, dave sat in a group shared with
// mallory alone, and sending to it "worked".) An admin adding him then
// works as ever.
func TestRefusedJoinerTold(t *testing.T) {
	ctx := context.Background()
	alice, bob, mallory, dave, conv := teamWithMallory(t)
	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		kps, _, err := mallory.fetchKeyPackages(ctx, conn, "dave", g.Suite().ID())
		if err != nil {
			t.Fatal(err)
		}
		st, _, _ := groupStateOf(g.GroupContext().Extensions)
		forged := st.withAdmin("mallory", true)
		return mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}, GroupContextExtensions: replaceExtension(g.GroupContext().Extensions, forged.extension())},
			[]string{kps[0].DeviceID}, nil
	})
	// Dave joins: the forged state names mallory an admin.
	if _, ws := syncWarnings(t, dave); len(ws) > 0 {
		t.Fatalf("dave's warnings on joining: %+v (the forged admin list should pass his check: the attack is not the one under test)", ws)
	}
	if listed, _ := serverView(t, dave, conv); !listed {
		t.Fatal("dave is not on the server's list after joining")
	}
	for _, c := range []*Client{alice, bob} {
		if _, ws := syncWarnings(t, c); !hasPolicyWarning(ws, "") {
			t.Fatalf("%s's warnings: %+v, want mallory's commit refused", c.Self().User, ws)
		}
	}
	if listed, _ := serverView(t, dave, conv); listed {
		t.Fatal("dave still on the server's list after every member refused his addition")
	}

	// Dave's next sync brings the notice: an alert, the group marked.
	// (Mallory's client sent no name: dave knows the group by its id.)
	label := "#" + hex.EncodeToString(conv)[:12]
	_, ws := syncWarnings(t, dave)
	if !slices.ContainsFunc(ws, func(w Warning) bool {
		return w.Alert && w.Conversation == label && strings.Contains(w.Err, ErrRefusedByMembers.Error()) && strings.Contains(w.Err, "mallory added this device")
	}) {
		t.Fatalf("dave's warnings after the members refused his addition: %+v, want a security alert naming mallory", ws)
	}
	convs, err := dave.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(convs, func(cv Conversation) bool { return cv.ID == hex.EncodeToString(conv) }); i < 0 || !convs[i].Refused || convs[i].RefusedBy != "mallory" || !convs[i].Removed {
		t.Fatalf("dave's conversations: %+v, want #team refused (by mallory's commit) and removed", convs)
	}
	_, err = dave.SendText(ctx, label, "hello?")
	if !errors.Is(err, ErrRefusedByMembers) || !IsSecurityAlert(err) || !strings.Contains(err.Error(), "Ask an admin") {
		t.Fatalf("dave sends to the refused group: %v, want ErrRefusedByMembers as a security alert", err)
	}
	// Once is enough: the notice was consumed.
	if _, ws := syncWarnings(t, dave); len(ws) > 0 {
		t.Fatalf("dave's warnings on the next sync: %+v", ws)
	}

	var forged []byte // the id of mallory's commit
	if err := dave.store.Update(func(tx *profile.Tx) error {
		r, err := getConv(tx, conv)
		if err == nil {
			forged = r.JoinedBy
		}
		return err
	}); err != nil || len(forged) != 16 {
		t.Fatalf("dave's record of the commit he joined by: %x, %v", forged, err)
	}

	// An admin adds dave: he reads the group the members kept.
	if err := alice.AddMembers(ctx, "team", []string{"dave"}); err != nil {
		t.Fatalf("alice adds dave: %v", err)
	}
	mustSync(t, dave)
	mustSend(t, alice, "#team", "welcome dave")
	if got := texts(mustSync(t, dave)); !slices.Equal(got, []string{"alice: welcome dave"}) {
		t.Fatalf("dave got %q", got)
	}
	// A server replaying the old notice (or inventing one for another
	// commit) changes nothing: it names a commit dave did not join by.
	for _, id := range [][]byte{forged, transport.NewMessageID()} {
		if err := dave.noteRefused(transport.Message{ID: id, ConversationID: conv, Kind: transport.KindRefused}); err != nil {
			t.Fatal(err)
		}
	}
	if ws := dave.Warnings(); len(ws) > 0 {
		t.Fatalf("dave's warnings after stale notices: %+v", ws)
	}
	if _, err := dave.SendText(ctx, "#team", "thanks"); err != nil {
		t.Fatalf("dave sends after alice added him: %v", err)
	}
}

// TestCommitReusingAnID: the server refuses another device's use of a
// message id only with the same first-send time (docs/protocol.md,
// "Idempotency"), so mallory's modified client can send a commit under
// the id of alice's last message, with another first-send time. The
// server stores and counts it; alice and bob, who have seen that id,
// must not take it for a redelivery and skip it: they would fall an epoch
// behind the server, and alice's next commit would meet a conflict.
func TestCommitReusingAnID(t *testing.T) {
	ctx := context.Background()
	alice, bob, mallory, dave, _ := teamWithMallory(t)
	sent, err := alice.Send(ctx, "#team", "hello")
	if err != nil || sent.Sent == nil {
		t.Fatalf("alice's message: %+v, %v", sent, err)
	}
	for _, c := range []*Client{bob, mallory} {
		mustSync(t, c)
	}
	id, err := hex.DecodeString(sent.Sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryHostileCommitAs(mallory, "#team", id, time.Now().Add(time.Hour), func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		return mls.CommitOptions{}, nil, nil // an empty commit: a new epoch, nothing else
	}); err != nil {
		t.Fatalf("mallory's commit under alice's message id: %v", err)
	}
	mustSync(t, alice)
	mustSync(t, bob)
	if err := alice.AddMembers(ctx, "team", []string{"dave"}); err != nil {
		t.Fatalf("alice's commit after mallory's: %v", err)
	}
	mustSync(t, dave)
	if _, err := alice.Send(ctx, "#team", "after"); err != nil {
		t.Fatalf("alice's message after both commits: %v", err)
	}
	for _, c := range []*Client{bob, dave} {
		if got := texts(mustSync(t, c)); !slices.Contains(got, "alice: after") {
			t.Fatalf("%s got %q, want alice's message after both commits", c.Self().User, got)
		}
	}
}

// TestProposalReusingAnID: as TestCommitReusingAnID, for a proposal.
// mallory's modified client proposes her own removal from #team under
// the id of alice's message in their one-to-one conversation (the server
// stores it: another conversation, another first-send time). alice has
// seen that id; bob has not. Were a seen id a redelivery whatever it
// carries, bob would cache the proposal and commit mallory's leaving by
// reference while alice, without the proposal, could not process that
// commit: mallory would have cut alice off #team. A redelivery is told
// by its content instead (MLS answers a proposal it holds, or one of this
// device's own, with mls.ErrReplay), so alice processes it as bob does.
func TestProposalReusingAnID(t *testing.T) {
	ctx := context.Background()
	alice, bob, mallory, _, _ := teamWithMallory(t)
	sent, err := alice.Send(ctx, "@mallory", "hi mallory")
	if err != nil || sent.Sent == nil {
		t.Fatalf("alice's message to mallory: %+v, %v", sent, err)
	}
	mustSync(t, mallory)
	id, err := hex.DecodeString(sent.Sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = mallory.withLock(ctx, func() error {
		conn, r, err := mallory.prepare(ctx, "#team")
		if err != nil {
			return err
		}
		return mallory.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			msg, _, err := g.ProposeRemove(g.OwnLeaf())
			if err != nil {
				return err
			}
			_, err = conn.SendProposal(ctx, id, r.ID, serverEpoch(g, r), msg)
			return err
		})
	})
	if err != nil {
		t.Fatalf("mallory's proposal under alice's message id: %v", err)
	}
	// bob commits mallory's leaving (completeLeaves, at his sync).
	mustSync(t, bob)
	mustSync(t, bob)
	if ws := bob.Warnings(); len(ws) > 0 {
		t.Fatalf("bob's warnings: %+v", ws)
	}
	_, ws := syncWarnings(t, alice)
	if len(ws) > 0 {
		t.Fatalf("alice's warnings: %+v", ws)
	}
	convs, err := alice.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(convs, func(cv Conversation) bool { return cv.Label == "#team" })
	if i < 0 {
		t.Fatalf("alice has no #team: %+v", convs)
	}
	if slices.ContainsFunc(convs[i].Members, func(s Sender) bool { return s.User == "mallory" }) {
		t.Fatalf("alice still has mallory in #team: %+v", convs[i].Members)
	}
	if _, err := alice.Send(ctx, "#team", "after"); err != nil {
		t.Fatalf("alice's message after mallory's leaving: %v", err)
	}
	if got := texts(mustSync(t, bob)); !slices.Contains(got, "alice: after") {
		t.Fatalf("bob got %q, want alice's message", got)
	}
}
