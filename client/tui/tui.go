//go:build !js

// Package tui is Parley's interactive terminal UI ("parley chat"), built
// on Bubble Tea: a conversation list on the left, the selected
// conversation's history on the right and a compose line below.
//
// The Model talks to the messenger through the Backend interface, so it
// can be driven in tests by feeding messages to Update without a
// terminal.
//
// It is not built for the browser (GOOS=js): there the web client (package
// web) is the interface.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/parleychat/parley/client"
)

// Backend is what the UI needs from the messenger.
type Backend interface {
	Self() client.Self
	Conversations(ctx context.Context) ([]client.Conversation, error)
	History(ctx context.Context, conversation string, limit int) ([]client.Message, error)
	// Queue puts a text message in the outbox (no connection needed);
	// Flush sends the outbox in order.
	Queue(ctx context.Context, conversation, text string) (client.Queued, error)
	Flush(ctx context.Context) (client.FlushResult, error)
	// Outbox lists the messages not sent yet; Retry marks a
	// conversation's failed ones for sending again.
	Outbox(ctx context.Context) ([]client.Queued, error)
	Retry(ctx context.Context, conversation string) (int, error)
	SendFile(ctx context.Context, conversation, path string) error
	// Watch reports new messages, outbox deliveries, connection changes
	// and followed channels' posts until ctx is done, reconnecting by
	// itself (client.Client.Watch).
	Watch(ctx context.Context, fn func(client.Event)) error
	// Alerts returns (and forgets) the security alerts raised since the
	// last call: devices or members not in their account's signed list,
	// changed account keys, messages from outside a group.
	Alerts() []string
	// PlanReport gathers what a report of messages (by id) would send,
	// sending nothing; Report sends it to the moderators and returns
	// the case id (client.Client.PlanReport, Report).
	PlanReport(ctx context.Context, conversation string, ids []string, reason, note string) (*client.ReportPlan, error)
	Report(ctx context.Context, plan *client.ReportPlan) (string, error)
	// Message actions (client.Client.EnqueueReply: a reply goes through
	// the outbox like any text; React, Edit, DeleteForEveryone), search
	// of this device's history, blocking a user and muting a
	// conversation (d 0: for good).
	QueueReply(ctx context.Context, conversation, replyTo, text string) (client.Queued, error)
	React(ctx context.Context, id, emoji string, remove bool) error
	Edit(ctx context.Context, id, text string) error
	DeleteForEveryone(ctx context.Context, id string) error
	Search(ctx context.Context, query string, limit int) ([]client.Message, error)
	Block(ctx context.Context, user string) error
	SetMute(ctx context.Context, conversation string, d time.Duration, exceptMentions bool) error
	// Forward sends message id to target marked as forwarded
	// (client.Client.Forward); DeleteForMe removes it from this device
	// only; Unblock and Unmute undo Block and SetMute (Unmute reports
	// whether the conversation was muted).
	Forward(ctx context.Context, id, target string) error
	DeleteForMe(ctx context.Context, id string) error
	Unblock(ctx context.Context, user string) error
	Unmute(ctx context.Context, conversation string) (bool, error)
}

type clientBackend struct{ c *client.Client }

// NewBackend adapts a Client.
func NewBackend(c *client.Client) Backend { return clientBackend{c} }

func (b clientBackend) Self() client.Self { return b.c.Self() }
func (b clientBackend) Conversations(ctx context.Context) ([]client.Conversation, error) {
	convs, err := b.c.Conversations(ctx)
	// Message requests stay out of the chat until accepted ("parley
	// requests accept"): their messages are not shown.
	return slices.DeleteFunc(convs, func(c client.Conversation) bool { return c.Request }), err
}
func (b clientBackend) History(ctx context.Context, conv string, limit int) ([]client.Message, error) {
	return b.c.History(ctx, conv, limit)
}
func (b clientBackend) Queue(ctx context.Context, conv, text string) (client.Queued, error) {
	return b.c.Enqueue(ctx, conv, text)
}
func (b clientBackend) Flush(ctx context.Context) (client.FlushResult, error) {
	return b.c.FlushOutbox(ctx)
}
func (b clientBackend) Outbox(ctx context.Context) ([]client.Queued, error) { return b.c.Outbox(ctx) }
func (b clientBackend) Retry(ctx context.Context, conv string) (int, error) {
	return b.c.RetryOutbox(ctx, conv)
}
func (b clientBackend) SendFile(ctx context.Context, conv, path string) error {
	_, err := b.c.SendFile(ctx, conv, path, nil)
	return err
}
func (b clientBackend) Watch(ctx context.Context, fn func(client.Event)) error {
	return b.c.Watch(ctx, client.WatchOptions{Channels: true}, fn)
}
func (b clientBackend) PlanReport(ctx context.Context, conv string, ids []string, reason, note string) (*client.ReportPlan, error) {
	return b.c.PlanReport(ctx, conv, ids, 0, reason, note)
}
func (b clientBackend) Report(ctx context.Context, plan *client.ReportPlan) (string, error) {
	return b.c.Report(ctx, plan)
}
func (b clientBackend) Alerts() []string {
	var out []string
	for _, w := range b.c.Warnings() {
		if w.Alert {
			out = append(out, strings.TrimSpace(w.Conversation+" "+w.Err))
		}
	}
	return out
}

