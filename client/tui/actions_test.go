//go:build !js

package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/client"
)

// The fake's message actions record each call in f.actions and apply it
// to the history as the client would.

func (f *fakeBackend) find(id string) *client.Message {
	for conv := range f.history {
		for i := range f.history[conv] {
			if f.history[conv][i].ID == id {
				return &f.history[conv][i]
			}
		}
	}
	return nil
}

func (f *fakeBackend) record(format string, args ...any) error {
	f.actions = append(f.actions, fmt.Sprintf(format, args...))
	return f.actionErr
}

func (f *fakeBackend) QueueReply(_ context.Context, conv, replyTo, text string) (client.Queued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("reply %s %s %s", conv, replyTo, text); err != nil {
		return client.Queued{}, err
	}
	q := client.Queued{ID: fmt.Sprintf("q%d", len(f.outbox)+len(f.sent)), Conversation: conv, Text: text, ReplyTo: replyTo, QueuedAt: time.Now()}
	f.outbox = append(f.outbox, q)
	return q, nil
}
func (f *fakeBackend) React(_ context.Context, id, emoji string, remove bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("react %s %s %v", id, emoji, remove); err != nil {
		return err
	}
	if m := f.find(id); m != nil && !remove {
		m.Reactions = append(m.Reactions, client.Reaction{Emoji: emoji, User: "alice"})
	}
	return nil
}
func (f *fakeBackend) Edit(_ context.Context, id, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("edit %s %s", id, text); err != nil {
		return err
	}
	m := f.find(id)
	m.Text, m.Edited = text, true
	return nil
}
func (f *fakeBackend) DeleteForEveryone(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("delete %s", id); err != nil {
		return err
	}
	m := f.find(id)
	m.Text, m.Deleted = "", true
	return nil
}
func (f *fakeBackend) Search(_ context.Context, query string, limit int) ([]client.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("search %s %d", query, limit); err != nil {
		return nil, err
	}
	var out []client.Message
	for _, conv := range []string{"@bob", "#team"} {
		for _, m := range f.history[conv] {
			if strings.Contains(strings.ToLower(m.Text), strings.ToLower(query)) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}
func (f *fakeBackend) Block(_ context.Context, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("block %s", user)
}
func (f *fakeBackend) SetMute(_ context.Context, conv string, d time.Duration, exceptMentions bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if exceptMentions {
		return f.record("mute %s %s except mentions", conv, d)
	}
	return f.record("mute %s %s", conv, d)
}

func (f *fakeBackend) Forward(_ context.Context, id, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("forward %s %s", id, target); err != nil {
		return err
	}
	m := *f.find(id)
	m.Conversation, m.Sender.User, m.ID, m.Forwarded = target, "alice", fmt.Sprintf("f%d", len(f.actions)), true
	f.history[target] = append(f.history[target], m)
	return nil
}
func (f *fakeBackend) DeleteForMe(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("hide %s", id); err != nil {
		return err
	}
	for conv := range f.history {
		f.history[conv] = slices.DeleteFunc(f.history[conv], func(m client.Message) bool { return m.ID == id })
	}
	return nil
}
func (f *fakeBackend) Unblock(_ context.Context, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("unblock %s", user)
}
func (f *fakeBackend) Unmute(_ context.Context, conv string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Muted: a mute recorded after the last unmute.
	was := false
	for _, a := range f.actions {
		if strings.HasPrefix(a, "mute "+conv+" ") {
			was = true
		} else if a == "unmute "+conv {
			was = false
		}
	}
	return was, f.record("unmute %s", conv)
}

// newActionFake is newFake with message ids: bob's b1, alice's a1 in
// @bob, carol's c1 in #team.
func newActionFake() *fakeBackend {
	f := newFake()
	f.history["@bob"][0].ID, f.history["@bob"][1].ID = "b1", "a1"
	f.history["#team"][0].ID = "c1"
	return f
}

func command(t *testing.T, m tea.Model, line string) tea.Model {
	t.Helper()
	m = typeText(t, m, line)
	return step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
}

func (f *fakeBackend) lastAction() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.actions) == 0 {
		return ""
	}
	return f.actions[len(f.actions)-1]
}

