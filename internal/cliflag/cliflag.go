// Package cliflag parses the command lines of Parley's subcommands ("parley
// channel ...", "parleyd admin ..."), whose flags may come before, between
// or after the positional arguments, as people type them.
package cliflag

import (
	"flag"
	"io"
)

// SetUsage makes fs report parse errors on stderr and answer -h on stdout
// (it was asked for, so it is output, not an error) with header followed by
// the flags' defaults.
func SetUsage(fs *flag.FlagSet, header string, stdout, stderr io.Writer) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stdout, header)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
}

// Parse parses args with fs and returns the positional arguments in order.
// Unlike fs.Parse it does not stop at the first positional argument: it
// sets it aside and goes on parsing, until "--", after which every argument
// is positional (so a post may start with "-"). Its error is fs.Parse's
// (flag.ErrHelp for -h).
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first positional argument, or just after
		// a "--" that it consumes. (A flag whose value is "--" reads the
		// same; write it -name=--.)
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
