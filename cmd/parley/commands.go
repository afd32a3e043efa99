package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/safety"
	"github.com/parleychat/parley/client/tui"
	"github.com/parleychat/parley/hashing/hashcmd"
	"github.com/parleychat/parley/internal/buildinfo"
	"github.com/parleychat/parley/internal/bytesize"
)

var hashRun = hashcmd.Run

// version is the client version; set with -ldflags "-X main.version=...".

func commands() map[string]*command {
	cmds := []*command{
		{
			name: "init",
			usage: `init --server URL --name NAME [--invite CODE]

Creates a profile (asking for a new passphrase), registers the account
NAME on the server with this device as its first device, and publishes
key packages so that others can start conversations with you.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.server, "server", "", "server URL, e.g. https://parley.example:7867")
				fs.StringVar(&f.name, "name", "", "your user name (3-32 of a-z 0-9 . _ -)")
				fs.StringVar(&f.invite, "invite", "", "registration invite code, if the server needs one")
			},
			run: cmdInit,
		},
		{
			name: "send", minArgs: 2, maxArgs: 2,
			usage: `send @USER|#GROUP TEXT [--reply-to ID] [--no-queue]

Sends TEXT to USER (a direct conversation with all of USER's devices and
your other devices, created on first use) or to GROUP. Prints the
server's delivery receipt: the message is stored and will be delivered.
With --reply-to, the message answers message ID of that conversation,
and everyone sees it with a quote of ID. In a group, @name in TEXT
mentions a member: their client marks the message for them.

Messages go through the outbox: when the server cannot be reached, the
message is kept there (exit status 0, "Queued ...", or {"queued": ...}
with --json) and sent, in order and only once, by the next send, sync,
sync --follow, chat or daemon of this profile. Messages queued earlier
are sent before this one. "parley outbox" lists what waits. With
--no-queue an unreachable server is an error (exit 1) and nothing is
kept. Replies (--reply-to) are queued the same way; the message they
answer must already be in this device's history.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.replyTo, "reply-to", "", "the id of the message this one answers")
				fs.BoolVar(&f.noQueue, "no-queue", false, "fail instead of queueing when the server cannot be reached")
			},
			run: cmdSend,
		},
		{
			name: "react", minArgs: 2, maxArgs: 2,
			usage: `react ID EMOJI [--remove]

Reacts to message ID with EMOJI (one emoji); every member sees it under
the message. --remove takes your reaction EMOJI back.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.remove, "remove", false, "take the reaction back")
			},
			run: withClient(cmdReact),
		},
		{
			name: "edit", minArgs: 2, maxArgs: 2,
			usage: `edit ID TEXT

Replaces the text of message ID, which you sent. Every member's client
shows it as edited and keeps the earlier versions (history --json lists
them under "edits").`,
			run: withClient(cmdEdit),
		},
		{
			name: "delete", minArgs: 1, maxArgs: 1,
			usage: `delete ID [--everyone]

Deletes message ID from this device's history ("delete for me": your
other devices and the other members keep it). With --everyone, deletes
a message you sent, within 24 hours of sending it, on every device of
every member: each shows "deleted" in its place, and a file's encrypted
blob is deleted from the server.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.everyone, "everyone", false, "delete your message for every member (within 24 hours)")
			},
			run: withClient(cmdDelete),
		},
		{
			name: "forward", minArgs: 2, maxArgs: 2,
			usage: `forward ID @USER|#GROUP

Sends a copy of message ID (a text or a file) to another conversation,
marked as forwarded. A file is not uploaded again.`,
			run: withClient(cmdForward),
		},
		{
			name: "outbox", maxArgs: 0,
			usage: `outbox [--retry] [--discard ID|failed]

Lists the messages not sent yet: those queued while the server could not
be reached (sent by the next send, sync, chat or daemon) and those
refused (marked FAILED with the reason: no such user, a contact to verify
again...), which are not retried by themselves. --retry sends the failed
ones again now; --discard ID drops one entry, --discard failed every
failed one.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.retry, "retry", false, "try the failed messages again now")
				fs.StringVar(&f.discard, "discard", "", "drop the entry ID without sending it (\"failed\": every failed entry)")
			},
			run: withClient(cmdOutbox),
		},
		{
			name: "send-file", minArgs: 2, maxArgs: 2,
			usage: `send-file @USER|#GROUP PATH

Encrypts the file with a fresh key (AES-256-GCM in 64 KiB chunks),
uploads the ciphertext, and sends the key, SHA-256 digest, name and size
inside an end-to-end encrypted message. A progress bar is shown on
standard error when it is a terminal (not with --json).`,
			run: withClient(cmdSendFile),
		},
		{
			name: "get-file", minArgs: 1, maxArgs: 1,
			usage: `get-file ID [--out PATH]

Downloads the file sent in message ID (as printed by sync), decrypts it
and checks its SHA-256 digest. Writes to PATH, or to the sender's file
name in the current directory; never overwrites an existing file.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.out, "out", "", "where to write the file")
			},
			run: withClient(cmdGetFile),
		},
		{
			name: "delete-file", minArgs: 1, maxArgs: 1,
			usage: `delete-file ID

Deletes the file you sent in message ID from the server: it no longer
counts against your account's attachment quota, and members who have not
downloaded it yet no longer can. Only files your account sent can be
deleted; the message itself stays.`,
			run: withClient(cmdDeleteFile),
		},
		{
			name: "sync", maxArgs: 0,
			usage: `sync [--follow]

Fetches everything new (conversations you were added to, messages,
membership changes, read receipts, and new posts of the public channels
you follow, marked "(public)"), prints it interleaved by time, sends read
receipts for the messages shown, sends the outbox (messages queued while
the server could not be reached), and exits. With --follow it stays
connected and prints messages as they arrive, reconnecting by itself
(after 0.2 s, then up to 10 s between attempts). With --json each message
is one JSON object per line: id, conversation, sender {user, device},
sent_at, kind (text, file, receipt, membership) and text; a channel post
has kind "channel_post" (or "channel_takedown"), channel, "public": true
and post; a queued message delivered is {"kind":"sent","sent":{...}}.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.follow, "follow", false, "stay connected and print messages as they arrive")
				fs.IntVar(&f.max, "max", 0, "with --follow: exit once at least this many messages were printed (0: never)")
				fs.DurationVar(&f.channelPoll, "channel-poll", 15*time.Second, "with --follow: how often followed public channels are checked")
				fs.BoolVar(&f.bell, "bell", false, "with --follow: ring the terminal bell for each new message from others, except in muted conversations")
			},
			run: cmdSync,
		},
		{
			name: "history", minArgs: 1, maxArgs: 1,
			usage: `history @USER|#GROUP [--limit N]

Prints the stored history of a conversation (nothing is fetched; run
sync first).`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.IntVar(&f.limit, "limit", 50, "how many of the newest messages")
			},
			run: cmdHistory,
		},
		{
			name: "timer", minArgs: 1, maxArgs: 2,
			usage: `timer @USER|#GROUP [DURATION|off]

Sets the conversation's disappearing-messages timer for every member: from
then on every message sent there (text, files, reactions, edits, receipts)
disappears DURATION after it was sent, from every member's devices (the
history, downloaded files, search) and from the server, which deletes it
by then whether or not every device fetched it. DURATION is like 30s, 5m,
1h, 1d or 1w (at most 365d); "off" turns it off for messages sent from
then on. Any member may set it, and everyone sees who did. Without
DURATION, prints the timer as of this device's last sync. The server learns the timer (each
message's expiry is in its clear metadata) and nothing else.`,
			run: cmdTimer,
		},
		{
			name: "typing", minArgs: 1, maxArgs: 2,
			usage: `typing on|off|status | typing @USER|#GROUP [--stop]

"typing off" stops your devices sending typing indicators ("on" starts
again; on by default); others' indicators are still shown. "typing status"
prints the setting. "typing @USER" tells the members of that conversation
who are online now that you are typing (--stop: that you stopped); parley
chat sends these by itself while you type. Typing indicators are end-to-end
encrypted, and the server relays them to connected devices without storing
them.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.remove, "stop", false, "say that you stopped typing")
			},
			run: withClient(cmdTyping),
		},
		{
			name: "search", minArgs: 1, maxArgs: 1,
			usage: `search TEXT [--limit N]

Finds the messages in this device's history, in every conversation, whose
text (or file name) contains TEXT, ignoring case; newest first. The search
runs on this device over the encrypted profile: nothing is sent anywhere.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.IntVar(&f.limit, "limit", 50, "at most this many messages")
			},
			run: withClient(cmdSearch),
		},
		{
			name: "group create", minArgs: 1, maxArgs: -1,
			usage: `group create NAME @USER...

Creates the group NAME with the given people (all their devices) and
your other devices.`,
			run: withClient(cmdGroupCreate),
		},
		{
			name: "group add", minArgs: 2, maxArgs: -1,
			usage: `group add NAME @USER...

Adds people (all their devices) to the group NAME. They see messages sent
from then on.`,
			run: withClient(cmdGroupAdd),
		},
		{
			name: "group remove", minArgs: 2, maxArgs: -1,
			usage: `group remove NAME @USER...

Removes people (all their devices) from the group NAME. The group's keys
change, so they cannot read anything sent afterwards.`,
			run: withClient(cmdGroupRemove),
		},
		{
			name: "group leave", minArgs: 1, maxArgs: 1,
			usage: `group leave NAME

Asks to leave the group NAME with all your devices. MLS does not let a
member commit its own removal: your client proposes it, and another
member's client completes it at its next sync; from then on you cannot
read what is sent to the group.`,
			run: withClient(cmdGroupLeave),
		},
		{
			name: "group info", minArgs: 1, maxArgs: 1,
			usage: `group info NAME [--json]

Shows the group's name, topic and picture, and its members with their
roles (admin or member), as every member's client agrees on them: they
are part of the group's MLS state, which the server cannot read or
change.`,
			run: withClient(cmdGroupInfo),
		},
		{
			name: "group set", minArgs: 1, maxArgs: 1,
			usage: `group set NAME [--name TEXT] [--topic TEXT] [--picture FILE]

Changes the group's name (what members see; NAME on the command line
stays the handle), topic or picture (an image of at most 5 MiB, encrypted
and uploaded like a file). Admins only: every member's client refuses
the change from anyone else. An empty --topic "" clears the topic.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.groupName, "name", "", "the group's new name")
				fs.StringVar(&f.groupTopic, "topic", "", "the group's new topic")
				fs.StringVar(&f.groupPicture, "picture", "", "an image `FILE` for the group's picture")
			},
			run: cmdGroupSet,
		},
		{
			name: "group picture", minArgs: 1, maxArgs: 1,
			usage: `group picture NAME [--out FILE]

Downloads, decrypts and checks the group's picture (default: picture.EXT
in the current directory). Never overwrites a file.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.out, "out", "", "where to write the picture")
			},
			run: withClient(cmdGroupPicture),
		},
		{
			name: "group promote", minArgs: 2, maxArgs: 2,
			usage: `group promote NAME @USER

Makes a member an admin of the group (admins only). Admins add and
remove members, promote and demote admins, and change the name, topic
and picture.`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdGroupRole(ctx, e, args, true) },
		},
		{
			name: "group demote", minArgs: 2, maxArgs: 2,
			usage: `group demote NAME @USER

Makes an admin an ordinary member again (admins only; an admin may
demote themselves, unless they are the last one).`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdGroupRole(ctx, e, args, false) },
		},
		{
			name: "group invite", minArgs: 1, maxArgs: 1,
			usage: `group invite NAME

Prints an invite code for the group (admins only), valid for 7 days.
Whoever has it can ask to join with "parley group join CODE"; the
request comes to you end to end, and you approve it with "parley group
approve". The server never sees the group, only a message to you. Keep
the code as secret as the group: it is what lets people ask.`,
			run: withClient(cmdGroupInvite),
		},
		{
			name: "group join", minArgs: 1, maxArgs: 1,
			usage: `group join CODE

Asks the admin who made the invite CODE to add you to the group. The
request goes to them in your direct conversation, end to end. Once they
approve it, the group arrives at your next sync.`,
			run: withClient(cmdGroupJoin),
		},
		{
			name: "group requests", minArgs: 1, maxArgs: 1,
			usage: `group requests NAME

Lists the pending requests to join the group that came with one of your
invite codes (after syncing).`,
			run: withClient(cmdGroupRequests),
		},
		{
			name: "group approve", minArgs: 2, maxArgs: 2,
			usage: `group approve NAME @USER

Adds a user who asked to join the group with one of your invite codes
(admins only).`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdGroupApprove(ctx, e, args, false) },
		},
		{
			name: "group deny", minArgs: 2, maxArgs: 2,
			usage: `group deny NAME @USER

Drops a user's request to join the group. They are not told.`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdGroupApprove(ctx, e, args, true) },
		},
		{
			name: "group list", maxArgs: 0,
			usage: `group list

Lists your conversations (groups and direct) with their members. A group
whose other members refused the commit that added you (its committer
was no admin) is marked with a security alert: you saw only a copy of
it shared with that committer (with --json: "refused": true and
"refused_by").`,
			run: withClient(cmdGroupList),
		},
		{
			name: "devices link", maxArgs: 0,
			usage: `devices link --server URL --name NAME [--wait DURATION]

Run on a NEW device: creates a profile, prints a code and waits. Enter
the whole code on your primary device (the one that ran "parley init")
with "parley devices add CODE". The code's first 8 digits find the
request on the server; the rest is a secret the server never sees, with
which the two devices check each other's keys, so that a server that
swaps a key is caught before anything is signed. The new device is then
in your account's signed device list, added to your conversations, and
sees messages from then on.

With --history it then waits (within --wait) for the history the
approving device sends if you chose to send it there ("devices add
--history"), and imports it with a progress bar. Without --history the
history, if sent, is imported at your next sync on this device.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.server, "server", "", "server URL")
				fs.StringVar(&f.name, "name", "", "your user name")
				fs.StringVar(&f.wait, "wait", "10m", "how long to wait for the approval (and, with --history, the history)")
				fs.BoolVar(&f.history, "history", false, "after linking, wait for the history from the approving device and import it")
				fs.StringVar(&f.codeFile, "code-file", "", "also write the code to this file (for scripts)")
			},
			run: cmdDevicesLink,
		},
		{
			name: "devices add", minArgs: 1, maxArgs: 1,
			usage: `devices add CODE [--wait DURATION] [--history | --no-history]

Run on your PRIMARY device (the one that ran "parley init", which holds
the account key): checks the new device's keys against CODE's secret,
adds the device to the account's signed device list and then to every
conversation of this device. If the keys do not match the code, nothing
is approved: the server tampered with the request.

Your message history is sent to the new device only if you say so:
--history, or "y" when asked (on a terminal, without either flag).
It goes end to end: this device encrypts it under a fresh key, uploads
it as an attachment the server cannot read, and tells only the new
device the key, inside MLS. It holds your conversations' messages,
reactions, receipts, the keys of received files, your settings and
mutes; never a key of this device or any MLS state. Disappearing
messages whose time passed stay behind; the others keep their timers.
Without --history (or with --no-history) nothing is sent, and the new
device sees messages from now on; "devices send-history" sends it later.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.wait, "wait", "2m", "how long to wait for the new device's key packages")
				fs.BoolVar(&f.history, "history", false, "also send your message history to the new device (end to end)")
				fs.BoolVar(&f.noHistory, "no-history", false, "do not send the history, and do not ask")
			},
			run: cmdDevicesAdd,
		},
		{
			name: "devices send-history", minArgs: 1, maxArgs: 1,
			usage: `devices send-history ID

Sends your message history, end to end, to device ID of your account
(as "devices add --history" does at approval; see "parley devices add
--help"): for a device approved without it. The device imports it at
its next sync. ID must be in your account's signed device list.`,
			run: withClient(cmdDevicesSendHistory),
		},
		{
			name: "devices list", maxArgs: 0,
			usage: `devices list

Lists this account's devices as the server has them, each marked with
whether the account's signed device list names it. A device it does not
name ("NOT SIGNED") was not added by you: no client of yours or of your
contacts sends to it.`,
			run: withClient(cmdDevicesList),
		},
		{
			name: "devices remove", minArgs: 1, maxArgs: 1,
			usage: `devices remove ID

Removes device ID from the account's signed device list (primary device
only), from the server and from every conversation (it cannot read
anything sent afterwards).`,
			run: withClient(cmdDevicesRemove),
		},
		{
			name: "devices reset-account-key", maxArgs: 0,
			usage: `devices reset-account-key --yes

For when the primary device (the one that ran parley init, and the only
one that can add or remove devices) is lost: this device makes a new
account key, becomes the primary, signs a device list of itself alone, and
removes the account's other devices from the server and from every
conversation (link them again afterwards). Every contact then sees that
your account key changed and sends you nothing until they compare safety
numbers with you and run parley verify @YOU; any other device of yours
that still exists raises a security alert. That is on purpose: the same
command in a thief's hands must not be silent.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.yes, "yes", false, "confirm: replace the account key and remove every other device")
			},
			run: cmdResetAccountKey,
		},
		{
			name: "account decisions", minArgs: 0, maxArgs: 0,
			usage: `account decisions [--json]

Lists the moderators' decisions about your account, newest first:
warnings, suspensions (until when), bans, and the outcome of your
appeals, each with the moderator's reason and its case number. Every
parley command that reaches the server also tells you of a new decision
once, on stderr. A report against you that moderators dismissed is not
told. Appeal a decision once with: parley appeal CASE "why".`,
			run: withClient(cmdAccountDecisions),
		},
		{
			name: "account delete", minArgs: 1, maxArgs: 1,
			usage: `account delete NAME

Deletes your account on the server: every device of it, with its keys,
inbox and place in every conversation. NAME must be your username, as a
confirmation. Nothing of the account stays on the server except the
name, which no one can register again (so no one can pass for you in
your old conversations). Your other devices are signed out. This
profile's history stays on this computer until you delete its directory.`,
			run: withClient(cmdAccountDelete),
		},
		{
			name: "block", minArgs: 1, maxArgs: -1,
			usage: `block @USER...

Blocks people: nothing of theirs reaches you. The server refuses every
attempt of theirs to add any of your devices to a conversation (a group
or a direct chat), so they cannot reach you in a new conversation or fill
your inbox with invitations; your devices also refuse any invitation of
theirs that got through (one queued before the block), and in
conversations you already share they drop what they send: not shown,
not stored, not notified, no receipt. The server keeps the list (it has
to, to refuse them; every device of yours fetches it at its next sync);
they are told only that you do not accept invitations from them, the
same answer as for "privacy --group-invites contacts", and their
messages in shared conversations are still accepted by the server, so
they cannot tell. They stay members of groups you share (leave or remove
them to keep them from reading). "parley blocked" lists whom you
blocked.`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdPrivacy(ctx, e, args, nil) },
		},
		{
			name: "unblock", minArgs: 1, maxArgs: -1,
			usage: `unblock @USER...

Unblocks people blocked with "parley block".`,
			run: func(ctx context.Context, e *env, args []string) error { return cmdPrivacy(ctx, e, nil, args) },
		},
		{
			name: "privacy", maxArgs: 0,
			usage: `privacy [--group-invites everyone|contacts]

Shows who may add you to conversations, the server's record of your
choices: the people you blocked, and whether anyone may add you to groups
("everyone", the default) or only your contacts, the people you have a
direct chat with ("contacts"). Anyone not blocked may still start a
direct chat with you.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.groupInvites, "group-invites", "", "who may add you to groups: everyone or contacts")
			},
			run: func(ctx context.Context, e *env, args []string) error { return cmdPrivacy(ctx, e, nil, nil) },
		},
		{
			name: "safety-number", minArgs: 1, maxArgs: 1,
			usage: `safety-number @USER

Prints a 60-digit number computed from your and USER's device keys. Compare
it with USER in person or on a call: if it matches on both sides, nobody
(the server included) has inserted a device into your conversation. It
changes when either of you adds or removes a device.`,
			run: cmdSafetyNumber,
		},
		{
			name: "audit", maxArgs: 0,
			usage: `audit

Checks this account in the server's key transparency directory now (as
every sync does: every version of your device list published since the
last check must be one your primary device signed), and shows what this
device trusts: the directory's keys, the latest checkpoint it accepted
(and the auditors that must cosign it: PARLEY_KT_WITNESS, comma
separated, adds auditors to require), the epoch at which each contact's
devices were last verified, and any security alert. See
docs/transparency.md.`,
			run: withClient(cmdAudit),
		},
		{
			name: "report", minArgs: 1, maxArgs: 1,
			usage: `report @USER|#GROUP (--message ID ... | --last N) --reason spam|harassment|terrorism|csam|other [--note TEXT] [--yes]

