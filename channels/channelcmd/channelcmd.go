// Package channelcmd implements "parley channel", the client commands for
// public channels:
//
//	parley channel create ID [--title T] [--description D]
//	parley channel post ID TEXT [--media FILE]...
//	parley channel follow ID | unfollow ID
//	parley channel read ID [--since N] [--follow] [--json]
//	parley channel admin ID USER [--remove]
//
// Channels are public and NOT end-to-end encrypted, unlike Parley's chats;
// every command says so in its output.
package channelcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/channels/channelapi"
	"github.com/parleychat/parley/internal/cliflag"
	"github.com/parleychat/parley/internal/presigned"
)

const warning = "NOTE: channels are public and NOT end-to-end encrypted: the server and anyone can read what is posted."

const usage = `Public channels (NOT end-to-end encrypted: the server and anyone can read them).

Usage:
  parley channel create ID [--title T] [--description D] [--json]
  parley channel post ID TEXT [--media FILE]... [--json]
  parley channel follow ID
  parley channel unfollow ID
  parley channel read ID [--since N] [--follow] [--json]
  parley channel list [--json]          the channels you follow and own
  parley channel get-media ID POST N [--out PATH] [--json]
                                        download media N of post POST (digest checked)
  parley channel admin ID USER [--remove]
  parley channel delete ID [--post N] --yes

Add --help to a command for its flags.
`

// Run runs "parley channel ..." (args start after "channel") against the
// server at serverURL; auth adds the caller's credentials to each request.
// It returns the exit code: 0 on success, 1 on failure (including a post
// refused by moderation), 2 on bad usage.
func Run(ctx context.Context, serverURL string, auth func(*http.Request) error, args []string, stdout, stderr io.Writer) int {
	return RunWithOptions(ctx, serverURL, auth, args, stdout, stderr, Options{})
}

// Options adjust Run.
type Options struct {
	// Notice, if set, says whether to print the "public, not end-to-end
	// encrypted" notice now (cmd/parley: once per profile). Unset, it is
	// printed at every create, post and follow.
	Notice func() bool
	// Progress, if set, is told of a download's progress (get-media).
	Progress func(done, total int64)
	// HTTPClient makes the requests (default http.DefaultClient).
	HTTPClient *http.Client
}

