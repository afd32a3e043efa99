// Package tui is Parley's interactive terminal UI ("parley chat"), built
// on Bubble Tea: a conversation list on the left, the selected
// conversation's history on the right and a compose line below.
//
// The Model talks to the messenger through the Backend interface, so it
// can be driven in tests by feeding messages to Update without a
// terminal.
package tui

import (
	"context"
	"fmt"
	"io"
	"os"
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
	Send(ctx context.Context, conversation, text string) error
	SendFile(ctx context.Context, conversation, path string) error
	// Follow delivers new messages to fn until ctx is done.
	Follow(ctx context.Context, fn func(client.Message)) error
	// Alerts returns (and forgets) the security alerts raised since the
	// last call: devices or members not in their account's signed list,
	// changed account keys, messages from outside a group.
	Alerts() []string
}

type clientBackend struct{ c *client.Client }

// NewBackend adapts a Client.
func NewBackend(c *client.Client) Backend { return clientBackend{c} }

func (b clientBackend) Self() client.Self { return b.c.Self() }
func (b clientBackend) Conversations(ctx context.Context) ([]client.Conversation, error) {
	return b.c.Conversations(ctx)
}
func (b clientBackend) History(ctx context.Context, conv string, limit int) ([]client.Message, error) {
	return b.c.History(ctx, conv, limit)
}
func (b clientBackend) Send(ctx context.Context, conv, text string) error {
	_, err := b.c.SendText(ctx, conv, text)
	return err
}
func (b clientBackend) SendFile(ctx context.Context, conv, path string) error {
	_, err := b.c.SendFile(ctx, conv, path, nil)
	return err
}
func (b clientBackend) Follow(ctx context.Context, fn func(client.Message)) error {
	return b.c.Follow(ctx, fn)
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
	sentMsg     struct {
		conv string
		err  error
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

	input    textinput.Model
	view     viewport.Model
	width    int
	height   int
	status   string
	alerts   []string // security alerts: shown above everything until quit
	incoming chan client.Message
	quitting bool
}

// New returns the UI model. incoming, if not nil, is read for messages
// arriving in the background (Run wires it to Backend.Follow).
func New(ctx context.Context, b Backend, incoming chan client.Message) Model {
	in := textinput.New()
	in.Placeholder = "Type a message; /to @user or #group, /file PATH, /quit; Tab: next conversation"
	in.Prompt = "> "
	in.CharLimit = 4000
	in.Focus()
	return Model{
		ctx: ctx, backend: b, self: b.Self(), selected: -1, unread: map[string]int{},
		input: in, view: viewport.New(60, 10), incoming: incoming,
	}
}

// Init loads the conversations and starts listening.
func (m Model) Init() tea.Cmd {
	return tea.Batch(textinput.Blink, m.loadConvs(), m.waitIncoming())
}

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
		msg, ok := <-ch
		if !ok {
			return followEndedMsg{}
		}
		return IncomingMsg{msg}
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
	case convsMsg:
		if msg.err != nil {
			m.status = "error: " + msg.err.Error()
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
		if c := m.Current(); c != "" && c != cur {
			cmds = append(cmds, m.loadHistory(c))
		} else if c != "" {
			cmds = append(cmds, m.loadHistory(c))
		}
	case historyMsg:
		if msg.err != nil {
			if msg.conv == m.Current() && m.target == "" {
				m.status = "error: " + msg.err.Error()
			}
			break
		}
		if msg.conv == m.Current() {
			m.history = msg.msgs
			m.refreshView()
		}
	case IncomingMsg:
		cmds = append(cmds, m.waitIncoming())
		if msg.Message.Conversation == m.Current() {
			m.history = append(m.history, msg.Message)
			m.refreshView()
		} else if msg.Message.Kind == client.KindText || msg.Message.Kind == client.KindFile {
			m.status = fmt.Sprintf("new message in %s", msg.Message.Conversation)
			m.unread[msg.Message.Conversation]++
		}
		if !m.known(msg.Message.Conversation) {
			cmds = append(cmds, m.loadConvs())
		}
	case sentMsg:
		if msg.err != nil {
			m.status = "not sent: " + msg.err.Error()
			break
		}
		m.status = "sent to " + msg.conv
		cmds = append(cmds, m.loadConvs())
	case followEndedMsg:
		if msg.err != nil {
			m.status = "disconnected: " + msg.err.Error()
		}
	}
	switch msg.(type) {
	case convsMsg, historyMsg, IncomingMsg, sentMsg:
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

func (m Model) selectConv(delta int) (tea.Model, tea.Cmd) {
	if len(m.convs) == 0 {
		return m, nil
	}
	m.target = ""
	m.selected = ((m.selected+delta)%len(m.convs) + len(m.convs)) % len(m.convs)
	delete(m.unread, m.Current())
	m.history = nil
	m.refreshView()
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
		if !strings.HasPrefix(target, "@") && !strings.HasPrefix(target, "#") {
			m.status = "usage: /to @user or /to #group"
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
		return m, m.loadHistory(target)
	}
	if rest, ok := strings.CutPrefix(text, "/file "); ok {
		conv, path := m.Current(), strings.TrimSpace(rest)
		if conv == "" {
			m.status = "no conversation: /to @user to start one"
			return m, nil
		}
		m.status = "sending " + path + "…"
		return m, func() tea.Msg {
			if err := m.backend.SendFile(m.ctx, conv, path); err != nil {
				return sentMsg{conv, err}
			}
			msgs, err := m.backend.History(m.ctx, conv, historyLimit)
			if err != nil {
				return sentMsg{conv, err}
			}
			return historyMsg{conv, msgs, nil}
		}
	}
	if text == "/quit" {
		m.quitting = true
		return m, tea.Quit
	}
	conv := m.Current()
	if conv == "" {
		m.status = "no conversation: /to @user to start one"
		return m, nil
	}
	m.history = append(m.history, client.Message{
		Conversation: conv, Sender: client.Sender{User: m.self.User, Device: m.self.DeviceID},
		SentAt: time.Now(), Kind: client.KindText, Text: text, Outgoing: true,
	})
	m.refreshView()
	m.status = "sending…"
	return m, func() tea.Msg {
		return sentMsg{conv, m.backend.Send(m.ctx, conv, text)}
	}
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
	styleBorder   = lipgloss.NewStyle().Border(lipgloss.NormalBorder(), false, true, false, false)
)

func (m *Model) refreshView() {
	// Lines are wrapped to the pane, never cut: the viewport would cut
	// them at its width, losing the end of long messages and the digits
	// of file ids.
	wrap := lipgloss.NewStyle().Width(max(m.view.Width, 10))
	var b strings.Builder
	for _, msg := range m.history {
		b.WriteString(wrap.Render(renderMessage(msg, m.self)))
		b.WriteByte('\n')
	}
	m.view.SetContent(b.String())
	m.view.GotoBottom()
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
	case client.KindMembership:
		return styleDim.Render(fmt.Sprintf("%s * %s", when, text))
	case client.KindFile:
		if msg.File != nil {
			// The id on a line of its own, so that wrapping never splits it.
			text = fmt.Sprintf("[file %s, %d bytes]\n  parley get-file %s", clean(msg.File.Name), msg.File.Size, msg.ID)
		}
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
	if m.target != "" {
		list.WriteString(styleSelected.Render(fmt.Sprintf(" %-*s", listWidth-2, m.target+" (new)")) + "\n")
	}
	if len(m.convs) == 0 && m.target == "" {
		list.WriteString(styleDim.Render(" none yet: /to @user") + "\n")
	}
	left := styleBorder.Width(listWidth).Height(m.view.Height + 1).Render(list.String())
	title := lipgloss.NewStyle().Bold(true).Render(m.Current())
	right := lipgloss.JoinVertical(lipgloss.Left, title, m.view.View())
	top := lipgloss.JoinHorizontal(lipgloss.Top, left, " ", right)
	status := styleDim.Render(fmt.Sprintf("%s/%s  %s", m.self.User, m.self.DeviceID, m.status))
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
	incoming := make(chan client.Message, 64)
	followErr := make(chan error, 1)
	go func() {
		err := b.Follow(ctx, func(msg client.Message) {
			select {
			case incoming <- msg:
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