var (
	altUp   = tea.KeyMsg{Type: tea.KeyUp, Alt: true}
	altDown = tea.KeyMsg{Type: tea.KeyDown, Alt: true}
)

func TestReplyAndReactDefaultToTheLastMessageOfSomeoneElse(t *testing.T) {
	f := newActionFake()
	m := start(t, f)
	m = command(t, m, "/reply sounds good")
	if got := f.lastAction(); got != "reply @bob b1 sounds good" {
		t.Fatalf("backend got %q", got)
	}
	if st := m.(Model).Status(); st != "sent to @bob" {
		t.Fatalf("status %q", st)
	}
	// The reply shows with its quote.
	if v := m.View(); !strings.Contains(v, "↪ hi alice") || !strings.Contains(v, "sounds good") {
		t.Fatalf("reply not shown with its quote:\n%s", v)
	}
	m = command(t, m, "/react 👍")
	if got := f.lastAction(); got != "react b1 👍 false" {
		t.Fatalf("backend got %q", got)
	}
	if v := m.View(); !strings.Contains(v, "[👍 1]") {
		t.Fatalf("reaction not shown:\n%s", v)
	}
	m = command(t, m, "/unreact 👍")
	if got := f.lastAction(); got != "react b1 👍 true" {
		t.Fatalf("backend got %q", got)
	}
	if st := m.(Model).Status(); st != "took back 👍" {
		t.Fatalf("status %q", st)
	}
}

func TestSelectionChoosesTheMessage(t *testing.T) {
	f := newActionFake()
	f.history["@bob"] = append(f.history["@bob"], msg("@bob", "bob", "second"))
	f.history["@bob"][2].ID = "b2"
	m := start(t, f)
	// Newest first: b2, then a1, then b1; Up at the top stays there.
	for range 4 {
		m = step(t, m, altUp)
	}
	if v := m.View(); !strings.Contains(v, "▶") {
		t.Fatalf("selection not marked:\n%s", v)
	}
	m = command(t, m, "/react 🎉")
	if got := f.lastAction(); got != "react b1 🎉 false" {
		t.Fatalf("backend got %q", got)
	}
	// The selection is used up; the next /react goes to the default (b2).
	m = command(t, m, "/react 🎉")
	if got := f.lastAction(); got != "react b2 🎉 false" {
		t.Fatalf("backend got %q", got)
	}
	// Selecting your own message and then Down past the newest drops it.
	m = step(t, m, altUp)
	m = step(t, m, altUp)
	m = step(t, m, altDown)
	m = step(t, m, altDown)
	if m.(Model).selID != "" {
		t.Fatalf("selection %q kept past the newest message", m.(Model).selID)
	}
	// Esc drops a selection instead of quitting.
	m = step(t, m, altUp)
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	if mm := m.(Model); mm.quitting || mm.selID != "" {
		t.Fatalf("Esc with a selection: quitting %v, selection %q", mm.quitting, mm.selID)
	}
}

