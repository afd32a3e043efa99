package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/legal"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/transparency/directory"
)

const (
	legalNoteKeyFile = "legal-note.key"
	legalOrigin      = "parleyd.local/legal"
	// transparencyDir, in the data directory, holds what /transparency/
	// serves: the legal log's key, published requests and reports.
	transparencyDir = "transparency"
)

const legalUsage = `Usage: parleyd admin legal COMMAND [flags] (each takes --data DIR and --json)

  record --agency A --country CC --instrument subpoena|court-order|warrant|emergency|preservation
         --reference R --accounts alice,bob --asks TEXT [--nondisclosure-until YYYY-MM-DD]
                             record a request and print its id
  list                       list the requests
  show ID                    show a request, its answer and preservation
  answer ID [--refuse REASON]
                             generate the answer package from what the server holds (once)
  preserve ID --until YYYY-MM-DD
                             hold the named accounts' current data until then, and no longer
  publish ID                 after non-disclosure ends, publish the request's opened commitments
                             in DATA/transparency/requests/ID.json
  verify FILE --log-key KEY  check a published request or report against its checkpoint

Every request, answer and preservation is appended to the legal log (a
signed Merkle log, like the key transparency log) as a salted commitment.
See docs/lawful-requests.md.
`

// legalEnv is an open data directory for the legal commands.
type legalEnv struct {
	st      store.Store
	lg      *legal.Log
	logKey  string
	src     legal.Sources
	data    string
	closers []func() error
}

func (e *legalEnv) Close() {
	for _, c := range e.closers {
		c()
	}
}

// legalSigner loads (or makes, mode 0600) the legal log's note key, which
// is the log's alone.
func legalSigner(data string) (note.Signer, string, error) {
	skey, err := readOrCreate(filepath.Join(data, legalNoteKeyFile), func() ([]byte, error) {
		s, _, err := directory.GenerateNoteKey(rand.Reader, legalOrigin)
		return []byte(s + "\n"), err
	})
	if err != nil {
		return nil, "", err
	}
	return directory.NewNoteKey(strings.TrimSpace(string(skey)))
}

func openLegal(ctx context.Context, data, db string) (*legalEnv, error) {
	if _, err := os.Stat(data); db != "" && err != nil {
		// The legal log's key lives in the data directory.
		return nil, fmt.Errorf("data directory %s: %w", data, err)
	}
	st, err := openStore(ctx, data, db, false, nil, nil)
	if err != nil {
		return nil, err
	}
	e := &legalEnv{st: st, data: data, closers: []func() error{st.Close}, src: legal.Sources{Store: st}}
	signer, vkey, err := legalSigner(data)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.logKey = vkey
	if e.lg, err = legal.OpenLog(ctx, st, signer.Name(), signer); err != nil {
		e.Close()
		return nil, err
	}
	// Public channel posts, if this server has channels.
	if _, err := os.Stat(filepath.Join(data, channelsrv.ChannelsDB)); err == nil || db != "" {
		cs, err := channelsrv.OpenChannels(ctx, channelsrv.Where{Data: data, DB: db})
		if err != nil {
			e.Close()
			return nil, err
		}
		e.closers = append(e.closers, cs.Close)
		e.src.Posts = func(ctx context.Context, user string) ([]legal.Post, error) { return postsBy(ctx, cs, user) }
	}
	if err := writePublicKey(data, vkey); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// postsBy lists the public channel posts user wrote, in every state
// (what the server holds of a deleted one is its number, channel, time
// and status).
func postsBy(ctx context.Context, cs channels.Store, user string) ([]legal.Post, error) {
	var out []legal.Post
	var after int64
	for {
		ps, err := cs.PostsBy(ctx, user, after, 500)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			after = p.ID
			lp := legal.Post{ID: p.ID, Channel: p.Channel, Created: p.Created, Status: string(p.Status), Text: p.Text}
			for _, m := range p.Media {
				lp.Media = append(lp.Media, hex.EncodeToString(m.SHA256[:]))
			}
			out = append(out, lp)
		}
		if len(ps) < 500 {
			return out, nil
		}
	}
}

// writePublicKey puts the legal log's verifier key where /transparency/
// serves it.
func writePublicKey(data, vkey string) error {
	dir := filepath.Join(data, transparencyDir)
	if err := os.MkdirAll(filepath.Join(dir, "requests"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "legal-log.pub"), []byte(vkey+"\n"), 0o644)
}

