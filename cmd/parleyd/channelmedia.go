package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/internal/bytesize"
)

const channelMediaUsage = `Usage: parleyd admin channel-media move --to s3://BUCKET/PREFIX?endpoint=HOST:PORT [flags]

  move   moves the public channels' media files still held in the channels
         database (posted before "parleyd serve --channel-media" was set, or
         by a server without it) to the object store: each file is put as an
         object, then the database records the object and drops the bytes.
         Safe while the servers run, and to run again: a file moved already,
         or whose post is deleted meanwhile, is left alone (its object
         removed). Give --to the servers' --channel-media URL, with the same
         credentials (--blobs-credentials FILE, or PARLEY_S3_ACCESS_KEY_ID
         and PARLEY_S3_SECRET_ACCESS_KEY). The servers must run with
         --channel-media to serve the moved files.

Flags: --data DIR, --db URL (as the server's), --json (a summary as JSON).
SQLite keeps the freed space for reuse; "VACUUM" with the server stopped
returns it to the file system. PostgreSQL's autovacuum reuses it.
`

// adminChannelMedia runs "parleyd admin channel-media".
func adminChannelMedia(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, channelMediaUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] != "move" {
		fmt.Fprintf(stderr, "parleyd admin channel-media: unknown command %q\n\n%s", args[0], channelMediaUsage)
		return 2
	}
	fs := newFlagSet("parleyd admin channel-media move", "Move channel media from the database to the object store (parleyd admin channel-media --help).", stderr)
	data := fs.String("data", "parley-data", "data `directory` of the server")
	db := fs.String("db", "", "`URL` of the server's PostgreSQL database (postgres://...) if it runs with --db")
	to := fs.String("to", "", "the object store, as the servers' --channel-media (`s3://...`)")
	creds := fs.String("blobs-credentials", "", blobsCredentialsHelp)
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	cli := &adminCLI{name: "parleyd admin channel-media move", stdout: stdout, stderr: stderr, jsonOut: jsonOut}
	if code := cli.parse(fs, args[1:]); code >= 0 {
		return code
	}
	if len(cli.positional) != 0 || *to == "" {
		return cli.fail(errors.New("give --to, the object store's s3:// URL (as the servers' --channel-media), and no other arguments"))
	}
	media, _, err := openChannelMedia(ctx, *to, "", *creds, slog.New(slog.DiscardHandler))
	if err != nil {
		return cli.fail(err)
	}
	cs, err := channelsrv.OpenChannels(ctx, channelsrv.Where{Data: *data, DB: *db})
	if err != nil {
		return cli.fail(err)
	}
	defer cs.Close()
	res, err := moveChannelMedia(ctx, cs, media, func(r moveResult) {
		if !*jsonOut {
			fmt.Fprintf(stderr, "\rmoved %d files (%s)", r.Moved, bytesize.Format(r.Bytes))
		}
	})
	if !*jsonOut && res.Moved > 0 {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return cli.fail(fmt.Errorf("after %d files: %w", res.Moved, err))
	}
	return cli.out(res, fmt.Sprintf("Moved %d channel media files (%s) to the object store; %d were moved or deleted meanwhile and left alone.\n",
		res.Moved, bytesize.Format(res.Bytes), res.Skipped))
}

// moveResult is what moveChannelMedia did.
type moveResult struct {
	Moved   int   `json:"moved"`
	Bytes   int64 `json:"bytes"`
	Skipped int   `json:"skipped"` // moved by another run, or the post deleted
}

// progressEvery is how often moveChannelMedia reports its progress.
const progressEvery = time.Second

// moveChannelMedia moves every file whose bytes are in cs to media:
// put, then recorded (the bytes dropped) if the file is still there;
// otherwise the object is removed again.
func moveChannelMedia(ctx context.Context, cs channels.Store, media channels.MediaObjects, progress func(moveResult)) (moveResult, error) {
	var res moveResult
	var after channels.MediaRef
	last := time.Now()
	for {
		page, err := cs.StoredMedia(ctx, after, 100)
		if err != nil {
			return res, err
		}
		for _, f := range page {
			after = f
			data, already, err := cs.MediaData(ctx, f.PostID, f.Index)
			if errors.Is(err, channels.ErrNotFound) || (err == nil && already != "") {
				// Deleted, or moved by another run, since it was listed.
				res.Skipped++
				continue
			}
			if err != nil {
				return res, err
			}
			object, err := media.PutMedia(ctx, data)
			if err != nil {
				return res, err
			}
			moved, err := cs.MoveMediaToObject(ctx, f.PostID, f.Index, object)
			if err != nil || !moved {
				if rerr := media.RemoveMedia(context.WithoutCancel(ctx), []string{object}); rerr != nil && err == nil {
					err = fmt.Errorf("remove the object of a file that was not moved (the orphan sweep will): %w", rerr)
				}
				if err != nil {
					return res, err
				}
				res.Skipped++
				continue
			}
			res.Moved++
			res.Bytes += int64(len(data))
			if time.Since(last) >= progressEvery {
				last = time.Now()
				progress(res)
			}
		}
		if len(page) < 100 {
			return res, nil
		}
	}
}
