package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parleychat/parley/channels/channelcmd"
)

// runChannel hands "parley channel ..." to channelcmd with this profile's
// server and session token. Channels are public and not end to end
// encrypted; channelcmd says so on stderr the first time this profile
// creates, posts to or follows a channel.
func runChannel(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	e.flags.profile = defaultProfile()
	var rest []string
	jsonOut := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "--profile" || a == "-profile") && i+1 < len(args):
			e.flags.profile = args[i+1]
			i++
		case strings.HasPrefix(a, "--profile=") || strings.HasPrefix(a, "-profile="):
			e.flags.profile = a[strings.Index(a, "=")+1:]
		case a == "--json" || a == "-json":
			jsonOut = true
		default:
			rest = append(rest, a)
		}
	}
	if jsonOut && len(rest) > 0 {
		// channelcmd takes --json after the subcommand.
		rest = append([]string{rest[0], "--json"}, rest[1:]...)
	}
	if len(rest) == 0 || isHelp(rest) {
		return channelcmd.Run(ctx, "", nil, rest, stdout, stderr)
	}
	c, err := e.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "parley channel: %v\n", err)
		return 1
	}
	defer c.Close()
	server, auth, err := c.HTTPAuth(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "parley channel: %v\n", err)
		return 1
	}
	e.flags.json = jsonOut
	bar := newProgressBar(e, "downloading")
	defer bar.done()
	return channelcmd.RunWithOptions(ctx, server, auth, rest, stdout, stderr, channelcmd.Options{Notice: noticeOnce(e.flags.profile), Progress: bar.update})
}

// noticeOnce reports true the first time it is asked for a profile: the
// "channels are public" notice is shown once per profile, where it
// informs, not before every command. A marker file remembers it.
func noticeOnce(profileDir string) func() bool {
	return func() bool {
		f, err := os.OpenFile(filepath.Join(profileDir, "channels-notice-shown"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return errors.Is(err, os.ErrNotExist) // no profile dir: say it
		}
		f.Close()
		return true
	}
}

func isHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" || a == "help" {
			return true
		}
	}
	return false
}