Reports messages of a conversation to the server's moderators. Only the
messages you name reach the server, each with the proof that its sender
sent it (message franking: the server can check it, and nobody can forge,
alter or re-attribute a reported message). Without --yes it shows exactly
what would be sent and sends nothing; run it again with --yes to send.
See docs/moderation.md.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.Var(&f.messages, "message", "`ID` of a message to report (repeat for several)")
				fs.IntVar(&f.last, "last", 0, "report the last `N` messages others sent in the conversation")
				fs.StringVar(&f.reason, "reason", "", "spam, harassment, terrorism, csam or other")
				fs.StringVar(&f.note, "note", "", "a note for the moderators (at most 2000 bytes)")
				fs.BoolVar(&f.yes, "yes", false, "send the report (without it, only show what would be sent)")
			},
			run: withClient(cmdReport),
		},
		{
			name: "appeal", minArgs: 2, maxArgs: 2,
			usage: `appeal CASE "why"

Appeals the moderators' decision on your account in case CASE (the number
your suspension or ban message names). A decision can be appealed once;
another moderator decides the appeal.`,
			run: withClient(cmdAppeal),
		},
		{
			name: "verify", minArgs: 1, maxArgs: 1,
			usage: `verify @USER [--clear]

Marks USER as verified: run it after comparing safety numbers with USER
(parley safety-number @USER) and finding them the same. From then on, if
USER's account key or devices change, parley sends USER nothing until you
compare again and run verify once more. --clear removes the mark.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.clear, "clear", false, "no longer treat USER as verified")
			},
			run: withClient(cmdVerify),
		},
		{
			name: "chat", maxArgs: 0,
			usage: `chat

Opens the interactive terminal UI: conversations on the left, history on
the right, a compose line at the bottom. Tab switches conversation,
Enter sends, "/to @user" or "/to #group" opens a conversation, "/file
PATH" sends a file, Ctrl+C or "/quit" quits.`,
			run: cmdChat,
		},
		{
			name: "daemon", maxArgs: 0,
			usage: `daemon [--socket PATH]

Unlocks the profile once (the passphrase is asked for or read from
PARLEY_PASSPHRASE only now), stays connected, and serves JSON-RPC 2.0 on
a Unix socket, one JSON object per line each way: by default
daemon.sock in the profile directory, readable and writable by you alone
(0600). Anyone who can open it can use your account, as with an
ssh-agent socket.

While it runs, "parley send", "sync" (and "sync --follow") and "history"
on this profile go through it: no passphrase, no key derivation. Other
commands open the profile as usual.

Methods (params as an object; results are what the CLI prints with
--json): send {to, text, replyTo}, sendFile {to, path}, getFile {id, out},
sync {} (what arrived since the last sync call: messages, channel_posts,
sent), history {conversation, limit}, conversations, outbox, self,
version, info {id}, settings {name, on}, block and unblock {users},
blocked, requests, acceptRequest and deleteRequest {user}, mute
{conversation, for}, unmute {conversation}, mutes, export and import
{path, passphrase}, and subscribe: the connection then receives every event as a
notification {"jsonrpc":"2.0","method":"event","params":{"type":...}}
with type message, sent, send_failed, connected, disconnected, alert,
warning or channel_post. Errors carry code 1 (failed, with the reason)
or 3 (refused: security alert).

Logs go to standard error. SIGTERM or Ctrl+C stops it gracefully:
requests under way are answered, and the socket is removed.`,
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.socket, "socket", "", "the socket's path (default: daemon.sock in the profile directory)")
				fs.DurationVar(&f.channelPoll, "channel-poll", 15*time.Second, "how often followed public channels are checked")
			},
			run: cmdDaemon,
		},
		{
			name: "version", maxArgs: 0,
			usage: `version

Prints the client version.`,
			run: func(ctx context.Context, e *env, args []string) error {
				v := buildinfo.String()
				return e.print(map[string]string{"version": v}, "parley "+v)
			},
		},
	}
	cmds = append(cmds, safetyCommands()...)
	m := make(map[string]*command)
	for _, c := range cmds {
		m[c.name] = c
	}
	return m
}