func adminLegal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, legalUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := newFlagSet("parleyd admin legal "+cmd, "Lawful requests (parleyd admin legal --help).", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server")
	db := fs.String("db", "", "`URL` of the PostgreSQL database (postgres://...) if the server runs with --db")
	jsonOut := fs.Bool("json", false, "print JSON")
	agency := fs.String("agency", "", "the requesting `agency`")
	country := fs.String("country", "", "its `country` (ISO 3166 two-letter code)")
	instrument := fs.String("instrument", "", "subpoena, court-order, warrant, emergency or preservation")
	reference := fs.String("reference", "", "the agency's `reference` for the request")
	accounts := fs.String("accounts", "", "the accounts named, comma separated")
	asks := fs.String("asks", "", "what the request asks for")
	nondisclosure := fs.String("nondisclosure-until", "", "`date` (YYYY-MM-DD) before which the request may not be disclosed")
	refuse := fs.String("refuse", "", "answer by refusing, for this `reason` (e.g. \"not a valid instrument for this jurisdiction\")")
	until := fs.String("until", "", "preserve until this `date` (YYYY-MM-DD)")
	logKey := fs.String("log-key", "", "the legal log's verifier `key` (verify)")
	// Flags may come before or after the request id.
	cli := &adminCLI{name: "parleyd admin legal " + cmd, stdout: stdout, stderr: stderr, jsonOut: jsonOut}
	if code := cli.parse(fs, args[1:]); code >= 0 {
		return code
	}
	positional := cli.positional
	fail := cli.fail
	out := cli.out
	date := func(flagName, s string) (time.Time, error) {
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: --%s must be a date like 2027-06-30, not %q", legal.ErrInvalid, flagName, s)
		}
		return t, nil
	}
	if cmd == "verify" {
		if len(positional) != 1 || *logKey == "" {
			fmt.Fprint(stderr, "usage: parleyd admin legal verify FILE --log-key KEY\n")
			return 2
		}
		b, err := os.ReadFile(positional[0])
		if err != nil {
			return fail(err)
		}
		if r, err := legal.VerifyReport(b, *logKey); err == nil && r.Period != "" {
			return out(map[string]any{"verified": "report", "period": r.Period}, fmt.Sprintf("Verified: the transparency report for %s is in the legal log.", r.Period))
		}
		cp, err := legal.VerifyPublication(b, *logKey)
		if err != nil {
			return fail(err)
		}
		return out(map[string]any{"verified": "request", "checkpoint_size": cp.Size}, fmt.Sprintf("Verified: every event of the published request is in the legal log (checkpoint of %d records).", cp.Size))
	}
	e, err := openLegal(ctx, *data, *db)
	if err != nil {
		return fail(err)
	}
	defer e.Close()
	now := time.Now()
	if _, err := e.lg.ReleaseExpired(ctx, e.st, now); err != nil {
		return fail(fmt.Errorf("deleting preserved data past its period: %w", err))
	}
	needID := func() (*legal.Request, error) {
		if len(positional) != 1 {
			return nil, fmt.Errorf("%w: give the request's id (parleyd admin legal list)", legal.ErrInvalid)
		}
		return legal.Load(ctx, e.st, positional[0])
	}
	switch cmd {
	case "record":
		nd, err := date("nondisclosure-until", *nondisclosure)
		if err != nil {
			return fail(err)
		}
		var names []string
		if *accounts != "" {
			names = strings.Split(*accounts, ",")
		}
		r, err := legal.NewRequest(now, *agency, *country, *instrument, *reference, names, *asks, nd)
		if err != nil {
			return fail(err)
		}
		entry, rec, err := r.RecordEvent()
		if err != nil {
			return fail(err)
		}
		r.Entries = append(r.Entries, entry)
		if err := e.lg.Save(ctx, e.st, r, rec); err != nil {
			return fail(err)
		}
		return out(map[string]string{"id": r.ID}, r.ID)
	case "list":
		rs, err := legal.List(ctx, e.st)
		if err != nil {
			return fail(err)
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECORDED\tAGENCY\tCOUNTRY\tINSTRUMENT\tACCOUNTS\tSTATUS")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Recorded.Format(time.DateOnly), r.Agency, r.Country, r.Instrument, len(r.Accounts), status(r, now))
		}
		tw.Flush()
		return out(rs, strings.TrimRight(b.String(), "\n"))
	case "show":
		r, err := needID()
		if err != nil {
			return fail(err)
		}
		b, _ := json.MarshalIndent(r, "", "  ")
		return out(r, string(b))
	case "answer":
		r, err := needID()
		if err != nil {
			return fail(err)
		}
		rec, err := legal.Respond(ctx, e.src, r, now, strings.TrimSpace(*refuse))
		if err != nil {
			return fail(err)
		}
		if err := e.lg.Save(ctx, e.st, r, rec); err != nil {
			return fail(err)
		}
		return out(r.Answer, answerText(r))
	case "preserve":
		r, err := needID()
		if err != nil {
			return fail(err)
		}
		u, err := date("until", *until)
		if err != nil {
			return fail(err)
		}
		if u.IsZero() {
			return fail(fmt.Errorf("%w: --until is required", legal.ErrInvalid))
		}
		rec, err := legal.Preserve(ctx, e.src, r, now, u)
		if err != nil {
			return fail(err)
		}
		if err := e.lg.Save(ctx, e.st, r, rec); err != nil {
			return fail(err)
		}
		return out(r.Preservation, fmt.Sprintf("Preserved the current data of %d account(s) for %s until %s; it is deleted then.", len(r.Accounts), r.ID, u.Format(time.DateOnly)))
	case "publish":
		r, err := needID()
		if err != nil {
			return fail(err)
		}
		p, err := e.lg.Publish(r, now, e.logKey)
		if err != nil {
			return fail(err)
		}
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return fail(err)
		}
		path := filepath.Join(e.data, transparencyDir, "requests", r.ID+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return fail(err)
		}
		if err := e.lg.Save(ctx, e.st, r, nil); err != nil {
			return fail(err)
		}
		return out(map[string]string{"published": r.ID, "file": path}, fmt.Sprintf("Published %s in %s (served at /transparency/requests/%s.json).", r.ID, path, r.ID))
	}
	fmt.Fprintf(stderr, "parleyd admin legal: unknown command %q\n\n%s", cmd, legalUsage)
	return 2
}