func isHelpArg(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// RunWithOptions is Run with options.
func RunWithOptions(ctx context.Context, serverURL string, auth func(*http.Request) error, args []string, stdout, stderr io.Writer, opts Options) int {
	c := &client{base: strings.TrimRight(serverURL, "/"), auth: auth, stdout: stdout, stderr: stderr, http: http.DefaultClient, progress: opts.Progress}
	if opts.HTTPClient != nil {
		c.http = opts.HTTPClient
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var fn func(context.Context, []string) error
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "create":
		fn = c.create
	case "post":
		fn = c.post
	case "follow":
		fn = c.follow(true)
	case "unfollow":
		fn = c.follow(false)
	case "read":
		fn = c.read
	case "list":
		fn = c.list
	case "get-media":
		fn = c.getMedia
	case "admin":
		fn = c.admin
	case "delete":
		fn = c.delete
	default:
		fmt.Fprintf(stderr, "parley channel: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch args[0] {
	case "create", "post", "follow":
		// Where the notice informs: before someone publishes or
		// subscribes. To stderr, so that it never mixes into output
		// (JSON above all); at most once per profile if the caller says.
		if !isHelpArg(args[1:]) && (opts.Notice == nil || opts.Notice()) {
			fmt.Fprintln(stderr, warning)
		}
	}
	err := fn(ctx, args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "parley channel: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "parley channel: %v\n", err)
		return 1
	}
}

var errUsage = errors.New("usage")

type client struct {
	base           string
	auth           func(*http.Request) error
	http           *http.Client
	stdout, stderr io.Writer
	progress       func(done, total int64)
}

// stringsFlag collects a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func (c *client) parse(fs *flag.FlagSet, args []string, summary string) ([]string, error) {
	cliflag.SetUsage(fs, fmt.Sprintf("Usage: parley channel %s\n(Public channels are NOT end-to-end encrypted.)\n\nFlags:\n", summary), c.stdout, c.stderr)
	pos, err := cliflag.Parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return pos, err
}

// apiError is a failed API call, carrying the server's JSON error.
type apiError struct {
	Status int
	Body   channelapi.ErrorBody
}

func (e *apiError) Error() string {
	switch e.Body.Code {
	case "blocked":
		return fmt.Sprintf("post refused (HTTP %d): media %d matches the hash list %q (%s); it was not published",
			e.Status, deref(e.Body.Media), e.Body.List, e.Body.Label)
	case "media_refused":
		return fmt.Sprintf("post refused (HTTP %d): %s", e.Status, e.Body.Error)
	}
	if e.Body.Error != "" {
		return fmt.Sprintf("server: %s (HTTP %d)", e.Body.Error, e.Status)
	}
	return fmt.Sprintf("server: HTTP %d", e.Status)
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *client) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return 0, fmt.Errorf("authenticate: %w", err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil {
			e.Body.Error = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode server answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

func channelPath(id string) string { return channelapi.PathPrefix + "/" + url.PathEscape(id) }

func (c *client) printJSON(v any) error {
	return json.NewEncoder(c.stdout).Encode(v)
}

func (c *client) create(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	title := fs.String("title", "", "channel title")
	desc := fs.String("description", "", "channel description")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := c.parse(fs, args, "create ID [--title T] [--description D]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: create needs one channel ID", errUsage)
	}
	body, _ := json.Marshal(channelapi.CreateRequest{ID: pos[0], Title: *title, Description: *desc})
	var resp channelapi.ChannelResponse
	if _, err := c.do(ctx, "POST", channelapi.PathPrefix, "application/json", bytes.NewReader(body), &resp); err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(resp)
	}
	fmt.Fprintf(c.stdout, "Created public channel %s (%q), owned by %s.\n", resp.Channel.ID, resp.Channel.Title, resp.Channel.Owner)
	return nil
}

func (c *client) post(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("post", flag.ContinueOnError)
	var media stringsFlag
	fs.Var(&media, "media", "attach a media `FILE` (repeatable); it is hashed and checked against hash lists by the server")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := c.parse(fs, args, "post ID TEXT [--media FILE]...")
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 || (len(pos) == 1 && len(media) == 0) {
		return fmt.Errorf("%w: post needs a channel ID and TEXT and/or --media FILE", errUsage)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if len(pos) == 2 {
		mw.WriteField("text", pos[1])
	}
	for _, path := range media {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(path)))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="media"; filename=%q`, filepath.Base(path)))
		h.Set("Content-Type", ct)
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		w.Write(data)
	}
	mw.Close()
	var resp channelapi.PostResponse
	status, err := c.do(ctx, "POST", channelPath(pos[0])+"/posts", mw.FormDataContentType(), &buf, &resp)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(resp)
	}
	if status == http.StatusAccepted {
		fmt.Fprintf(c.stdout, "Post %d is held for review by the server's moderators (%s); followers will see it if it is approved.\n", resp.Post.ID, resp.Post.Reason)
		return nil
	}
	fmt.Fprintf(c.stdout, "Published post %d to public channel %s.\n", resp.Post.ID, resp.Post.Channel)
	return nil
}

func (c *client) follow(on bool) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		verb, method := "follow", "PUT"
		if !on {
			verb, method = "unfollow", "DELETE"
		}
		fs := flag.NewFlagSet(verb, flag.ContinueOnError)
		pos, err := c.parse(fs, args, verb+" ID")
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s needs one channel ID", errUsage, verb)
		}
		if _, err := c.do(ctx, method, channelPath(pos[0])+"/follow", "", nil, nil); err != nil {
			return err
		}
		if on {
			fmt.Fprintf(c.stdout, "Following public channel %s.\n", pos[0])
		} else {
			fmt.Fprintf(c.stdout, "No longer following public channel %s.\n", pos[0])
		}
		return nil
	}
}

func (c *client) admin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	remove := fs.Bool("remove", false, "remove USER from the admins instead")
	pos, err := c.parse(fs, args, "admin ID USER [--remove]")
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: admin needs a channel ID and a USER", errUsage)
	}
	method := "PUT"
	if *remove {
		method = "DELETE"
	}
	if _, err := c.do(ctx, method, channelPath(pos[0])+"/admins/"+url.PathEscape(pos[1]), "", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s can %s post to public channel %s.\n", pos[1], map[bool]string{true: "no longer", false: "now"}[*remove], pos[0])
	return nil
}

// delete deletes a channel (owner only) or, with --post, one post (its
// author, the owner or an admin). Deleting a channel cannot be undone,
// hence --yes.
func (c *client) delete(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	post := fs.Int64("post", 0, "delete only this post (its id, from read --json) instead of the channel")
	yes := fs.Bool("yes", false, "confirm deleting the whole channel: its posts and followers go, and its id can never be used again")
	pos, err := c.parse(fs, args, "delete ID [--post N] --yes")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: delete needs one channel ID", errUsage)
	}
	if *post > 0 {
		if _, err := c.do(ctx, "DELETE", channelPath(pos[0])+"/posts/"+strconv.FormatInt(*post, 10), "", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Post %d deleted from public channel %s; followers' clients remove it.\n", *post, pos[0])
		return nil
	}
	if !*yes {
		return fmt.Errorf("%w: deleting channel %s removes all its posts and followers and cannot be undone; add --yes to confirm", errUsage, pos[0])
	}
	if _, err := c.do(ctx, "DELETE", channelPath(pos[0]), "", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Public channel %s deleted.\n", pos[0])
	return nil
}

// eventJSON is one line of "read --json" output (JSON Lines).
type eventJSON struct {
	Channel   string               `json:"channel"`
	Public    bool                 `json:"public"`
	E2E       bool                 `json:"end_to_end_encrypted"`
	Seq       int64                `json:"seq"`
	Kind      string               `json:"kind"`
	PostID    int64                `json:"post_id"`
	Reason    string               `json:"reason,omitempty"`
	Post      *channelapi.PostView `json:"post,omitempty"`
	Cursor    int64                `json:"cursor"`
	Retracted bool                 `json:"retracted,omitempty"`
}

func (c *client) read(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("read", flag.ContinueOnError)
	since := fs.Int64("since", 0, "show events after this cursor (from a previous read)")
	follow := fs.Bool("follow", false, "keep reading: print new posts and takedowns as they happen")
	asJSON := fs.Bool("json", false, "print one JSON object per event (JSON Lines)")
	wait := fs.Duration("wait", 30*time.Second, "long-poll time per request with --follow")
	pos, err := c.parse(fs, args, "read ID [--since N] [--follow] [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: read needs one channel ID", errUsage)
	}
	id := pos[0]
	if !*asJSON {
		fmt.Fprintf(c.stdout, "Public channel %s (not end-to-end encrypted):\n", id)
	}
	cursor := *since
	// Without --follow, read to the end and show what is still up:
	// posts taken down later in the feed are removed here too.
	var shown []channelapi.EventView
	backoff := time.Second
	for {
		w := 0
		if *follow {
			w = int(wait.Seconds())
		}
		var resp channelapi.EventsResponse
		_, err := c.do(ctx, "GET", fmt.Sprintf("%s/events?since=%d&wait=%d", channelPath(id), cursor, w), "", nil, &resp)
		if err != nil {
			var ae *apiError
			if !*follow || errors.As(err, &ae) || ctx.Err() != nil {
				if ctx.Err() != nil && *follow {
					return nil
				}
				return err
			}
			// Connection lost: reconnect from the cursor.
			fmt.Fprintf(c.stderr, "parley channel: %v; reconnecting\n", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		for _, e := range resp.Events {
			if *follow {
				if err := c.printEvent(id, e, *asJSON, false); err != nil {
					return err
				}
				continue
			}
			if e.Kind == channelapi.EventTakedown {
				shown = removePost(shown, e.PostID)
			}
			if e.Kind == channelapi.EventPost && e.Post != nil {
				shown = append(removePost(shown, e.PostID), e)
			}
		}
		cursor = resp.Cursor
		if !*follow && len(resp.Events) == 0 {
			break
		}
	}
	for _, e := range shown {
		if err := c.printEvent(id, e, *asJSON, false); err != nil {
			return err
		}
	}
	if *asJSON {
		return c.printJSON(eventJSON{Channel: id, Public: true, Kind: "cursor", Cursor: cursor})
	}
	fmt.Fprintf(c.stdout, "(%d posts; continue with --since %d)\n", len(shown), cursor)
	return nil
}

func removePost(es []channelapi.EventView, id int64) []channelapi.EventView {
	out := es[:0]
	for _, e := range es {
		if e.PostID != id {
			out = append(out, e)
		}
	}
	return out
}

func (c *client) printEvent(channel string, e channelapi.EventView, asJSON, _ bool) error {
	if asJSON {
		return c.printJSON(eventJSON{Channel: channel, Public: true, Seq: e.Seq, Kind: e.Kind, PostID: e.PostID,
			Reason: e.Reason, Post: e.Post, Cursor: e.Seq, Retracted: e.Kind == channelapi.EventPost && e.Post == nil})
	}
	switch {
	case e.Kind == channelapi.EventTakedown:
		fmt.Fprintf(c.stdout, "[%d] post %d was taken down (%s); removed from view\n", e.Seq, e.PostID, e.Reason)
	case e.Post != nil:
		p := e.Post
		fmt.Fprintf(c.stdout, "[%d] post %d by %s at %s (public):\n", e.Seq, p.ID, p.Author, p.Created.Local().Format(time.DateTime))
		if p.Text != "" {
			for _, line := range strings.Split(p.Text, "\n") {
				fmt.Fprintf(c.stdout, "    %s\n", sanitize(line))
			}
		}
		for _, m := range p.Media {
			fmt.Fprintf(c.stdout, "    media %d: %s, %d bytes: parley channel get-media %s %d %d\n", m.Index, m.ContentType, m.Size, channel, p.ID, m.Index)
		}
	}
	return nil
}

// sanitize drops control characters, so that a post cannot drive the
// reader's terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// list prints the channels the caller follows and owns.
func (c *client) list(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := c.parse(fs, args, "list [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: list takes no arguments", errUsage)
	}
	var resp channelapi.ListResponse
	if _, err := c.do(ctx, "GET", channelapi.PathPrefix, "", nil, &resp); err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(resp)
	}
	none := func(ids []string) string {
		if len(ids) == 0 {
			return "none"
		}
		return strings.Join(ids, ", ")
	}
	fmt.Fprintf(c.stdout, "Public channels you follow: %s\nPublic channels you own: %s\n", none(resp.Following), none(resp.Owned))
	return nil
}

// getMedia downloads one media item of a post into a file, checking its
// size and SHA-256 digest against the post's (and the server's
// Repr-Digest, RFC 9530) before the file appears: a truncated or altered
// download is never left behind. It never overwrites a file.
func (c *client) getMedia(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get-media", flag.ContinueOnError)
	out := fs.String("out", "", "where to write it (default: CHANNEL-POST-N with the type's extension, in the current directory)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := c.parse(fs, args, "get-media ID POST N [--out PATH] [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return fmt.Errorf("%w: get-media needs a channel ID, a post number and a media number (as channel read or sync show them)", errUsage)
	}
	postID, err1 := strconv.ParseInt(pos[1], 10, 64)
	n, err2 := strconv.Atoi(pos[2])
	if err1 != nil || err2 != nil || postID <= 0 || n < 0 {
		return fmt.Errorf("%w: POST and N are numbers", errUsage)
	}
	var resp channelapi.PostResponse
	if _, err := c.do(ctx, "GET", fmt.Sprintf("%s/posts/%d", channelPath(pos[0]), postID), "", nil, &resp); err != nil {
		return err
	}
	post := resp.Post
	var m *channelapi.MediaView
	for i := range post.Media {
		if post.Media[i].Index == n {
			m = &post.Media[i]
		}
	}
	if m == nil {
		return fmt.Errorf("post %d of %s has no media %d (it has %d)", postID, pos[0], n, len(post.Media))
	}
	want, err := hex.DecodeString(m.SHA256)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("the server gave no SHA-256 digest for this media; refusing to save what cannot be checked")
	}
	path := *out
	if path == "" {
		ext := ""
		if exts, _ := mime.ExtensionsByType(m.ContentType); len(exts) > 0 {
			ext = exts[0]
		}
		path = fmt.Sprintf("%s-%d-%d%s", pos[0], postID, n, ext)
	} else if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, fmt.Sprintf("%s-%d-%d", pos[0], postID, n))
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+m.URL, nil)
	if err != nil {
		return err
	}
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
	}
	// The server may send us to its object store for the bytes; the
	// digest check below holds wherever they come from.
	req.Header.Set(channelapi.FollowRedirectHeader, "1")
	hr, err := presigned.Client(c.http, channelapi.FollowRedirectHeader).Do(req)
	if err != nil {
		return err
	}
	defer hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		e := &apiError{Status: hr.StatusCode}
		data, _ := io.ReadAll(io.LimitReader(hr.Body, 4096))
		if json.Unmarshal(data, &e.Body) != nil {
			e.Body.Error = strings.TrimSpace(string(data))
		}
		return e
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".parley-media-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once linked
	h := sha256.New()
	var done int64
	buf := make([]byte, 64<<10)
	for {
		k, rerr := hr.Body.Read(buf)
		if k > 0 {
			if done+int64(k) > m.Size {
				tmp.Close()
				return fmt.Errorf("the server sent more than the media's %d bytes; nothing saved", m.Size)
			}
			if _, err := tmp.Write(buf[:k]); err != nil {
				tmp.Close()
				return err
			}
			h.Write(buf[:k])
			done += int64(k)
			if c.progress != nil {
				c.progress(done, m.Size)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			tmp.Close()
			return fmt.Errorf("download: %w", rerr)
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	got := h.Sum(nil)
	if done != m.Size || !bytes.Equal(got, want) {
		return fmt.Errorf("the download does not match the post's SHA-256 digest or size (%d of %d bytes); nothing saved", done, m.Size)
	}
	if rd := hr.Header.Get("Repr-Digest"); rd != "" && rd != "sha-256=:"+base64.StdEncoding.EncodeToString(got)+":" {
		return fmt.Errorf("the download does not match the server's Repr-Digest; nothing saved")
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; choose another --out", path)
		}
		return err
	}
	if *asJSON {
		return c.printJSON(map[string]any{"path": path, "channel": pos[0], "post": postID, "index": n,
			"content_type": m.ContentType, "size": m.Size, "sha256": m.SHA256, "public": true})
	}
	fmt.Fprintf(c.stdout, "Saved media %d of post %d (%s, %d bytes, SHA-256 verified) to %s.\n", n, postID, m.ContentType, m.Size, path)
	return nil
}
