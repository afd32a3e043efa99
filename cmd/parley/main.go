// Command parley is the Parley end-to-end encrypted messenger client.
//
//	parley init --server URL --name alice    create an account and this device
//	parley send @bob "text"                  send a message (also '#group')
//	parley sync [--follow]                   print what is new
//	parley chat                              the interactive terminal UI
//
// Run "parley help" for every command. Each command takes --profile DIR
// (default: the "parley" directory in the user's config directory) and
// --json (machine-readable output, one JSON object per line).
//
// The profile holds the device's keys, group states and history in an
// SQLite database encrypted with a key derived from a passphrase
// (Argon2id). The passphrase is read from the terminal without echo, or
// from the PARLEY_PASSPHRASE environment variable for scripts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `parley is an end-to-end encrypted messenger.

Usage:
  parley <command> [flags] [arguments]

Account and devices:
  init --server URL --name NAME   create an account with this device as its first device
  devices link --server URL --name NAME
                                  make this a new device of an existing account
  devices add CODE [--history]    approve a new device (run on an existing one); --history also
                                  sends it your message history, end to end
  devices send-history ID         send your message history to a device approved without it
  devices list                    list this account's devices
  devices remove ID               remove a device from the account and every conversation
  devices reset-account-key --yes after losing the primary device: make this device the primary
  audit                           what this device trusts in the key transparency directory, and alerts
  report @USER|#GROUP --message ID... | --last N --reason R [--note TEXT] [--yes]
                                  report abusive messages to the server's moderators, with proof
  appeal CASE "why"               appeal a moderators' decision on your account (once)
  search TEXT                     find messages in this device's history (on this device only)
  typing on|off|status            send typing indicators, or not (= settings typing)
  account delete NAME             delete your account (NAME: your username, to confirm)
  safety-number @USER             the number to compare with USER to rule out interception
  verify @USER [--clear]          after comparing safety numbers: hold messages to USER if their devices change
  block @USER... / unblock @USER... / blocked
                                  hear nothing from them (or again); list whom you blocked
  requests [accept|delete @USER]  message requests from people you never talked to
  mute @USER|#GROUP [--for 8h] / unmute @USER|#GROUP
                                  stop (or restart) notifications of a conversation
  settings [receipts|requests|typing on|off]
                                  read receipts; message requests; typing indicators (on every device)
  export --out FILE / import FILE move your history to another device of yours (encrypted)
  privacy [--group-invites everyone|contacts]
                                  show who may add you to conversations; limit groups to contacts

Messages:
  send @USER|#GROUP TEXT          send a message (--reply-to ID to answer one; @name mentions)
  react ID EMOJI [--remove]       react to a message, or take the reaction back
  edit ID TEXT                    edit a message you sent (everyone sees it edited)
  delete ID [--everyone]          delete a message here, or one you sent for everyone (24 h)
  forward ID @USER|#GROUP         forward a message, marked as forwarded
  timer @USER|#GROUP [DURATION|off]
                                  disappearing messages: set (1h, 1d, 1w...) or show the timer
  send-file @USER|#GROUP PATH     send a file (encrypted; progress on stderr)
  get-file ID [--out PATH]        download, decrypt and verify a received file
  delete-file ID                  delete a file you sent from the server (frees your quota)
  sync [--follow]                 fetch and print what is new (and send read receipts)
  history @USER|#GROUP            print a conversation's stored history
  info ID                         who of the members got and read a message, and when
  chat                            interactive terminal UI
  outbox [--retry|--discard ID]   messages queued while the server was unreachable, or refused
  daemon                          unlock once, serve JSON-RPC on a Unix socket for scripts and bots

