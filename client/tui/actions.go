//go:build !js

package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/parleychat/parley/client"
)

// Message actions of the chat UI: pick a message (Alt+Up/Alt+Down), then
// /reply, /react, /edit, /forward or /delete it; /search, /block,
// /unblock, /mute, /unmute and /help.

func (b clientBackend) QueueReply(ctx context.Context, conv, replyTo, text string) (client.Queued, error) {
	return b.c.EnqueueReply(ctx, conv, replyTo, text)
}
func (b clientBackend) React(ctx context.Context, id, emoji string, remove bool) error {
	_, err := b.c.React(ctx, id, emoji, remove)
	return err
}
func (b clientBackend) Edit(ctx context.Context, id, text string) error {
	_, err := b.c.Edit(ctx, id, text)
	return err
}
func (b clientBackend) DeleteForEveryone(ctx context.Context, id string) error {
	_, err := b.c.DeleteForEveryone(ctx, id)
	return err
}
func (b clientBackend) Search(ctx context.Context, query string, limit int) ([]client.Message, error) {
	return b.c.Search(ctx, query, limit)
}
func (b clientBackend) Block(ctx context.Context, user string) error {
	_, err := b.c.UpdatePrivacy(ctx, []string{user}, nil, "")
	return err
}
func (b clientBackend) SetMute(ctx context.Context, target string, d time.Duration, exceptMentions bool) error {
	_, err := b.c.SetMuteMode(ctx, target, d, exceptMentions)
	return err
}
func (b clientBackend) Forward(ctx context.Context, id, target string) error {
	_, err := b.c.Forward(ctx, id, target)
	return err
}
func (b clientBackend) DeleteForMe(ctx context.Context, id string) error {
	return b.c.DeleteForMe(ctx, id)
}
func (b clientBackend) Unblock(ctx context.Context, user string) error {
	_, err := b.c.UpdatePrivacy(ctx, nil, []string{user}, "")
	return err
}
func (b clientBackend) Unmute(ctx context.Context, target string) (bool, error) {
	return b.c.Unmute(ctx, target)
}

type (
	// actionMsg reports how a message action ended; the history is
	// reloaded so that its effect shows.
	actionMsg struct {
		done string
		err  error
	}
	searchMsg struct {
		query string
		msgs  []client.Message
		err   error
	}
)

const searchLimit = 50

// helpLines lists every command and key of the chat, shown by /help, F1
// (and the README's chat section).
var helpLines = []string{
	"Commands (Up/Down scroll this screen, Esc closes it)",
	"  /to @user | #group | ~channel   open a conversation",
	"  /file PATH                      send a file",
	"  /reply TEXT                     reply to the selected message (default: the last one someone else sent)",
	"  /react EMOJI                    react to the selected message (default: the last one someone else sent)",
	"  /unreact EMOJI                  take your reaction back",
	"  /edit TEXT                      edit your selected message (default: your last one)",
	"  /delete                         delete your selected message for everyone (default: your last one)",
	"  /delete me                      delete the selected message from this device only (default: the last one)",
	"  /forward @user | #group         forward the selected message, marked as forwarded (default: the last one)",
	"  /search WORDS                   search this device's history (Esc closes the results)",
	"  /block @user                    block a user (default: the other person of this direct chat)",
	"  /unblock @user                  unblock a user (default: the other person of this direct chat)",
	"  /mute [mentions] [DURATION]     mute this conversation, e.g. /mute 8h; for good without a duration;",
	"                                  /mute mentions: a group's messages that mention you still notify",
	"  /unmute                         unmute this conversation",
	"  /timer 1h | off                 disappearing messages in this conversation",
	"  /members                        the members (and admins) of this conversation",
	"  /report                         report a message to the moderators",
	"  /retry                          send this conversation's failed messages again",
	"  /help                           this screen",
	"  /quit                           leave",
	"Keys",
	"  Enter                           send the line or run the command",
	"  Tab / Ctrl+N, Shift+Tab / Ctrl+P next / previous conversation",
	"  Alt+Up / Alt+Down               select a message (for /reply, /react, /edit, /delete, /forward)",
	"  Up / Down / PgUp / PgDown       scroll the history",
	"  F1                              this screen",
	"  Esc                             close help or search, drop the selection; otherwise quit",
	"  Ctrl+C                          quit",
}

