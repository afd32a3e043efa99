package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/parleychat/parley/channels/channelcmd"
)

// runChannel hands "parley channel ..." to channelcmd with this profile's
// server and session token. Channels are public and not end to end
// encrypted; channelcmd says so in every output.
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
	return channelcmd.Run(ctx, server, auth, rest, stdout, stderr)
}

func isHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" || a == "help" {
			return true
		}
	}
	return false
}
