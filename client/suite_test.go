package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// newUserWith registers a user whose options set sets (the unexported
// cipher suite options).
func (s *testServer) newUserWith(t testing.TB, name string, set func(*Options)) *Client {
	t.Helper()
	opts := testOptions(t, name)
	set(&opts)
	c, err := Init(context.Background(), opts, s.url, name, "")
	if err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.SetSetting(context.Background(), SettingMessageRequests, false); err != nil { // as newUser
		t.Fatal(err)
	}
	return c
}

// preXWing makes a client behave as one from before X-Wing: it creates
// suite-1 groups and publishes suite-1 key packages only.
func preXWing(o *Options) {
	o.groupSuite = classicSuite
	o.keyPackageSuites = []ciphersuite.ID{classicSuite}
}

func wantSuite(t *testing.T, c *Client, target string, want ciphersuite.ID) {
	t.Helper()
	if got := groupState(t, c, target).Suite().ID(); got != want {
		t.Fatalf("%s's %s uses suite %#04x, want %#04x", c.Self().User, target, uint16(got), uint16(want))
	}
}

func wantText(t *testing.T, c *Client, text string) {
	t.Helper()
	if got := texts(mustSync(t, c)); !slices.Contains(got, text) {
		t.Fatalf("%s got %q, want %q among them", c.Self().User, got, text)
	}
}

// New conversations, groups and direct ones, are X-Wing for everyone in
// them, including a device linked later.
func TestNewConversationIsXWing(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if w := alice.Warnings(); len(w) != 0 {
		t.Fatalf("warnings creating an X-Wing group: %+v", w)
	}
	wantSuite(t, alice, "#team", xwingSuite)
	mustSend(t, alice, "#team", "post-quantum hello")
	wantText(t, bob, "alice: post-quantum hello")
	wantSuite(t, bob, "#team", xwingSuite)
	mustSend(t, bob, "#team", "hi back")
	wantText(t, alice, "bob: hi back")

	mustSend(t, alice, "@bob", "direct")
	wantText(t, bob, "alice: direct")
	wantSuite(t, alice, "@bob", xwingSuite)
	wantSuite(t, bob, "@alice", xwingSuite)

	phone := srv.linkDevice(t, bob, "bob-phone")
	mustSend(t, alice, "#team", "to both of bob's devices")
	wantText(t, phone, "alice: to both of bob's devices")
	wantSuite(t, phone, "#team", xwingSuite)
}

// A suite-1 conversation made before the upgrade keeps working after it:
// members load, send and receive in it, and a device of the new version
// can still be added to it (its suite-1 key package is used).
func TestClassicConversationAfterUpgrade(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUserWith(t, "alice", func(o *Options) { o.groupSuite = classicSuite })
	bob, carol := srv.newUser(t, "bob"), srv.newUser(t, "carol")
	if _, err := alice.CreateGroup(ctx, "old", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	wantSuite(t, alice, "#old", classicSuite)
	mustSend(t, alice, "#old", "before the upgrade")
	wantText(t, bob, "alice: before the upgrade")

	// alice upgrades: her profile is reopened by the new version.
	opts := alice.opts
	opts.groupSuite = 0
	alice.Close()
	alice, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	wantSuite(t, alice, "#old", classicSuite)
	mustSend(t, alice, "#old", "after the upgrade")
	wantText(t, bob, "alice: after the upgrade")
	mustSend(t, bob, "#old", "still here")
	wantText(t, alice, "bob: still here")
	if err := alice.AddMembers(ctx, "#old", []string{"carol"}); err != nil {
		t.Fatalf("adding carol to a suite-1 group: %v", err)
	}
	mustSend(t, alice, "#old", "welcome carol")
	wantText(t, carol, "alice: welcome carol")
	wantSuite(t, carol, "#old", classicSuite)
	mustSend(t, carol, "#old", "thanks")
	wantText(t, bob, "carol: thanks")
	// alice's new conversations are X-Wing.
	if _, err := alice.CreateGroup(ctx, "new", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	wantSuite(t, alice, "#new", xwingSuite)
}

// A device from before X-Wing (suite-1 key packages only) among the
// invitees: the new conversation falls back to suite 1, with a warning
// naming it; adding that person to an X-Wing conversation fails with
// ErrSuiteNotSupported; once their device updates (and publishes X-Wing
// key packages at its next connection), new conversations are X-Wing.
func TestMixedSuites(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, carol := srv.newUser(t, "alice"), srv.newUser(t, "carol")
	bob := srv.newUserWith(t, "bob", preXWing)
	bobDev := bob.Self().DeviceID
	if m, _ := srv.store.KeyPackageCounts(ctx, bobDev); len(m) != 1 || m[uint16(classicSuite)] == 0 {
		t.Fatalf("the old client's key packages per suite: %v", m)
	}

	if _, err := alice.CreateGroup(ctx, "mixed", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	wantSuite(t, alice, "#mixed", classicSuite)
	w := alice.Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Err, "not post-quantum") || !strings.Contains(w[0].Err, "bob's device "+bobDev) || w[0].Alert {
		t.Fatalf("warnings after the fallback: %+v", w)
	}
	mustSend(t, alice, "#mixed", "classic for now")
	wantText(t, bob, "alice: classic for now")
	wantText(t, carol, "alice: classic for now")
	wantSuite(t, carol, "#mixed", classicSuite)

	// The old client can be sent to directly (suite 1) too.
	mustSend(t, carol, "@bob", "hello old bob")
	wantText(t, bob, "carol: hello old bob")
	wantSuite(t, carol, "@bob", classicSuite)

	// An X-Wing group cannot take bob's device in.
	if _, err := alice.CreateGroup(ctx, "pq", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	wantSuite(t, alice, "#pq", xwingSuite)
	err := alice.AddMembers(ctx, "#pq", []string{"bob"})
	if !errors.Is(err, ErrSuiteNotSupported) || !strings.Contains(err.Error(), "bob") {
		t.Fatalf("adding a pre-X-Wing client to an X-Wing group: %v, want ErrSuiteNotSupported naming bob", err)
	}
	mustSend(t, alice, "#pq", "still works")
	wantText(t, carol, "alice: still works")

	// bob updates: at its next connection it publishes X-Wing packages.
	opts := bob.opts
	opts.groupSuite, opts.keyPackageSuites = 0, nil
	bob.Close()
	bob, err = Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.store.KeyPackageCounts(ctx, bobDev); m[uint16(xwingSuite)] == 0 {
		t.Fatalf("after the update bob's key packages per suite are %v", m)
	}
	if err := alice.AddMembers(ctx, "#pq", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "#pq", "now post-quantum")
	wantText(t, bob, "alice: now post-quantum")
	wantSuite(t, bob, "#pq", xwingSuite)
	// His suite-1 conversations go on.
	mustSend(t, bob, "#mixed", "and the old one")
	wantText(t, carol, "bob: and the old one")
	if _, err := carol.CreateGroup(ctx, "all", []string{"alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	wantSuite(t, carol, "#all", xwingSuite)
}