// HelpText returns the help screen's text.
func HelpText() string { return strings.Join(helpLines, "\n") }

// actionable reports whether msg can be replied to, reacted to, edited
// or deleted.
func actionable(msg client.Message) bool {
	return (msg.Kind == client.KindText || msg.Kind == client.KindFile) && !msg.Deleted && msg.ID != ""
}

// moveSel moves the message selection by d (-1 older, +1 newer); moving
// past the newest message drops it.
func (m *Model) moveSel(d int) {
	i := len(m.history)
	for j, h := range m.history {
		if h.ID == m.selID {
			i = j
		}
	}
	for i += d; i >= 0 && i < len(m.history); i += d {
		if actionable(m.history[i]) {
			m.selID = m.history[i].ID
			m.setStatus("selected a message: /reply, /react, /edit, /forward or /delete it; Esc drops the selection", false)
			m.refreshView()
			return
		}
	}
	if d > 0 {
		m.selID = ""
		m.setStatus("", false)
		m.refreshView()
	}
}

// pick returns the message an action is for: the selected one, or else
// the newest actionable message that is own (mine) or someone else's.
func (m Model) pick(mine bool) (client.Message, bool) {
	for i := len(m.history) - 1; i >= 0; i-- {
		h := m.history[i]
		if m.selID != "" {
			if h.ID == m.selID && actionable(h) {
				return h, true
			}
			continue
		}
		if actionable(h) && (h.Sender.User == m.self.User) == mine {
			return h, true
		}
	}
	return client.Message{}, false
}

// pickAny returns the message an action is for: the selected one, or
// else the newest actionable message, whoever sent it.
func (m Model) pickAny() (client.Message, bool) {
	for i := len(m.history) - 1; i >= 0; i-- {
		h := m.history[i]
		if actionable(h) && (m.selID == "" || h.ID == m.selID) {
			return h, true
		}
	}
	return client.Message{}, false
}

// action runs fn in the background and reports done or the error.
func (m Model) action(done string, fn func() error) (tea.Model, tea.Cmd) {
	m.selID = ""
	m.refreshView()
	return m, func() tea.Msg { return actionMsg{done, fn()} }
}

