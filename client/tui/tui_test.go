//go:build !js

package tui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/client"
)

// fakeBackend is an in-memory messenger.
type fakeBackend struct {
	mu      sync.Mutex
	convs   []client.Conversation
	history map[string][]client.Message
	sent    []string // "conv: text"
	sendErr error    // refuses what is sent
	offline bool     // the server cannot be reached
	outbox  []client.Queued
	alerts  []string
	// reports are the reports sent: each plan as it went.
	reports []*client.ReportPlan
	// actions are the message actions, searches, blocks and mutes asked
	// for (actions_test.go); actionErr makes them fail.
	actions   []string
	actionErr error
}

func (f *fakeBackend) PlanReport(_ context.Context, conv string, ids []string, reason, note string) (*client.ReportPlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains([]string{"spam", "harassment", "terrorism", "csam", "other"}, reason) {
		return nil, fmt.Errorf("client: --reason must be one of spam, harassment, terrorism, csam, other")
	}
	p := &client.ReportPlan{Conversation: conv, Reason: reason, Note: note}
	for _, h := range f.history[conv] {
		if slices.Contains(ids, h.ID) {
			p.Messages = append(p.Messages, client.ReportedMessage{ID: h.ID, Sender: h.Sender, At: h.SentAt, Text: h.Text})
		}
	}
	return p, nil
}

func (f *fakeBackend) Report(_ context.Context, p *client.ReportPlan) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, p)
	return fmt.Sprint(len(f.reports)), nil
}

func (f *fakeBackend) Alerts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.alerts
	f.alerts = nil
	return a
}

func (f *fakeBackend) Self() client.Self { return client.Self{User: "alice", DeviceID: "dev1"} }
func (f *fakeBackend) Conversations(context.Context) ([]client.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.Conversation(nil), f.convs...), nil
}
func (f *fakeBackend) History(_ context.Context, conv string, _ int) ([]client.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.Message(nil), f.history[conv]...), nil
}
func (f *fakeBackend) Queue(_ context.Context, conv, text string) (client.Queued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := client.Queued{ID: fmt.Sprintf("q%d", len(f.outbox)+len(f.sent)), Conversation: conv, Text: text, QueuedAt: time.Now()}
	f.outbox = append(f.outbox, q)
	return q, nil
}

var errOffline = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func (f *fakeBackend) Flush(context.Context) (client.FlushResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res client.FlushResult
	for len(f.outbox) > 0 {
		q := &f.outbox[0]
		if f.offline {
			for _, q := range f.outbox {
				if !q.Failed {
					res.Pending++
				}
			}
			return res, fmt.Errorf("transport: dial: %w", errOffline)
		}
		if q.Failed {
			break
		}
		if f.sendErr != nil {
			q.Failed, q.LastError = true, f.sendErr.Error()
			res.Failed = append(res.Failed, *q)
			break
		}
		f.sent = append(f.sent, q.Conversation+": "+q.Text)
		m := msg(q.Conversation, "alice", q.Text)
		m.ID = q.ID
		if q.ReplyTo != "" {
			m.ReplyTo, m.Quote = q.ReplyTo, f.find(q.ReplyTo).Text
		}
		f.history[q.Conversation] = append(f.history[q.Conversation], m)
		res.Sent = append(res.Sent, client.Sent{ID: q.ID, Conversation: q.Conversation, Kind: client.KindText})
		f.outbox = f.outbox[1:]
	}
	return res, nil
}

func (f *fakeBackend) Outbox(context.Context) ([]client.Queued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.outbox), nil
}