func status(r *legal.Request, now time.Time) string {
	var s []string
	switch {
	case r.Answer == nil:
		s = append(s, "open")
	case r.Answer.Refused != "":
		s = append(s, "refused")
	case r.Answer.Produced():
		s = append(s, "answered")
	default:
		s = append(s, "answered (no data)")
	}
	if p := r.Preservation; p != nil && p.Released.IsZero() {
		s = append(s, "preserved until "+p.Until.Format(time.DateOnly))
	}
	if r.UnderNondisclosure(now) {
		s = append(s, "non-disclosure until "+r.NondisclosureUntil.Format(time.DateOnly))
	}
	if !r.Published.IsZero() {
		s = append(s, "published")
	}
	return strings.Join(s, ", ")
}

// answerText is the human-readable answer package.
func answerText(r *legal.Request) string {
	a := r.Answer
	var b strings.Builder
	fmt.Fprintf(&b, "Answer to %s (%s, %s, %s, reference %s), generated %s from the server's records.\n\n",
		r.ID, r.Agency, r.Country, r.Instrument, r.Reference, a.Generated.Format(time.RFC3339))
	if a.Refused != "" {
		fmt.Fprintf(&b, "Refused: %s\n", a.Refused)
	}
	for _, f := range a.Accounts {
		switch {
		case !f.Exists:
			fmt.Fprintf(&b, "%s: no such account on this server.\n", f.Username)
		case f.Deleted:
			fmt.Fprintf(&b, "%s: created %s; the account was deleted (only its name and creation time are kept).\n", f.Username, f.Created.Format(time.RFC3339))
		default:
			fmt.Fprintf(&b, "%s: created %s", f.Username, f.Created.Format(time.RFC3339))
			if !f.LastSeen.IsZero() {
				fmt.Fprintf(&b, "; last connected on %s (only the day is kept)", f.LastSeen.Format(time.DateOnly))
			}
			fmt.Fprintln(&b, ".")
			for _, d := range f.Devices {
				fmt.Fprintf(&b, "  device %s added %s", d.ID, d.Added.Format(time.RFC3339))
				if !d.LastSeen.IsZero() {
					fmt.Fprintf(&b, ", last connected on %s", d.LastSeen.Format(time.DateOnly))
				}
				fmt.Fprintln(&b)
			}
			for _, p := range f.ChannelPosts {
				fmt.Fprintf(&b, "  public channel post %d in %s, %s (%s): %q\n", p.ID, p.Channel, p.Created.Format(time.RFC3339), p.Status, p.Text)
			}
		}
	}
	if p := a.Preserved; p != nil {
		fmt.Fprintf(&b, "\nData preserved on %s for this request is held until %s, then deleted.\n", p.On.Format(time.DateOnly), p.Until.Format(time.DateOnly))
	}
	fmt.Fprintln(&b, "\nWhat Parley cannot produce:")
	for _, c := range a.CannotProduce {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	return strings.TrimRight(b.String(), "\n")
}

// adminReport runs "parleyd admin transparency-report".
func adminReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("parleyd admin transparency-report", "Write the transparency report for a period (an HTML page and a JSON file), committed to in the legal log.", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server")
	db := fs.String("db", "", "`URL` of the PostgreSQL database (postgres://...) if the server runs with --db")
	period := fs.String("period", "", "the `period`: a year (2026), a half (2026H2) or a quarter (2026Q3)")
	outDir := fs.String("out", "", "`directory` to write PERIOD.html and PERIOD.json to (default: DATA/transparency/reports, which the server serves at /transparency/reports/)")
	jsonOut := fs.Bool("json", false, "print the report's JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd admin transparency-report: %v\n", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "parleyd admin transparency-report: %v\n", err)
		return 1
	}
	p, err := legal.ParsePeriod(*period)
	if err != nil {
		return fail(err)
	}
	e, err := openLegal(ctx, *data, *db)
	if err != nil {
		return fail(err)
	}
	defer e.Close()
	reqs, err := legal.List(ctx, e.st)
	if err != nil {
		return fail(err)
	}
	var decisions []moderation.Decision
	if _, err := os.Stat(filepath.Join(*data, channelsrv.ModerationDB)); err == nil || *db != "" {
		ms, err := channelsrv.OpenModeration(ctx, channelsrv.Where{Data: *data, DB: *db})
		if err != nil {
			return fail(err)
		}
		defer ms.Close()
		if decisions, err = ms.Decisions(ctx, "", 1_000_000); err != nil {
			return fail(err)
		}
	}
	rep := legal.BuildReport(p, time.Now(), reqs, decisions)
	rj, err := json.Marshal(rep)
	if err != nil {
		return fail(err)
	}
	idx, err := e.lg.AppendReport(ctx, e.st, legal.ReportRecord(rj, rep.Generated))
	if err != nil {
		return fail(err)
	}
	signed, err := e.lg.Sign(rj, idx, e.logKey)
	if err != nil {
		return fail(err)
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join(*data, transparencyDir, "reports")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	sj, _ := json.MarshalIndent(signed, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, p.Name+".json"), append(sj, '\n'), 0o644); err != nil {
		return fail(err)
	}
	hf, err := os.Create(filepath.Join(dir, p.Name+".html"))
	if err != nil {
		return fail(err)
	}
	if err := legal.WriteHTML(hf, rep, signed); err != nil {
		hf.Close()
		return fail(err)
	}
	if err := hf.Close(); err != nil {
		return fail(err)
	}
	if *jsonOut {
		fmt.Fprintln(stdout, string(sj))
		return 0
	}
	fmt.Fprintf(stdout, "Wrote the %s report (%d requests) to %s; it is record %d of the legal log.\n", p.Name, rep.Requests, dir, idx)
	return 0
}

// withTransparency adds /transparency/ (the published reports, opened
// requests and the legal log's key) to the mounted handlers.
func withTransparency(mount map[string]http.Handler, data string) map[string]http.Handler {
	dir := filepath.Join(data, transparencyDir)
	mount["GET /transparency/"] = http.StripPrefix("/transparency/", http.FileServer(http.Dir(dir)))
	return mount
}

// releasePreserved deletes preserved data whose period is over, hourly,
// so that nothing is held longer than the order named even when no admin
// command runs.
func releasePreserved(ctx context.Context, st store.Store, data string, log *slog.Logger) {
	signer, vkey, err := legalSigner(data)
	if err == nil {
		err = writePublicKey(data, vkey)
	}
	if err != nil {
		log.Error("legal log key", "err", err)
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		// The log is reloaded each time: admin commands append to it.
		lg, err := legal.OpenLog(ctx, st, signer.Name(), signer)
		if err == nil {
			var n int
			if n, err = lg.ReleaseExpired(ctx, st, time.Now()); n > 0 {
				log.Info("deleted preserved data past its period", "requests", n)
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Error("releasing preserved data", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
