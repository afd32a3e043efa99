package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
)

// hostileCommit is a member whose client was modified: it builds a
// commit with the MLS API directly (no policy check), sends it and
// keeps its state as it was. plan gets the group and returns the commit and the
// membership delta to declare to the server.
func hostileCommit(t *testing.T, c *Client, target string, plan func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string)) {
	t.Helper()
	if err := tryHostileCommit(c, target, plan); err != nil {
		t.Fatalf("hostile commit by %s: %v", c.Self().User, err)
	}
}

func tryHostileCommit(c *Client, target string, plan func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string)) error {
	return tryHostileCommitAs(c, target, transport.NewMessageID(), time.Time{}, plan)
}

// tryHostileCommitAs is tryHostileCommit with the commit's message id and
// first-send time chosen by the modified client.
func tryHostileCommitAs(c *Client, target string, id []byte, firstSent time.Time, plan func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string)) error {
	ctx := context.Background()
	return c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, target, false)
		if err != nil {
			return err
		}
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
			return err
		}
		var g *mls.Group
		if err := c.store.Update(func(tx *profile.Tx) error {
			if r, err = getConv(tx, r.ID); err != nil {
				return err
			}
			g, err = loadGroup(tx, r.ID)
			return err
		}); err != nil {
			return err
		}
		// Its own commits moved its cursor, so it takes the epoch from
		// the server.
		infos, err := conn.ListConversations(ctx)
		if err != nil {
			return err
		}
		epoch := serverEpoch(g, r)
		for _, ci := range infos {
			if bytes.Equal(ci.ID, r.ID) {
				epoch = ci.Epoch
			}
		}
		opts, added, removed := plan(g, conn)
		out, err := g.Commit(opts)
		if err != nil {
			return err
		}
		if _, err := conn.SendCommit(ctx, transport.Commit{ID: id, ConversationID: r.ID, Epoch: epoch,
			Payload: out.Commit, Welcome: out.Welcome, Added: added, Removed: removed, FirstSent: firstSent}); err != nil {
			return err
		}
		// Not merged: the modified client stays in the members' epoch,
		// to try again.
		return nil
	})
}

// syncWarnings syncs c and returns the warnings.
func syncWarnings(t *testing.T, c *Client) ([]Message, []Warning) {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatalf("%s: sync: %v", c.Self().User, err)
	}
	return res.Messages, c.Warnings()
}

func hasPolicyWarning(ws []Warning, what string) bool {
	return slices.ContainsFunc(ws, func(w Warning) bool {
		return strings.Contains(w.Err, ErrPolicy.Error()) && strings.Contains(w.Err, what)
	})
}

func usersOf(t *testing.T, c *Client, target string) []string {
	t.Helper()
	var out []string
	for s := range groupDevices(groupState(t, c, target)) {
		if !slices.Contains(out, s.User) {
			out = append(out, s.User)
		}
	}
	slices.Sort(out)
	return out
}