// Messages the Model handles (besides Bubble Tea's own).
type (
	convsMsg struct {
		convs []client.Conversation
		err   error
	}
	historyMsg struct {
		conv string
		msgs []client.Message
		err  error
	}
	// IncomingMsg carries a message that arrived.
	IncomingMsg struct{ Message client.Message }
	// EventMsg carries what the backend's Watch reported.
	EventMsg struct{ Event client.Event }
	sentMsg  struct {
		conv string
		err  error
	}
	queuedMsg struct {
		q   client.Queued
		err error
	}
	flushedMsg struct {
		res client.FlushResult
		err error
	}
	outboxMsg struct {
		q   []client.Queued
		err error
	}
	fileSentMsg   struct{ conv, name string }
	reportPlanMsg struct {
		plan *client.ReportPlan
		err  error
	}
	reportSentMsg struct {
		caseID string
		n      int
		err    error
	}
	followEndedMsg struct{ err error }
)

const historyLimit = 200

// Model is the Bubble Tea model of the chat UI.
type Model struct {
	ctx     context.Context
	backend Backend
	self    client.Self

	convs    []client.Conversation
	selected int    // index into convs, or -1 for target
	target   string // a conversation opened with /to that has no entry yet
	history  []client.Message
	unread   map[string]int // label → messages not yet seen here

	input  textinput.Model
	view   viewport.Model
	width  int
	height int
	status string
	// statusErr marks a status that reports a failure or the lost
	// connection: it is cleared once the connection is back, so that an
	// old error never outlives its cause.
	statusErr bool
	alerts    []string // security alerts: shown above everything until quit
	incoming  chan client.Event
	quitting  bool
	after     func(time.Duration) tea.Cmd // tickAfter, or a test's own timer

	// outbox are the messages not sent yet (all conversations), shown
	// as pending in theirs.
	outbox   []client.Queued
	flushing bool
	// offline is set while the server cannot be reached.
	offline bool
	// channels holds the posts of followed public channels seen since
	// the UI started ("~id" in the list).
	channels map[string][]client.ChannelPost
	// typing: conversation → user → until when "user is typing…" shows.
	typing map[string]map[string]time.Time

	// Reporting (/report): pick a message from someone else, give a
	// reason, see exactly what would be sent, then confirm.
	report     reportStep
	reportSel  int // index into history of the chosen message
	reportPlan *client.ReportPlan

	// selID is the message selected (Alt+Up/Alt+Down) for /reply,
	// /react, /edit and /delete; "" for none.
	selID string
	// help shows the help screen, search (when not nil) the results of
	// /search searchQuery, in place of the history.
	help        bool
	search      *[]client.Message
	searchQuery string
}

// reportStep is where the /report dialogue is.
type reportStep int

const (
	reportNone    reportStep = iota
	reportPick               // Up/Down choose a message, Enter takes it
	reportReason             // the input takes "REASON [note]"
	reportConfirm            // the plan is shown: y sends, n cancels
)

// reportable reports whether the i-th history message can be reported:
// a message someone else sent.
func (m Model) reportable(i int) bool {
	h := m.history[i]
	return h.Sender.User != m.self.User && (h.Kind == client.KindText || h.Kind == client.KindFile)
}

// moveReportSel moves the selection to the next reportable message in
// direction d, staying put if there is none.
func (m *Model) moveReportSel(d int) {
	for i := m.reportSel + d; i >= 0 && i < len(m.history); i += d {
		if m.reportable(i) {
			m.reportSel = i
			return
		}
	}
}

func (m *Model) cancelReport(why string) {
	m.report, m.reportPlan = reportNone, nil
	m.input.Prompt = "> "
	m.setStatus(why, false)
	m.refreshView()
}

// New returns the UI model. incoming, if not nil, is read for what the
// backend reports in the background (Run wires it to Backend.Watch).
func New(ctx context.Context, b Backend, incoming chan client.Event) Model {
	in := textinput.New()
	in.Placeholder = "Type a message; /to @user or #group, /file PATH, /timer 1h|off, /members, /report, /help (F1), /quit; Tab: next conversation"
	in.Prompt = "> "
	in.CharLimit = 4000
	in.Focus()
	return Model{
		ctx: ctx, backend: b, self: b.Self(), selected: -1, unread: map[string]int{}, channels: map[string][]client.ChannelPost{},
		input: in, view: viewport.New(60, 10), incoming: incoming, after: tickAfter,
	}
}