func (f *fakeBackend) Retry(_ context.Context, conv string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for i := range f.outbox {
		if f.outbox[i].Failed && f.outbox[i].Conversation == conv {
			f.outbox[i].Failed = false
			n++
		}
	}
	return n, nil
}
func (f *fakeBackend) SendFile(_ context.Context, conv, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, conv+": file "+path)
	m := msg(conv, "alice", "report.pdf")
	m.Kind, m.ID = client.KindFile, "0123"
	m.File = &client.FileInfo{Name: "report.pdf", Size: 42}
	f.history[conv] = append(f.history[conv], m)
	return nil
}
func (f *fakeBackend) Watch(ctx context.Context, fn func(client.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func msg(conv, from, text string) client.Message {
	return client.Message{Conversation: conv, Sender: client.Sender{User: from, Device: "d"},
		SentAt: time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC), Kind: client.KindText, Text: text}
}

func newFake() *fakeBackend {
	return &fakeBackend{
		convs: []client.Conversation{{Label: "@bob", Kind: client.ConvDirect}, {Label: "#team", Kind: client.ConvGroup}},
		history: map[string][]client.Message{
			"@bob":  {msg("@bob", "bob", "hi alice"), msg("@bob", "alice", "hi bob")},
			"#team": {msg("#team", "carol", "standup at ten")},
		},
	}
}

// newModel is New over b with no timers: the cursor does not blink and
// ticks are fed by the test (tickMsg{}), so every command the Model
// returns finishes promptly and run can wait for each one.
func newModel(b Backend) Model {
	m := New(context.Background(), b, nil)
	m.input.Cursor.SetMode(cursor.CursorStatic)
	m.after = func(time.Duration) tea.Cmd { return nil }
	return m
}

// step feeds msg to m and runs the resulting commands, feeding their
// messages back in.
func step(t *testing.T, m tea.Model, msg tea.Msg) tea.Model {
	t.Helper()
	m, cmd := m.Update(msg)
	return run(t, m, cmd, 0)
}

func run(t *testing.T, m tea.Model, cmd tea.Cmd, depth int) tea.Model {
	if cmd == nil || depth > 8 {
		return m
	}
	out := make(chan tea.Msg, 1)
	go func() { out <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-out:
	case <-time.After(time.Minute):
		// Nothing the Model returns under newModel blocks: a command
		// that does is a bug (or a new timer to route through m.after).
		t.Fatalf("a command of the Model did not finish in a minute")
	}
	switch msg := msg.(type) {
	case nil:
		return m
	case tea.BatchMsg:
		for _, c := range msg {
			m = run(t, m, c, depth+1)
		}
		return m
	default:
		if _, ok := msg.(tea.QuitMsg); ok {
			return m
		}
		m, cmd := m.Update(msg)
		return run(t, m, cmd, depth+1)
	}
}

func typeText(t *testing.T, m tea.Model, s string) tea.Model {
	for _, r := range s {
		m = step(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	return m
}

func start(t *testing.T, f *fakeBackend) tea.Model {
	var m tea.Model = newModel(f)
	m = run(t, m, m.Init(), 0)
	return step(t, m, tea.WindowSizeMsg{Width: 100, Height: 30})
}

func TestShowsConversationsAndHistory(t *testing.T) {
	m := start(t, newFake())
	v := m.View()
	for _, want := range []string{"@bob", "#team", "hi alice", "hi bob", "alice/dev1"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "standup") {
		t.Error("history of the other conversation is shown")
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	if got := m.(Model).Current(); got != "#team" {
		t.Fatalf("after Tab the current conversation is %q", got)
	}
	if v := m.View(); !strings.Contains(v, "standup at ten") || strings.Contains(v, "hi alice") {
		t.Fatalf("after Tab:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyShiftTab})
	if got := m.(Model).Current(); got != "@bob" {
		t.Fatalf("after Shift+Tab the current conversation is %q", got)
	}
}

func TestComposeAndSend(t *testing.T) {
	f := newFake()
	m := start(t, f)
	m = typeText(t, m, "lunch?")
	if !strings.Contains(m.View(), "lunch?") {
		t.Fatal("typed text not shown")
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 || f.sent[0] != "@bob: lunch?" {
		t.Fatalf("sent %q", f.sent)
	}
	if st := m.(Model).Status(); st != "sent to @bob" {
		t.Fatalf("status %q", st)
	}
	if strings.Count(m.View(), "lunch?") != 1 {
		t.Fatalf("message shown %d times:\n%s", strings.Count(m.View(), "lunch?"), m.View())
	}
	// Empty input sends nothing.
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 {
		t.Fatal("empty message sent")
	}
	f.sendErr = errors.New("offline")
	m = typeText(t, m, "again")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if st := m.(Model).Status(); !strings.Contains(st, "not sent to @bob: offline") {
		t.Fatalf("status %q", st)
	}
}

func TestSwitchWithSlashTo(t *testing.T) {
	f := newFake()
	m := start(t, f)
	m = typeText(t, m, "/to @dave")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if got := m.(Model).Current(); got != "@dave" {
		t.Fatalf("current %q", got)
	}
	if !strings.Contains(m.View(), "@dave (new)") {
		t.Fatalf("view:\n%s", m.View())
	}
	m = typeText(t, m, "hello dave")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 || f.sent[0] != "@dave: hello dave" {
		t.Fatalf("sent %q", f.sent)
	}
	m = typeText(t, m, "/to #team")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if got := m.(Model).Current(); got != "#team" {
		t.Fatalf("current %q", got)
	}
	m = typeText(t, m, "/to nobody")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if !strings.Contains(m.(Model).Status(), "usage") {
		t.Fatalf("status %q", m.(Model).Status())
	}
}

func TestIncomingMessages(t *testing.T) {
	f := newFake()
	m := start(t, f)
	m = step(t, m, IncomingMsg{msg("@bob", "bob", "are you there?")})
	if !strings.Contains(m.View(), "are you there?") {
		t.Fatal("incoming message for the current conversation not shown")
	}
	m = step(t, m, IncomingMsg{msg("#team", "carol", "meeting moved")})
	if strings.Contains(m.View(), "meeting moved") {
		t.Fatal("message of another conversation shown in this one")
	}
	if st := m.(Model).Status(); st != "new message in #team" {
		t.Fatalf("status %q", st)
	}
	if !strings.Contains(m.View(), "#team (1)") {
		t.Fatalf("no unread count:\n%s", m.View())
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	if v := m.View(); strings.Contains(v, "#team (1)") || !strings.Contains(v, "standup at ten") {
		t.Fatalf("after switching:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	// Terminal escapes from others are neutralised.
	m = step(t, m, IncomingMsg{msg("@bob", "bob", "evil \x1b[2Jclear")})
	if strings.Contains(m.View(), "\x1b[2J") {
		t.Fatal("escape sequence passed through")
	}
	r := client.Message{Conversation: "@bob", Sender: client.Sender{User: "bob"}, Kind: client.KindReceipt, SentAt: time.Now()}
	m = step(t, m, IncomingMsg{r})
	if !strings.Contains(m.View(), "read by bob") {
		t.Fatal("receipt not shown")
	}
}

func TestQuit(t *testing.T) {
	m := start(t, newFake())
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyCtrlC})
	if cmd == nil {
		t.Fatal("Ctrl+C returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("Ctrl+C does not quit")
	}
}

func TestSendFile(t *testing.T) {
	f := newFake()
	m := start(t, f)
	m = typeText(t, m, "/file /tmp/report.pdf")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 || f.sent[0] != "@bob: file /tmp/report.pdf" {
		t.Fatalf("sent %q", f.sent)
	}
	if v := m.View(); !strings.Contains(v, "[file report.pdf, 42 bytes") {
		t.Fatalf("view:\n%s", v)
	}
}

// A security alert (here: a ghost device the client refused) is shown in a
// banner above everything, and stays there.
func TestSecurityAlertBanner(t *testing.T) {
	f := newFake()
	f.alerts = []string{"@bob client: a device is not in its account's signed device list: bob/ghost"}
	var m tea.Model = newModel(f)
	m = run(t, m, m.Init(), 0)
	m = step(t, m, tea.WindowSizeMsg{Width: 120, Height: 30})
	view := m.View()
	if !strings.Contains(view, "SECURITY ALERT") || !strings.Contains(view, "bob/ghost") {
		t.Fatalf("no alert banner:\n%s", view)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	if !strings.Contains(m.View(), "SECURITY ALERT") {
		t.Fatal("the banner went away")
	}
}

// Long messages wrap instead of being cut at the pane's width, and a file
// id is never split or cut.
func TestLongLinesWrap(t *testing.T) {
	f := newFake()
	long := strings.Repeat("word ", 40) + "THE-END"
	f.history["@bob"] = append(f.history["@bob"], msg("@bob", "bob", long))
	fm := msg("@bob", "bob", "report.pdf")
	fm.Kind, fm.ID = client.KindFile, "0123456789abcdef0123456789abcdef"
	fm.File = &client.FileInfo{Name: "report.pdf", Size: 42}
	f.history["@bob"] = append(f.history["@bob"], fm)
	var m tea.Model = newModel(f)
	m = run(t, m, m.Init(), 0)
	m = step(t, m, tea.WindowSizeMsg{Width: 70, Height: 40})
	view := m.View()
	if !strings.Contains(view, "THE-END") {
		t.Fatalf("the end of a long message was cut:\n%s", view)
	}
	if !strings.Contains(view, "0123456789abcdef0123456789abcdef") {
		t.Fatalf("the file id was cut or split:\n%s", view)
	}
	if !strings.Contains(view, "you:") {
		t.Fatalf("own messages are not shown as you:\n%s", view)
	}
}

// A message typed while the server cannot be reached stays on screen,
// pending, with a status that says so; it is sent once when the
// connection is back, and the old error goes away.
func TestOutboxPendingThenSent(t *testing.T) {
	f := newFake()
	f.offline = true
	m := start(t, f)
	m = typeText(t, m, "lunch at noon?")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	v := m.View()
	if !strings.Contains(v, "lunch at noon?") || !strings.Contains(v, "◷ pending") {
		t.Fatalf("the queued message is not shown as pending:\n%s", v)
	}
	if st := m.(Model).Status(); !strings.Contains(st, "cannot reach the server") || !strings.Contains(st, "1 message queued") {
		t.Fatalf("status %q", st)
	}
	if len(f.sent) != 0 || len(f.outbox) != 1 {
		t.Fatalf("sent %q, outbox %+v", f.sent, f.outbox)
	}
	// Watch reports the lost connection with its retry delay.
	m = step(t, m, EventMsg{client.Event{Type: client.EventDisconnected, Err: errOffline, RetryIn: 800 * time.Millisecond}})
	if st := m.(Model).Status(); !strings.Contains(st, "retrying in 800ms") || !strings.Contains(st, "1 message queued") {
		t.Fatalf("status %q", st)
	}
	f.mu.Lock()
	f.offline = false
	f.mu.Unlock()
	m = step(t, m, EventMsg{client.Event{Type: client.EventConnected}})
	if len(f.sent) != 1 || f.sent[0] != "@bob: lunch at noon?" {
		t.Fatalf("after reconnecting, sent %q", f.sent)
	}
	v = m.View()
	if strings.Count(v, "lunch at noon?") != 1 || strings.Contains(v, "pending") {
		t.Fatalf("after delivery:\n%s", v)
	}
	if st := m.(Model).Status(); strings.Contains(st, "offline") || strings.Contains(st, "cannot reach") {
		t.Fatalf("stale status after reconnecting: %q", st)
	}
	// Reconnecting again sends nothing twice.
	m = step(t, m, EventMsg{client.Event{Type: client.EventConnected}})
	if len(f.sent) != 1 {
		t.Fatalf("sent twice: %q", f.sent)
	}
	_ = m
}

// A refused message is marked, not lost, and /retry sends it.
func TestOutboxRetry(t *testing.T) {
	f := newFake()
	f.sendErr = errors.New("client: verify bob again")
	m := start(t, f)
	m = typeText(t, m, "hello")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if v := m.View(); !strings.Contains(v, "✗ not sent: verify bob again") {
		t.Fatalf("view:\n%s", v)
	}
	f.mu.Lock()
	f.sendErr = nil
	f.mu.Unlock()
	m = typeText(t, m, "/retry")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 || f.sent[0] != "@bob: hello" {
		t.Fatalf("after /retry, sent %q", f.sent)
	}
	if v := m.View(); strings.Contains(v, "not sent") {
		t.Fatalf("after /retry:\n%s", v)
	}
}

// The status line never goes stale: "sending" ends when the file is sent.
func TestStatusNotStale(t *testing.T) {
	f := newFake()
	m := start(t, f)
	m = typeText(t, m, "/file /tmp/report.pdf")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if st := m.(Model).Status(); st != "sent report.pdf to @bob" {
		t.Fatalf("status %q", st)
	}
	m = typeText(t, m, "hi")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if st := m.(Model).Status(); strings.Contains(st, "sending") {
		t.Fatalf("status %q", st)
	}
}

// Posts of followed public channels show in their own entry, marked
// public and read-only.
func TestChannelPosts(t *testing.T) {
	f := newFake()
	m := start(t, f)
	post := &client.ChannelPost{Kind: client.KindChannelPost, Channel: "news", Public: true, PostID: 7, SentAt: time.Now(),
		Post: &channels.PostView{ID: 7, Channel: "news", Author: "carol", Text: "extra! extra!",
			Media: []channels.MediaView{{Index: 0, ContentType: "image/jpeg", Size: 1234}}}}
	m = step(t, m, EventMsg{client.Event{Type: client.EventChannelPost, ChannelPost: post}})
	if v := m.View(); !strings.Contains(v, "~news (public) (1)") || strings.Contains(v, "extra!") {
		t.Fatalf("view:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	if got := m.(Model).Current(); got != "~news" {
		t.Fatalf("current %q", got)
	}
	v := m.View()
	for _, want := range []string{"extra! extra!", "carol (public)", "NOT end-to-end encrypted", "parley channel get-media news 7 0"} {
		if !strings.Contains(v, want) {
			t.Fatalf("view lacks %q:\n%s", want, v)
		}
	}
	m = typeText(t, m, "a reply")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 0 || !strings.Contains(m.(Model).Status(), "read-only") {
		t.Fatalf("sent %q, status %q", f.sent, m.(Model).Status())
	}
}

// typingFake is a backend that sends typing indicators and sets timers.
type typingFake struct {
	*fakeBackend
	typed  []string
	timers []string
}

func (f *typingFake) Typing(_ context.Context, conv string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typed = append(f.typed, conv)
	return nil
}

func (f *typingFake) SetTimer(_ context.Context, conv string, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timers = append(f.timers, conv+" "+client.FormatTimer(d))
	return nil
}

func TestTypingIndicatorsAndTimer(t *testing.T) {
	f := &typingFake{fakeBackend: newFake()}
	var m tea.Model = newModel(f)
	m = run(t, m, m.Init(), 0)
	m = step(t, m, tea.WindowSizeMsg{Width: 100, Height: 30})
	// Typing in the compose line tells @bob; a command does not.
	m = typeText(t, m, "hel")
	if len(f.typed) != 3 || f.typed[0] != "@bob" {
		t.Fatalf("typing indicators sent: %q", f.typed)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	f.typed = nil
	m = typeText(t, m, "/timer 1h")
	if len(f.typed) != 1 { // the "/" itself, before the line is a command
		t.Fatalf("typing indicators sent for a command: %q", f.typed)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.timers) != 1 || f.timers[0] != "@bob 1h" {
		t.Fatalf("timers set: %q", f.timers)
	}

	// bob's indicator shows in @bob until it lapses or he stops.
	ev := client.Event{Type: client.EventTyping, Typing: &client.Typing{Conversation: "@bob", User: "bob", Typing: true, Until: time.Now().Add(time.Hour)}}
	m = step(t, m, EventMsg{ev})
	if !strings.Contains(m.View(), "bob is typing…") {
		t.Fatalf("no typing indicator:\n%s", m.View())
	}
	m = step(t, m, EventMsg{client.Event{Type: client.EventTyping, Typing: &client.Typing{Conversation: "@bob", User: "bob"}}})
	if strings.Contains(m.View(), "is typing") {
		t.Fatal("the indicator stays after bob stopped")
	}
	lapsed := client.Event{Type: client.EventTyping, Typing: &client.Typing{Conversation: "@bob", User: "bob", Typing: true, Until: time.Now().Add(-time.Second)}}
	m = step(t, m, EventMsg{lapsed})
	m = step(t, m, tickMsg{})
	if strings.Contains(m.View(), "is typing") {
		t.Fatal("a lapsed indicator is still shown")
	}

	// A message whose expiry passed leaves the view at the next tick.
	gone := client.Message{ID: "m9", Conversation: "@bob", Sender: client.Sender{User: "bob"}, Kind: client.KindText,
		Text: "this disappears", SentAt: time.Now(), ExpiresAt: time.Now().Add(-time.Millisecond)}
	m = step(t, m, IncomingMsg{gone})
	if strings.Contains(m.View(), "this disappears") {
		t.Fatal("an expired message is shown")
	}
}

// /report: choose a message someone else sent, give a reason, see what
// would be sent, and only y sends it; n or Esc send nothing.
func TestReportDialogue(t *testing.T) {
	f := newFake()
	threat := msg("@bob", "bob", "you will regret this")
	threat.ID = "m2"
	f.history["@bob"] = []client.Message{{ID: "m1", Conversation: "@bob", Sender: client.Sender{User: "bob"}, Kind: client.KindText, Text: "hi alice", SentAt: threat.SentAt},
		msg("@bob", "alice", "hi bob"), threat, msg("@bob", "alice", "what?")}
	m := start(t, f)
	m = typeText(t, m, "/report")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	// The last message from bob is chosen first; own messages are skipped.
	if v := m.View(); !strings.Contains(v, "▶ report:") || !strings.Contains(m.(Model).history[m.(Model).reportSel].Text, "regret") {
		t.Fatalf("selection:\n%s", v)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyUp})
	if got := m.(Model).history[m.(Model).reportSel].Text; got != "hi alice" {
		t.Fatalf("Up chose %q", got)
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyDown})
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	// A bad reason: told, nothing sent.
	m = typeText(t, m, "rude")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if st := m.(Model).Status(); !strings.Contains(st, "report not sent") || len(f.reports) != 0 {
		t.Fatalf("a bad reason: %q %v", st, f.reports)
	}
	// Again, properly; n cancels at the preview.
	for _, answer := range []string{"n", "y"} {
		m = typeText(t, m, "/report")
		m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
		m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
		m = typeText(t, m, "harassment a threat")
		m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
		v := m.View()
		for _, want := range []string{"This report (harassment) would send 1 message of @bob", "bob: you will regret this", `your note: "a threat"`, "send this report? (y/n)"} {
			if !strings.Contains(v, want) {
				t.Fatalf("the preview lacks %q:\n%s", want, v)
			}
		}
		if len(f.reports) != 0 {
			t.Fatal("sent before the answer")
		}
		m = typeText(t, m, answer)
	}
	if len(f.reports) != 1 || len(f.reports[0].Messages) != 1 || f.reports[0].Messages[0].ID != "m2" || f.reports[0].Note != "a threat" {
		t.Fatalf("reports sent: %+v", f.reports)
	}
	if st := m.(Model).Status(); !strings.Contains(st, "reported 1 message to the moderators (case 1)") {
		t.Fatalf("status %q", st)
	}
	// Esc leaves the dialogue without quitting and without sending.
	m = typeText(t, m, "/report")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	if mm := m.(Model); mm.quitting || mm.report != reportNone || len(f.reports) != 1 {
		t.Fatalf("after Esc: quitting %v, step %v, reports %d", mm.quitting, mm.report, len(f.reports))
	}
	// Typed text goes to the conversation again.
	m = typeText(t, m, "ok")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(f.sent) != 1 || f.sent[0] != "@bob: ok" || m.(Model).report != reportNone {
		t.Fatalf("sent %q", f.sent)
	}
}

// A group's name and topic show in its title; /members lists its members
// with the admins marked.
func TestGroupNameTopicAndRoles(t *testing.T) {
	f := newFake()
	for i := range f.convs {
		if f.convs[i].Label == "#team" {
			f.convs[i].Name, f.convs[i].Topic = "The Team", "launch on friday"
			f.convs[i].Members = []client.Sender{{User: "alice", Device: "dev1"}, {User: "bob", Device: "d"}, {User: "bob", Device: "e"}}
			f.convs[i].Admins = []string{"alice"}
		}
	}
	m := start(t, f)
	if strings.Contains(m.View(), "launch on friday") {
		t.Fatal("another conversation's topic is shown")
	}
	m = step(t, m, tea.KeyMsg{Type: tea.KeyTab})
	if v := m.View(); !strings.Contains(v, "The Team · launch on friday") {
		t.Fatalf("title lacks the name and topic:\n%s", v)
	}
	m = typeText(t, m, "/members")
	m = step(t, m, tea.KeyMsg{Type: tea.KeyEnter})
	if st := m.(Model).Status(); st != "#team: alice (admin), bob" {
		t.Fatalf("status %q", st)
	}
	if len(f.sent) != 0 {
		t.Fatalf("/members was sent: %q", f.sent)
	}
}

// TestMutedNotCounted: a muted conversation's message is neither counted
// as unread nor announced, but is there when the conversation is opened.
func TestMutedNotCounted(t *testing.T) {
	f := newFake()
	m := start(t, f)
	muted := msg("#team", "carol", "quiet please")
	muted.Muted = true
	m = step(t, m, IncomingMsg{muted})
	if strings.Contains(m.View(), "#team (1)") || strings.Contains(m.(Model).Status(), "new message") {
		t.Fatalf("a muted message notified:\n%s", m.View())
	}
	m = step(t, m, IncomingMsg{msg("#team", "carol", "loud")})
	if !strings.Contains(m.View(), "#team (1)") {
		t.Fatalf("an unmuted message was not counted:\n%s", m.View())
	}
}
