package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
)

// adminCLI is what the admin command groups (legal, cases, moderators)
// share: flags before or after the positional arguments, PARLEY_*
// environment, and errors and output in one form.
type adminCLI struct {
	name       string // "parleyd admin cases list"
	stdout     io.Writer
	stderr     io.Writer
	jsonOut    *bool
	positional []string
}

// parse parses args (flags may follow positional arguments); it returns
// the exit code to stop with, or -1 to go on.
func (a *adminCLI) parse(fs *flag.FlagSet, args []string) int {
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		a.positional = append(a.positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", a.name, err)
		return 2
	}
	return -1
}

func (a *adminCLI) fail(err error) int {
	fmt.Fprintf(a.stderr, "%s: %v\n", a.name, err)
	return 1
}

// out prints v as indented JSON with --json, else text.
func (a *adminCLI) out(v any, text string) int {
	if a.jsonOut != nil && *a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	} else {
		fmt.Fprintln(a.stdout, text)
	}
	return 0
}