// print writes v as JSON with --json, else text.
func (e *env) print(v any, text string) error {
	if e.flags.json {
		return json.NewEncoder(e.stdout).Encode(v)
	}
	_, err := fmt.Fprintln(e.stdout, text)
	return err
}

// minSafeKDFMemoryKiB is the least Argon2id memory PARLEY_KDF may set
// without a warning (OWASP's minimum for Argon2id, 19 MiB).
const minSafeKDFMemoryKiB = 19 * 1024

// historyProgress draws the progress of a history transfer being
// received (at link --history, or at any sync) on stderr.
func (e *env) historyProgress() func(stage string, done, total int64) {
	var bar *progressBar
	var cur string
	return func(stage string, done, total int64) {
		if stage != cur {
			if bar != nil {
				bar.done()
			}
			cur = stage
			bar = newProgressBar(e, map[string]string{"download": "receiving history", "import": "importing history"}[stage])
			if stage == "import" {
				bar.unit = "messages"
			}
		}
		bar.update(done, total)
		if done == total {
			bar.done()
			bar, cur = nil, ""
		}
	}
}

func (e *env) options(newProfile bool) (client.Options, error) {
	pass, err := passphrase(e, newProfile)
	if err != nil {
		return client.Options{}, err
	}
	opts := client.Options{Dir: e.flags.profile, Passphrase: pass}
	// A moderators' decision about the account is told once, by whatever
	// command first hears of it (parley account decisions lists them all).
	opts.OnModerationNotice = func(n client.ModerationNotice) {
		fmt.Fprintf(e.stderr, "parley: %s\n", client.DescribeNotice(n))
	}
	opts.OnHistoryProgress = e.historyProgress()
	if w := os.Getenv("PARLEY_KT_WITNESS"); w != "" {
		opts.KTWitnesses = strings.Split(w, ",")
	}
	if newProfile {
		kdf, err := kdfFromEnv()
		if err != nil {
			return opts, err
		}
		if kdf != nil && (kdf.MemoryKiB < minSafeKDFMemoryKiB || kdf.Time < 1) {
			fmt.Fprintf(e.stderr, "parley: warning: PARLEY_KDF uses %d KiB of memory, under the %d KiB that Argon2id needs to slow down guessing of a stolen profile's passphrase: use such settings for tests only\n",
				kdf.MemoryKiB, minSafeKDFMemoryKiB)
		}
		opts.KDF = kdf
	}
	return opts, nil
}

