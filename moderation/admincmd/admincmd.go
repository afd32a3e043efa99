// Package admincmd implements the moderation commands of parleyd:
//
//	parleyd admin lists import|list|remove|export|sync|publish|unpublish|confirm|unconfirm
//	parleyd admin takedowns [list|approve|reject]
//
// They work on the databases in the data directory directly, so they can
// run beside a live server: the server applies a bank change before the
// next upload check or read of channel content after it is committed
// (moderation.Service.BeginCheck and UpToDate), and takes down the
// published posts it matches.
package admincmd

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/internal/cliflag"
	"github.com/parleychat/parley/moderation"
)

const usage = `Moderation of public channels (which are NOT end-to-end encrypted).

Usage:
  parleyd admin lists import  --name NAME [flags] FILE   import or update a hash list
  parleyd admin lists list    [--json]                   show the hash lists
  parleyd admin lists remove  NAME                       delete a hash list
  parleyd admin lists export  NAME [--format hma|csv]    write a list to stdout
  parleyd admin lists sync    --from URL --token T --bank NAME   pull another server's list
  parleyd admin lists publish NAME                       serve a list on the exchange; prints its token
  parleyd admin lists unpublish NAME
  parleyd admin lists confirm   --bank NAME --type pdq|md5|sha256 HASH...
  parleyd admin lists unconfirm --bank NAME --type pdq|md5|sha256 HASH...
  parleyd admin takedowns [list] [--json]               held posts and recent decisions
  parleyd admin takedowns approve POST                   publish a held post
  parleyd admin takedowns reject POST [--confirm BANK]   remove a post (and confirm its hashes)

Every command works on the data directory of a server started with
"parleyd serve", given as --data DIR or PARLEY_DATA=DIR (default
./parley-data), and never creates one; for a server run with --db, give
its database too, as --db URL or PARLEY_DB. Add --help to a command for its
flags.
`

// Run runs "parleyd admin lists ..." or "parleyd admin takedowns ..." with
// args starting at "lists" or "takedowns". It returns the exit code: 0 on
// success, 1 on failure, 2 on bad usage.
// The stores are SQLite files in the data directory w.Data, or the
// PostgreSQL database w.DB for a server run with --db.
func Run(w channelsrv.Where, args []string, stdout, stderr io.Writer) int {
	w.Create = false
	c := &cmd{where: w, dataDir: w.Data, stdout: stdout, stderr: stderr, ctx: context.Background()}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	rest := []string{}
	if len(args) > 2 {
		rest = args[2:]
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "lists":
		switch sub {
		case "import":
			return c.run(rest, c.listsImport)
		case "list":
			return c.run(rest, c.listsList)
		case "remove":
			return c.run(rest, c.listsRemove)
		case "export":
			return c.run(rest, c.listsExport)
		case "sync":
			return c.run(rest, c.listsSync)
		case "publish":
			return c.run(rest, c.listsPublish(true))
		case "unpublish":
			return c.run(rest, c.listsPublish(false))
		case "confirm":
			return c.run(rest, c.listsConfirm(true))
		case "unconfirm":
			return c.run(rest, c.listsConfirm(false))
		case "-h", "--help", "help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	case "takedowns":
		switch sub {
		case "", "list":
			return c.run(rest, c.takedownsList)
		case "approve":
			return c.run(rest, c.takedownsDecide(true))
		case "reject":
			return c.run(rest, c.takedownsDecide(false))
		case "-h", "--help", "help":
			fmt.Fprint(stdout, usage)
			return 0
		default:
			if strings.HasPrefix(sub, "-") {
				return c.run(args[1:], c.takedownsList)
			}
		}
	}
	fmt.Fprintf(stderr, "parleyd admin: unknown command %q\n\n%s", strings.Join(args[:min(2, len(args))], " "), usage)
	return 2
}

type cmd struct {
	where          channelsrv.Where
	dataDir        string
	stdout, stderr io.Writer
	ctx            context.Context
	mod            moderation.Store
	ch             channels.Store
}

// errUsage marks errors that should exit with 2.
var errUsage = errors.New("usage")

type command func(args []string) error

func (c *cmd) run(args []string, fn command) int {
	defer func() {
		if c.mod != nil {
			c.mod.Close()
		}
		if c.ch != nil {
			c.ch.Close()
		}
	}()
	err := fn(args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(c.stderr, "parleyd admin: %v\n", err)
		return 2
	default:
		fmt.Fprintf(c.stderr, "parleyd admin: %v\n", err)
		return 1
	}
}

// modStore opens the server's moderation database. Like every admin
// command, it never creates a database: only "parleyd serve" does, and a
// list imported into a new one would never reach the server.
func (c *cmd) modStore() (moderation.Store, error) {
	if c.mod == nil {
		s, err := channelsrv.OpenModeration(c.ctx, c.where)
		if err != nil {
			return nil, err
		}
		c.mod = s
	}
	return c.mod, nil
}

// chanStore opens the server's channel database, never creating one.
func (c *cmd) chanStore() (channels.Store, error) {
	if c.ch == nil {
		s, err := channelsrv.OpenChannels(c.ctx, c.where)
		if err != nil {
			return nil, err
		}
		c.ch = s
	}
	return c.ch, nil
}

// parse parses flags that may come before, between or after positional
// arguments, and returns the positional ones.
func (c *cmd) parse(fs *flag.FlagSet, args []string, summary string) ([]string, error) {
	cliflag.SetUsage(fs, fmt.Sprintf("Usage: parleyd admin %s\n\nFlags:\n", summary), c.stdout, c.stderr)
	pos, err := cliflag.Parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return pos, err
}

func (c *cmd) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseAction(s string) (hashlist.Action, error) {
	switch a := hashlist.Action(strings.ToLower(s)); a {
	case hashlist.Block, hashlist.Review, hashlist.Log:
		return a, nil
	}
	return "", fmt.Errorf("%w: --action must be block, review or log, not %q", errUsage, s)
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// readList parses a list file in one of the supported formats.
func readList(path, format string, defType hashlist.SignalType) ([]hashlist.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if format == "" || format == "auto" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".json":
			format = "tcap"
		default:
			format = "hma"
		}
	}
	switch format {
	case "hma":
		return hashlist.ParseHMA(f, defType)
	case "csv":
		es, err := hashlist.ParseCSV(f)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return tagQuality(f, es)
	case "tcap":
		p, err := moderation.DecodeExchangePage(f)
		if err != nil {
			return nil, err
		}
		return p.Upserts, nil
	}
	return nil, fmt.Errorf("%w: --format must be auto, hma, csv or tcap, not %q", errUsage, format)
}

