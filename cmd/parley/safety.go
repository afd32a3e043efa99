package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/historyfile"
)

// Receipts, blocking, message requests, muting, and export/import of
// history: the commands of "Safety and control" (cmd/parley/README.md).

func safetyCommands() []*command {
	return []*command{
		{
			name: "info", minArgs: 1, maxArgs: 1,
			usage: `info ID

Shows message ID (as printed by sync and history) with, for every other
member of its conversation, one line per person (not per device): sent
(nothing reported yet), delivered or read, and when (the server's time of
their receipt). The sender's own devices never count as readers. With
your read receipts off ("parley settings receipts off") you see
deliveries only, as others see of you.`,
			run: withClient(cmdInfo),
		},
		{
			name: "settings", maxArgs: 2,
			usage: `settings [receipts|requests|typing on|off]

Shows or changes your settings. A change made on one of your devices
reaches your other devices (end to end, in your devices' own encrypted
conversation; the newest change wins), and export and import carry them:

  receipts  (default on) send read receipts. Off: your devices send
            delivery receipts instead ("delivered", never "read"), and
            you see others' reads as deliveries only.
  requests  (default on) message requests: a direct conversation that
            someone you never talked to starts waits in "parley
            requests", unseen and unanswered (no receipt tells them you
            are active), until you accept it or write to them. Off:
            everyone's first message is shown at once, pending requests
            included (blocked people's excepted).
  typing    (default on) send typing indicators ("parley chat", the
            daemon's typing method). Others' indicators are shown
            either way.

With --json: {"read_receipts":..,"message_requests":..,"typing":..}.`,
			run: cmdSettings,
		},
		{
			name: "blocked", maxArgs: 0,
			usage: `blocked

Lists the people you blocked (the server's record, which every device of
yours applies at its next sync).`,
			run: func(ctx context.Context, e *env, args []string) error {
				c, err := e.open(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				p, err := c.UpdatePrivacy(ctx, nil, nil, "")
				if err != nil {
					return err
				}
				if e.flags.json {
					return json.NewEncoder(e.stdout).Encode(map[string][]string{"blocked": p.Blocked})
				}
				if len(p.Blocked) == 0 {
					fmt.Fprintln(e.stderr, "You blocked nobody.")
				}
				for _, u := range p.Blocked {
					fmt.Fprintln(e.stdout, u)
				}
				return nil
			},
		},
		{
			name: "requests", maxArgs: 2,
			usage: `requests [accept|delete @USER]

Lists message requests: direct conversations started by people you never
talked to (the "requests" setting, on by default; parley settings
requests off shows everyone's messages at once). Their messages are not
shown by sync or chat, and no receipt or anything else is sent to them,
until you accept. Each shows how many messages wait, the last one's
time, the first one's start, and the groups you share; sync says on
stderr when requests wait.

  accept @USER   show the messages (and send receipts): an ordinary chat
                 from now on (sending to @USER accepts too)
  delete @USER   erase the messages; USER is not told, and a new message
                 from them is a new request (block them to hear nothing
                 more: parley block @USER)

Both decisions reach your other devices. With --json: the list is one
object per request ({"user","conversation","messages","first","last",
"preview","groups_in_common"}); accept prints the accepted messages as
sync --json does; delete prints {"deleted","messages"}.`,
			run: cmdRequests,
		},
		{
			name: "mute", maxArgs: 1,
			usage: `mute [@USER|#GROUP] [--for DURATION] [--except-mentions]

Mutes a conversation on this device (a group, or your direct chat with
USER, even before it exists): its messages still arrive, are stored and
answered with receipts, but nothing notifies: chat does not count them
as unread, "sync --follow --bell" does not ring, and sync --json and the
daemon's events mark them "muted": true. --for ends the mute after
DURATION (8h, 30m, 168h); without it, until "parley unmute". With
--except-mentions (groups only), the group's messages that mention you
still notify; the rest do not. The mute goes to your other devices, end
to end; nothing else is sent: no one, the server included, learns it.
Without arguments, lists the muted conversations.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.DurationVar(&f.muteFor, "for", 0, "how long (e.g. 8h); default: until unmuted")
				fs.BoolVar(&f.exceptMentions, "except-mentions", false, "a group's messages that mention you still notify")
			},
			run: withClient(cmdMute),
		},
		{
			name: "unmute", minArgs: 1, maxArgs: 1,
			usage: `unmute @USER|#GROUP

Ends the mute of a conversation.`,
			run: withClient(cmdUnmute),
		},
		{
			name: "export", maxArgs: 0,
			usage: `export --out FILE

Writes the history of every conversation (messages, reactions, edits,
receipts, the keys of received files) and this profile's settings and
mutes to FILE, encrypted with a passphrase you choose (asked twice, or
PARLEY_EXPORT_PASSPHRASE): Argon2id and XChaCha20-Poly1305, with a
versioned header. It holds no key of this device and no group state: a
computer that has it can read the past but cannot read anything new nor
send as you. To move to a new computer, link it as a new device
("parley devices link") and run "parley import FILE" there. A progress
bar shows on a terminal. FILE must not exist.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.out, "out", "", "the file to write (must not exist)")
			},
			run: cmdExport,
		},
		{
			name: "import", minArgs: 1, maxArgs: 1,
			usage: `import FILE

Adds the history in FILE (made by "parley export" on another device of the
same account) to this profile: conversations this device is in get their
past before what it received itself; others are added read-only (marked
"imported" in "group list"). Settings and mutes are applied. Asks for the
file's passphrase (or PARLEY_EXPORT_PASSPHRASE). A damaged, cut or
tampered file, a wrong passphrase or another account's file is refused
and changes nothing. Importing twice adds nothing the second time.`,
			run: cmdImport,
		},
	}
}