// TestNonAdminCommitsRefused: a member whose client is modified commits
// an add, a remove and a promotion of herself; every other member's
// client refuses each, the group stays in one epoch for all of them and
// goes on working (messages, and an admin's next commit). erin's client
// has the check switched off: she follows mallory, which is what the
// check prevents.
func TestNonAdminCommitsRefused(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	erin := srv.newUser(t, "erin")
	mallory := srv.newUser(t, "mallory")
	srv.newUser(t, "dave")
	erin.testNoRoles = true

	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol", "erin", "mallory"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{bob, carol, erin, mallory} {
		mustSync(t, c)
	}
	info, err := bob.GroupInfo(ctx, "#team")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Roles || info.MyRole != RoleMember || info.Members[0].User != "alice" || info.Members[0].Role != RoleAdmin {
		t.Fatalf("bob's view of #team: %+v", info)
	}

	// The honest client refuses before sending.
	if err := mallory.AddMembers(ctx, "team", []string{"dave"}); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("mallory adds dave with her client: %v, want ErrNotAdmin", err)
	}
	if _, err := mallory.SetGroup(ctx, "team", GroupSettings{Topic: ptr("mallory rules")}); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("mallory sets the topic with her client: %v, want ErrNotAdmin", err)
	}

	epoch := groupState(t, alice, "#team").Epoch()
	// 1. A modified client adds dave.
	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		kps, _, err := mallory.fetchKeyPackages(ctx, conn, "dave", g.Suite().ID())
		if err != nil {
			t.Fatal(err)
		}
		return mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}}, []string{kps[0].DeviceID}, nil
	})
	for _, c := range []*Client{alice, bob, carol} {
		if _, ws := syncWarnings(t, c); !hasPolicyWarning(ws, "added dave") {
			t.Fatalf("%s's warnings: %+v, want the add refused", c.Self().User, ws)
		}
		if got := usersOf(t, c, "#team"); slices.Contains(got, "dave") || groupState(t, c, "#team").Epoch() != epoch {
			t.Fatalf("%s applied mallory's add: members %v", c.Self().User, got)
		}
	}
	// Without the check, erin's client follows mallory into another epoch.
	mustSync(t, erin)
	if got := usersOf(t, erin, "#team"); !slices.Contains(got, "dave") {
		t.Fatalf("erin (check off) has %v: the attack does not do what the test claims", got)
	}

	// 2. Mallory makes herself admin and changes the topic.
	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		st, _, _ := groupStateOf(g.GroupContext().Extensions)
		next := st.withAdmin("mallory", true)
		next.Topic = "mallory rules"
		return mls.CommitOptions{GroupContextExtensions: replaceExtension(g.GroupContext().Extensions, next.extension())}, nil, nil
	})
	for _, c := range []*Client{alice, bob, carol} {
		if _, ws := syncWarnings(t, c); !hasPolicyWarning(ws, "changed the group's") {
			t.Fatalf("%s's warnings: %+v, want the promotion refused", c.Self().User, ws)
		}
	}

	// The group goes on: a message, and an admin's commit after the two
	// refused ones (the server counted them as epochs, MLS did not).
	mustSend(t, alice, "#team", "still here")
	for _, c := range []*Client{bob, carol} {
		if got := texts(mustSync(t, c)); !slices.Equal(got, []string{"alice: still here"}) {
			t.Fatalf("%s got %q", c.Self().User, got)
		}
	}
	if _, err := alice.SetGroup(ctx, "team", GroupSettings{Name: ptr("The Team"), Topic: ptr("launch on friday")}); err != nil {
		t.Fatalf("admin's commit after refused ones: %v", err)
	}
	for _, c := range []*Client{bob, carol} {
		info, err := c.GroupInfo(ctx, "#team")
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "The Team" || info.Topic != "launch on friday" || info.Epoch != epoch+1 {
			t.Fatalf("%s sees %+v", c.Self().User, info)
		}
		for _, m := range info.Members {
			if m.User == "mallory" && m.Role != RoleMember {
				t.Fatalf("%s sees mallory as %s", c.Self().User, m.Role)
			}
		}
	}
	ea := groupState(t, alice, "#team").EpochAuthenticator()
	for _, c := range []*Client{bob, carol} {
		if !bytes.Equal(groupState(t, c, "#team").EpochAuthenticator(), ea) {
			t.Fatalf("%s forked from alice", c.Self().User)
		}
	}

	// 3. Mallory, still a member in the honest view, removes carol.
	hostileCommit(t, mallory, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		var leaf uint32
		for s, l := range groupDevices(g) {
			if s.User == "carol" {
				leaf = l
			}
		}
		return mls.CommitOptions{Removes: []uint32{leaf}}, nil, nil
	})
	if _, ws := syncWarnings(t, bob); !hasPolicyWarning(ws, "removed carol") {
		t.Fatalf("bob's warnings: %+v, want the remove refused", ws)
	}
	if got := usersOf(t, bob, "#team"); !slices.Contains(got, "carol") {
		t.Fatalf("bob applied mallory's remove: %v", got)
	}
	// The admin removes mallory; everyone follows.
	if err := alice.RemoveMembers(ctx, "team", []string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "#team", "without mallory")
	for _, c := range []*Client{bob, carol} {
		got := texts(mustSync(t, c))
		if !slices.Contains(got, "alice: without mallory") || slices.Contains(usersOf(t, c, "#team"), "mallory") {
			t.Fatalf("%s after mallory's removal: %q, members %v", c.Self().User, got, usersOf(t, c, "#team"))
		}
	}
}