// Init loads the conversations and starts listening.
func (m Model) Init() tea.Cmd {
	return tea.Batch(textinput.Blink, m.loadConvs(), m.loadOutbox(), m.waitIncoming())
}

func (m Model) loadOutbox() tea.Cmd {
	return func() tea.Msg {
		q, err := m.backend.Outbox(m.ctx)
		return outboxMsg{q, err}
	}
}

// flush sends the outbox, unless a flush is under way.
func (m *Model) flush() tea.Cmd {
	if m.flushing {
		return nil
	}
	m.flushing = true
	return func() tea.Msg {
		res, err := m.backend.Flush(m.ctx)
		return flushedMsg{res, err}
	}
}

func (m *Model) setStatus(s string, isErr bool) { m.status, m.statusErr = s, isErr }

func (m Model) loadConvs() tea.Cmd {
	return func() tea.Msg {
		convs, err := m.backend.Conversations(m.ctx)
		return convsMsg{convs, err}
	}
}

func (m Model) loadHistory(conv string) tea.Cmd {
	return func() tea.Msg {
		msgs, err := m.backend.History(m.ctx, conv, historyLimit)
		return historyMsg{conv, msgs, err}
	}
}

func (m Model) waitIncoming() tea.Cmd {
	if m.incoming == nil {
		return nil
	}
	ch := m.incoming
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return followEndedMsg{}
		}
		return EventMsg{ev}
	}
}

// Current returns the label of the conversation shown ("" if none).
func (m Model) Current() string {
	if m.selected >= 0 && m.selected < len(m.convs) {
		return m.convs[m.selected].Label
	}
	return m.target
}

// Status returns the status line.
func (m Model) Status() string { return m.status }

