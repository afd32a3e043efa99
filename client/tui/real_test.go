//go:build !js

package tui

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
)

// The chat UI against the real thing: a parleyd on loopback, two real
// clients (client.Client through NewBackend, the adapters "parley chat"
// uses), each with its own Model whose Watch runs as in Run. What one
// user does with commands typed into their UI is checked on the other
// side, in the other user's UI and through their client.

// startRealServer runs a parleyd on loopback (SQLite and blobs in a
// temporary directory) and returns its URL.
func startRealServer(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobstore.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	kt, err := server.EphemeralTransparency("parley.test/kt")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Blobs: blobs, Transparency: kt,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("shutdown: %v", err)
		}
		st.Close()
	})
	return "http://" + ln.Addr().String()
}

func newRealUser(t *testing.T, url, name string) *client.Client {
	t.Helper()
	c, err := client.Init(context.Background(), client.Options{
		Dir:            filepath.Join(t.TempDir(), name),
		Passphrase:     []byte("passphrase of " + name),
		KDF:            &profile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		LockTimeout:    20 * time.Second,
		KTMonitorEvery: -1,
	}, url, name, "")
	if err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	// Both users talk first in this test: no message requests, whatever
	// the default.
	if _, err := c.SetSetting(context.Background(), client.SettingMessageRequests, false); err != nil {
		t.Fatal(err)
	}
	return c
}

// chatLoop runs a Model as Bubble Tea's event loop would: every command
// in its own goroutine, their messages fed back to Update one at a time.
// Timers (typing lapses, the cursor's blink) run too; the test waits for
// what it expects with until, never for a fixed time.
type chatLoop struct {
	t    *testing.T
	name string
	c    *client.Client
	m    tea.Model
	msgs chan tea.Msg
	ctx  context.Context
	// seen are the texts of the messages Watch reported to the Model.
	seen map[string]bool
}

func startChat(t *testing.T, name string, c *client.Client) *chatLoop {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := NewBackend(c)
	incoming := make(chan client.Event, 64)
	go func() {
		_ = b.Watch(ctx, func(ev client.Event) {
			select {
			case incoming <- ev:
			case <-ctx.Done():
			}
		})
	}()
	l := &chatLoop{t: t, name: name, c: c, m: New(ctx, b, incoming), msgs: make(chan tea.Msg, 256), ctx: ctx, seen: map[string]bool{}}
	l.exec(l.m.Init())
	l.feed(tea.WindowSizeMsg{Width: 160, Height: 60})
	return l
}

func (l *chatLoop) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if msg == nil {
			return
		}
		select {
		case l.msgs <- msg:
		case <-l.ctx.Done():
		}
	}()
}

func (l *chatLoop) feed(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			l.exec(c)
		}
	case tea.QuitMsg:
	default:
		if ev, ok := msg.(EventMsg); ok && ev.Event.Message != nil {
			defer func() { l.seen[ev.Event.Message.Text] = true }()
		}
		var cmd tea.Cmd
		l.m, cmd = l.m.Update(msg)
		l.exec(cmd)
	}
}

// model returns the Model now.
func (l *chatLoop) model() Model { return l.m.(Model) }