// actionCommand handles the message-action commands; ok is false for
// text that is none of them.
func (m Model) actionCommand(text string) (tea.Model, tea.Cmd, bool) {
	name, arg, _ := strings.Cut(text, " ")
	arg = strings.TrimSpace(arg)
	conv := m.Current()
	needConv := func() bool {
		if conv == "" || strings.HasPrefix(conv, "~") {
			m.setStatus(name+" needs a conversation: /to @user or /to #group first", true)
			return false
		}
		return true
	}
	switch name {
	case "/help":
		m.help = !m.help
		m.refreshView()
		return m, nil, true
	case "/reply", "/react", "/unreact":
		if !needConv() {
			return m, nil, true
		}
		if arg == "" {
			what := "TEXT"
			if name != "/reply" {
				what = "EMOJI"
			}
			m.setStatus("usage: "+name+" "+what, true)
			return m, nil, true
		}
		target, ok := m.pick(false)
		if !ok {
			m.setStatus("nothing to "+strings.TrimPrefix(name, "/")+" to: select a message with Alt+Up/Alt+Down", true)
			return m, nil, true
		}
		id := target.ID
		switch name {
		case "/reply":
			// Into the outbox first, as a typed message is: it is sent
			// when the server can be reached.
			return m, func() tea.Msg {
				q, err := m.backend.QueueReply(m.ctx, conv, id, arg)
				return queuedMsg{q, err}
			}, true
		case "/react":
			next, cmd := m.action("reacted "+arg, func() error { return m.backend.React(m.ctx, id, arg, false) })
			return next, cmd, true
		default:
			next, cmd := m.action("took back "+arg, func() error { return m.backend.React(m.ctx, id, arg, true) })
			return next, cmd, true
		}
	case "/delete", "/forward":
		if name == "/forward" || arg == "me" {
			return m.forwardOrHide(name, arg, needConv)
		}
		if arg != "" {
			m.setStatus("usage: /delete (for everyone) or /delete me (this device only)", true)
			return m, nil, true
		}
		fallthrough
	case "/edit":
		if !needConv() {
			return m, nil, true
		}
		if name == "/edit" && arg == "" {
			m.setStatus("usage: /edit TEXT (the new text of your selected or last message)", true)
			return m, nil, true
		}
		target, ok := m.pick(true)
		if !ok {
			m.setStatus("nothing of yours to "+strings.TrimPrefix(name, "/")+" here: select one of your messages with Alt+Up/Alt+Down", true)
			return m, nil, true
		}
		if target.Sender.User != m.self.User {
			m.setStatus("only your own messages can be "+map[string]string{"/edit": "edited", "/delete": "deleted for everyone"}[name], true)
			return m, nil, true
		}
		id := target.ID
		if name == "/edit" {
			next, cmd := m.action("edited", func() error { return m.backend.Edit(m.ctx, id, arg) })
			return next, cmd, true
		}
		next, cmd := m.action("deleted for everyone", func() error { return m.backend.DeleteForEveryone(m.ctx, id) })
		return next, cmd, true
	case "/search":
		if arg == "" {
			m.setStatus("usage: /search WORDS", true)
			return m, nil, true
		}
		m.setStatus("searching…", false)
		return m, func() tea.Msg {
			msgs, err := m.backend.Search(m.ctx, arg, searchLimit)
			return searchMsg{arg, msgs, err}
		}, true
	case "/block", "/unblock":
		user := arg
		if user == "" && strings.HasPrefix(conv, "@") {
			user = conv
		}
		if !strings.HasPrefix(user, "@") || len(user) < 2 || strings.ContainsAny(user, " \t") {
			m.setStatus("usage: "+name+" @user", true)
			return m, nil, true
		}
		if name == "/unblock" {
			next, cmd := m.action("unblocked "+user, func() error { return m.backend.Unblock(m.ctx, user) })
			return next, cmd, true
		}
		next, cmd := m.action("blocked "+user+" (/unblock "+user+" undoes it)", func() error { return m.backend.Block(m.ctx, user) })
		return next, cmd, true
	case "/unmute":
		if !needConv() {
			return m, nil, true
		}
		if arg != "" {
			m.setStatus("usage: /unmute (this conversation)", true)
			return m, nil, true
		}
		next, cmd := m.action("unmuted "+conv, func() error {
			was, err := m.backend.Unmute(m.ctx, conv)
			if err == nil && !was {
				return fmt.Errorf("%s was not muted", conv)
			}
			return err
		})
		return next, cmd, true
	case "/mute":
		if !needConv() {
			return m, nil, true
		}
		var d time.Duration
		mentions := arg == "mentions" || strings.HasPrefix(arg, "mentions ")
		if mentions {
			arg = strings.TrimSpace(strings.TrimPrefix(arg, "mentions"))
		}
		if arg != "" {
			var err error
			if d, err = time.ParseDuration(arg); err != nil || d <= 0 {
				m.setStatus("usage: /mute [mentions] [DURATION], e.g. /mute 8h or /mute mentions; without a duration, for good", true)
				return m, nil, true
			}
		}
		done := "muted " + conv + " until unmuted (/unmute)"
		if d > 0 {
			done = fmt.Sprintf("muted %s for %s", conv, d)
		}
		if mentions {
			done += "; mentions of you still notify"
		}
		next, cmd := m.action(done, func() error { return m.backend.SetMute(m.ctx, conv, d, mentions) })
		return next, cmd, true
	}
	return m, nil, false
}