// Update handles a message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
	case tea.KeyMsg:
		if m.report != reportNone {
			if next, cmd, done := m.reportKey(msg); done {
				return next, cmd
			}
		}
		switch {
		case msg.Type == tea.KeyF1:
			m.help = true
			m.refreshView()
			return m, nil
		case msg.Alt && msg.Type == tea.KeyUp:
			m.moveSel(-1)
			return m, nil
		case msg.Alt && msg.Type == tea.KeyDown:
			m.moveSel(+1)
			return m, nil
		case msg.Type == tea.KeyEsc && m.closeOverlay():
			return m, nil
		}
		switch msg.Type {
		case tea.KeyCtrlC, tea.KeyEsc:
			m.quitting = true
			return m, tea.Quit
		case tea.KeyTab, tea.KeyCtrlN:
			return m.selectConv(+1)
		case tea.KeyShiftTab, tea.KeyCtrlP:
			return m.selectConv(-1)
		case tea.KeyPgUp, tea.KeyPgDown, tea.KeyUp, tea.KeyDown:
			var cmd tea.Cmd
			m.view, cmd = m.view.Update(msg)
			return m, cmd
		case tea.KeyEnter:
			return m.submit()
		}
		cmds = append(cmds, m.typed(msg))
	case convsMsg:
		if msg.err != nil {
			m.setStatus("error: "+client.Explain(msg.err), true)
			break
		}
		cur := m.Current()
		m.convs = msg.convs
		m.selected = -1
		for i, c := range m.convs {
			if c.Label == cur || (cur == "" && i == 0) {
				m.selected, m.target = i, ""
			}
		}
		if m.selected < 0 && cur != "" {
			m.target = cur // a conversation not created yet, or a channel
		}
		if c := m.Current(); c != "" && c != cur {
			cmds = append(cmds, m.loadHistory(c))
		} else if c != "" {
			cmds = append(cmds, m.loadHistory(c))
		}
	case historyMsg:
		if msg.err != nil {
			if msg.conv == m.Current() && m.target == "" {
				m.setStatus("error: "+client.Explain(msg.err), true)
			}
			break
		}
		if msg.conv == m.Current() {
			m.history = msg.msgs
			cmds = append(cmds, m.tick(time.Now()))
		}
	case EventMsg:
		cmds = append(cmds, m.waitIncoming())
		cmds = append(cmds, m.handleEvent(msg.Event)...)
	case tickMsg:
		cmds = append(cmds, m.tick(time.Now()))
	case IncomingMsg:
		if users := m.typing[msg.Message.Conversation]; users != nil {
			delete(users, msg.Message.Sender.User) // they sent it
		}
		if k := msg.Message.Kind; msg.Message.Conversation == m.Current() && (k == client.KindReaction || k == client.KindEdit || k == client.KindDelete) {
			// It changes a message shown: the history has it applied.
			cmds = append(cmds, m.loadHistory(msg.Message.Conversation))
		} else if msg.Message.Conversation == m.Current() {
			m.history = append(m.history, msg.Message)
			cmds = append(cmds, m.tick(time.Now()))
		} else if (msg.Message.Kind == client.KindText || msg.Message.Kind == client.KindFile) && !msg.Message.Muted {
			// A muted conversation's messages are stored and shown when
			// it is opened, but neither counted nor announced.
			m.setStatus(fmt.Sprintf("new message in %s", msg.Message.Conversation), false)
			m.unread[msg.Message.Conversation]++
		}
		if !m.known(msg.Message.Conversation) || msg.Message.Kind == client.KindTimer || msg.Message.Kind == client.KindMembership {
			// New, or its timer or members changed (the title and
			// /members show them).
			cmds = append(cmds, m.loadConvs())
		}
	case sentMsg:
		if msg.err != nil {
			m.setStatus("not sent: "+client.Explain(msg.err), true)
			break
		}
		m.setStatus("sent to "+msg.conv, false)
		cmds = append(cmds, m.loadConvs())
	case fileSentMsg:
		m.setStatus(fmt.Sprintf("sent %s to %s", msg.name, msg.conv), false)
		cmds = append(cmds, m.loadConvs())
	case queuedMsg:
		if msg.err != nil {
			m.setStatus("not sent: "+client.Explain(msg.err), true)
			break
		}
		m.outbox = append(m.outbox, msg.q)
		m.refreshView()
		if m.offline {
			m.setStatus(fmt.Sprintf("offline: %s queued, sent when the connection is back", plural(m.pending(), "message")), true)
		} else {
			m.setStatus("sending…", false)
		}
		cmds = append(cmds, m.flush())
	case flushedMsg:
		m.flushing = false
		cmds = append(cmds, m.afterFlush(msg.res, msg.err)...)
	case outboxMsg:
		if msg.err == nil {
			m.outbox = msg.q
			m.refreshView()
		}
	case reportPlanMsg:
		if m.report != reportReason {
			break
		}
		if msg.err != nil {
			m.cancelReport("report not sent: " + client.Explain(msg.err))
			break
		}
		m.report, m.reportPlan = reportConfirm, msg.plan
		m.input.Prompt = "send this report? (y/n) "
		m.setStatus("y sends this report to the moderators, n cancels", false)
		m.refreshView()
	case reportSentMsg:
		if msg.err != nil {
			m.setStatus("report not sent: "+client.Explain(msg.err), true)
			break
		}
		m.setStatus(fmt.Sprintf("reported %s to the moderators (case %s)", plural(msg.n, "message"), msg.caseID), false)
	case actionMsg, searchMsg:
		cmds = append(cmds, m.handleAction(msg))
	case followEndedMsg:
		if msg.err != nil {
			m.setStatus("disconnected: "+client.Explain(msg.err), true)
		}
	}
	switch msg.(type) {
	case convsMsg, historyMsg, IncomingMsg, EventMsg, sentMsg, flushedMsg:
		for _, a := range m.backend.Alerts() {
			if !slices.Contains(m.alerts, a) {
				m.alerts = append(m.alerts, a)
			}
		}
		if sm, ok := msg.(sentMsg); ok && sm.err != nil && client.IsSecurityAlert(sm.err) && !slices.Contains(m.alerts, sm.err.Error()) {
			m.alerts = append(m.alerts, sm.err.Error())
		}
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	cmds = append(cmds, cmd)
	return m, tea.Batch(cmds...)
}

// Alerts returns the security alerts shown in the banner.
func (m Model) Alerts() []string { return m.alerts }

func (m Model) known(label string) bool {
	for _, c := range m.convs {
		if c.Label == label {
			return true
		}
	}
	return false
}

// labels lists the conversations, then the followed public channels
// that posted since the UI started ("~id").
func (m Model) labels() []string {
	var out []string
	for _, c := range m.convs {
		out = append(out, c.Label)
	}
	var chans []string
	for l := range m.channels {
		chans = append(chans, l)
	}
	slices.Sort(chans)
	return append(out, chans...)
}

func (m Model) selectConv(delta int) (tea.Model, tea.Cmd) {
	labels := m.labels()
	if len(labels) == 0 {
		return m, nil
	}
	cur := slices.Index(labels, m.Current())
	if cur < 0 && delta < 0 {
		cur = 0
	}
	next := ((cur+delta)%len(labels) + len(labels)) % len(labels)
	m.selected, m.target = next, ""
	if next >= len(m.convs) {
		m.selected, m.target = -1, labels[next]
	}
	delete(m.unread, m.Current())
	m.history, m.selID, m.help, m.search = nil, "", false, nil
	m.refreshView()
	if strings.HasPrefix(m.Current(), "~") {
		return m, nil
	}
	return m, m.loadHistory(m.Current())
}