// open opens the profile's client.
func (e *env) open(ctx context.Context) (*client.Client, error) {
	if !profile.Exists(e.flags.profile) {
		return nil, fmt.Errorf("no profile in %s: run \"parley init\" (or \"parley devices link\") first, or pass --profile", e.flags.profile)
	}
	opts, err := e.options(false)
	if err != nil {
		return nil, err
	}
	c, err := client.Open(ctx, opts)
	if errors.Is(err, profile.ErrWrongPassphrase) {
		return nil, errors.New("wrong passphrase for this profile")
	}
	return c, err
}

// withClient adapts a command that works on the opened profile: it opens
// the client, runs run, closes the client and prints what the client
// gathered meanwhile (security alerts, warnings, imported history).
func withClient(run func(ctx context.Context, e *env, c *client.Client, args []string) error) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := e.open(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		defer e.warnings(c)
		return run(ctx, e, c, args)
	}
}

// warnings prints the client's warnings on stderr.
func (e *env) warnings(c *client.Client) {
	for _, h := range c.TakeReceivedHistory() {
		fmt.Fprintf(e.stderr, "parley: imported your history from device %s: %d message(s) in %d conversation(s)\n", h.From, h.Messages, h.Conversations)
	}
	for _, w := range c.Warnings() {
		where := w.Conversation
		if where == "" {
			where = "inbox"
		}
		if w.Alert {
			// Security alerts go to stderr in every mode and, with --json,
			// also to stdout as an event a script cannot overlook.
			fmt.Fprintf(e.stderr, "parley: SECURITY ALERT: %s: %s\n", where, w.Err)
			if e.flags.json {
				json.NewEncoder(e.stdout).Encode(map[string]any{"kind": "alert", "conversation": w.Conversation, "alert": w.Err})
			}
			continue
		}
		fmt.Fprintf(e.stderr, "parley: warning: %s: message %s: %s\n", where, w.ID, w.Err)
	}
}

func cmdInit(ctx context.Context, e *env, args []string) error {
	if e.flags.server == "" || e.flags.name == "" {
		return usageErr("--server and --name are required")
	}
	if profile.Exists(e.flags.profile) {
		return fmt.Errorf("%s already holds a profile; use another --profile", e.flags.profile)
	}
	opts, err := e.options(true)
	if err != nil {
		return err
	}
	c, err := client.Init(ctx, opts, e.flags.server, e.flags.name, e.flags.invite)
	if err != nil {
		return err
	}
	defer c.Close()
	s := c.Self()
	return e.print(s, fmt.Sprintf("Created account %s on %s; this device is %s.\nProfile: %s", s.User, s.Server, s.DeviceID, e.flags.profile))
}

func cmdSend(ctx context.Context, e *env, args []string) error {
	if res, ok, err := e.daemonSend(ctx, args[0], args[1], e.flags.replyTo); ok {
		if err != nil {
			return err
		}
		return e.printSend(res)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if e.flags.noQueue {
		var sent client.Sent
		if e.flags.replyTo != "" {
			sent, err = c.SendReply(ctx, args[0], e.flags.replyTo, args[1])
		} else {
			sent, err = c.SendText(ctx, args[0], args[1])
		}
		if err != nil {
			return err
		}
		return e.print(sent, deliveryLine(sent))
	}
	var res client.SendResult
	if e.flags.replyTo != "" {
		res, err = c.Reply(ctx, args[0], e.flags.replyTo, args[1])
	} else {
		res, err = c.Send(ctx, args[0], args[1])
	}
	if err != nil {
		return err
	}
	return e.printSend(sendOutput(res))
}

// sendJSON is what send prints with --json (and the daemon answers):
// the delivery receipt's fields, or {"queued": ..., "error": ...}.
type sendJSON struct {
	*client.Sent
	Queued *client.Queued `json:"queued,omitempty"`
	Error  string         `json:"error,omitempty"`
	Before []client.Sent  `json:"before,omitempty"`
}

func sendOutput(res client.SendResult) sendJSON {
	out := sendJSON{Sent: res.Sent, Queued: res.Queued, Before: res.Before}
	if res.Err != nil {
		out.Error = explain(res.Err)
		if !strings.HasPrefix(out.Error, "cannot reach the server") {
			out.Error = "cannot reach the server: " + out.Error
		}
	}
	return out
}

func (e *env) printSend(res sendJSON) error {
	if e.flags.json {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	for _, s := range res.Before {
		fmt.Fprintln(e.stdout, "Queued earlier: "+deliveryLine(s))
	}
	if res.Queued != nil {
		_, err := fmt.Fprintf(e.stdout, "Queued message %s to %s: %s.\nIt is sent, once, by your next parley send, sync or chat (see parley outbox).\n",
			res.Queued.ID, res.Queued.Conversation, res.Error)
		return err
	}
	if res.Sent == nil {
		return errors.New("the message was not sent")
	}
	_, err := fmt.Fprintln(e.stdout, deliveryLine(*res.Sent))
	return err
}

func cmdOutbox(ctx context.Context, e *env, c *client.Client, args []string) error {
	switch {
	case e.flags.discard != "":
		id := e.flags.discard
		if id == "failed" {
			id = ""
		}
		n, err := c.DiscardOutbox(ctx, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no such entry in the outbox: %s", e.flags.discard)
		}
		return e.print(map[string]int{"discarded": n}, fmt.Sprintf("Dropped %d message(s) from the outbox.", n))
	case e.flags.retry:
		if _, err := c.RetryOutbox(ctx, ""); err != nil {
			return err
		}
		res, err := c.FlushOutbox(ctx)
		for _, s := range res.Sent {
			e.print(map[string]any{"kind": "sent", "sent": s}, deliveryLine(s))
		}
		if err != nil {
			return fmt.Errorf("%d message(s) still queued: %w", res.Pending, err)
		}
	}
	q, err := c.Outbox(ctx)
	if err != nil {
		return err
	}
	for _, m := range q {
		state := "queued"
		if m.Failed {
			state = "FAILED: " + explain(errors.New(m.LastError))
		} else if m.LastError != "" {
			state = "queued (last attempt: " + explain(errors.New(m.LastError)) + ")"
		}
		if m.ReplyTo != "" {
			state += ", reply to " + m.ReplyTo
		}
		e.print(m, fmt.Sprintf("%s  %s  %s  %s: %s", m.ID, m.QueuedAt.Local().Format("2006-01-02 15:04"), m.Conversation, state, sanitize(m.Text)))
	}
	if len(q) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "The outbox is empty: everything was sent.")
	}
	return nil
}

func cmdReact(ctx context.Context, e *env, c *client.Client, args []string) error {
	sent, err := c.React(ctx, args[0], args[1], e.flags.remove)
	if err != nil {
		return err
	}
	what := "Reacted " + args[1] + " to"
	if e.flags.remove {
		what = "Removed your reaction " + args[1] + " to"
	}
	return e.print(map[string]any{"sent": sent, "target": args[0], "reaction": args[1], "removed": e.flags.remove},
		fmt.Sprintf("%s message %s in %s (seq %d).", what, args[0], sent.Conversation, sent.Seq))
}

func cmdEdit(ctx context.Context, e *env, c *client.Client, args []string) error {
	sent, err := c.Edit(ctx, args[0], args[1])
	if err != nil {
		return err
	}
	return e.print(map[string]any{"sent": sent, "target": args[0]},
		fmt.Sprintf("Edited message %s in %s (seq %d).", args[0], sent.Conversation, sent.Seq))
}