func TestEditAndDeleteOwnMessages(t *testing.T) {
	f := newActionFake()
	m := start(t, f)
	m = command(t, m, "/edit hi bob!")
	if got := f.lastAction(); got != "edit a1 hi bob!" {
		t.Fatalf("backend got %q", got)
	}
	if v := m.View(); !strings.Contains(v, "hi bob! (edited)") {
		t.Fatalf("edit not shown:\n%s", v)
	}
	// Someone else's message cannot be edited or deleted: nothing is sent.
	n := len(f.actions)
	m = step(t, m, altUp)
	m = step(t, m, altUp) // b1
	m = command(t, m, "/delete")
	if len(f.actions) != n || !strings.Contains(m.(Model).Status(), "only your own messages") {
		t.Fatalf("deleting bob's message: actions %q, status %q", f.actions, m.(Model).Status())
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	m = command(t, m, "/delete")
	if got := f.lastAction(); got != "delete a1" {
		t.Fatalf("backend got %q", got)
	}
	v := m.View()
	if !strings.Contains(v, "you: deleted") || strings.Contains(v, "hi bob!") {
		t.Fatalf("deleted message shown as:\n%s", v)
	}
	// Nothing of mine is left to delete.
	m = command(t, m, "/delete")
	if got := f.lastAction(); got != "delete a1" || !strings.Contains(m.(Model).Status(), "nothing of yours to delete") {
		t.Fatalf("second /delete: backend %q, status %q", got, m.(Model).Status())
	}
}

func TestSearchBlockMute(t *testing.T) {
	f := newActionFake()
	m := start(t, f)
	m = command(t, m, "/search STANDUP")
	if got := f.lastAction(); got != fmt.Sprintf("search STANDUP %d", searchLimit) {
		t.Fatalf("backend got %q", got)
	}
	v := m.View()
	if !strings.Contains(v, "1 result for \"STANDUP\"") || !strings.Contains(v, "#team") || !strings.Contains(v, "standup at ten") {
		t.Fatalf("search results:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	if v := m.View(); strings.Contains(v, "standup") || !strings.Contains(v, "hi alice") || m.(Model).quitting {
		t.Fatalf("after Esc:\n%s", v)
	}
	m = command(t, m, "/block @mallory")
	if got := f.lastAction(); got != "block @mallory" {
		t.Fatalf("backend got %q", got)
	}
	m = command(t, m, "/block")
	if got := f.lastAction(); got != "block @bob" {
		t.Fatalf("/block in @bob: backend got %q", got)
	}
	m = command(t, m, "/mute 8h")
	if got := f.lastAction(); got != "mute @bob 8h0m0s" {
		t.Fatalf("backend got %q", got)
	}
	if st := m.(Model).Status(); st != "muted @bob for 8h0m0s" {
		t.Fatalf("status %q", st)
	}
	m = command(t, m, "/mute")
	if got := f.lastAction(); got != "mute @bob 0s" {
		t.Fatalf("backend got %q", got)
	}
	m = command(t, m, "/mute mentions 2h")
	if got := f.lastAction(); got != "mute @bob 2h0m0s except mentions" {
		t.Fatalf("backend got %q", got)
	}
	if st := m.(Model).Status(); st != "muted @bob for 2h0m0s; mentions of you still notify" {
		t.Fatalf("status %q", st)
	}
	m = command(t, m, "/mute mentions")
	if got := f.lastAction(); got != "mute @bob 0s except mentions" {
		t.Fatalf("backend got %q", got)
	}
	// A backend failure is reported, not hidden.
	f.actionErr = errors.New("server says no")
	m = command(t, m, "/mute 1h")
	if st := m.(Model).Status(); !strings.Contains(st, "failed") || !strings.Contains(st, "server says no") {
		t.Fatalf("status %q", st)
	}
}

func TestForwardDeleteForMeUnblockUnmute(t *testing.T) {
	f := newActionFake()
	m := start(t, f)
	// /forward takes the newest message whoever sent it (a1, mine)...
	m = command(t, m, "/forward #team")
	if got := f.lastAction(); got != "forward a1 #team" {
		t.Fatalf("backend got %q", got)
	}
	if st := m.(Model).Status(); st != "forwarded to #team" {
		t.Fatalf("status %q", st)
	}
	// ... or the selected one (b1), and shows as forwarded there.
	m = step(t, m, altUp)
	m = step(t, m, altUp)
	m = command(t, m, "/forward #team")
	if got := f.lastAction(); got != "forward b1 #team" {
		t.Fatalf("backend got %q", got)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab}) // #team
	if v := m.View(); !strings.Contains(v, "forwarded: hi alice") || !strings.Contains(v, "forwarded: hi bob") {
		t.Fatalf("forwarded messages in #team:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyShiftTab}) // @bob
	// /delete me hides someone else's message from this device.
	m = step(t, m, altUp)
	m = step(t, m, altUp) // b1
	m = command(t, m, "/delete me")
	if got := f.lastAction(); got != "hide b1" {
		t.Fatalf("backend got %q", got)
	}
	if v := m.View(); strings.Contains(v, "hi alice") || !strings.Contains(v, "hi bob") {
		t.Fatalf("after /delete me:\n%s", v)
	}
	m = command(t, m, "/unblock")
	if got := f.lastAction(); got != "unblock @bob" {
		t.Fatalf("backend got %q", got)
	}
	m = command(t, m, "/unblock @mallory")
	if got, st := f.lastAction(), m.(Model).Status(); got != "unblock @mallory" || st != "unblocked @mallory" {
		t.Fatalf("backend got %q, status %q", got, st)
	}
	m = command(t, m, "/unmute")
	if st := m.(Model).Status(); !strings.Contains(st, "@bob was not muted") {
		t.Fatalf("unmuting what is not muted: status %q", st)
	}
	m = command(t, m, "/mute")
	m = command(t, m, "/unmute")
	if got, st := f.lastAction(), m.(Model).Status(); got != "unmute @bob" || st != "unmuted @bob" {
		t.Fatalf("backend got %q, status %q", got, st)
	}
	for _, c := range []struct{ line, status string }{
		{"/forward", "usage: /forward @user"},
		{"/forward bob", "usage: /forward @user"},
		{"/delete them", "usage: /delete (for everyone) or /delete me"},
		{"/unblock bob", "usage: /unblock @user"},
		{"/unmute now", "usage: /unmute"},
	} {
		n := len(f.actions)
		m = command(t, m, c.line)
		if st := m.(Model).Status(); !strings.Contains(st, c.status) || len(f.actions) != n {
			t.Errorf("%s: status %q, want %q; actions %q", c.line, st, c.status, f.actions[n:])
		}
	}
}

func TestActionsRefuseOddInput(t *testing.T) {
	f := newActionFake()
	f.history["#team"] = nil
	m := start(t, f)
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab}) // #team, empty
	for _, c := range []struct{ line, status string }{
		{"/react 👍", "nothing to react to: select a message"},
		{"/reply hello", "nothing to reply to"},
		{"/edit new", "nothing of yours to edit"},
		{"/delete", "nothing of yours to delete"},
		{"/delete me", "nothing to delete here"},
		{"/forward @bob", "nothing to forward here"},
		{"/react", "usage: /react EMOJI"},
		{"/reply", "usage: /reply TEXT"},
		{"/edit", "usage: /edit TEXT"},
		{"/search", "usage: /search WORDS"},
		{"/block", "usage: /block @user"},
		{"/block mallory", "usage: /block @user"},
		{"/mute soon", "usage: /mute [mentions] [DURATION]"},
		{"/mute -1h", "usage: /mute [mentions] [DURATION]"},
		{"/mute mentions soon", "usage: /mute [mentions] [DURATION]"},
	} {
		m = command(t, m, c.line)
		if st := m.(Model).Status(); !strings.Contains(st, c.status) {
			t.Errorf("%s: status %q, want %q", c.line, st, c.status)
		}
	}
	// Without a conversation, actions say what to do.
	m = command(t, m, "/to ~news")
	m = command(t, m, "/react 👍")
	if st := m.(Model).Status(); !strings.Contains(st, "needs a conversation") {
		t.Errorf("status %q", st)
	}
	if len(f.actions) != 0 {
		t.Fatalf("odd input reached the backend: %q", f.actions)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	m := start(t, newActionFake())
	m = step(t, m, tea.WindowSizeMsg{Width: 200, Height: 80}) // all of it on screen
	m = step(t, m, tea.KeyMsg{Type: tea.KeyF1})
	v := m.View()
	for _, want := range []string{"/to", "/file", "/reply", "/react", "/unreact", "/edit", "/delete", "/delete me", "/forward", "/search", "/block", "/unblock", "/mute", "/unmute",
		"/timer", "/members", "/report", "/retry", "/help", "/quit", "Alt+Up", "F1", "Esc", "Tab", "PgUp"} {
		if !strings.Contains(v, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	if v := m.View(); strings.Contains(v, "/unreact") || m.(Model).quitting {
		t.Fatalf("Esc did not close the help:\n%s", v)
	}
	m = command(t, m, "/help")
	if !strings.Contains(m.View(), "/unreact") {
		t.Fatal("/help does not show the help")
	}
}

func TestRendersMentionsForwardsAndIncomingEdits(t *testing.T) {
	f := newActionFake()
	mention := msg("@bob", "bob", "@alice look")
	mention.ID, mention.Mentioned = "b9", true
	got := renderMessage(mention, f.Self())
	if !strings.Contains(got, styleMention.Render("@alice look")) {
		t.Fatalf("mention not highlighted: %q", got)
	}
	// An edit arriving reloads the history rather than showing the event.
	m := start(t, f)
	f.mu.Lock()
	f.history["@bob"][0].Text, f.history["@bob"][0].Edited = "hi alice, again", true
	f.mu.Unlock()
	ev := msg("@bob", "bob", "hi alice, again")
	ev.Kind, ev.Target = client.KindEdit, "b1"
	m = step(t, m, IncomingMsg{ev})
	if v := m.View(); !strings.Contains(v, "hi alice, again (edited)") || strings.Count(v, "hi alice, again") != 1 {
		t.Fatalf("after an incoming edit:\n%s", v)
	}
}

// Quotes, reactions and search queries come from others: terminal
// control sequences in them are neutralised like message text.
func TestDecorationsStripControlCharacters(t *testing.T) {
	m := msg("@bob", "bob", "ok")
	m.ID, m.ReplyTo, m.Quote = "b5", "a1", "\x1b]0;pwned\x07quoted"
	m.Reactions = []client.Reaction{{Emoji: "\x1b[2J", User: "bob"}}
	got := renderMessage(m, client.Self{User: "alice"})
	if strings.ContainsAny(got, "\x07") || strings.Contains(got, "\x1b]0;") || strings.Contains(got, "\x1b[2J") {
		t.Fatalf("control characters rendered: %q", got)
	}
	if !strings.Contains(got, "?]0;pwned?quoted") || !strings.Contains(got, "?[2J 1") {
		t.Fatalf("decorations lost: %q", got)
	}
}

// A reply typed while the server cannot be reached waits in the outbox
// like any message, and is sent with its quote once the connection is
// back.
func TestReplyQueuedOffline(t *testing.T) {
	f := newActionFake()
	f.offline = true
	m := start(t, f)
	m = command(t, m, "/reply see you there")
	if st := m.(Model).Status(); !strings.Contains(st, "1 message queued") {
		t.Fatalf("status %q", st)
	}
	if len(f.outbox) != 1 || f.outbox[0].ReplyTo != "b1" || len(f.sent) != 0 {
		t.Fatalf("outbox %+v, sent %q", f.outbox, f.sent)
	}
	if v := m.View(); !strings.Contains(v, "see you there") || !strings.Contains(v, "◷ pending") {
		t.Fatalf("the queued reply is not shown as pending:\n%s", v)
	}
	f.mu.Lock()
	f.offline = false
	f.mu.Unlock()
	m = step(t, m, EventMsg{client.Event{Type: client.EventConnected}})
	if len(f.sent) != 1 || f.sent[0] != "@bob: see you there" {
		t.Fatalf("after reconnecting, sent %q", f.sent)
	}
	if v := m.View(); !strings.Contains(v, "↪ hi alice") || strings.Contains(v, "pending") {
		t.Fatalf("the reply is not shown with its quote after delivery:\n%s", v)
	}
}