// until runs the loop until cond holds (checked after every message and
// every 50 ms, for what changes outside the loop), failing after 60 s.
func (l *chatLoop) until(what string, cond func(Model) bool) {
	l.t.Helper()
	deadline := time.After(60 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for !cond(l.model()) {
		select {
		case msg := <-l.msgs:
			l.feed(msg)
		case <-poll.C:
		case <-deadline:
			l.t.Fatalf("%s: waited 60 s for %s; status %q, view:\n%s", l.name, what, l.model().Status(), l.m.View())
		}
	}
}

// command types line and Enter, then waits until the status says done
// (a prefix), i.e. the action finished.
func (l *chatLoop) command(line, done string) {
	l.t.Helper()
	mm := l.model()
	mm.status, mm.statusErr = "", false // so that the old status does not count as done
	l.m = mm
	for _, r := range line {
		l.feed(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	l.feed(tea.KeyMsg{Type: tea.KeyEnter})
	if done != "" {
		l.until("status "+done+" after "+line, func(m Model) bool {
			if m.statusErr && (strings.HasPrefix(m.Status(), "failed") || strings.HasPrefix(m.Status(), "not sent")) {
				l.t.Fatalf("%s: %s failed: %s", l.name, line, m.Status())
			}
			return strings.HasPrefix(m.Status(), done)
		})
	}
}

// say sends text to the current conversation and waits until it is in
// the history shown (so that actions on "the last message" find it).
func (l *chatLoop) say(text string) {
	l.t.Helper()
	conv := l.model().Current()
	l.command(text, "sent to "+conv)
	l.until(text+" in the history", func(m Model) bool {
		_, ok := l.message(conv, text)
		return ok
	})
}

// open switches to conversation label and waits for its history.
func (l *chatLoop) open(label string, want string) {
	l.t.Helper()
	l.command("/to "+label, "")
	l.until(label+" showing "+want, func(m Model) bool { return m.Current() == label && l.shows(want) })
}

func (l *chatLoop) shows(s string) bool { return strings.Contains(l.m.View(), s) }

// message finds the newest message with text in conversation conv of the
// Model's history, or of the client's history when the Model does not
// show conv.
func (l *chatLoop) message(conv, text string) (client.Message, bool) {
	hist := l.model().history
	if l.model().Current() != conv {
		var err error
		if hist, err = l.c.History(l.ctx, conv, 200); err != nil {
			return client.Message{}, false
		}
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Text == text && hist[i].Kind == client.KindText {
			return hist[i], true
		}
	}
	return client.Message{}, false
}

func TestChatAgainstRealServer(t *testing.T) {
	ctx := context.Background()
	url := startRealServer(t)
	alice, bob := newRealUser(t, url, "alice"), newRealUser(t, url, "bob")
	if _, err := alice.CreateGroup(ctx, "duo", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	a, b := startChat(t, "alice", alice), startChat(t, "bob", bob)
	a.until("#duo listed", func(m Model) bool { return m.known("#duo") })
	b.until("#duo listed", func(m Model) bool { return m.known("#duo") })

	// Send: alice writes to bob in a direct conversation that does not
	// exist yet; bob's UI shows it.
	a.open("@bob", "")
	a.say("hello bob")
	b.until("alice's message", func(m Model) bool { return m.known("@alice") })
	b.open("@alice", "hello bob")

	// Reply: bob's /reply answers alice's last message, quoted on her side.
	b.command("/reply hi alice", "sent to @alice")
	a.until("bob's reply with its quote", func(m Model) bool {
		r, ok := a.message("@bob", "hi alice")
		return ok && r.ReplyTo != "" && a.shows("↪ hello bob")
	})

	// React: alice's 👍 goes on bob's reply, on bob's screen.
	a.command("/react 👍", "reacted 👍")
	b.until("alice's reaction", func(m Model) bool {
		r, ok := b.message("@alice", "hi alice")
		return ok && len(r.Reactions) == 1 && r.Reactions[0].Emoji == "👍" && r.Reactions[0].User == "alice" && b.shows("[👍 1]")
	})

	// Edit: alice's last message, shown edited to bob.
	a.command("/edit hello bob!", "edited")
	b.until("alice's edit", func(m Model) bool {
		r, ok := b.message("@alice", "hello bob!")
		return ok && r.Edited && b.shows("hello bob! (edited)")
	})

	// Delete for everyone.
	a.say("oops, wrong chat")
	b.until("the message alice deletes", func(Model) bool { return b.shows("oops, wrong chat") })
	a.command("/delete", "deleted for everyone")
	b.until("the deletion", func(m Model) bool {
		for _, h := range m.history {
			if h.Deleted && h.Sender.User == "alice" {
				return !b.shows("oops, wrong chat")
			}
		}
		return false
	})

	// Timer: set by alice, shown in bob's title and his client.
	a.command("/timer 1h", "sent to @bob")
	b.until("the timer in the title", func(Model) bool { return b.shows("@alice (disappearing: 1h)") })
	a.command("/timer off", "sent to @bob")
	b.until("the timer off", func(Model) bool { return !b.shows("(disappearing") })

	// Mentions: bob mentions alice in #duo; her client marks it, and her
	// UI (showing @bob) counts it unread.
	b.open("#duo", "")
	b.say("@alice standup at ten?")
	a.until("the mention", func(m Model) bool {
		r, ok := a.message("#duo", "@alice standup at ten?")
		return ok && r.Mentioned && m.unread["#duo"] == 1
	})

	// Search: alice's /search finds it across conversations.
	a.command("/search STANDUP", "found 1 message")
	if v := a.m.View(); !strings.Contains(v, "1 result for \"STANDUP\"") || !strings.Contains(v, "#duo") {
		t.Fatalf("search results:\n%s", v)
	}
	a.feed(tea.KeyMsg{Type: tea.KeyEsc})

	// Forward: alice forwards bob's reply from @bob to #duo; bob sees it
	// marked as forwarded.
	a.command("/forward #duo", "forwarded to #duo")
	b.until("the forwarded message", func(Model) bool {
		r, ok := b.message("#duo", "hi alice")
		return ok && r.Forwarded && r.Sender.User == "alice" && b.shows("forwarded: hi alice")
	})

	// Delete for me: gone from alice's device, kept by bob.
	a.command("/delete me", "deleted from this device")
	a.until("the message gone from alice's view", func(m Model) bool { return !a.shows("hi alice") })
	if _, ok := a.message("@bob", "hi alice"); ok {
		t.Fatal("deleted for me, but alice's history still has it")
	}
	if hist, err := alice.History(ctx, "@bob", 200); err != nil || slices.ContainsFunc(hist, func(h client.Message) bool { return h.Text == "hi alice" }) {
		t.Fatalf("alice's client history after /delete me: %v", err)
	}
	if _, ok := b.message("@alice", "hi alice"); !ok {
		t.Fatal("delete for me removed bob's copy too")
	}

	// Mute: alice mutes #duo; bob's next message there is stored but not
	// counted. Unmuted, the next one is.
	a.open("#duo", "standup")
	a.command("/mute", "muted #duo")
	a.open("@bob", "hello bob!")
	b.say("quiet please")
	a.until("the muted message reported", func(Model) bool { return a.seen["quiet please"] })
	if n := a.model().unread["#duo"]; n != 0 {
		t.Fatalf("a muted conversation counted %d unread", n)
	}
	if ms, err := alice.Mutes(ctx); err != nil || len(ms) != 1 || ms[0].Conversation != "#duo" {
		t.Fatalf("alice's mutes: %+v, %v", ms, err)
	}
	a.open("#duo", "quiet please")
	a.command("/unmute", "unmuted #duo")
	if ms, err := alice.Mutes(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("alice's mutes after /unmute: %+v, %v", ms, err)
	}
	a.open("@bob", "hello bob!")
	b.say("loud again")
	a.until("the unmuted message counted", func(m Model) bool { return m.unread["#duo"] == 1 })

	// Block: bob's messages after /block never reach alice's screen or
	// history (bob is not told: his send succeeds); after /unblock they
	// do again.
	a.command("/block", "blocked @bob")
	b.open("@alice", "hello bob!")
	b.say("are you there?")
	if _, err := alice.Sync(ctx); err != nil { // everything on the server now processed
		t.Fatal(err)
	}
	a.command("/unblock", "unblocked @bob")
	b.say("back again")
	a.until("bob's message after /unblock", func(Model) bool { return a.shows("back again") })
	if a.shows("are you there?") || a.seen["are you there?"] {
		t.Fatalf("a message sent while blocked is shown:\n%s", a.m.View())
	}
	if _, ok := a.message("@bob", "are you there?"); ok {
		t.Fatal("a message sent while blocked is in alice's history")
	}
}