func cmdDelete(ctx context.Context, e *env, c *client.Client, args []string) error {
	if !e.flags.everyone {
		if err := c.DeleteForMe(ctx, args[0]); err != nil {
			return err
		}
		return e.print(map[string]any{"deleted": args[0], "everyone": false},
			fmt.Sprintf("Deleted message %s from this device.", args[0]))
	}
	sent, err := c.DeleteForEveryone(ctx, args[0])
	if err != nil {
		return err
	}
	return e.print(map[string]any{"deleted": args[0], "everyone": true, "sent": sent},
		fmt.Sprintf("Deleted message %s for everyone in %s (seq %d).", args[0], sent.Conversation, sent.Seq))
}

func cmdForward(ctx context.Context, e *env, c *client.Client, args []string) error {
	sent, err := c.Forward(ctx, args[0], args[1])
	if err != nil {
		return err
	}
	return e.print(sent, fmt.Sprintf("Forwarded message %s to %s as %s (seq %d).", args[0], sent.Conversation, sent.ID, sent.Seq))
}

func deliveryLine(s client.Sent) string {
	what := "message"
	if s.File != nil {
		what = fmt.Sprintf("file %s (%d bytes)", s.File.Name, s.File.Size)
	}
	return fmt.Sprintf("Sent %s %s to %s: stored by the server (seq %d).", what, s.ID, s.Conversation, s.Seq)
}

func cmdSendFile(ctx context.Context, e *env, c *client.Client, args []string) error {
	bar := newProgressBar(e, "uploading")
	sent, err := c.SendFile(ctx, args[0], args[1], bar.update)
	bar.done()
	if err != nil {
		return err
	}
	return e.print(sent, deliveryLine(sent))
}

func cmdGetFile(ctx context.Context, e *env, c *client.Client, args []string) error {
	bar := newProgressBar(e, "downloading")
	path, info, err := c.GetFile(ctx, args[0], e.flags.out, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	out := struct {
		Path string `json:"path"`
		client.FileInfo
	}{path, info}
	return e.print(out, fmt.Sprintf("Saved %s (%d bytes, SHA-256 verified) to %s.", info.Name, info.Size, path))
}

func cmdSync(ctx context.Context, e *env, args []string) error {
	if ok, err := e.daemonSync(ctx); ok {
		return err
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if e.flags.follow {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		n := 0
		// Every message of a batch is printed (it is no longer "new"),
		// even past --max.
		err := c.Watch(ctx, client.WatchOptions{Channels: true, ChannelPoll: e.flags.channelPoll}, func(ev client.Event) {
			switch ev.Type {
			case client.EventMessage:
				e.show(syncItem{msg: ev.Message})
				e.ring(ev.Message, c.Self().User)
			case client.EventChannelPost:
				e.show(syncItem{post: ev.ChannelPost})
			case client.EventSent:
				e.show(syncItem{sent: ev.Sent})
				return
			case client.EventDisconnected:
				if !e.flags.json {
					fmt.Fprintf(e.stderr, "parley: %s; retrying in %s\n", explain(ev.Err), ev.RetryIn.Round(100*time.Millisecond))
				}
				return
			case client.EventConnected:
				return
			case client.EventTyping:
				e.showTyping(ev.Typing)
				return
			case client.EventHistory:
				h := ev.History
				fmt.Fprintf(e.stderr, "parley: imported your history from device %s: %d message(s) in %d conversation(s)\n", h.From, h.Messages, h.Conversations)
				return
			default:
				return
			}
			e.warnings(c)
			if n++; e.flags.max > 0 && n >= e.flags.max {
				cancel()
			}
		})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	res, err := c.Sync(ctx)
	if err != nil {
		return err
	}
	var items []syncItem
	for i := range res.Messages {
		items = append(items, syncItem{msg: &res.Messages[i]})
	}
	posts, err := c.ChannelUpdates(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "parley: warning: public channels: %s\n", explain(err))
	}
	for i := range posts {
		items = append(items, syncItem{post: &posts[i]})
	}
	for _, it := range interleave(items) {
		e.show(it)
	}
	fr, ferr := c.FlushOutbox(ctx)
	for i := range fr.Sent {
		e.show(syncItem{sent: &fr.Sent[i]})
	}
	if ferr != nil {
		fmt.Fprintf(e.stderr, "parley: %d message(s) still in the outbox: %s\n", fr.Pending, explain(ferr))
	}
	if len(items) == 0 && len(fr.Sent) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "Nothing new.")
	}
	if !e.flags.json {
		// A stranger's first messages are not shown: say that they wait.
		if reqs, err := c.Requests(ctx); err == nil && len(reqs) > 0 {
			var who []string
			for _, r := range reqs {
				who = append(who, r.User)
			}
			fmt.Fprintf(e.stderr, "Message requests from %s: parley requests, then parley requests accept @USER (or delete).\n", strings.Join(who, ", "))
		}
	}
	return nil
}

// syncItem is one line of sync's output: a message, a public channel's
// post, or a queued message delivered.
type syncItem struct {
	msg  *client.Message
	post *client.ChannelPost
	sent *client.Sent
}

func (it syncItem) when() time.Time {
	if it.msg != nil {
		return it.msg.SentAt
	}
	if it.post != nil {
		return it.post.SentAt
	}
	return time.Time{}
}

func (it syncItem) stream() string {
	if it.msg != nil {
		return it.msg.ConversationID
	}
	if it.post != nil {
		return "~" + it.post.Channel
	}
	return ""
}

// interleave orders what sync prints by time across conversations and
// channels while keeping each one's own order (the server's, which a
// sender's clock cannot reorder): a merge of the streams by the time of
// their next item. Times are compared to the second: the server dates
// messages to the second (MIMI content carries no time of its own), so
// finer channel post times would misorder items of the same second.
func interleave(items []syncItem) []syncItem {
	var order []string
	streams := map[string][]syncItem{}
	for _, it := range items {
		k := it.stream()
		if _, ok := streams[k]; !ok {
			order = append(order, k)
		}
		streams[k] = append(streams[k], it)
	}
	out := make([]syncItem, 0, len(items))
	for len(out) < len(items) {
		best := ""
		for _, k := range order {
			if len(streams[k]) == 0 {
				continue
			}
			if best == "" || streams[k][0].when().Truncate(time.Second).Before(streams[best][0].when().Truncate(time.Second)) {
				best = k
			}
		}
		out = append(out, streams[best][0])
		streams[best] = streams[best][1:]
	}
	return out
}

// show prints one sync item as text or a JSON line.
func (e *env) show(it syncItem) {
	switch {
	case it.msg != nil && e.flags.json:
		json.NewEncoder(e.stdout).Encode(it.msg)
	case it.msg != nil:
		fmt.Fprintln(e.stdout, formatMessage(*it.msg))
	case it.post != nil && e.flags.json:
		json.NewEncoder(e.stdout).Encode(it.post)
	case it.post != nil:
		fmt.Fprintln(e.stdout, formatChannelPost(*it.post))
	case it.sent != nil:
		e.print(map[string]any{"kind": "sent", "sent": it.sent}, "Sent from the outbox: "+deliveryLine(*it.sent))
	}
}

// showTyping prints a typing indicator (sync --follow).
func (e *env) showTyping(t *client.Typing) {
	if e.flags.json {
		json.NewEncoder(e.stdout).Encode(map[string]any{"kind": "typing", "typing": t})
		return
	}
	if t.Typing {
		fmt.Fprintf(e.stdout, "%s %s is typing…\n", t.Conversation, t.User)
	} else {
		fmt.Fprintf(e.stdout, "%s %s stopped typing\n", t.Conversation, t.User)
	}
}

