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

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/console"
	"github.com/parleychat/parley/server"
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

  list [--state open|decided|appealed|closed] [--kind report|hold] [--older-than DURATION]
                                                 the moderation queue, newest first: abuse report
                                                 cases and channel posts held by a review list
  show ID                                        a case: its reports, each message with whether its proof
                                                 verifies, or the held post with the list, hash and
                                                 distance it matched; and what was done
  decide ID --action ACTION --moderator NAME --reason TEXT [--until YYYY-MM-DD]
                                                 report cases: dismiss, warn, suspend (--until) or ban,
                                                 an open case or an appealed one (by another moderator);
                                                 hold cases: release (publish the post), remove_post or
                                                 remove_channel (delete the whole channel)

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
	kind := fs.String("kind", "", "list only cases of this `kind`: report or hold")
	olderThan := fs.Duration("older-than", 0, "list only cases opened at least this `long` ago (e.g. 24h)")
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
		if *kind != "" && *kind != moderation.KindReport && *kind != moderation.KindHold {
			return fail(errors.New("--kind is report or hold"))
		}
		all, err := ms.Cases(ctx, *state, 500)
		if err != nil {
			return fail(err)
		}
		cs := []moderation.Case{}
		now := time.Now()
		for _, c := range all {
			if (*kind == "" || c.Kind == *kind) && now.Sub(c.Opened) >= *olderThan {
				cs = append(cs, c)
			}
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CASE\tKIND\tOPENED\tACCOUNT\tREPORTS\tWHY\tSTATE")
		for _, c := range cs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", c.ID, c.Kind, c.Opened.Format(time.DateTime), c.Reported, len(c.Reports), caseWhy(c), c.State)
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
		if *moderator == "" || strings.TrimSpace(*reason) == "" {
			return fail(errors.New("--action, --moderator and --reason are required"))
		}
		if moderation.ValidHoldAction(*action) {
			return decideHold(ctx, cli, ms, channelsrv.Where{Data: *data, DB: *db}, id, moderation.CaseEvent{Time: time.Now(), Action: *action, Moderator: *moderator, Reason: strings.TrimSpace(*reason)})
		}
		if !moderation.ValidAction(*action) {
			return fail(fmt.Errorf("--action %q: a report case takes dismiss, warn, suspend or ban; a hold case release, remove_post or remove_channel", *action))
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
		if c.Kind == moderation.KindHold {
			return fail(fmt.Errorf("case %d is a held channel post: decide it with --action release, remove_post or remove_channel", id))
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

// caseWhy says in a few words why a case is in the queue: the reports'
// reasons, or the lists a held post matched.
func caseWhy(c moderation.Case) string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range c.Reports {
		add(r.Reason)
	}
	if c.Hold != nil {
		for _, m := range c.Hold.Matches {
			add(fmt.Sprintf("list %s (%s distance %d)", m.List, m.Type, m.Distance))
		}
	}
	return strings.Join(out, ",")
}

// decideHold carries out a decision on a held channel post's case.
func decideHold(ctx context.Context, cli *adminCLI, ms moderation.Store, w channelsrv.Where, id int64, e moderation.CaseEvent) int {
	cs, err := channelsrv.OpenChannels(ctx, w)
	if err != nil {
		return cli.fail(err)
	}
	defer cs.Close()
	c, err := channels.DecideHold(ctx, cs, ms, id, e)
	if err != nil {
		return cli.fail(err)
	}
	return cli.out(c, fmt.Sprintf("Case %d: %s (%s); post %d of channel %s; the case is now %s.", c.ID, e.Action, e.Reason, c.Hold.Post, c.Hold.Channel, c.State))
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
	if c.Hold != nil {
		h := c.Hold
		fmt.Fprintf(w, "Case %d, %s, opened %s: post %d by %s in public channel %s, held for review\n", c.ID, c.State, c.Opened.Format(time.DateTime), h.Post, h.Author, h.Channel)
		if h.Text != "" {
			fmt.Fprintf(w, "  text: %q\n", h.Text)
		}
		for _, m := range h.Matches {
			fmt.Fprintf(w, "  file %d matched list %s", m.Media, m.List)
			if m.Label != "" {
				fmt.Fprintf(w, " (%s)", m.Label)
			}
			fmt.Fprintf(w, ": %s %s, distance %d", m.Type, m.Hash, m.Distance)
			if m.Detail != "" {
				fmt.Fprintf(w, "; %s", m.Detail)
			}
			fmt.Fprintln(w)
		}
		for _, e := range c.Events {
			fmt.Fprintf(w, "  %s %s by %s: %s\n", e.Time.Format(time.DateTime), e.Action, e.Moderator, e.Reason)
		}
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

// blobTokenKeyFile holds the key that MACs clients' HTTP bearer tokens
// (mode 0600). Nodes sharing a --db must have the same one, copied from
// the first node like franking.key, or a token from one node is refused
// by the others.
const blobTokenKeyFile = "blob-token.key"

func loadBlobTokenKey(data string) ([]byte, error) {
	b, err := readOrCreate(filepath.Join(data, blobTokenKeyFile), func() ([]byte, error) {
		k := make([]byte, server.BlobTokenKeySize)
		_, err := rand.Read(k)
		return []byte(hex.EncodeToString(k) + "\n"), err
	})
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != server.BlobTokenKeySize {
		return nil, fmt.Errorf("%s: not a %d-byte key in hex; delete it to make a new one (clients sign in again)", blobTokenKeyFile, server.BlobTokenKeySize)
	}
	return k, nil
}