// submit handles Enter: a /command or a message to the current
// conversation.
func (m Model) submit() (tea.Model, tea.Cmd) {
	text := strings.TrimSpace(m.input.Value())
	m.input.Reset()
	if text == "" {
		return m, nil
	}
	if rest, ok := strings.CutPrefix(text, "/to "); ok {
		target := strings.TrimSpace(rest)
		if !strings.HasPrefix(target, "@") && !strings.HasPrefix(target, "#") && !strings.HasPrefix(target, "~") {
			m.setStatus("usage: /to @user, /to #group or /to ~channel", false)
			return m, nil
		}
		m.selected, m.target, m.history = -1, target, nil
		for i, c := range m.convs {
			if c.Label == target {
				m.selected, m.target = i, ""
			}
		}
		delete(m.unread, target)
		m.refreshView()
		if strings.HasPrefix(target, "~") {
			return m, nil
		}
		return m, m.loadHistory(target)
	}
	if rest, ok := strings.CutPrefix(text, "/file "); ok {
		conv, path := m.Current(), strings.TrimSpace(rest)
		if conv == "" || strings.HasPrefix(conv, "~") {
			m.setStatus("no conversation: /to @user to start one", false)
			return m, nil
		}
		m.setStatus("sending "+path+"…", false)
		return m, func() tea.Msg {
			if err := m.backend.SendFile(m.ctx, conv, path); err != nil {
				return sentMsg{conv, err}
			}
			return fileSentMsg{conv, filepath.Base(path)}
		}
	}
	if rest, ok := strings.CutPrefix(text, "/timer "); ok {
		return m.timerCommand(strings.TrimSpace(rest))
	}
	if text == "/report" {
		conv := m.Current()
		if conv == "" || strings.HasPrefix(conv, "~") {
			m.setStatus("/report reports messages of a conversation: open one first", false)
			return m, nil
		}
		m.reportSel = len(m.history)
		m.moveReportSel(-1)
		if m.reportSel == len(m.history) {
			m.setStatus("nothing to report here: only messages others sent can be reported", false)
			return m, nil
		}
		m.report = reportPick
		m.setStatus("report: Up/Down choose a message someone else sent, Enter takes it, Esc cancels", false)
		m.refreshView()
		return m, nil
	}
	if next, cmd, ok := m.actionCommand(text); ok {
		return next, cmd
	}
	if text == "/members" {
		m.setStatus(m.membersLine(), false)
		return m, nil
	}
	if text == "/quit" {
		m.quitting = true
		return m, tea.Quit
	}
	conv := m.Current()
	if text == "/retry" {
		return m, func() tea.Msg {
			if _, err := m.backend.Retry(m.ctx, conv); err != nil {
				return sentMsg{conv, err}
			}
			res, err := m.backend.Flush(m.ctx)
			return flushedMsg{res, err}
		}
	}
	if conv == "" {
		m.setStatus("no conversation: /to @user to start one", false)
		return m, nil
	}
	if strings.HasPrefix(conv, "~") {
		m.setStatus("public channels are read-only here: post with parley channel post", false)
		return m, nil
	}
	// Into the outbox first (it is on disk before anything is sent), so
	// that the message is never lost: it shows as pending until the
	// server has it.
	return m, func() tea.Msg {
		q, err := m.backend.Queue(m.ctx, conv, text)
		return queuedMsg{q, err}
	}
}

