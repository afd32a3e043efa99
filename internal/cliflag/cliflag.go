// Package cliflag parses the command lines of Parley's subcommands ("parley
// channel ...", "parleyd admin ..."), whose flags may come before, between
// or after the positional arguments, as people type them.
package cliflag

import "flag"

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