// forwardOrHide handles "/forward TARGET" and "/delete me": both act on
// the selected message or else the newest one, whoever sent it.
func (m Model) forwardOrHide(name, arg string, needConv func() bool) (tea.Model, tea.Cmd, bool) {
	if !needConv() {
		return m, nil, true
	}
	if name == "/forward" && (!strings.HasPrefix(arg, "@") && !strings.HasPrefix(arg, "#") || len(arg) < 2 || strings.ContainsAny(arg, " \t")) {
		m.setStatus("usage: /forward @user or /forward #group (the selected or last message)", true)
		return m, nil, true
	}
	target, ok := m.pickAny()
	if !ok {
		m.setStatus("nothing to "+strings.TrimPrefix(name, "/")+" here: select a message with Alt+Up/Alt+Down", true)
		return m, nil, true
	}
	id := target.ID
	if name == "/forward" {
		next, cmd := m.action("forwarded to "+arg, func() error { return m.backend.Forward(m.ctx, id, arg) })
		return next, cmd, true
	}
	next, cmd := m.action("deleted from this device", func() error { return m.backend.DeleteForMe(m.ctx, id) })
	return next, cmd, true
}

// closeOverlay closes the help screen, the search results or the
// selection; it reports whether there was one (Esc then does not quit).
func (m *Model) closeOverlay() bool {
	switch {
	case m.help:
		m.help = false
	case m.search != nil:
		m.search, m.searchQuery = nil, ""
	case m.selID != "":
		m.selID = ""
	default:
		return false
	}
	m.setStatus("", false)
	m.refreshView()
	return true
}

// overlay writes the help screen or the search results, if shown.
func (m *Model) overlay(b *strings.Builder, wrap lipgloss.Style) bool {
	switch {
	case m.help:
		b.WriteString(wrap.Render(HelpText()))
	case m.search != nil:
		fmt.Fprintf(b, "%s\n", lipgloss.NewStyle().Bold(true).Render(fmt.Sprintf("%s for %q (Esc closes)", plural(len(*m.search), "result"), clean(m.searchQuery))))
		for _, h := range *m.search {
			b.WriteString(wrap.Render(clean(h.Conversation) + "  " + renderMessage(h, m.self)))
			b.WriteByte('\n')
		}
	default:
		return false
	}
	return true
}

// handleAction handles the results of actions and searches.
func (m *Model) handleAction(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case actionMsg:
		if msg.err != nil {
			m.setStatus("failed: "+client.Explain(msg.err), true)
			return nil
		}
		m.setStatus(msg.done, false)
		if c := m.Current(); c != "" && !strings.HasPrefix(c, "~") {
			return tea.Batch(m.loadHistory(c), m.loadConvs())
		}
	case searchMsg:
		if msg.err != nil {
			m.setStatus("search failed: "+client.Explain(msg.err), true)
			return nil
		}
		m.search, m.searchQuery = &msg.msgs, msg.query
		m.help = false
		m.setStatus(fmt.Sprintf("found %s for %q; Esc closes", plural(len(msg.msgs), "message"), clean(msg.query)), false)
		m.refreshView()
	}
	return nil
}

var styleMention = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("3"))

// decorate adds to a text message what the history says about it: the
// quote it answers, deletion, edits, reactions and mentions of this user.
func decorate(msg client.Message, text string) string {
	if msg.Deleted {
		return styleDim.Render("deleted")
	}
	if msg.Mentioned {
		text = styleMention.Render(text)
	}
	if msg.Forwarded {
		text = styleDim.Render("forwarded: ") + text
	}
	if msg.ReplyTo != "" {
		q := clean(msg.Quote)
		if q == "" {
			q = "a message not on this device"
		}
		text = styleDim.Render("↪ "+q) + "\n  " + text
	}
	if msg.Edited {
		text += styleDim.Render(" (edited)")
	}
	if len(msg.Reactions) > 0 {
		var order []string
		count := map[string]int{}
		for _, r := range msg.Reactions {
			if count[r.Emoji] == 0 {
				order = append(order, r.Emoji)
			}
			count[r.Emoji]++
		}
		var parts []string
		for _, e := range order {
			parts = append(parts, fmt.Sprintf("%s %d", clean(e), count[e]))
		}
		text += "  [" + strings.Join(parts, ", ") + "]"
	}
	return text
}