// pending counts the outbox entries still to send.
func (m Model) pending() int {
	n := 0
	for _, q := range m.outbox {
		if !q.Failed {
			n++
		}
	}
	return n
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// afterFlush updates the outbox, history and status after a flush.
func (m *Model) afterFlush(res client.FlushResult, err error) []tea.Cmd {
	cmds := []tea.Cmd{m.loadOutbox()}
	if cur := m.Current(); cur != "" && (len(res.Sent) > 0 || len(res.Failed) > 0) {
		cmds = append(cmds, m.loadHistory(cur))
	}
	if len(res.Sent) > 0 {
		cmds = append(cmds, m.loadConvs())
	}
	switch {
	case err != nil && client.IsTransient(err):
		m.offline = true
		m.setStatus(fmt.Sprintf("offline: %s; %s queued, sent when the connection is back", client.Explain(err), plural(res.Pending, "message")), true)
	case err != nil:
		m.setStatus("not sent: "+client.Explain(err), true)
	case len(res.Failed) > 0:
		f := res.Failed[len(res.Failed)-1]
		m.setStatus(fmt.Sprintf("not sent to %s: %s (/retry to try again)", f.Conversation, client.Explain(errors.New(f.LastError))), true)
	case len(res.Sent) > 0:
		m.setStatus("sent to "+res.Sent[len(res.Sent)-1].Conversation, false)
	case m.status == "sending…":
		m.setStatus("", false)
	}
	return cmds
}

// handleEvent acts on what the backend's Watch reported.
func (m *Model) handleEvent(ev client.Event) []tea.Cmd {
	var cmds []tea.Cmd
	switch ev.Type {
	case client.EventMessage:
		mm, cmd := m.Update(IncomingMsg{*ev.Message})
		*m = mm.(Model)
		cmds = append(cmds, cmd)
	case client.EventConnected:
		m.offline = false
		if m.statusErr {
			m.setStatus("connected", false)
		}
		// Watch sends the outbox itself; flushing here too costs nothing
		// (an entry leaves the outbox under the profile lock, once).
		cmds = append(cmds, m.loadConvs(), m.loadOutbox(), m.flush())
	case client.EventDisconnected:
		m.offline = true
		why := "cannot reach the server"
		if ev.Err != nil {
			why = client.Explain(ev.Err)
		}
		st := fmt.Sprintf("offline: %s; retrying in %s", why, ev.RetryIn.Round(100*time.Millisecond))
		if n := m.pending(); n > 0 {
			st += fmt.Sprintf("; %s queued", plural(n, "message"))
		}
		m.setStatus(st, true)
	case client.EventSent, client.EventSendFailed:
		var res client.FlushResult
		if ev.Sent != nil {
			res.Sent = []client.Sent{*ev.Sent}
		}
		if ev.Queued != nil {
			res.Failed = []client.Queued{*ev.Queued}
		}
		cmds = append(cmds, m.afterFlush(res, nil)...)
	case client.EventTyping:
		cmds = append(cmds, m.noteTyping(ev.Typing))
		m.refreshView()
	case client.EventChannelPost:
		p := ev.ChannelPost
		label := "~" + p.Channel
		m.channels[label] = append(m.channels[label], *p)
		if label == m.Current() {
			m.refreshView()
		} else if p.Kind == client.KindChannelPost {
			m.unread[label]++
		}
	}
	return cmds
}

const listWidth = 24

func (m *Model) layout() {
	w := max(m.width-listWidth-3, 10)
	h := max(m.height-5, 3)
	m.view.Width, m.view.Height = w, h
	m.input.Width = max(m.width-4, 10)
	m.refreshView()
}

var (
	styleSelected = lipgloss.NewStyle().Bold(true).Reverse(true)
	styleDim      = lipgloss.NewStyle().Faint(true)
	styleMe       = lipgloss.NewStyle().Foreground(lipgloss.Color("6"))
	styleErr      = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	styleBorder   = lipgloss.NewStyle().Border(lipgloss.NormalBorder(), false, true, false, false)
)

func (m *Model) refreshView() {
	// Lines are wrapped to the pane, never cut: the viewport would cut
	// them at its width, losing the end of long messages and the digits
	// of file ids.
	wrap := lipgloss.NewStyle().Width(max(m.view.Width, 10))
	var b strings.Builder
	cur := m.Current()
	if strings.HasPrefix(cur, "~") {
		b.WriteString(styleDim.Render("Public channel: NOT end-to-end encrypted; the server and anyone can read it.") + "\n")
		for _, p := range m.channels[cur] {
			b.WriteString(wrap.Render(renderChannelPost(p)))
			b.WriteByte('\n')
		}
	}
	if m.overlay(&b, wrap) {
		m.view.SetContent(b.String())
		m.view.GotoTop()
		return
	}
	if m.report == reportConfirm && m.reportPlan != nil {
		b.WriteString(wrap.Render(renderPlan(m.reportPlan)))
		m.view.SetContent(b.String())
		m.view.GotoTop()
		return
	}
	for i, msg := range m.history {
		if msg.Kind == client.KindReaction || msg.Kind == client.KindEdit || msg.Kind == client.KindDelete {
			continue // shown on the message they change
		}
		line := renderMessage(msg, m.self)
		if m.report != reportNone && i == m.reportSel {
			line = styleSelected.Render("▶ report:") + " " + line
		} else if m.selID != "" && msg.ID == m.selID {
			line = styleSelected.Render("▶") + " " + line
		}
		b.WriteString(wrap.Render(line))
		b.WriteByte('\n')
	}
	// What is still in the outbox: pending (a clock) or refused.
	for _, q := range m.outbox {
		if q.Conversation != cur || m.inHistory(q.ID) {
			continue
		}
		mark := styleDim.Render(" ◷ pending")
		if q.Failed {
			mark = styleErr.Render(" ✗ not sent: " + clean(client.Explain(errors.New(q.LastError))) + " (/retry)")
		}
		line := fmt.Sprintf("%s %s: %s%s", styleDim.Render(q.QueuedAt.Local().Format("15:04")), styleMe.Render("you"), clean(q.Text), mark)
		b.WriteString(wrap.Render(line))
		b.WriteByte('\n')
	}
	if t := m.typingLine(); t != "" {
		b.WriteString(styleDim.Render(t) + "\n")
	}
	m.view.SetContent(b.String())
	m.view.GotoBottom()
}

// renderPlan shows exactly what a report would send, before it goes.
func renderPlan(p *client.ReportPlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This report (%s) would send %s of %s to the server's moderators, with the proof of who sent each:\n\n",
		p.Reason, plural(len(p.Messages), "message"), p.Conversation)
	for _, msg := range p.Messages {
		fmt.Fprintf(&b, "  %s  %s: %s\n", msg.At.Local().Format("2006-01-02 15:04"), clean(msg.Sender.User), clean(msg.Text))
	}
	if p.Note != "" {
		fmt.Fprintf(&b, "\nand your note: %q\n", clean(p.Note))
	}
	b.WriteString("\nNothing is sent until you answer y. Only what is listed here reaches the server.")
	return b.String()
}