// TestPromoteDemote: the creator promotes bob, who can then add people
// and change the group; demoted, he no longer can; the last admin
// cannot step down.
func TestPromoteDemote(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	carol := srv.newUser(t, "carol")
	srv.newUser(t, "dave")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	mustSync(t, carol)
	if err := alice.SetAdmin(ctx, "team", "alice", false); err == nil || !strings.Contains(err.Error(), "last admin") {
		t.Fatalf("last admin steps down: %v", err)
	}
	if err := bob.SetAdmin(ctx, "team", "bob", true); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("bob promotes himself: %v", err)
	}
	if err := alice.SetAdmin(ctx, "team", "@bob", true); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddMembers(ctx, "team", []string{"dave"}); err != nil {
		t.Fatalf("promoted bob adds dave: %v", err)
	}
	info, err := carol.GroupInfo(ctx, "#team")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range info.Members {
		roles[m.User] = m.Role
	}
	if roles["alice"] != RoleAdmin || roles["bob"] != RoleAdmin || roles["carol"] != RoleMember || roles["dave"] != RoleMember {
		t.Fatalf("carol sees roles %v", roles)
	}
	if ws := carol.Warnings(); len(ws) > 0 {
		t.Fatalf("carol's warnings: %+v", ws)
	}
	// A picture: encrypted, uploaded, and fetched by another member.
	png := filepath.Join(t.TempDir(), "team.png")
	pic := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 3000)...)
	if err := os.WriteFile(png, pic, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SetGroup(ctx, "team", GroupSettings{PicturePath: png}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "got.png")
	if _, err := carol.GroupPicture(ctx, "#team", out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, pic) {
		t.Fatal("carol's copy of the picture differs")
	}
	// The same from memory (the web client's way): set from bytes, read
	// into memory with its type; something not an image is refused.
	gif := append([]byte("GIF89a"), bytes.Repeat([]byte{9}, 500)...)
	if _, err := bob.SetGroup(ctx, "team", GroupSettings{Picture: gif}); err != nil {
		t.Fatal(err)
	}
	if got, typ, err := carol.GroupPictureBytes(ctx, "#team"); err != nil || !bytes.Equal(got, gif) || typ != "image/gif" {
		t.Fatalf("carol's picture from memory: %d bytes, %q, %v", len(got), typ, err)
	}
	if _, err := bob.SetGroup(ctx, "team", GroupSettings{Picture: []byte("plain text, not a picture")}); err == nil || !strings.Contains(err.Error(), "not an image") {
		t.Fatalf("a text as the picture: %v", err)
	}
	if err := alice.SetAdmin(ctx, "team", "bob", false); err != nil {
		t.Fatal(err)
	}
	if err := bob.RemoveMembers(ctx, "team", []string{"carol"}); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("demoted bob removes carol: %v", err)
	}
	// An admin removed from the group is no admin if added again.
	if err := alice.SetAdmin(ctx, "team", "carol", true); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveMembers(ctx, "team", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMembers(ctx, "team", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	info, err = carol.GroupInfo(ctx, "#team")
	if err != nil || info.MyRole != RoleMember {
		t.Fatalf("carol, removed as an admin and added again: %+v, %v", info, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestGroupMemberLimit: with --max-group-members 3 the client refuses to
// add a fourth account before sending, and the server refuses a modified
// client's commit that does it anyway, with GROUP_FULL; adding another
// device of a member is still fine.
func TestGroupMemberLimit(t *testing.T) {
	ctx := context.Background()
	srv := startServerWith(t, func(c *server.Config) { c.MaxGroupMembers = 3 })
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	srv.newUser(t, "carol")
	srv.newUser(t, "dave")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol", "dave"}); !errors.Is(err, ErrGroupFull) || !strings.Contains(err.Error(), "at most 3") {
		t.Fatalf("group of 4 with a limit of 3: %v", err)
	}
	if convs, _ := alice.Conversations(ctx); len(convs) != 0 {
		t.Fatalf("a refused group left %+v behind", convs)
	}
	if _, err := alice.CreateGroup(ctx, "team3", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMembers(ctx, "team3", []string{"dave"}); !errors.Is(err, ErrGroupFull) {
		t.Fatalf("fourth member: %v, want ErrGroupFull", err)
	}
	err := tryHostileCommit(alice, "#team3", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
		kps, _, err := alice.fetchKeyPackages(ctx, conn, "dave", g.Suite().ID())
		if err != nil {
			t.Fatal(err)
		}
		return mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}}, []string{kps[0].DeviceID}, nil
	})
	if !errors.Is(err, wire.ErrGroupFull) || !strings.Contains(err.Error(), "at most 3") {
		t.Fatalf("server on a fourth member: %v, want GROUP_FULL", err)
	}
	// A member's new device is not a new member.
	srv.linkDevice(t, bob, "bob-laptop")
	mustSync(t, bob)
	if got := len(groupState(t, alice, "#team3").Members()); got != 4 {
		mustSync(t, alice)
		if got := len(groupState(t, alice, "#team3").Members()); got != 4 {
			t.Fatalf("%d devices in #team3 after bob linked a laptop, want 4", got)
		}
	}
}

// TestJoinerRefusesNonAdminAdd: a member whose client is modified adds
// dave; every member refuses the commit, and so does dave's client when
// it opens the Welcome (the signer of its GroupInfo is not an admin in
// the group state it carries), so dave is never in a group of one with
// mallory.
// With the check off (testNoRoles) dave joins: the attack is real.
func TestJoinerRefusesNonAdminAdd(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	mallory := srv.newUser(t, "mallory")
	dave := srv.newUser(t, "dave")
	erin := srv.newUser(t, "erin")
	erin.testNoRoles = true
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "mallory"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{bob, mallory} {
		mustSync(t, c)
	}
	addBy := func(who *Client, user string) {
		hostileCommit(t, who, "#team", func(g *mls.Group, conn *transport.Conn) (mls.CommitOptions, []string, []string) {
			kps, _, err := who.fetchKeyPackages(ctx, conn, user, g.Suite().ID())
			if err != nil {
				t.Fatal(err)
			}
			return mls.CommitOptions{Adds: [][]byte{kps[0].KeyPackage.Data}}, []string{kps[0].DeviceID}, nil
		})
	}
	addBy(mallory, "dave")
	if _, ws := syncWarnings(t, dave); !hasPolicyWarning(ws, "mallory, not an admin of the group, added this device") {
		t.Fatalf("dave's warnings: %+v, want the Welcome refused", ws)
	}
	if convs, err := dave.Conversations(ctx); err != nil || len(convs) != 0 {
		t.Fatalf("dave's conversations after a refused Welcome: %+v, %v", convs, err)
	}
	// The same move against a client without the check: it joins.
	addBy(mallory, "erin")
	mustSync(t, erin)
	if convs, err := erin.Conversations(ctx); err != nil || len(convs) != 1 || convs[0].Kind != ConvGroup || convs[0].Name != "team" {
		t.Fatalf("erin (check off) has %+v, %v: the attack does not do what the test claims", convs, err)
	}
	// The members refused both and go on in their epoch.
	mustSend(t, alice, "#team", "still us")
	if got := texts(mustSync(t, bob)); !slices.Equal(got, []string{"alice: still us"}) {
		t.Fatalf("bob got %q", got)
	}
	if got := usersOf(t, bob, "#team"); !slices.Equal(got, []string{"alice", "bob", "mallory"}) {
		t.Fatalf("bob's #team: %v", got)
	}
}
