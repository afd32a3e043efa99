package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/console"
)

const moderatorsUsage = `Usage: parleyd admin moderators COMMAND [flags] (each takes --data DIR)

  add NAME [--lead] [--password-file FILE]   create a web console account; the password is read from
                                             the first line of stdin (or FILE), and a TOTP secret is
                                             printed for the moderator's authenticator app
  list [--json]                              the accounts, their roles, and when removed ones were
  remove NAME [--by WHO]                     deactivate an account: it cannot sign in again, its console
                                             sessions end at once on every node, its name is not reused,
                                             and the audit log records the removal (by WHO); the last
                                             active lead cannot be removed

Leads decide appeals. The console is served by "parleyd serve --admin-listen";
see docs/moderation.md "The web console".
`

// Moderator accounts' I/O; tests replace them.
var (
	moderatorStdin  io.Reader = os.Stdin
	moderatorArgon2           = console.DefaultArgon2
)

func adminModerators(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, moderatorsUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := newFlagSet("parleyd admin moderators "+cmd, "Web console accounts (parleyd admin moderators --help).", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server")
	db := fs.String("db", "", "`URL` of the server's PostgreSQL database (postgres://...) if it runs with --db")
	lead := fs.Bool("lead", false, "a lead moderator (decides appeals)")
	pwFile := fs.String("password-file", "", "read the password from the first line of this `file` instead of stdin")
	by := fs.String("by", "server-admin", "remove: who removes the account (`name` recorded in the audit log)")
	jsonOut := fs.Bool("json", false, "list: print JSON")
	cli := &adminCLI{name: "parleyd admin moderators " + cmd, stdout: stdout, stderr: stderr, jsonOut: jsonOut}
	if code := cli.parse(fs, args[1:]); code >= 0 {
		return code
	}
	positional := cli.positional
	fail := cli.fail
	if cmd != "add" && cmd != "list" && cmd != "remove" {
		fmt.Fprintf(stderr, "parleyd admin moderators: unknown command %q\n\n%s", cmd, moderatorsUsage)
		return 2
	}
	var name, password string
	if cmd == "add" {
		if len(positional) != 1 || !console.ValidName(positional[0]) {
			return fail(errors.New("give one name: letters, digits, '.', '_' or '-', at most 64"))
		}
		name = positional[0]
		in := moderatorStdin
		if *pwFile != "" {
			f, err := os.Open(*pwFile)
			if err != nil {
				return fail(err)
			}
			defer f.Close()
			in = f
		}
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return fail(fmt.Errorf("reading the password: %w", err))
		}
		password = strings.TrimRight(line, "\r\n")
		if err := console.CheckNewPassword(password); err != nil {
			return fail(err)
		}
	}
	ms, err := channelsrv.OpenModeration(ctx, channelsrv.Where{Data: *data, DB: *db})
	if err != nil {
		return fail(err)
	}
	defer ms.Close()
	if cmd == "remove" {
		if len(positional) != 1 {
			return fail(errors.New("give the name of the moderator to remove (parleyd admin moderators list)"))
		}
		if err := ms.RemoveModerator(ctx, positional[0], *by, time.Now()); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "Removed %s: the account cannot sign in, and its console sessions have ended on every node.\n", positional[0])
		return 0
	}
	if cmd == "list" {
		mods, err := ms.Moderators(ctx)
		if err != nil {
			return fail(err)
		}
		type modJSON struct {
			Name    string    `json:"name"`
			Role    string    `json:"role"`
			Created time.Time `json:"created"`
			Removed time.Time `json:"removed,omitzero"`
		}
		out := []modJSON{}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tREMOVED")
		for _, m := range mods {
			role := "moderator"
			if m.Lead {
				role = "lead"
			}
			removed := ""
			if !m.Active() {
				removed = m.Removed.Format(time.DateTime)
			}
			out = append(out, modJSON{m.Name, role, m.Created, m.Removed})
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, role, m.Created.Format(time.DateTime), removed)
		}
		tw.Flush()
		return cli.out(out, strings.TrimRight(b.String(), "\n"))
	}
	hash, err := console.HashPassword(password, moderatorArgon2)
	if err != nil {
		return fail(err)
	}
	secret := console.NewTOTPSecret()
	if err := ms.AddModerator(ctx, moderation.Moderator{Name: name, Lead: *lead, PasswordHash: hash, TOTPSecret: secret}); err != nil {
		return fail(err)
	}
	role := "moderator"
	if *lead {
		role = "lead"
	}
	fmt.Fprintf(stdout, "Added %s (%s).\nTOTP secret, for the moderator's authenticator app (shown once): %s\n%s\n",
		name, role, console.TOTPSecretText(secret), console.TOTPURL("Parley", name, secret))
	return 0
}

// serveConsole serves the moderators' web console on its own listener:
// plain HTTP only on loopback, as the main listener.
// recheck is the delivery server's RecheckAccount: decisions taken in the
// console end the account's sessions at once (decisionsTakeEffect).
func serveConsole(f serveFlags, chans *channelsrv.Server, key ed25519.PrivateKey, tlsConfig *tls.Config, log *slog.Logger,
	recheck func(ctx context.Context, account string) error) (stop func(), err error) {
	host, _, err := net.SplitHostPort(f.adminListen)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen %q: %w", f.adminListen, err)
	}
	if tlsConfig == nil && !isLoopback(host) {
		return nil, fmt.Errorf("--admin-listen %q is not a loopback address: plain HTTP would expose moderators' passwords and sessions; pass --tls-cert and --tls-key (or listen on 127.0.0.1 and tunnel)", f.adminListen)
	}
	store := decisionsTakeEffect{Store: chans.Moderation.Store(), recheck: recheck, log: log}
	c, err := console.New(console.Config{Store: store, FrankingKey: key.Public().(ed25519.PublicKey),
		Secure: tlsConfig != nil, Logger: log, Argon2: moderatorArgon2, DecideHold: chans.DecideHold})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.adminListen)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen: %w", err)
	}
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	hs := &http.Server{Handler: http.MaxBytesHandler(c, 1<<20), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go hs.Serve(ln)
	log.Info("moderators' web console listening", "url", scheme+"://"+ln.Addr().String())
	if f.adminReady != nil {
		f.adminReady <- ln.Addr().String()
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// decisionsTakeEffect is the console's moderation store: after a decision
// on a report case it has the delivery server look the reported account's
// sessions up again, so that a suspension or a ban (or its lifting on
// appeal) signs the account's devices out now, on every node with
// --nats, rather than at the next --session-check. Decisions taken with
// "parleyd admin cases decide" in another process wait for that check.
type decisionsTakeEffect struct {
	moderation.Store
	recheck func(ctx context.Context, account string) error
	log     *slog.Logger
}

func (d decisionsTakeEffect) ActOnCase(ctx context.Context, id int64, e moderation.CaseEvent) (moderation.Case, error) {
	c, err := d.Store.ActOnCase(ctx, id, e)
	if err == nil && c.Kind == moderation.KindReport {
		if rerr := d.recheck(ctx, c.Reported); rerr != nil {
			d.log.Warn("moderation decision recorded; it signs the account's devices out at the next session check", "case", id, "err", rerr)
		}
	}
	return c, err
}
