package client

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// statesOf maps user → receipt state of message id as c sees it.
func statesOf(t *testing.T, c *Client, id string) map[string]MemberStatus {
	t.Helper()
	info, err := c.Info(context.Background(), id)
	if err != nil {
		t.Fatalf("%s: info %s: %v", c.Self().User, id, err)
	}
	out := map[string]MemberStatus{}
	for _, m := range info.Members {
		out[m.User] = m
	}
	return out
}

// TestInfoPerMember: one line per member, not per device; a member
// with read receipts off reports delivery only, and sees others' reads
// as deliveries; the sender's own devices are no readers even when one
// of them sends a receipt.
func TestInfoPerMember(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, carol := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "carol")
	bob2 := srv.linkDevice(t, bob, "bob2")
	alice2 := srv.linkDevice(t, alice, "alice2")
	if _, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{alice2, bob, bob2, carol} {
		mustSync(t, c)
	}
	if _, err := carol.SetSetting(ctx, SettingReadReceipts, false); err != nil {
		t.Fatal(err)
	}
	sent := mustSend(t, alice, "#team", "standup in 5")

	st := statesOf(t, alice, sent.ID)
	if len(st) != 2 || st["bob"].State != StateSent || st["carol"].State != StateSent {
		t.Fatalf("before anyone synced: %+v", st)
	}
	mustSync(t, bob)
	mustSync(t, bob2) // bob's second device: the same reader
	mustSync(t, carol)
	// alice's other device sends a receipt for her own message (a forged
	// or confused client): it must not make alice a reader anywhere.
	if err := alice2.withLock(ctx, func() error {
		conn, err := alice2.connection(ctx)
		if err != nil {
			return err
		}
		r, err := alice2.resolve(ctx, "#team", false)
		if err != nil {
			return err
		}
		body, err := receiptBody([]string{sent.ID}, true)
		if err != nil {
			return err
		}
		_, err = alice2.sendContent(ctx, conn, r, newContent(body), false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	msgs := mustSync(t, alice)
	var lines int
	for _, m := range msgs {
		if m.Kind == KindReceipt {
			lines++
			if m.Sender.User != "bob" {
				t.Errorf("receipt line from %s: %+v", m.Sender.User, m)
			}
		}
	}
	if lines != 1 {
		t.Errorf("alice got %d receipt lines, want 1 (bob's, once for two devices): %+v", lines, msgs)
	}
	st = statesOf(t, alice, sent.ID)
	if len(st) != 2 {
		t.Fatalf("members: %+v (the sender's own devices are no readers)", st)
	}
	if b := st["bob"]; b.State != StateRead || b.ReadAt.IsZero() || b.DeliveredAt.IsZero() {
		t.Errorf("bob: %+v, want read with times", b)
	}
	if c := st["carol"]; c.State != StateDelivered || !c.ReadAt.IsZero() || c.DeliveredAt.IsZero() {
		t.Errorf("carol (read receipts off): %+v, want delivered", c)
	}

	// carol, with receipts off, does not see bob's read either.
	mustSync(t, carol)
	st = statesOf(t, carol, sent.ID)
	if b := st["bob"]; b.State != StateDelivered {
		t.Errorf("carol sees bob as %+v; with her receipts off, reads show as deliveries", b)
	}
	if _, ok := st["alice"]; ok {
		t.Errorf("carol lists the sender alice as a reader: %+v", st)
	}
	// bob's view: carol delivered, alice (the sender, who sent a receipt
	// from another device) not a reader.
	mustSync(t, bob)
	st = statesOf(t, bob, sent.ID)
	if _, ok := st["alice"]; ok || st["carol"].State != StateDelivered || len(st) != 1 {
		t.Errorf("bob's view (carol only: not the sender, not himself): %+v", st)
	}
}

// TestBlockedInvitationRefused: a Welcome from a person the user blocked
// after it was queued (the server let it through) is refused in silence,
// and a block made on one device applies on the user's other devices at
// their next sync.
func TestBlockedInvitationRefused(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, mallory := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "mallory")
	alice2 := srv.linkDevice(t, alice, "alice2")
	mustSend(t, bob, "@alice", "hi")
	mustSync(t, alice)
	mustSync(t, alice2)

	if _, err := mallory.CreateGroup(ctx, "trap", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, mallory, "#trap", "gotcha")
	if _, err := alice.UpdatePrivacy(ctx, []string{"mallory", "bob"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	mustSend(t, bob, "@alice", "are you there")
	for _, c := range []*Client{alice, alice2} {
		msgs := mustSync(t, c)
		if got := texts(msgs); len(got) != 0 {
			t.Errorf("%s: shown from blocked people: %v", c.Self().DeviceID, got)
		}
		convs, err := c.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range convs {
			if cv.Label == "#trap" {
				t.Errorf("%s joined the group of a blocked person: %+v", c.Self().DeviceID, cv)
			}
		}
		hist, err := c.History(ctx, "@bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(hist, func(m Message) bool { return m.Text == "are you there" }) {
			t.Errorf("%s stored a blocked person's message", c.Self().DeviceID)
		}
	}
	// mallory is not told: her group and her sends work as before.
	if _, err := mallory.SendText(ctx, "#trap", "still here?"); err != nil {
		t.Errorf("mallory's send failed, which tells her: %v", err)
	}
	if msgs := mustSync(t, alice); len(texts(msgs)) != 0 {
		t.Errorf("shown: %v", texts(msgs))
	}
}

// TestMessageRequestTellsNothing: with requests on, a stranger's first
// messages wait in the requests list: not reported by Sync, no receipt
// to the sender, until accepted.
func TestMessageRequestTellsNothing(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob, mallory := srv.newUser(t, "alice"), srv.newUser(t, "bob"), srv.newUser(t, "mallory")
	alice2 := srv.linkDevice(t, alice, "alice2")
	if _, err := alice.SetSetting(ctx, SettingMessageRequests, true); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "@bob", "hello bob") // alice started it: no request for her
	mustSend(t, bob, "@alice", "hi alice")
	if got := texts(mustSync(t, alice)); !slices.Equal(got, []string{"bob: hi alice"}) {
		t.Fatalf("a contact's message: %v", got)
	}
	if _, err := bob.CreateGroup(ctx, "club", []string{"alice", "mallory"}); err != nil {
		t.Fatal(err)
	}
	first := mustSend(t, mallory, "@alice", "buy my stuff")
	mustSend(t, mallory, "@alice", "please")
	if got := texts(mustSync(t, alice)); len(got) != 0 {
		t.Fatalf("a stranger's messages were shown: %v", got)
	}
	reqs, err := alice.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].User != "mallory" || reqs[0].Messages != 2 || reqs[0].Preview != "buy my stuff" ||
		!slices.Equal(reqs[0].Common, []string{"#club"}) {
		t.Fatalf("requests: %+v", reqs)
	}
	// The sender learns nothing: no receipt, no commit.
	for _, m := range mustSync(t, mallory) {
		if m.Conversation == "@alice" {
			t.Errorf("mallory got %s from alice before acceptance: %+v", m.Kind, m)
		}
	}
	if st := statesOf(t, mallory, first.ID); st["alice"].State != StateSent {
		t.Errorf("mallory sees alice as %+v", st["alice"])
	}

	msgs, err := alice.AcceptRequest(ctx, "@mallory")
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(msgs); !slices.Equal(got, []string{"mallory: buy my stuff", "mallory: please"}) {
		t.Errorf("accepted request shows %v", got)
	}
	if reqs, _ := alice.Requests(ctx); len(reqs) != 0 {
		t.Errorf("still listed: %+v", reqs)
	}
	mustSync(t, mallory)
	if st := statesOf(t, mallory, first.ID); st["alice"].State != StateRead {
		t.Errorf("after acceptance mallory sees alice as %+v", st["alice"])
	}
	// alice's other device learns the acceptance from the receipts.
	mustSync(t, alice2)
	if reqs, _ := alice2.Requests(ctx); len(reqs) != 0 {
		t.Errorf("alice2 still lists: %+v", reqs)
	}
	mustSend(t, mallory, "@alice", "thanks")
	if got := texts(mustSync(t, alice2)); !slices.Equal(got, []string{"mallory: thanks"}) {
		t.Errorf("alice2 after acceptance: %v", got)
	}

	// A deleted request leaves nothing; a later message is a request again.
	carol := srv.newUser(t, "carol")
	mustSend(t, carol, "@alice", "spam")
	mustSync(t, alice)
	if n, err := alice.DeleteRequest(ctx, "carol"); err != nil || n == 0 {
		t.Fatalf("delete request: %d, %v", n, err)
	}
	if hist, _ := alice.History(ctx, "@carol", 0); len(texts(hist)) != 0 {
		t.Errorf("deleted request's history: %v", texts(hist))
	}
	mustSend(t, carol, "@alice", "more spam")
	if got := texts(mustSync(t, alice)); len(got) != 0 {
		t.Errorf("shown: %v", got)
	}
	if reqs, _ := alice.Requests(ctx); len(reqs) != 1 || reqs[0].Preview != "more spam" {
		t.Errorf("requests after delete and a new message: %+v", reqs)
	}
	if _, err := alice.AcceptRequest(ctx, "@bob"); err == nil {
		t.Error("accepted a request that does not exist")
	}
	// Answering accepts.
	mustSend(t, alice, "@carol", "who is this?")
	if reqs, _ := alice.Requests(ctx); len(reqs) != 0 {
		t.Errorf("still a request after answering: %+v", reqs)
	}
	mustSend(t, carol, "@alice", "an old friend")
	if got := texts(mustSync(t, alice)); !slices.Equal(got, []string{"carol: an old friend"}) {
		t.Errorf("after answering: %v", got)
	}
}

// TestMute: a muted conversation's messages are stored and reported,
// marked muted, until the mute ends.
func TestMute(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	// alice's clock runs ahead when the test says so (the mute's end);
	// the key transparency directory's epochs may then be 9 h "old".
	var ahead atomic.Int64
	opts := testOptions(t, "alice")
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	opts.KTMaxAge = 48 * time.Hour
	alice, err := Init(ctx, opts, srv.url, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.SetSetting(ctx, SettingMessageRequests, false); err != nil { // as newUser
		t.Fatal(err)
	}
	bob, carol := srv.newUser(t, "bob"), srv.newUser(t, "carol")
	if _, err := bob.CreateGroup(ctx, "team", []string{"alice", "carol"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	if _, err := alice.SetMute(ctx, "#team", 8*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetMute(ctx, "@carol", 0); err != nil { // before the conversation exists
		t.Fatal(err)
	}
	mustSend(t, bob, "#team", "lunch?")
	mustSend(t, carol, "@alice", "psst")
	mustSend(t, bob, "@alice", "direct")
	muted := map[string]bool{}
	for _, m := range mustSync(t, alice) {
		if m.Kind == KindText {
			muted[m.Text] = m.Muted
		}
	}
	if want := map[string]bool{"lunch?": true, "psst": true, "direct": false}; !mapsEqual(muted, want) {
		t.Errorf("muted marks: %v, want %v", muted, want)
	}
	if ms, _ := alice.Mutes(ctx); len(ms) != 2 {
		t.Errorf("mutes: %+v", ms)
	}
	ahead.Store(int64(9 * time.Hour)) // the group's mute ran out
	mustSend(t, bob, "#team", "dinner?")
	for _, m := range mustSync(t, alice) {
		if m.Text == "dinner?" && m.Muted {
			t.Error("still muted after the mute ended")
		}
	}
	if was, err := alice.Unmute(ctx, "@carol"); err != nil || !was {
		t.Errorf("unmute: %v, %v", was, err)
	}
	mustSend(t, carol, "@alice", "hello again")
	for _, m := range mustSync(t, alice) {
		if m.Muted {
			t.Errorf("muted after unmute: %+v", m)
		}
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMuteExceptMentions: a group muted "except mentions" still
// notifies the messages that mention you, and only those; the mode is
// refused for a direct conversation, where no one is mentioned.
func TestMuteExceptMentions(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	srv.newUser(t, "carol")
	if _, err := bob.CreateGroup(ctx, "team", []string{"alice", "carol"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	if _, err := alice.SetMuteMode(ctx, "@bob", 0, true); !errors.Is(err, ErrBadTarget) {
		t.Fatalf("except mentions on a direct conversation: %v, want ErrBadTarget", err)
	}
	m, err := alice.SetMuteMode(ctx, "#team", 0, true)
	if err != nil || !m.ExceptMentions || !m.Forever {
		t.Fatalf("mute #team except mentions: %+v, %v", m, err)
	}
	mustSend(t, bob, "#team", "lunch?")
	mustSend(t, bob, "#team", "@alice are you in?")
	mustSend(t, bob, "#team", "@carol and you?")
	muted := map[string]bool{}
	for _, m := range mustSync(t, alice) {
		if m.Kind == KindText {
			muted[m.Text] = m.Muted
		}
	}
	if want := map[string]bool{"lunch?": true, "@alice are you in?": false, "@carol and you?": true}; !mapsEqual(muted, want) {
		t.Errorf("muted marks: %v, want %v", muted, want)
	}
	if ms, _ := alice.Mutes(ctx); len(ms) != 1 || !ms[0].ExceptMentions {
		t.Errorf("mutes: %+v", ms)
	}
	// A plain mute again silences the mention too.
	if _, err := alice.SetMute(ctx, "#team", 0); err != nil {
		t.Fatal(err)
	}
	mustSend(t, bob, "#team", "@alice last call")
	for _, m := range mustSync(t, alice) {
		if m.Text == "@alice last call" && !m.Muted {
			t.Error("a mention notified under a plain mute")
		}
	}
}