// formatChannelPost is the text form of a followed channel's event.
func formatChannelPost(p client.ChannelPost) string {
	when := p.SentAt.Local().Format("2006-01-02 15:04")
	if p.Kind == client.KindChannelTakedown || p.Post == nil {
		return fmt.Sprintf("[%s] ~%s (public) post %d was taken down (%s)", when, p.Channel, p.PostID, sanitize(p.Reason))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ~%s (public) %s: %s", when, p.Channel, sanitize(p.Post.Author), sanitize(p.Post.Text))
	for _, m := range p.Post.Media {
		fmt.Fprintf(&b, "\n    media %d: %s, %d bytes — parley channel get-media %s %d %d", m.Index, sanitize(m.ContentType), m.Size, p.Channel, p.PostID, m.Index)
	}
	return b.String()
}

// formatMessage is the one-line text form of a message.
func formatMessage(m client.Message) string {
	when := m.SentAt.Local().Format("2006-01-02 15:04")
	who := m.Sender.User
	if m.Outgoing {
		who = "you"
	}
	var line string
	switch m.Kind {
	case client.KindReceipt:
		return fmt.Sprintf("[%s] %s %s read %s", when, m.Conversation, m.Sender.User, strings.Join(m.ReceiptFor, ", "))
	case client.KindMembership, client.KindTimer:
		return fmt.Sprintf("[%s] %s * %s", when, m.Conversation, m.Text)
	case client.KindReaction:
		return fmt.Sprintf("[%s] %s * %s", when, m.Conversation, sanitize(m.Text))
	case client.KindEdit:
		return fmt.Sprintf("[%s] %s %s edited %s: %s", when, m.Conversation, who, m.Target, sanitize(m.Text))
	case client.KindDelete:
		return fmt.Sprintf("[%s] %s * %s", when, m.Conversation, sanitize(m.Text))
	case client.KindFile:
		if m.File != nil && !m.Deleted {
			line = fmt.Sprintf("[%s] %s %s: sent file %q (%d bytes) — parley get-file %s", when, m.Conversation, who, sanitize(m.File.Name), m.File.Size, m.ID)
		}
	}
	if line == "" {
		text := sanitize(m.Text)
		if m.Deleted {
			text = "(deleted)"
		}
		line = fmt.Sprintf("[%s] %s %s: %s", when, m.Conversation, who, text)
	}
	var tags []string
	if m.ReplyTo != "" {
		q := "message " + m.ReplyTo
		if m.Quote != "" {
			q = "\u201c" + sanitize(m.Quote) + "\u201d"
		}
		tags = append(tags, "reply to "+q)
	}
	if m.Forwarded {
		tags = append(tags, "forwarded")
	}
	if m.Edited && !m.Deleted {
		tags = append(tags, "edited")
	}
	if m.Mentioned {
		tags = append(tags, "mentions you")
	}
	if !m.ExpiresAt.IsZero() {
		tags = append(tags, "disappears "+m.ExpiresAt.Local().Format("2006-01-02 15:04:05"))
	}
	if len(m.Reactions) > 0 {
		var order []string
		by := map[string][]string{}
		for _, r := range m.Reactions {
			if by[r.Emoji] == nil {
				order = append(order, r.Emoji)
			}
			by[r.Emoji] = append(by[r.Emoji], r.User)
		}
		var rs []string
		for _, e := range order {
			rs = append(rs, sanitize(e)+" "+strings.Join(by[e], ", "))
		}
		tags = append(tags, strings.Join(rs, "; "))
	}
	if len(tags) > 0 {
		line += "  [" + strings.Join(tags, "] [") + "]"
	}
	return line + "  (" + m.ID + ")"
}

// sanitize removes terminal control characters from text from others.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func cmdHistory(ctx context.Context, e *env, args []string) error {
	msgs, ok, err := e.daemonHistory(args[0], e.flags.limit)
	if !ok {
		var c *client.Client
		if c, err = e.open(ctx); err != nil {
			return err
		}
		defer c.Close()
		msgs, err = c.History(ctx, args[0], e.flags.limit)
	}
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(m)
		} else {
			fmt.Fprintln(e.stdout, formatMessage(m))
		}
	}
	return nil
}

func cmdSearch(ctx context.Context, e *env, c *client.Client, args []string) error {
	msgs, err := c.Search(ctx, args[0], e.flags.limit)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(m)
		} else {
			fmt.Fprintf(e.stdout, "%s  %s\n", m.Conversation, formatMessage(m))
		}
	}
	if len(msgs) == 0 && !e.flags.json {
		fmt.Fprintf(e.stderr, "No message contains %q.\n", args[0])
	}
	return nil
}

func cmdTimer(ctx context.Context, e *env, args []string) error {
	var d time.Duration
	if len(args) == 2 {
		var err error
		if d, err = client.ParseTimer(args[1]); err != nil {
			return usageErr("%v", err)
		}
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if len(args) == 1 {
		cur, err := c.Timer(ctx, args[0])
		if err != nil {
			return err
		}
		text := fmt.Sprintf("Disappearing messages in %s: %s.", args[0], client.FormatTimer(cur))
		return e.print(map[string]any{"conversation": args[0], "timer": client.FormatTimer(cur), "seconds": int64(cur / time.Second)}, text)
	}
	res, err := c.SetTimer(ctx, args[0], d)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("Disappearing messages in %s set to %s for everyone.", res.Conversation, res.Timer)
	if d == 0 {
		text = fmt.Sprintf("Disappearing messages in %s turned off for everyone.", res.Conversation)
	}
	return e.print(res, text)
}

func cmdTyping(ctx context.Context, e *env, c *client.Client, args []string) error {
	switch args[0] {
	case "on", "off":
		if err := c.SetTypingIndicators(ctx, args[0] == "on"); err != nil {
			return err
		}
		return e.print(map[string]any{"typing_indicators": args[0] == "on"}, "Typing indicators are "+args[0]+" on your devices (parley settings typing).")
	case "status":
		on, err := c.TypingIndicators(ctx)
		if err != nil {
			return err
		}
		state := map[bool]string{true: "on", false: "off"}[on]
		return e.print(map[string]any{"typing_indicators": on}, "Typing indicators are "+state+" on your devices (parley settings typing).")
	}
	if !strings.HasPrefix(args[0], "@") && !strings.HasPrefix(args[0], "#") {
		return usageErr("typing takes on, off, status, or a conversation (@user or #group)")
	}
	sent, err := c.SendTyping(ctx, args[0], !e.flags.remove)
	if err != nil {
		return err
	}
	text := "Sent."
	if !sent {
		text = "Not sent (typing indicators are off (parley settings typing), or one was sent just now)."
	}
	return e.print(map[string]any{"conversation": args[0], "sent": sent}, text)
}

func cmdGroupCreate(ctx context.Context, e *env, c *client.Client, args []string) error {
	conv, err := c.CreateGroup(ctx, strings.TrimPrefix(args[0], "#"), args[1:])
	if err != nil {
		return err
	}
	return e.print(conv, fmt.Sprintf("Created %s.", conv.Label))
}

func cmdGroupAdd(ctx context.Context, e *env, c *client.Client, args []string) error {
	if err := c.AddMembers(ctx, args[0], args[1:]); err != nil {
		return err
	}
	users := userNames(args[1:])
	return e.print(map[string]any{"group": "#" + strings.TrimPrefix(args[0], "#"), "added": users},
		fmt.Sprintf("Added %s to #%s.", strings.Join(users, ", "), strings.TrimPrefix(args[0], "#")))
}

func cmdGroupRemove(ctx context.Context, e *env, c *client.Client, args []string) error {
	if err := c.RemoveMembers(ctx, args[0], args[1:]); err != nil {
		return err
	}
	users := userNames(args[1:])
	return e.print(map[string]any{"group": "#" + strings.TrimPrefix(args[0], "#"), "removed": users},
		fmt.Sprintf("Removed %s from #%s.", strings.Join(users, ", "), strings.TrimPrefix(args[0], "#")))
}

func cmdGroupLeave(ctx context.Context, e *env, c *client.Client, args []string) error {
	if err := c.LeaveGroup(ctx, args[0]); err != nil {
		return err
	}
	name := "#" + strings.TrimPrefix(args[0], "#")
	return e.print(map[string]any{"group": name, "leaving": true},
		fmt.Sprintf("Asked to leave %s: you are out once another member's client completes it (at its next sync).", name))
}

func userNames(args []string) []string {
	var out []string
	for _, a := range args {
		out = append(out, strings.TrimPrefix(a, "@"))
	}
	return out
}

func cmdGroupList(ctx context.Context, e *env, c *client.Client, args []string) error {
	convs, err := c.Conversations(ctx)
	if err != nil {
		return err
	}
	for _, cv := range convs {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(cv)
			continue
		}
		users := map[string]int{}
		var order []string
		for _, m := range cv.Members {
			if users[m.User] == 0 {
				order = append(order, m.User)
			}
			users[m.User]++
		}
		var parts []string
		for _, u := range order {
			if users[u] > 1 {
				parts = append(parts, fmt.Sprintf("%s (%d devices)", u, users[u]))
			} else {
				parts = append(parts, u)
			}
		}
		state := ""
		switch {
		case cv.Refused:
			state = fmt.Sprintf(" (SECURITY ALERT: the other members refused the commit by which %s added you; you saw only a copy shared with %[1]s; history read-only)", cv.RefusedBy)
		case cv.Left:
			state = " (you left; history read-only)"
		case cv.Imported && cv.Removed:
			state = " (imported; history read-only)"
		case cv.Removed:
			state = " (you were removed; history read-only)"
		case cv.Request:
			state = " (message request: parley requests)"
		}
		if cv.Muted != nil {
			state += " (muted)"
		}
		fmt.Fprintf(e.stdout, "%-20s %s%s\n", cv.Label, strings.Join(parts, ", "), state)
	}
	if len(convs) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "No conversations yet.")
	}
	return nil
}