// reportKey handles a key during /report; done is false for keys the
// usual handling takes (typing the reason).
func (m Model) reportKey(k tea.KeyMsg) (tea.Model, tea.Cmd, bool) {
	if k.Type == tea.KeyEsc {
		m.cancelReport("report cancelled: nothing was sent")
		return m, nil, true
	}
	switch m.report {
	case reportPick:
		switch k.Type {
		case tea.KeyUp:
			m.moveReportSel(-1)
			m.refreshView()
		case tea.KeyDown:
			m.moveReportSel(+1)
			m.refreshView()
		case tea.KeyEnter:
			m.report = reportReason
			m.input.Reset()
			m.input.Prompt = "reason (spam, harassment, terrorism, csam, other) and a note: "
			m.setStatus("report: type the reason, then an optional note for the moderators; Enter shows what would be sent", false)
		}
		return m, nil, true
	case reportReason:
		switch k.Type {
		case tea.KeyTab, tea.KeyShiftTab, tea.KeyCtrlN, tea.KeyCtrlP, tea.KeyUp, tea.KeyDown, tea.KeyPgUp, tea.KeyPgDown:
			return m, nil, true // stay in this conversation until the report is done
		case tea.KeyEnter:
		default:
			return m, nil, false // typing the reason
		}
		reason, note, _ := strings.Cut(strings.TrimSpace(m.input.Value()), " ")
		m.input.Reset()
		conv, id := m.Current(), m.history[m.reportSel].ID
		return m, func() tea.Msg {
			plan, err := m.backend.PlanReport(m.ctx, conv, []string{id}, reason, strings.TrimSpace(note))
			return reportPlanMsg{plan, err}
		}, true
	case reportConfirm:
		if k.Type != tea.KeyRunes || len(k.Runes) != 1 {
			return m, nil, true
		}
		switch k.Runes[0] {
		case 'y', 'Y':
			plan := m.reportPlan
			m.cancelReport("sending the report…")
			return m, func() tea.Msg {
				id, err := m.backend.Report(m.ctx, plan)
				return reportSentMsg{id, len(plan.Messages), err}
			}, true
		case 'n', 'N':
			m.cancelReport("report cancelled: nothing was sent")
		}
		return m, nil, true
	}
	return m, nil, false
}

func (m *Model) inHistory(id string) bool {
	for _, h := range m.history {
		if h.ID == id {
			return true
		}
	}
	return false
}

func renderChannelPost(p client.ChannelPost) string {
	if p.Kind == client.KindChannelTakedown || p.Post == nil {
		return styleDim.Render(fmt.Sprintf("%s * post %d was taken down (%s)", p.SentAt.Local().Format("15:04"), p.PostID, clean(p.Reason)))
	}
	text := clean(p.Post.Text)
	for _, md := range p.Post.Media {
		text += fmt.Sprintf("\n  [media %d: %s, %d bytes]\n  parley channel get-media %s %d %d", md.Index, clean(md.ContentType), md.Size, p.Channel, p.PostID, md.Index)
	}
	return fmt.Sprintf("%s %s (public): %s", styleDim.Render(p.SentAt.Local().Format("15:04")), clean(p.Post.Author), text)
}

func renderMessage(msg client.Message, self client.Self) string {
	when := msg.SentAt.Local().Format("15:04")
	who := msg.Sender.User
	if msg.Sender.User == self.User {
		who = styleMe.Render("you") // from any of this account's devices
	}
	text := clean(msg.Text)
	switch msg.Kind {
	case client.KindReceipt:
		return styleDim.Render(fmt.Sprintf("%s ✓ read by %s", when, msg.Sender.User))
	case client.KindMembership, client.KindTimer:
		return styleDim.Render(fmt.Sprintf("%s * %s", when, text))
	case client.KindFile:
		if msg.File != nil {
			// The id on a line of its own, so that wrapping never splits it.
			text = fmt.Sprintf("[file %s, %d bytes]\n  parley get-file %s", clean(msg.File.Name), msg.File.Size, msg.ID)
		}
		text = decorate(msg, text)
	case client.KindText:
		text = decorate(msg, text)
	}
	return fmt.Sprintf("%s %s: %s", styleDim.Render(when), who, text)
}

