package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/console"
)

// frankingKeyFile holds the server's franking key (mode 0600), its own.
const frankingKeyFile = "franking.key"

func loadFrankingKey(data string) (ed25519.PrivateKey, error) {
	b, err := readOrCreate(filepath.Join(data, frankingKeyFile), func() ([]byte, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return []byte(hex.EncodeToString(k.Seed()) + "\n"), err
	})
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: not an Ed25519 seed in hex", frankingKeyFile)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

const casesUsage = `Usage: parleyd admin cases COMMAND [flags] (each takes --data DIR and --json)

  list [--state open|decided|appealed|closed]   the cases, newest first
  show ID                                        a case: its reports, each message with whether its proof
                                                 verifies, and what was done
  decide ID --action dismiss|warn|suspend|ban --moderator NAME --reason TEXT [--until YYYY-MM-DD]
                                                 decide an open case, or an appealed one (by another moderator)

Abuse reports reach the server with proof of who sent what (message
franking); see docs/moderation.md.
`

func adminCases(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, casesUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := newFlagSet("parleyd admin cases "+cmd, "Moderation cases (parleyd admin cases --help).", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server")
	db := fs.String("db", "", "`URL` of the server's PostgreSQL database (postgres://...) if it runs with --db")
	jsonOut := fs.Bool("json", false, "print JSON")
	state := fs.String("state", "", "list only cases in this `state`")
	action := fs.String("action", "", "dismiss, warn, suspend or ban")
	moderator := fs.String("moderator", "", "your moderator `name` (recorded with the decision)")
	reason := fs.String("reason", "", "why (recorded, and told to the reported user)")
	until := fs.String("until", "", "for suspend: the `date` (YYYY-MM-DD) the suspension ends")
	cli := &adminCLI{name: "parleyd admin cases " + cmd, stdout: stdout, stderr: stderr, jsonOut: jsonOut}
	if code := cli.parse(fs, args[1:]); code >= 0 {
		return code
	}
	positional := cli.positional
	fail := cli.fail
	out := cli.out
	ms, err := channelsrv.OpenModeration(ctx, channelsrv.Where{Data: *data, DB: *db})
	if err != nil {
		return fail(err)
	}
	defer ms.Close()
	caseID := func() (int64, error) {
		if len(positional) != 1 {
			return 0, errors.New("give the case's id (parleyd admin cases list)")
		}
		return strconv.ParseInt(positional[0], 10, 64)
	}
	switch cmd {
	case "list":
		cs, err := ms.Cases(ctx, *state, 500)
		if err != nil {
			return fail(err)
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CASE\tOPENED\tREPORTED\tREPORTS\tREASONS\tSTATE")
		for _, c := range cs {
			reasons := map[string]bool{}
			var rs []string
			for _, r := range c.Reports {
				if !reasons[r.Reason] {
					reasons[r.Reason] = true
					rs = append(rs, r.Reason)
				}
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", c.ID, c.Opened.Format(time.DateTime), c.Reported, len(c.Reports), strings.Join(rs, ","), c.State)
		}
		tw.Flush()
		return out(cs, strings.TrimRight(b.String(), "\n"))
	case "show":
		id, err := caseID()
		if err != nil {
			return fail(err)
		}
		c, err := ms.Case(ctx, id)
		if err != nil {
			return fail(err)
		}
		return showCase(c, *jsonOut, *data, stdout)
	case "decide":
		id, err := caseID()
		if err != nil {
			return fail(err)
		}
		if !moderation.ValidAction(*action) || *moderator == "" || strings.TrimSpace(*reason) == "" {
			return fail(errors.New("--action (dismiss, warn, suspend or ban), --moderator and --reason are required"))
		}
		e := moderation.CaseEvent{Action: *action, Moderator: *moderator, Reason: strings.TrimSpace(*reason)}
		if *action == moderation.ActionSuspend {
			u, err := time.Parse(time.DateOnly, *until)
			if err != nil || !u.After(time.Now()) {
				return fail(errors.New("a suspension needs --until, a future date like 2027-01-31"))
			}
			e.Until = u
		}
		c, err := ms.Case(ctx, id)
		if err != nil {
			return fail(err)
		}
		if c.State == moderation.CaseAppealed {
			for _, ev := range c.Events {
				if ev.Moderator == *moderator {
					return fail(fmt.Errorf("%s decided this case before: an appeal goes to another moderator", *moderator))
				}
			}
		}
		c, err = ms.ActOnCase(ctx, id, e)
		if err != nil {
			return fail(err)
		}
		return out(c, fmt.Sprintf("Case %d: %s (%s); it is now %s.", c.ID, e.Action, e.Reason, c.State))
	}
	fmt.Fprintf(stderr, "parleyd admin cases: unknown command %q\n\n%s", cmd, casesUsage)
	return 2
}

// showCase prints a case, re-verifying each message's proof under the
// server's franking key (a moderator sees whether the proof holds, not
// just that it held when the report came in); the web console shows the
// same (console.VerifyMessages).
func showCase(c moderation.Case, jsonOut bool, data string, w io.Writer) int {
	key, err := loadFrankingKey(data)
	if err != nil {
		fmt.Fprintf(w, "franking key: %v\n", err)
		return 1
	}
	views := console.VerifyMessages(key.Public().(ed25519.PublicKey), c.Messages)
	if jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			moderation.Case
			Messages []console.MessageView `json:"messages"`
		}{c, views})
		return 0
	}
	fmt.Fprintf(w, "Case %d, %s, opened %s: reports against %s\n", c.ID, c.State, c.Opened.Format(time.DateTime), c.Reported)
	for _, r := range c.Reports {
		fmt.Fprintf(w, "  reported by %s on %s: %s", r.Reporter, r.Received.Format(time.DateTime), r.Reason)
		if r.Note != "" {
			fmt.Fprintf(w, " (%q)", r.Note)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Messages (each with its proof of who sent it):")
	for _, v := range views {
		mark := "proof verified"
		if !v.Verified {
			mark = "PROOF FAILS: " + v.Problem
		}
		fmt.Fprintf(w, "  %s  %s/%s: %q  [%s]\n", v.Accepted.Format(time.DateTime), v.SenderUser, v.SenderDevice, v.Text, mark)
	}
	for _, e := range c.Events {
		fmt.Fprintf(w, "  %s %s by %s: %s\n", e.Time.Format(time.DateTime), e.Action, e.Moderator, e.Reason)
	}
	return 0
}