func cmdInfo(ctx context.Context, e *env, c *client.Client, args []string) error {
	info, err := c.Info(ctx, args[0])
	if err != nil {
		return err
	}
	if e.flags.json {
		return json.NewEncoder(e.stdout).Encode(info)
	}
	text := sanitize(info.Text)
	if len(text) > 60 {
		text = text[:57] + "..."
	}
	fmt.Fprintf(e.stdout, "%s in %s from %s at %s: %s\n", info.ID, info.Conversation, info.Sender.User,
		info.SentAt.Local().Format("2006-01-02 15:04:05"), text)
	for _, m := range info.Members {
		when := ""
		switch m.State {
		case client.StateRead:
			when = "at " + m.ReadAt.Local().Format("2006-01-02 15:04:05")
			if m.ReadAt.IsZero() {
				when = ""
			}
		case client.StateDelivered:
			when = "at " + m.DeliveredAt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(e.stdout, "  %-20s %-9s %s\n", m.User, m.State, when)
	}
	if len(info.Members) == 0 {
		fmt.Fprintln(e.stdout, "  (no other members)")
	}
	if !info.ReadReceipts {
		fmt.Fprintln(e.stdout, "Your read receipts are off: reads show as deliveries.")
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func cmdSettings(ctx context.Context, e *env, args []string) error {
	if len(args) == 1 {
		return usageErr("say on or off: parley settings %s on|off", args[0])
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var s client.Settings
	if len(args) == 2 {
		var on bool
		switch args[1] {
		case "on":
			on = true
		case "off":
		default:
			return usageErr("%q: say on or off", args[1])
		}
		if args[0] != client.SettingReadReceipts && args[0] != client.SettingMessageRequests && args[0] != client.SettingTyping {
			return usageErr("no setting %q: receipts, requests or typing", args[0])
		}
		s, err = c.SetSetting(ctx, args[0], on)
	} else {
		s, err = c.Settings(ctx)
	}
	if err != nil {
		return err
	}
	return e.print(s, fmt.Sprintf("receipts: %s\nrequests: %s\ntyping: %s", onOff(s.ReadReceipts), onOff(s.MessageRequests), onOff(s.Typing)))
}

func cmdRequests(ctx context.Context, e *env, args []string) error {
	if len(args) == 1 || (len(args) == 2 && args[0] != "accept" && args[0] != "delete") {
		return usageErr("parley requests, parley requests accept @USER or parley requests delete @USER")
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if len(args) == 2 {
		user := strings.TrimPrefix(args[1], "@")
		if args[0] == "delete" {
			n, err := c.DeleteRequest(ctx, user)
			if err != nil {
				return err
			}
			return e.print(map[string]any{"deleted": user, "messages": n},
				fmt.Sprintf("Deleted the request from %s (%d message(s)); %s is not told.", user, n, user))
		}
		msgs, err := c.AcceptRequest(ctx, user)
		if err != nil {
			return err
		}
		if !e.flags.json {
			fmt.Fprintf(e.stdout, "Accepted the request from %s.\n", user)
		}
		for i := range msgs {
			e.show(syncItem{msg: &msgs[i]})
		}
		return nil
	}
	reqs, err := c.Requests(ctx)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		common := ""
		if len(r.Common) > 0 {
			common = "; groups in common: " + strings.Join(r.Common, ", ")
		}
		e.print(r, fmt.Sprintf("%s  %d message(s), last %s: \u201c%s\u201d%s", r.Conversation, r.Messages,
			r.Last.Local().Format("2006-01-02 15:04"), sanitize(r.Preview), common))
	}
	if len(reqs) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "No message requests.")
	}
	return nil
}

func muteText(m client.Mute) string {
	text := m.Conversation + " muted until " + m.Until.Local().Format("2006-01-02 15:04")
	if m.Forever {
		text = m.Conversation + " muted until you unmute it"
	}
	if m.ExceptMentions {
		text += " (messages that mention you still notify)"
	}
	return text
}

func cmdMute(ctx context.Context, e *env, c *client.Client, args []string) error {
	if len(args) == 0 {
		ms, err := c.Mutes(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			e.print(m, muteText(m))
		}
		if len(ms) == 0 && !e.flags.json {
			fmt.Fprintln(e.stderr, "No conversation is muted.")
		}
		return nil
	}
	if e.flags.muteFor < 0 {
		return usageErr("--for takes a positive duration")
	}
	m, err := c.SetMuteMode(ctx, args[0], e.flags.muteFor, e.flags.exceptMentions)
	if err != nil {
		return err
	}
	return e.print(m, muteText(m)+".")
}

func cmdUnmute(ctx context.Context, e *env, c *client.Client, args []string) error {
	was, err := c.Unmute(ctx, args[0])
	if err != nil {
		return err
	}
	text := args[0] + " is no longer muted."
	if !was {
		text = args[0] + " was not muted."
	}
	return e.print(map[string]any{"conversation": args[0], "unmuted": was}, text)
}

// exportPassphrase is the passphrase of a history file, from
// PARLEY_EXPORT_PASSPHRASE or the terminal (twice when choosing it).
func exportPassphrase(choose bool) ([]byte, error) {
	if p, ok := os.LookupEnv("PARLEY_EXPORT_PASSPHRASE"); ok {
		if len(p) < 8 {
			return nil, errors.New("PARLEY_EXPORT_PASSPHRASE: use at least 8 characters")
		}
		return []byte(p), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New("no terminal to ask for the file's passphrase: set PARLEY_EXPORT_PASSPHRASE")
	}
	defer tty.Close()
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(tty, prompt)
		p, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		return p, nil
	}
	if !choose {
		return read("Passphrase of the history file: ")
	}
	p, err := read("Passphrase for the history file (you will need it to import): ")
	if err != nil {
		return nil, err
	}
	if len(p) < 8 {
		return nil, errors.New("choose a passphrase of at least 8 characters")
	}
	again, err := read("Repeat it: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New("the passphrases differ")
	}
	return p, nil
}

func cmdExport(ctx context.Context, e *env, args []string) error {
	if e.flags.out == "" {
		return usageErr("--out FILE is required")
	}
	if _, err := os.Lstat(e.flags.out); err == nil {
		return fmt.Errorf("%s exists: choose another --out (nothing is overwritten)", e.flags.out)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	pass, err := exportPassphrase(true)
	if err != nil {
		return err
	}
	kdf := historyfile.DefaultKDF
	if k, err := kdfFromEnv(); err != nil {
		return err
	} else if k != nil {
		kdf = historyfile.KDF{Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads}
	}
	// Written next to FILE, then renamed: a failed export leaves nothing
	// that looks like one.
	f, err := os.CreateTemp(filepath.Dir(e.flags.out), ".parley-export-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	bar := newProgressBar(e, "exporting")
	bar.unit = "messages"
	res, err := c.Export(ctx, f, pass, kdf, bar.update)
	bar.done()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, e.flags.out); err != nil {
		return fmt.Errorf("write %s: %w", e.flags.out, err)
	}
	return e.print(map[string]any{"out": e.flags.out, "conversations": res.Conversations, "messages": res.Messages},
		fmt.Sprintf("Exported %d message(s) of %d conversation(s) to %s (history and settings only: no keys). Import it on your new device with: parley import %s",
			res.Messages, res.Conversations, e.flags.out, e.flags.out))
}

func cmdImport(ctx context.Context, e *env, args []string) error {
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	pass, err := exportPassphrase(false)
	if err != nil {
		return err
	}
	bar := newProgressBar(e, "importing")
	bar.unit = "messages"
	res, err := c.Import(ctx, f, pass, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	return e.print(res, fmt.Sprintf("Imported %d message(s) of %d conversation(s) (%d already here).", res.Messages, res.Conversations, res.Skipped))
}

// ring rings the terminal bell (sync --follow --bell) for a new message
// from someone else, unless its conversation is muted.
func (e *env) ring(m *client.Message, self string) {
	if !e.flags.bell || m == nil || m.Muted || m.Outgoing || (self != "" && m.Sender.User == self) {
		return
	}
	if m.Kind != client.KindText && m.Kind != client.KindFile {
		return
	}
	fmt.Fprint(e.stderr, "\a")
}

// renderCount formats "label [=====>    ]  42% 420/1000 messages".
func renderCount(label string, done, total int64, width int, unit string) string {
	if total <= 0 {
		return fmt.Sprintf("%s %d %s", label, done, unit)
	}
	done = min(max(done, 0), total)
	fill := int(int64(width) * done / total)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	return fmt.Sprintf("%s [%s] %3d%% %d/%d %s", label, bar, 100*done/total, done, total, unit)
}

// safetyMethods are the daemon's methods for these commands.
const safetyMethods = "info, settings, block, unblock, blocked, requests, acceptRequest, deleteRequest, mute, unmute, mutes, export, import"

// callSafety runs a daemon method of these commands; ok is false for
// another method. Results have the shapes the CLI prints with --json.
func (d *daemon) callSafety(ctx context.Context, method string, raw json.RawMessage) (res any, ok bool, err error) {
	c := d.c
	type userParams struct{ User string }
	switch method {
	case "info":
		p, err := params[struct{ ID string }](raw)
		if err != nil {
			return nil, true, err
		}
		if p.ID == "" {
			return nil, true, missing("id")
		}
		res, err = c.Info(ctx, p.ID)
		return res, true, err
	case "settings":
		// {} reads them; {"name": "receipts", "on": false} changes one.
		p, err := params[struct {
			Name string
			On   *bool
		}](raw)
		if err != nil {
			return nil, true, err
		}
		if p.Name == "" {
			res, err = c.Settings(ctx)
			return res, true, err
		}
		if p.On == nil {
			return nil, true, missing("on")
		}
		res, err = c.SetSetting(ctx, p.Name, *p.On)
		return res, true, err
	case "block", "unblock":
		p, err := params[struct{ Users []string }](raw)
		if err != nil {
			return nil, true, err
		}
		if len(p.Users) == 0 {
			return nil, true, missing("users")
		}
		if method == "block" {
			res, err = c.UpdatePrivacy(ctx, p.Users, nil, "")
		} else {
			res, err = c.UpdatePrivacy(ctx, nil, p.Users, "")
		}
		return res, true, err
	case "blocked":
		pr, err := c.UpdatePrivacy(ctx, nil, nil, "")
		if err != nil {
			return nil, true, err
		}
		return map[string][]string{"blocked": pr.Blocked}, true, nil
	case "requests":
		res, err = c.Requests(ctx)
		return res, true, err
	case "acceptRequest", "deleteRequest":
		p, err := params[userParams](raw)
		if err != nil {
			return nil, true, err
		}
		if p.User == "" {
			return nil, true, missing("user")
		}
		if method == "acceptRequest" {
			res, err = c.AcceptRequest(ctx, p.User)
			return res, true, err
		}
		n, err := c.DeleteRequest(ctx, p.User)
		return map[string]any{"deleted": strings.TrimPrefix(p.User, "@"), "messages": n}, true, err
	case "mute":
		// {"conversation": "#team", "for": "8h", "exceptMentions": true};
		// without "for": until unmuted.
		p, err := params[struct {
			Conversation, For string
			ExceptMentions    bool
		}](raw)
		if err != nil {
			return nil, true, err
		}
		if p.Conversation == "" {
			return nil, true, missing("conversation")
		}
		var dur time.Duration
		if p.For != "" {
			if dur, err = time.ParseDuration(p.For); err != nil || dur <= 0 {
				return nil, true, &rpcError{Code: rpcInvalidParams, Message: "params: for is a positive duration such as 8h"}
			}
		}
		res, err = c.SetMuteMode(ctx, p.Conversation, dur, p.ExceptMentions)
		return res, true, err
	case "unmute":
		p, err := params[struct{ Conversation string }](raw)
		if err != nil {
			return nil, true, err
		}
		if p.Conversation == "" {
			return nil, true, missing("conversation")
		}
		was, err := c.Unmute(ctx, p.Conversation)
		return map[string]any{"conversation": p.Conversation, "unmuted": was}, true, err
	case "mutes":
		res, err = c.Mutes(ctx)
		return res, true, err
	case "export", "import":
		// {"path": FILE, "passphrase": ...}: the socket is the user's alone.
		p, err := params[struct{ Path, Passphrase string }](raw)
		if err != nil {
			return nil, true, err
		}
		if p.Path == "" || len(p.Passphrase) < 8 {
			return nil, true, missing("path and passphrase (at least 8 characters)")
		}
		if method == "import" {
			f, err := os.Open(p.Path)
			if err != nil {
				return nil, true, err
			}
			defer f.Close()
			res, err = c.Import(ctx, f, []byte(p.Passphrase), nil)
			return res, true, err
		}
		f, err := os.OpenFile(p.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, true, err
		}
		res, err = c.Export(ctx, f, []byte(p.Passphrase), historyfile.DefaultKDF, nil)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(p.Path)
		}
		return res, true, err
	}
	return nil, false, nil
}