// clean strips terminal control characters from text written by others.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// View renders the UI.
func (m Model) View() string {
	if m.quitting {
		return ""
	}
	var list strings.Builder
	list.WriteString(lipgloss.NewStyle().Bold(true).Render("Conversations") + "\n")
	for i, c := range m.convs {
		label := c.Label
		suffix := ""
		if n := m.unread[c.Label]; n > 0 {
			suffix = fmt.Sprintf(" (%d)", n)
		}
		if c.Muted != nil {
			suffix += " ~"
		}
		if len(label)+len(suffix) > listWidth-2 {
			label = label[:max(listWidth-3-len(suffix), 1)] + "…"
		}
		label += suffix
		line := fmt.Sprintf(" %-*s", listWidth-2, label)
		if i == m.selected {
			line = styleSelected.Render(line)
		}
		list.WriteString(line + "\n")
	}
	labels := m.labels()
	for _, l := range labels[len(m.convs):] {
		label := l + " (public)"
		if n := m.unread[l]; n > 0 {
			label += fmt.Sprintf(" (%d)", n)
		}
		line := fmt.Sprintf(" %-*s", listWidth-2, label)
		if l == m.target {
			line = styleSelected.Render(line)
		}
		list.WriteString(line + "\n")
	}
	if m.target != "" && !slices.Contains(labels, m.target) {
		list.WriteString(styleSelected.Render(fmt.Sprintf(" %-*s", listWidth-2, m.target+" (new)")) + "\n")
	}
	if len(m.convs) == 0 && m.target == "" {
		list.WriteString(styleDim.Render(" none yet: /to @user") + "\n")
	}
	left := styleBorder.Width(listWidth).Height(m.view.Height + 1).Render(list.String())
	title := lipgloss.NewStyle().Bold(true).Render(m.Current() + m.timerLabel())
	if m.selected >= 0 && m.selected < len(m.convs) {
		// A group's name and topic, as its members agreed on them.
		if c := m.convs[m.selected]; c.Name != "" || c.Topic != "" {
			about := clean(c.Name)
			if c.Topic != "" {
				about = strings.TrimPrefix(about+" · "+clean(c.Topic), " · ")
			}
			title += styleDim.Render("  " + about)
		}
	}
	right := lipgloss.JoinVertical(lipgloss.Left, title, m.view.View())
	top := lipgloss.JoinHorizontal(lipgloss.Top, left, " ", right)
	st := styleDim
	if m.statusErr {
		st = styleErr
	}
	status := st.Render(fmt.Sprintf("%s/%s  %s", m.self.User, m.self.DeviceID, m.status))
	if len(m.alerts) > 0 {
		var banner strings.Builder
		for _, a := range m.alerts {
			banner.WriteString("SECURITY ALERT: " + clean(a) + "\n")
		}
		alert := lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1")).Width(max(m.width, 20))
		return lipgloss.JoinVertical(lipgloss.Left, alert.Render(strings.TrimRight(banner.String(), "\n")), top, m.input.View(), status)
	}
	return lipgloss.JoinVertical(lipgloss.Left, top, m.input.View(), status)
}

// Run runs the UI on a terminal until the user quits.
func Run(ctx context.Context, b Backend, in *os.File, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	incoming := make(chan client.Event, 64)
	followErr := make(chan error, 1)
	go func() {
		err := b.Watch(ctx, func(ev client.Event) {
			select {
			case incoming <- ev:
			case <-ctx.Done():
			}
		})
		followErr <- err
		close(incoming)
	}()
	p := tea.NewProgram(New(ctx, b, incoming), tea.WithAltScreen(), tea.WithInput(in), tea.WithOutput(out), tea.WithContext(ctx))
	_, err := p.Run()
	cancel()
	if err == tea.ErrProgramKilled {
		err = nil
	}
	return err
}

// membersLine lists the current conversation's members, with the
// group's admins marked.
func (m Model) membersLine() string {
	if m.selected < 0 || m.selected >= len(m.convs) {
		return "no conversation: /to @user or /to #group"
	}
	c := m.convs[m.selected]
	var users []string
	for _, s := range c.Members {
		u := s.User
		if slices.Contains(c.Admins, u) {
			u += " (admin)"
		}
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	return fmt.Sprintf("%s: %s", c.Label, clean(strings.Join(users, ", ")))
}
