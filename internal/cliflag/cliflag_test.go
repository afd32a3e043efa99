package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		pos     []string
		n       string
		verbose bool
	}{
		{"none", nil, nil, "", false},
		{"flags first", []string{"-n", "x", "-v", "a", "b"}, []string{"a", "b"}, "x", true},
		{"flags last", []string{"a", "b", "-n", "x", "-v"}, []string{"a", "b"}, "x", true},
		{"flags between", []string{"a", "-n=x", "b", "-v"}, []string{"a", "b"}, "x", true},
		{"positional only", []string{"a", "b", "c"}, []string{"a", "b", "c"}, "", false},
		{"lone dash is positional", []string{"-", "-v"}, []string{"-"}, "", true},
		{"after --", []string{"a", "-n", "x", "--", "-v", "b"}, []string{"a", "-v", "b"}, "x", false},
		{"-- first", []string{"--", "-n", "x"}, []string{"-n", "x"}, "", false},
		{"-- last", []string{"a", "-v", "--"}, []string{"a"}, "", true},
		{"-- as a value", []string{"-n=--", "a", "-v"}, []string{"a"}, "--", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			n := fs.String("n", "", "")
			v := fs.Bool("v", false, "")
			pos, err := Parse(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pos, tc.pos) || *n != tc.n || *v != tc.verbose {
				t.Fatalf("Parse(%q) = %q, -n %q, -v %v; want %q, %q, %v", tc.args, pos, *n, *v, tc.pos, tc.n, tc.verbose)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		help bool
	}{
		{"unknown flag after positional", []string{"a", "-nope"}, false},
		{"missing value", []string{"a", "-n"}, false},
		{"help after positional", []string{"a", "-h"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.String("n", "", "")
			pos, err := Parse(fs, tc.args)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, nil; want an error", tc.args, pos)
			}
			if got := errors.Is(err, flag.ErrHelp); got != tc.help {
				t.Fatalf("Parse(%q): %v; ErrHelp %v, want %v", tc.args, err, got, tc.help)
			}
		})
	}
}

func TestSetUsage(t *testing.T) {
	newFlags := func() (*flag.FlagSet, *bytes.Buffer, *bytes.Buffer) {
		var stdout, stderr bytes.Buffer
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.String("name", "", "the `NAME` to use")
		SetUsage(fs, "Usage: test [flags] FILE\n\nFlags:\n", &stdout, &stderr)
		return fs, &stdout, &stderr
	}

	fs, stdout, stderr := newFlags()
	if _, err := Parse(fs, []string{"file", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want ErrHelp", err)
	}
	if out := stdout.String(); !strings.HasPrefix(out, "Usage: test [flags] FILE\n\nFlags:\n") || !strings.Contains(out, "-name NAME") {
		t.Errorf("-h printed %q to stdout, want the header and the flags", out)
	}
	if stderr.Len() != 0 {
		t.Errorf("-h printed %q to stderr", stderr)
	}

	fs, stdout, stderr = newFlags()
	if _, err := Parse(fs, []string{"-nope"}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-nope: %v, want a parse error", err)
	}
	if !strings.Contains(stderr.String(), "-nope") {
		t.Errorf("parse error printed %q to stderr, want it named", stderr)
	}
	if !strings.Contains(stdout.String(), "Usage:") {
		// flag prints the usage after an error; it goes where -h's does.
		t.Errorf("parse error printed %q to stdout, want the usage", stdout)
	}
}
