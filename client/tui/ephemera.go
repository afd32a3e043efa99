//go:build !js

package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/client"
)

// Typing indicators and disappearing messages in the UI. A Backend that
// also implements Typer sends this user's typing indicators while they
// type; one that implements Timers takes "/timer 1h". Others' typing
// indicators come in Watch's events and are shown under the history
// until they lapse; messages whose expiry passed are dropped from the
// view at that moment (the client's sweep deletes them from the profile).

// Typer is the optional part of a Backend that sends typing indicators.
type Typer interface {
	// Typing tells conversation's online members that this user is
	// typing (the client paces and may drop it).
	Typing(ctx context.Context, conversation string) error
}

// Timers is the optional part of a Backend that sets a conversation's
// disappearing-messages timer.
type Timers interface {
	SetTimer(ctx context.Context, conversation string, d time.Duration) error
}

func (b clientBackend) Typing(ctx context.Context, conv string) error {
	_, err := b.c.SendTyping(ctx, conv, true)
	return err
}

func (b clientBackend) SetTimer(ctx context.Context, conv string, d time.Duration) error {
	_, err := b.c.SetTimer(ctx, conv, d)
	return err
}

// tickMsg asks the Model to drop lapsed typing indicators and expired
// messages.
type tickMsg struct{}

// tickAfter is the Model's timer. Tests of the Model alone replace
// m.after to feed ticks themselves, so that every command they run
// finishes promptly and none needs a wall-clock guess.
func tickAfter(d time.Duration) tea.Cmd {
	return tea.Tick(max(d, 50*time.Millisecond), func(time.Time) tea.Msg { return tickMsg{} })
}

// noteTyping records a typing event and returns the tick that clears it.
func (m *Model) noteTyping(t *client.Typing) tea.Cmd {
	if m.typing == nil {
		m.typing = map[string]map[string]time.Time{}
	}
	if !t.Typing {
		delete(m.typing[t.Conversation], t.User)
		return nil
	}
	if m.typing[t.Conversation] == nil {
		m.typing[t.Conversation] = map[string]time.Time{}
	}
	m.typing[t.Conversation][t.User] = t.Until
	return m.after(time.Until(t.Until))
}

// tick drops lapsed typing indicators and expired messages, and returns
// the next tick needed (nil if none).
func (m *Model) tick(now time.Time) tea.Cmd {
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for conv, users := range m.typing {
		for u, until := range users {
			if !now.Before(until) {
				delete(users, u)
			} else {
				soonest(until)
			}
		}
		if len(users) == 0 {
			delete(m.typing, conv)
		}
	}
	kept := m.history[:0]
	for _, h := range m.history {
		if !h.ExpiresAt.IsZero() && !now.Before(h.ExpiresAt) {
			continue // disappeared
		}
		if !h.ExpiresAt.IsZero() {
			soonest(h.ExpiresAt)
		}
		kept = append(kept, h)
	}
	m.history = kept
	m.refreshView()
	if next.IsZero() {
		return nil
	}
	return m.after(time.Until(next))
}

// typingLine is "bob is typing…" for the conversation shown ("" if no
// one is).
func (m Model) typingLine() string {
	users := m.typing[m.Current()]
	if len(users) == 0 {
		return ""
	}
	var names []string
	for u := range users {
		names = append(names, clean(u))
	}
	sort.Strings(names)
	if len(names) == 1 {
		return names[0] + " is typing…"
	}
	return strings.Join(names, ", ") + " are typing…"
}

// typed sends a typing indicator for a key pressed in the compose line
// (not for commands).
func (m Model) typed(msg tea.KeyMsg) tea.Cmd {
	t, ok := m.backend.(Typer)
	conv := m.Current()
	if !ok || msg.Type != tea.KeyRunes || conv == "" || strings.HasPrefix(conv, "~") || strings.HasPrefix(m.input.Value(), "/") {
		return nil
	}
	ctx := m.ctx
	return func() tea.Msg {
		t.Typing(ctx, conv) // best effort: a lost indicator is harmless
		return nil
	}
}

// timerCommand handles "/timer DURATION|off".
func (m Model) timerCommand(arg string) (Model, tea.Cmd) {
	conv := m.Current()
	t, ok := m.backend.(Timers)
	if !ok || conv == "" || strings.HasPrefix(conv, "~") {
		m.setStatus("no conversation for a timer", false)
		return m, nil
	}
	d, err := client.ParseTimer(arg)
	if err != nil {
		m.setStatus(client.Explain(err), true)
		return m, nil
	}
	ctx := m.ctx
	return m, func() tea.Msg {
		if err := t.SetTimer(ctx, conv, d); err != nil {
			return sentMsg{conv, err}
		}
		return sentMsg{conv, nil}
	}
}

// timerLabel is the title's note of the conversation's timer.
func (m Model) timerLabel() string {
	if m.selected >= 0 && m.selected < len(m.convs) && m.convs[m.selected].Timer != "" {
		return fmt.Sprintf(" (disappearing: %s)", m.convs[m.selected].Timer)
	}
	return ""
}