Groups:
  group create NAME @USER...      create a group
  group add NAME @USER...         add people to a group
  group remove NAME @USER...      remove people from a group
  group leave NAME                leave a group (another member's client completes it)
  group list                      list conversations

Public channels (NOT end-to-end encrypted; media checked against hash lists):
  channel create|post|follow|unfollow|read|list|admin|delete ...   see "parley channel --help"

Other:
  hash pdq|md5|sha256 FILE...     print perceptual or cryptographic hashes of files
  hash vpdq|tmk VIDEO             print a video's vPDQ or TMK+PDQF hash (needs ffmpeg)
  version                         print the version

Flags every command takes:
  --profile DIR   the profile directory (default %s)
  --json          print JSON, one object per line
  --verbose       with an error, also print its full internal detail
  --help          explain the command

Environment:
  PARLEY_PASSPHRASE   the profile passphrase (otherwise it is asked for on the terminal)
  PARLEY_PROFILE      the default profile directory
  PARLEY_KDF          Argon2id costs for a new profile, e.g. "t=3,m=65536,p=4"
                      (passes, KiB, threads; default RFC 9106's second recommendation)
`

// command is one parley subcommand.
type command struct {
	name    string
	usage   string // first line: synopsis; then the explanation
	minArgs int
	maxArgs int // -1: unbounded
	// flags registers command-specific flags.
	flags func(fs *flag.FlagSet, f *cmdFlags)
	run   func(ctx context.Context, e *env, args []string) error
}

// cmdFlags holds every flag any command may use.
type cmdFlags struct {
	profile string
	json    bool
	help    bool
	verbose bool

	server string
	name   string
	invite string
	out    string
	follow bool
	max    int
	limit  int
	wait   string
	// codeFile receives the link code (devices link).
	codeFile string
	// groupInvites: who may add the user to groups (privacy).
	groupInvites string
	// group set: --name, --topic, --picture (set tells which were given).
	groupName, groupTopic, groupPicture string
	set                                 map[string]bool
	// clear: verify --clear.
	clear bool
	// yes: devices reset-account-key --yes.
	yes bool
	// history, noHistory: devices add/link --history, --no-history.
	history, noHistory bool
	// replyTo: send --reply-to; remove: react --remove; everyone:
	// delete --everyone.
	replyTo  string
	remove   bool
	everyone bool
	// report: the messages (--message, repeatable), --last, --reason,
	// --note.
	messages listFlag
	last     int
	reason   string
	note     string
	// noQueue: send --no-queue.
	noQueue bool
	// retry, discard: outbox.
	retry   bool
	discard string
	// channelPoll: sync --follow --channel-poll.
	channelPoll time.Duration
	// socket: daemon --socket.
	socket string
	// muteFor: mute --for; bell: sync --follow --bell.
	muteFor        time.Duration
	exceptMentions bool
	bell           bool
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// env is what a running command gets.
type env struct {
	flags  cmdFlags
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func defaultProfile() string {
	if p := os.Getenv("PARLEY_PROFILE"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "parley-profile"
	}
	return filepath.Join(dir, "parley")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	args = hoistGlobalFlags(args)
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, defaultProfile())
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprintf(stdout, usage, defaultProfile())
		return 0
	case "hash":
		return runHash(args[1:], stdout, stderr)
	case "channel":
		return runChannel(ctx, args[1:], stdin, stdout, stderr)
	}
	// Two-word commands.
	if name == "group" || name == "devices" || name == "account" {
		if len(args) == 1 || strings.HasPrefix(args[1], "-") {
			// "parley group" or "parley group --help": list the group's
			// subcommands, as "parley channel --help" does.
			help := len(args) > 1 && (args[1] == "--help" || args[1] == "-h" || args[1] == "-help")
			w := stderr
			if help {
				w = stdout
			}
			fmt.Fprint(w, groupHelp(name))
			if help {
				return 0
			}
			return 2
		}
		name += " " + args[1]
		args = args[1:]
	}
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n", name)
		fmt.Fprintf(stderr, usage, defaultProfile())
		return 2
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.flags.profile, "profile", defaultProfile(), "")
	fs.BoolVar(&e.flags.json, "json", false, "")
	fs.BoolVar(&e.flags.verbose, "verbose", false, "")
	fs.BoolVar(&e.flags.help, "help", false, "")
	fs.BoolVar(&e.flags.help, "h", false, "")
	if cmd.flags != nil {
		cmd.flags(fs, &e.flags)
	}
	words, err := parseInterspersed(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "parley %s: %v\n\n%s", name, err, cmdHelp(cmd))
		return 2
	}
	if e.flags.help {
		fmt.Fprint(stdout, cmdHelp(cmd))
		return 0
	}
	e.flags.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { e.flags.set[fl.Name] = true })
	if len(words) < cmd.minArgs || (cmd.maxArgs >= 0 && len(words) > cmd.maxArgs) {
		fmt.Fprintf(stderr, "parley %s: wrong number of arguments\n\n%s", name, cmdHelp(cmd))
		return 2
	}
	if err := cmd.run(ctx, e, words); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		msg := explain(err)
		if client.IsSecurityAlert(err) {
			// Refused because something looks like an attack: say so as
			// plainly as the warnings during a sync do.
			msg = "SECURITY ALERT: " + msg
		}
		if e.flags.json {
			json.NewEncoder(stdout).Encode(map[string]string{"error": msg, "detail": err.Error()})
		}
		fmt.Fprintf(stderr, "parley %s: %s\n", name, msg)
		if e.flags.verbose && msg != err.Error() {
			fmt.Fprintf(stderr, "  (detail: %v)\n", err)
		}
		if code == 2 {
			fmt.Fprintf(stderr, "\n%s", cmdHelp(cmd))
		}
		return code
	}
	return 0
}

// hoistGlobalFlags moves --profile and --json given before the command
// name to after it ("parley --profile DIR send ..." works).
func hoistGlobalFlags(args []string) []string {
	var global []string
	i := 0
	for i < len(args) {
		a := args[i]
		switch {
		case a == "--profile" || a == "-profile":
			if i+1 >= len(args) {
				return args
			}
			global = append(global, a, args[i+1])
			i += 2
			continue
		case strings.HasPrefix(a, "--profile=") || strings.HasPrefix(a, "-profile=") || a == "--json" || a == "-json":
			global = append(global, a)
			i++
			continue
		}
		break
	}
	if len(global) == 0 || i >= len(args) {
		return args
	}
	out := []string{args[i]}
	rest := args[i+1:]
	// Keep two-word commands together.
	if (args[i] == "group" || args[i] == "devices" || args[i] == "account") && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		out = append(out, rest[0])
		rest = rest[1:]
	}
	out = append(out, global...)
	return append(out, rest...)
}

// parseInterspersed parses flags appearing anywhere among the arguments
// (up to "--") and returns the other words in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return words, nil
		}
		// flag stops at "--" (consumed) or at the first non-flag word.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(words, rest...), nil
		}
		words = append(words, rest[0])
		args = rest[1:]
	}
}

func cmdHelp(c *command) string {
	var b strings.Builder
	b.WriteString("usage: parley " + c.usage + "\n")
	b.WriteString("\nFlags:\n")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	var f cmdFlags
	if c.flags != nil {
		c.flags(fs, &f)
	}
	var lines []string
	fs.VisitAll(func(fl *flag.Flag) {
		lines = append(lines, fmt.Sprintf("  --%-12s %s", fl.Name, fl.Usage))
	})
	sort.Strings(lines)
	lines = append(lines,
		fmt.Sprintf("  --%-12s %s", "profile DIR", "profile directory (default "+defaultProfile()+")"),
		fmt.Sprintf("  --%-12s %s", "json", "print JSON, one object per line"),
		fmt.Sprintf("  --%-12s %s", "verbose", "with an error, also print its full internal detail"),
		fmt.Sprintf("  --%-12s %s", "help", "show this help"))
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n")
	return b.String()
}

// runHash dispatches to the hashing tool, dropping --profile, which it
// does not need.
func runHash(args []string, stdout, stderr io.Writer) int {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if a == "--profile" || a == "-profile" {
			i++
			continue
		}
		if strings.HasPrefix(a, "--profile=") || strings.HasPrefix(a, "-profile=") {
			continue
		}
		out = append(out, a)
	}
	return hashRun(out, stdout, stderr)
}

// groupHelp lists the subcommands of a two-word command group.
func groupHelp(group string) string {
	var names []string
	cmds := commands()
	for n := range cmds {
		if strings.HasPrefix(n, group+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "usage: parley %s <command> [flags] [arguments]\n\nCommands:\n", group)
	for _, n := range names {
		synopsis, _, _ := strings.Cut(cmds[n].usage, "\n")
		fmt.Fprintf(&b, "  parley %s\n", synopsis)
	}
	fmt.Fprintf(&b, "\nRun \"parley %s <command> --help\" for one command's flags and explanation.\n", group)
	return b.String()
}

// explain turns an error into what a user should read (client.Explain);
// --verbose adds the full detail.
func explain(err error) string { return client.Explain(err) }