// tagQuality reads an optional "quality" column of a CSV list (already
// validated by hashlist.ParseCSV) and tags PDQ entries with "quality:N",
// so that the matcher ignores hashes of low quality (PDQ's advice: below
// 50) from lists that state it.
func tagQuality(r io.Reader, es []hashlist.Entry) ([]hashlist.Entry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 0
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return es, nil
	}
	sig, q := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "signal":
			sig = i
		case "quality", "pdq_quality":
			q = i
		}
	}
	if sig < 0 || q < 0 {
		return es, nil
	}
	quality := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		v := strings.TrimSpace(rec[q])
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("hashlist: csv: line %d: quality %q is not 0 to 100", line, v)
		}
		quality[strings.ToLower(strings.TrimSpace(rec[sig]))] = n
	}
	for i, e := range es {
		if n, ok := quality[e.Value]; ok && e.Type == hashlist.PDQ {
			ne, err := hashlist.NewEntry(e.Type, e.Value, append(e.Tags, fmt.Sprintf("quality:%d", n)))
			if err != nil {
				return nil, err
			}
			es[i] = ne
		}
	}
	return es, nil
}

type bankJSON struct {
	Name       string    `json:"name"`
	Source     string    `json:"source"`
	Label      string    `json:"label"`
	Tags       []string  `json:"tags"`
	Action     string    `json:"action"`
	Version    int64     `json:"version"`
	Entries    int       `json:"entries"`
	Published  bool      `json:"published"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	Updated    time.Time `json:"updated"`
	Added      *int      `json:"added,omitempty"`
	Removed    *int      `json:"removed,omitempty"`
	Retagged   *int      `json:"retagged,omitempty"`
}

func (c *cmd) bankJSON(b moderation.Bank) bankJSON {
	_, err := c.mod.PublishToken(c.ctx, b.Name)
	tags := b.Tags
	if tags == nil {
		tags = []string{}
	}
	return bankJSON{Name: b.Name, Source: b.Source, Label: b.Label, Tags: tags, Action: string(b.Action), Version: b.Version,
		Entries: b.Entries, Published: err == nil, Checkpoint: b.Checkpoint, Updated: b.Updated.UTC()}
}

func (c *cmd) listsImport(args []string) error {
	fs := flag.NewFlagSet("lists import", flag.ContinueOnError)
	name := fs.String("name", "", "bank `name` (required), e.g. gifct or tat")
	format := fs.String("format", "auto", "file format: auto (by extension: .csv, .json=tcap, else hma), hma, csv or tcap")
	defType := fs.String("type", "", "signal type of bare hashes in an HMA file (pdq, md5, sha256)")
	source := fs.String("source", "", "where the list comes from (default: the file name)")
	label := fs.String("label", "terrorist content", "what the list holds")
	tags := fs.String("tags", "", "comma-separated tags for the whole list, e.g. tvec,ideology:far-right")
	action := fs.String("action", "block", "block (refuse uploads), review (hold them for a moderator) or log (publish, record the match)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := c.parse(fs, args, "lists import --name NAME [flags] FILE")
	if err != nil {
		return err
	}
	if len(pos) != 1 || *name == "" {
		return fmt.Errorf("%w: lists import needs --name and one FILE", errUsage)
	}
	act, err := parseAction(*action)
	if err != nil {
		return err
	}
	var dt hashlist.SignalType
	if *defType != "" {
		if dt, err = hashlist.ParseSignalType(*defType); err != nil {
			return fmt.Errorf("%w: --type: %v", errUsage, err)
		}
	}
	// Parse everything before touching the database: a bad record
	// refuses the whole file with its line or record number.
	entries, err := readList(pos[0], *format, dt)
	if err != nil {
		return fmt.Errorf("%s: nothing imported: %w", pos[0], err)
	}
	if *source == "" {
		*source = filepath.Base(pos[0])
	}
	st, err := c.modStore()
	if err != nil {
		return err
	}
	meta := moderation.Bank{Name: *name, Source: *source, Label: *label, Tags: splitList(*tags), Action: act}
	b, d, err := st.ImportBank(c.ctx, meta, entries)
	if err != nil {
		return fmt.Errorf("%s: nothing imported: %w", pos[0], err)
	}
	if *asJSON {
		j := c.bankJSON(b)
		a, r, t := len(d.Added), len(d.Removed), len(d.Changed)
		j.Added, j.Removed, j.Retagged = &a, &r, &t
		return c.printJSON(j)
	}
	if d.Empty() {
		fmt.Fprintf(c.stdout, "bank %s unchanged: version %d, %d entries\n", b.Name, b.Version, b.Entries)
		return nil
	}
	fmt.Fprintf(c.stdout, "bank %s version %d: %d added, %d removed, %d retagged; %d entries (%s, action %s)\n",
		b.Name, b.Version, len(d.Added), len(d.Removed), len(d.Changed), b.Entries, b.Label, b.Action)
	return nil
}

func (c *cmd) listsList(args []string) error {
	fs := flag.NewFlagSet("lists list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := c.parse(fs, args, "lists list [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: lists list takes no arguments", errUsage)
	}
	st, err := c.modStore()
	if err != nil {
		return err
	}
	banks, err := st.Banks(c.ctx)
	if err != nil {
		return err
	}
	out := []bankJSON{}
	for _, b := range banks {
		out = append(out, c.bankJSON(b))
	}
	if *asJSON {
		return c.printJSON(out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACTION\tENTRIES\tVERSION\tPUBLISHED\tLABEL\tTAGS\tSOURCE")
	for _, b := range out {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%s\t%s\t%s\n", b.Name, b.Action, b.Entries, b.Version, b.Published, b.Label, strings.Join(b.Tags, ","), b.Source)
	}
	return tw.Flush()
}

func (c *cmd) listsRemove(args []string) error {
	fs := flag.NewFlagSet("lists remove", flag.ContinueOnError)
	pos, err := c.parse(fs, args, "lists remove NAME")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: lists remove needs one NAME", errUsage)
	}
	st, err := c.modStore()
	if err != nil {
		return err
	}
	if err := st.RemoveBank(c.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "bank %s removed\n", pos[0])
	return nil
}

func (c *cmd) listsExport(args []string) error {
	fs := flag.NewFlagSet("lists export", flag.ContinueOnError)
	format := fs.String("format", "hma", "hma (\"<type> <hash>\" lines) or csv (signal_type,signal,tags)")
	pos, err := c.parse(fs, args, "lists export NAME [--format hma|csv]")
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*format != "hma" && *format != "csv") {
		return fmt.Errorf("%w: lists export needs one NAME and --format hma or csv", errUsage)
	}
	st, err := c.modStore()
	if err != nil {
		return err
	}
	es, err := st.Entries(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if *format == "csv" {
		fmt.Fprintln(c.stdout, "signal_type,signal,tags")
	}
	for _, e := range es {
		if *format == "csv" {
			// Tags hold only a-z 0-9 _-.:/ so need no quoting.
			fmt.Fprintf(c.stdout, "%s,%s,%s\n", e.Type, e.Value, strings.Join(e.Tags, " "))
		} else {
			fmt.Fprintf(c.stdout, "%s %s\n", e.Type, e.Value)
		}
	}
	return nil
}

func (c *cmd) listsSync(args []string) error {
	fs := flag.NewFlagSet("lists sync", flag.ContinueOnError)
	from := fs.String("from", "", "feed `URL`, e.g. https://other.example/v1/exchange/confirmed")
	token := fs.String("token", "", "bearer token of the feed (default $PARLEY_EXCHANGE_TOKEN)")
	bank := fs.String("bank", "", "local bank `name` to sync into")
	label := fs.String("label", "", "label of the local bank (default: keep, or \"shared by URL\")")
	action := fs.String("action", "", "block, review or log (default: keep, or block)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := c.parse(fs, args, "lists sync --from URL --token T --bank NAME")
	if err != nil {
		return err
	}
	if len(pos) != 0 || *from == "" || *bank == "" {
		return fmt.Errorf("%w: lists sync needs --from and --bank", errUsage)
	}
	if *token == "" {
		*token = os.Getenv("PARLEY_EXCHANGE_TOKEN")
	}
	st, err := c.modStore()
	if err != nil {
		return err
	}
	meta := moderation.Bank{Name: *bank, Source: *from, Label: "shared by " + *from, Action: hashlist.Block}
	if b, err := st.Bank(c.ctx, *bank); err == nil {
		meta = b
		meta.Source = *from
	}
	if *label != "" {
		meta.Label = *label
	}
	if *action != "" {
		if meta.Action, err = parseAction(*action); err != nil {
			return err
		}
	}
	res, err := moderation.Sync(c.ctx, st, moderation.SyncOptions{URL: *from, Token: *token, Bank: meta})
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(map[string]any{"bank": c.bankJSON(res.Bank), "pages": res.Pages, "added": res.Added, "removed": res.Removed, "checkpoint": res.Checkpoint})
	}
	fmt.Fprintf(c.stdout, "bank %s synced from %s: %d added, %d removed in %d page(s); %d entries, checkpoint %s\n",
		res.Bank.Name, *from, res.Added, res.Removed, res.Pages, res.Bank.Entries, res.Checkpoint)
	return nil
}

func (c *cmd) listsPublish(on bool) command {
	return func(args []string) error {
		fs := flag.NewFlagSet("lists publish", flag.ContinueOnError)
		verb := "publish"
		if !on {
			verb = "unpublish"
		}
		pos, err := c.parse(fs, args, "lists "+verb+" NAME")
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: lists %s needs one NAME", errUsage, verb)
		}
		st, err := c.modStore()
		if err != nil {
			return err
		}
		if !on {
			if err := st.SetPublishToken(c.ctx, pos[0], nil); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "bank %s is no longer published\n", pos[0])
			return nil
		}
		tok, err := moderation.Publish(c.ctx, st, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "bank %s is published at %s%s (any previous token stops working)\ntoken: %s\n",
			pos[0], moderation.PathExchange, pos[0], tok)
		return nil
	}
}

func (c *cmd) listsConfirm(add bool) command {
	return func(args []string) error {
		verb := "confirm"
		if !add {
			verb = "unconfirm"
		}
		fs := flag.NewFlagSet("lists "+verb, flag.ContinueOnError)
		bank := fs.String("bank", "confirmed", "bank `name`")
		typ := fs.String("type", "pdq", "signal type: pdq, md5 or sha256")
		moderator := fs.String("moderator", defaultModerator(), "who decided")
		pos, err := c.parse(fs, args, "lists "+verb+" --bank NAME --type TYPE HASH...")
		if err != nil {
			return err
		}
		if len(pos) == 0 {
			return fmt.Errorf("%w: lists %s needs at least one HASH", errUsage, verb)
		}
		t, err := hashlist.ParseSignalType(*typ)
		if err != nil {
			return fmt.Errorf("%w: --type: %v", errUsage, err)
		}
		var entries []hashlist.Entry
		for _, h := range pos {
			e, err := hashlist.NewEntry(t, h, nil)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			entries = append(entries, e)
		}
		st, err := c.modStore()
		if err != nil {
			return err
		}
		var b moderation.Bank
		if add {
			b, err = moderation.Confirm(c.ctx, st, *bank, entries, *moderator, "")
		} else {
			var meta moderation.Bank
			if meta, err = st.Bank(c.ctx, *bank); err == nil {
				b, err = st.ApplyDelta(c.ctx, meta, hashlist.Delta{Removed: entries}, meta.Checkpoint)
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "bank %s version %d: %d entries\n", b.Name, b.Version, b.Entries)
		return nil
	}
}

func defaultModerator() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "admin"
}

type decisionJSON struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	List     string    `json:"list,omitempty"`
	Type     string    `json:"type,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	Distance int       `json:"distance"`
	Subject  string    `json:"subject,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Note     string    `json:"note,omitempty"`
}

type heldJSON struct {
	Post    int64     `json:"post"`
	Channel string    `json:"channel"`
	Author  string    `json:"author"`
	Reason  string    `json:"reason"`
	Media   int       `json:"media"`
	Created time.Time `json:"created"`
}

func (c *cmd) takedownsList(args []string) error {
	fs := flag.NewFlagSet("takedowns", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "how many recent decisions to show")
	post := fs.Int64("post", 0, "show only the decisions about this post")
	pos, err := c.parse(fs, args, "takedowns [list] [--json] [--limit N] [--post ID]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: takedowns list takes no arguments", errUsage)
	}
	ms, err := c.modStore()
	if err != nil {
		return err
	}
	cs, err := c.chanStore()
	if err != nil {
		return err
	}
	held, err := cs.Posts(c.ctx, 0, 1000, channels.Held)
	if err != nil {
		return err
	}
	subject := ""
	if *post > 0 {
		subject = "post:" + strconv.FormatInt(*post, 10)
	}
	ds, err := ms.Decisions(c.ctx, subject, *limit)
	if err != nil {
		return err
	}
	hs := []heldJSON{}
	for _, p := range held {
		hs = append(hs, heldJSON{Post: p.ID, Channel: p.Channel, Author: p.Author, Reason: p.Reason, Media: len(p.Media), Created: p.Created.UTC()})
	}
	djs := []decisionJSON{}
	for _, d := range ds {
		djs = append(djs, decisionJSON{ID: d.ID, Time: d.Time.UTC(), Kind: d.Kind, List: d.Bank, Type: string(d.Type), Hash: d.Hash,
			Distance: d.Distance, Subject: d.Subject, Actor: d.Actor, Note: d.Note})
	}
	if *asJSON {
		return c.printJSON(map[string]any{"held": hs, "decisions": djs})
	}
	fmt.Fprintf(c.stdout, "Held for review (%d):\n", len(hs))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POST\tCHANNEL\tAUTHOR\tMEDIA\tCREATED\tREASON")
	for _, h := range hs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", h.Post, h.Channel, h.Author, h.Media, h.Created.Format(time.RFC3339), h.Reason)
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "\nRecent decisions (%d):\n", len(djs))
	tw = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tDECISION\tLIST\tTYPE\tDISTANCE\tSUBJECT\tBY\tHASH")
	for _, d := range djs {
		by := d.Actor
		if by == "" {
			by = "(automatic)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Time.Format(time.RFC3339), d.Kind, d.List, d.Type, d.Distance, d.Subject, by, d.Hash)
	}
	return tw.Flush()
}

func (c *cmd) takedownsDecide(approve bool) command {
	return func(args []string) error {
		verb := "reject"
		if approve {
			verb = "approve"
		}
		fs := flag.NewFlagSet("takedowns "+verb, flag.ContinueOnError)
		moderator := fs.String("moderator", defaultModerator(), "who decided")
		confirm := ""
		if !approve {
			fs.StringVar(&confirm, "confirm", "", "also confirm the post's media hashes into this `bank` (blocks them here and shares them if the bank is published)")
		}
		pos, err := c.parse(fs, args, "takedowns "+verb+" POST")
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: takedowns %s needs one POST id", errUsage, verb)
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("%w: POST must be a post id, not %q", errUsage, pos[0])
		}
		ms, err := c.modStore()
		if err != nil {
			return err
		}
		cs, err := c.chanStore()
		if err != nil {
			return err
		}
		if approve {
			if _, err := channels.Approve(c.ctx, cs, ms, id, *moderator); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "post %d approved and published\n", id)
			return nil
		}
		if _, err := channels.Reject(c.ctx, cs, ms, id, *moderator, confirm); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "post %d removed\n", id)
		if confirm != "" {
			fmt.Fprintf(c.stdout, "its media hashes are confirmed in bank %s\n", confirm)
		}
		return nil
	}
}