func cmdDevicesLink(ctx context.Context, e *env, args []string) error {
	if e.flags.server == "" || e.flags.name == "" {
		return usageErr("--server and --name are required")
	}
	if profile.Exists(e.flags.profile) {
		return fmt.Errorf("%s already holds a profile; use another --profile", e.flags.profile)
	}
	wait, err := time.ParseDuration(e.flags.wait)
	if err != nil {
		return usageErr("--wait: %v", err)
	}
	opts, err := e.options(true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := client.LinkDevice(ctx, opts, e.flags.server, e.flags.name, func(code string, expires time.Time) {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(map[string]any{"code": code, "expires": expires.UTC()})
		} else {
			fmt.Fprintf(e.stdout, "Link code: %s\nOn one of your existing devices run:  parley devices add %s\nWaiting for approval (until %s)...\n",
				code, code, expires.Local().Format("15:04:05"))
		}
		if e.flags.codeFile != "" {
			if err := os.WriteFile(e.flags.codeFile, []byte(code+"\n"), 0o600); err != nil {
				fmt.Fprintf(e.stderr, "parley: %v\n", err)
			}
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	s := c.Self()
	if !e.flags.history {
		return e.print(map[string]any{"linked": true, "user": s.User, "device": s.DeviceID},
			fmt.Sprintf("Linked: this device is %s of %s. Run \"parley sync\" to see new messages.", s.DeviceID, s.User))
	}
	if !e.flags.json {
		fmt.Fprintf(e.stdout, "Linked: this device is %s of %s.\nWaiting for your history from the approving device (approve there with --history)...\n", s.DeviceID, s.User)
	}
	got, err := c.WaitForHistory(ctx)
	if err != nil {
		return fmt.Errorf("this device is linked, but its history did not arrive: %w", err)
	}
	return e.print(map[string]any{"linked": true, "user": s.User, "device": s.DeviceID, "history": got},
		fmt.Sprintf("Imported your history: %d message(s) in %d conversation(s).", got.Messages, got.Conversations))
}

func cmdDevicesAdd(ctx context.Context, e *env, args []string) error {
	wait, err := time.ParseDuration(e.flags.wait)
	if err != nil {
		return usageErr("--wait: %v", err)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if e.flags.history && e.flags.noHistory {
		return usageErr("--history and --no-history contradict each other")
	}
	dev, n, err := c.ApproveDevice(ctx, strings.TrimSpace(args[0]), wait)
	if err != nil {
		return err
	}
	out := map[string]any{"device": dev, "conversations": n}
	approved := fmt.Sprintf("Approved device %s and added it to %d conversation(s).", dev.ID, n)
	send := e.flags.history
	if !send && !e.flags.noHistory && !e.flags.json {
		asked := false
		if send, asked = e.askYesNo(approved + "\nAlso send it your message history (end to end encrypted: the server cannot read it)? [y/N] "); asked {
			approved = "" // already on the screen
		}
		if !send {
			approved = strings.TrimPrefix(approved+fmt.Sprintf("\nHistory not sent (to send it later: parley devices send-history %s).", dev.ID), "\n")
		}
	}
	if !send {
		return e.print(out, approved)
	}
	sent, err := e.sendHistory(ctx, c, dev.ID)
	if err != nil {
		return fmt.Errorf("device %s is approved and added to %d conversation(s), but the history was not sent: %w (retry with: parley devices send-history %s)", dev.ID, n, err, dev.ID)
	}
	out["history"] = sent
	return e.print(out, strings.TrimPrefix(approved+"\n"+sentText(sent), "\n"))
}

func cmdDevicesSendHistory(ctx context.Context, e *env, c *client.Client, args []string) error {
	sent, err := e.sendHistory(ctx, c, args[0])
	if err != nil {
		return err
	}
	return e.print(map[string]any{"history": sent}, sentText(sent))
}

// sendHistory sends the history to device id with progress bars.
func (e *env) sendHistory(ctx context.Context, c *client.Client, id string) (client.HistoryTransfer, error) {
	bars := map[string]*progressBar{}
	defer func() {
		for _, b := range bars {
			b.done()
		}
	}()
	return c.SendHistory(ctx, id, func(stage string, done, total int64) {
		b := bars[stage]
		if b == nil {
			for _, old := range bars {
				old.done()
			}
			clear(bars)
			b = newProgressBar(e, map[string]string{"export": "exporting history", "upload": "uploading history"}[stage])
			if stage == "export" {
				b.unit = "messages"
			}
			bars[stage] = b
		}
		b.update(done, total)
	})
}

func sentText(t client.HistoryTransfer) string {
	return fmt.Sprintf("Sent your history to device %s: %d message(s) in %d conversation(s), %s encrypted; it is imported at that device's next sync.",
		t.Device, t.Messages, t.Conversations, bytesize.Format(t.Bytes))
}

// askYesNo asks on the terminal whether yes, and reports whether it
// could ask; without a terminal (a script) the answer is no.
func (e *env) askYesNo(question string) (yes, asked bool) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, false
	}
	fmt.Fprint(e.stderr, question)
	line, _ := bufio.NewReader(f).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", true
}

func cmdDevicesList(ctx context.Context, e *env, c *client.Client, args []string) error {
	devs, err := c.Devices(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(d)
			continue
		}
		cur := ""
		if d.Current {
			cur = "  (this device)"
		}
		if !d.Signed {
			cur += "  NOT SIGNED: not in your account's signed device list (you did not add it; nobody sends to it)"
		}
		fmt.Fprintf(e.stdout, "%s  added %s  key %s…%s\n", d.ID, d.Created.Local().Format("2006-01-02 15:04"), d.Key[:min(len(d.Key), 16)], cur)
	}
	return nil
}

func cmdDevicesRemove(ctx context.Context, e *env, c *client.Client, args []string) error {
	n, err := c.RemoveDevice(ctx, args[0])
	if err != nil {
		return err
	}
	return e.print(map[string]any{"removed": args[0], "conversations": n},
		fmt.Sprintf("Removed device %s from the account and %d conversation(s).", args[0], n))
}

func cmdResetAccountKey(ctx context.Context, e *env, args []string) error {
	if !e.flags.yes {
		return errors.New("this replaces your account key and removes every other device of the account; run it again with --yes to go ahead")
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	removed, err := c.ResetAccountKey(ctx)
	if err != nil {
		return err
	}
	return e.print(map[string]any{"primary": c.Self().DeviceID, "removed": removed},
		fmt.Sprintf("This device is now the primary, with a new account key; removed %d other device(s): %s. Ask your contacts to compare safety numbers with you and run parley verify @%s.",
			len(removed), strings.Join(removed, ", "), c.Self().User))
}

func cmdAccountDecisions(ctx context.Context, e *env, c *client.Client, args []string) error {
	ns, err := c.FetchModerationDecisions(ctx)
	if err != nil {
		return err
	}
	if ns == nil {
		ns = []client.ModerationNotice{}
	}
	var b strings.Builder
	if len(ns) == 0 {
		b.WriteString("Moderators have taken no decision about this account.")
	}
	for i, n := range ns {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(client.DescribeNotice(n))
	}
	return e.print(ns, b.String())
}

func cmdAccountDelete(ctx context.Context, e *env, c *client.Client, args []string) error {
	self := c.Self()
	if err := c.DeleteAccount(ctx, args[0]); err != nil {
		return err
	}
	return e.print(map[string]any{"deleted": self.User, "profile": e.flags.profile},
		fmt.Sprintf("Deleted account %s: its devices are signed out and removed from every conversation.\nThis profile still holds your history: delete %s when you no longer need it.", self.User, e.flags.profile))
}

func cmdSafetyNumber(ctx context.Context, e *env, args []string) error {
	user := strings.TrimPrefix(args[0], "@")
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	n, err := c.SafetyNumber(ctx, user)
	if err != nil {
		return err
	}
	f := safety.Format(n)
	groups := strings.Fields(f)
	var rows []string
	for i := 0; i < len(groups); i += 4 {
		rows = append(rows, "  "+strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	return e.print(map[string]string{"user": user, "safety_number": n, "formatted": f},
		fmt.Sprintf("Safety number with %s:\n%s\nCompare it with %s; it is the same on both sides if no one intercepts.", user, strings.Join(rows, "\n"), user))
}

func cmdChat(ctx context.Context, e *env, args []string) error {
	if e.flags.json {
		return usageErr("chat is interactive; it has no --json output")
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	in, _ := e.stdin.(*os.File)
	out, _ := e.stdout.(*os.File)
	if in == nil || out == nil {
		return errors.New("chat needs a terminal")
	}
	return tui.Run(ctx, tui.NewBackend(c), in, out)
}

func cmdPrivacy(ctx context.Context, e *env, block, unblock []string) error {
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := c.UpdatePrivacy(ctx, block, unblock, e.flags.groupInvites)
	if err != nil {
		return err
	}
	if e.flags.json {
		return json.NewEncoder(e.stdout).Encode(p)
	}
	blocked := "nobody"
	if len(p.Blocked) > 0 {
		blocked = strings.Join(p.Blocked, ", ")
	}
	fmt.Fprintf(e.stdout, "blocked: %s\ngroup invitations from: %s\n", blocked, p.GroupInvites)
	return nil
}

func cmdVerify(ctx context.Context, e *env, c *client.Client, args []string) error {
	v, err := c.Verify(ctx, args[0], e.flags.clear)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("%s is verified (%d devices, list version %d): if they change, nothing is sent to %s until you compare safety numbers again and run parley verify @%s.", v.User, v.Devices, v.Version, v.User, v.User)
	if !v.Verified {
		text = fmt.Sprintf("%s is no longer marked verified.", v.User)
	}
	return e.print(v, text)
}

func cmdReport(ctx context.Context, e *env, c *client.Client, args []string) error {
	plan, err := c.PlanReport(ctx, args[0], e.flags.messages, e.flags.last, e.flags.reason, e.flags.note)
	if err != nil {
		return err
	}
	if !e.flags.yes {
		var b strings.Builder
		fmt.Fprintf(&b, "This report (%s) would send these %d message(s) of %s to the server's moderators, with the proof of who sent each:\n", plan.Reason, len(plan.Messages), plan.Conversation)
		for _, m := range plan.Messages {
			fmt.Fprintf(&b, "  %s  %s  %s: %s\n", m.ID, m.At.Local().Format("2006-01-02 15:04"), m.Sender.User, m.Text)
		}
		if plan.Note != "" {
			fmt.Fprintf(&b, "and your note: %q\n", plan.Note)
		}
		b.WriteString("Nothing was sent. Run the same command with --yes to send it.")
		return e.print(map[string]any{"sent": false, "plan": plan}, b.String())
	}
	id, err := c.Report(ctx, plan)
	if err != nil {
		return err
	}
	return e.print(map[string]any{"sent": true, "case": id, "messages": len(plan.Messages)},
		fmt.Sprintf("Reported %d message(s) of %s to the moderators (case %s).", len(plan.Messages), plan.Conversation, id))
}

func cmdAppeal(ctx context.Context, e *env, c *client.Client, args []string) error {
	if err := c.Appeal(ctx, args[0], args[1]); err != nil {
		return err
	}
	return e.print(map[string]string{"appealed": args[0]}, fmt.Sprintf("Appealed the decision on case %s; another moderator will decide it.", args[0]))
}

func cmdAudit(ctx context.Context, e *env, c *client.Client, args []string) error {
	rep, err := c.Audit(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Key transparency log %s, key %s\n", rep.Origin, rep.LogKey)
	for _, w := range rep.Witnesses {
		fmt.Fprintf(&b, "  cosigned by auditor %s\n", w)
	}
	if len(rep.Witnesses) == 0 {
		b.WriteString("  no auditor required (set PARLEY_KT_WITNESS to require one)\n")
	}
	fmt.Fprintf(&b, "Trusted checkpoint: %d epochs, root %s\n", rep.Size, rep.Root)
	fmt.Fprintf(&b, "This account: every version checked, the latest from epoch %d\n", rep.OwnEpoch)
	for _, ct := range rep.Contacts {
		fmt.Fprintf(&b, "  %s: list version %d (%d devices), verified at epoch %d\n", ct.User, ct.Version, ct.Devices, ct.Epoch)
	}
	for _, a := range rep.Alerts {
		fmt.Fprintf(&b, "SECURITY ALERT: %s\n", a.Err)
	}
	if len(rep.Alerts) == 0 {
		b.WriteString("No alerts.")
	}
	return e.print(rep, strings.TrimRight(b.String(), "\n"))
}

func cmdDeleteFile(ctx context.Context, e *env, c *client.Client, args []string) error {
	if err := c.DeleteFile(ctx, args[0]); err != nil {
		return err
	}
	return e.print(map[string]string{"deleted": args[0]}, fmt.Sprintf("Deleted the file of message %s from the server.", args[0]))
}

func cmdGroupInfo(ctx context.Context, e *env, c *client.Client, args []string) error {
	info, err := c.GroupInfo(ctx, args[0])
	if err != nil {
		return err
	}
	return e.print(info, formatGroupInfo(info))
}

// formatGroupInfo is group info's text form (sanitized: the name and
// topic come from members).
func formatGroupInfo(info client.GroupInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", info.Conversation)
	if !info.Roles {
		b.WriteString("  (a group made by an older Parley: no name, topic, picture or roles; every member may change it)\n")
	}
	if info.Name != "" {
		fmt.Fprintf(&b, "  name:    %s\n", sanitize(info.Name))
	}
	if info.Topic != "" {
		fmt.Fprintf(&b, "  topic:   %s\n", sanitize(info.Topic))
	}
	if p := info.Picture; p != nil {
		fmt.Fprintf(&b, "  picture: %s, %d bytes (parley group picture %s)\n", sanitize(p.Type), p.Size, info.Conversation)
	}
	fmt.Fprintf(&b, "  members (%d):\n", len(info.Members))
	for _, m := range info.Members {
		devices := ""
		if len(m.Devices) > 1 {
			devices = fmt.Sprintf(" (%d devices)", len(m.Devices))
		}
		fmt.Fprintf(&b, "    %-20s %s%s\n", m.User, m.Role, devices)
	}
	fmt.Fprintf(&b, "  you are: %s", info.MyRole)
	return b.String()
}

func cmdGroupSet(ctx context.Context, e *env, args []string) error {
	var set client.GroupSettings
	if e.flags.set["name"] {
		set.Name = &e.flags.groupName
	}
	if e.flags.set["topic"] {
		set.Topic = &e.flags.groupTopic
	}
	set.PicturePath = e.flags.groupPicture
	if set.Name == nil && set.Topic == nil && set.PicturePath == "" {
		return usageErr("give at least one of --name, --topic and --picture")
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	info, err := c.SetGroup(ctx, args[0], set)
	if err != nil {
		return err
	}
	return e.print(info, "Changed "+info.Conversation+".\n"+formatGroupInfo(info))
}

func cmdGroupPicture(ctx context.Context, e *env, c *client.Client, args []string) error {
	path, err := c.GroupPicture(ctx, args[0], e.flags.out)
	if err != nil {
		return err
	}
	return e.print(map[string]string{"path": path}, "Saved the picture of #"+strings.TrimPrefix(args[0], "#")+" to "+path+".")
}

func cmdGroupRole(ctx context.Context, e *env, args []string, admin bool) error {
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if err := c.SetAdmin(ctx, args[0], args[1], admin); err != nil {
		return err
	}
	group, user := "#"+strings.TrimPrefix(args[0], "#"), strings.TrimPrefix(args[1], "@")
	role, verb := client.RoleMember, "no longer an admin of"
	if admin {
		role, verb = client.RoleAdmin, "now an admin of"
	}
	return e.print(map[string]string{"group": group, "user": user, "role": role}, fmt.Sprintf("%s is %s %s.", user, verb, group))
}

func cmdGroupInvite(ctx context.Context, e *env, c *client.Client, args []string) error {
	inv, err := c.CreateInvite(ctx, args[0])
	if err != nil {
		return err
	}
	return e.print(inv, fmt.Sprintf("%s\n\nAnyone with this code can ask to join %s until %s: parley group join CODE.\nSee requests with: parley group requests '%s'",
		inv.Code, inv.Group, inv.Expires.Format(time.RFC3339), inv.Group))
}

func cmdGroupJoin(ctx context.Context, e *env, c *client.Client, args []string) error {
	admin, err := c.JoinGroup(ctx, args[0])
	if err != nil {
		return err
	}
	return e.print(map[string]string{"asked": admin}, fmt.Sprintf("Asked %s to add you; the group arrives at a sync once they approve.", admin))
}

func cmdGroupRequests(ctx context.Context, e *env, c *client.Client, args []string) error {
	reqs, err := c.JoinRequests(ctx, args[0])
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if e.flags.json {
			json.NewEncoder(e.stdout).Encode(r)
			continue
		}
		fmt.Fprintf(e.stdout, "%-20s asked %s\n", r.User, r.At.Local().Format(time.DateTime))
	}
	if len(reqs) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "No pending requests.")
	}
	return nil
}

func cmdGroupApprove(ctx context.Context, e *env, args []string, deny bool) error {
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	defer e.warnings(c)
	if err := c.ApproveJoin(ctx, args[0], args[1], deny); err != nil {
		return err
	}
	group, user := "#"+strings.TrimPrefix(args[0], "#"), strings.TrimPrefix(args[1], "@")
	if deny {
		return e.print(map[string]any{"group": group, "denied": user}, fmt.Sprintf("Dropped %s's request to join %s.", user, group))
	}
	return e.print(map[string]any{"group": group, "added": []string{user}}, fmt.Sprintf("Added %s to %s.", user, group))
}
