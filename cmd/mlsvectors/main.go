// Command mlsvectors runs MLS interoperability test vectors (the JSON files
// of github.com/mlswg/mls-implementations) against Parley's MLS
// implementation and reports, per file, how many entries passed, failed and
// were skipped.
//
// Usage:
//
//	mlsvectors [--json] [-v] PATH...
//
// Each PATH is a vector file or a folder searched recursively for .json
// files. The kind of each file is taken from its upstream name
// (tree-math.json, treekem.json, ...) or, for other names, from its fields.
// The exit status is 1 if any entry failed or a file could not be run, 2
// for a usage error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/parleychat/parley/mls/conformance"
)

// maxShown is how many failed entries per file are listed without -v.
const maxShown = 3

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mlsvectors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print one JSON report for all files instead of text")
	verbose := fs.Bool("v", false, "list every failed and skipped entry with its reason")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: mlsvectors [--json] [-v] PATH...

Runs MLS test-vector files (a file, or a folder searched recursively for
.json files) and prints, for each file, how many entries passed, failed and
were skipped (skipped only for an unsupported cipher suite), then a total
line "N passed, N failed". Exits 1 if anything failed.

Known kinds: %v, and passive-client scenario files of any name.

`, conformance.Kinds())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	files, err := conformance.Files(fs.Args()...)
	if err != nil {
		fmt.Fprintln(stderr, "mlsvectors:", err)
		return 1
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "mlsvectors: no .json files found")
		return 1
	}

	type fileError struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	}
	var (
		reports                 []*conformance.Report
		errs                    []fileError
		passed, failed, skipped int
	)
	for _, f := range files {
		r, err := conformance.RunFile(f)
		if err != nil {
			errs = append(errs, fileError{f, err.Error()})
			if !*jsonOut {
				fmt.Fprintf(stdout, "%s: error: %v\n", f, err)
			}
			continue
		}
		reports = append(reports, r)
		passed += r.Passed
		failed += r.Failed
		skipped += r.Skipped
		if *jsonOut {
			continue
		}
		fmt.Fprintf(stdout, "%s (%s): %d passed, %d failed, %d skipped\n", r.Path, r.Kind, r.Passed, r.Failed, r.Skipped)
		// Without -v, show the first few failures; with it, every failed
		// and skipped entry.
		shown := 0
		for _, res := range r.Results {
			if res.Status == conformance.Failed && (*verbose || shown < maxShown) ||
				res.Status == conformance.Skipped && *verbose {
				fmt.Fprintf(stdout, "  entry %d (suite %d): %s: %s\n", res.Index, res.Suite, res.Status, res.Reason)
				if res.Status == conformance.Failed {
					shown++
				}
			}
		}
		if !*verbose && r.Failed > shown {
			fmt.Fprintf(stdout, "  ... %d more failed (-v lists them)\n", r.Failed-shown)
		}
		if r.Skipped > 0 && !*verbose {
			fmt.Fprintf(stdout, "  %d skipped: unsupported cipher suite\n", r.Skipped)
		}
	}
	// A file that could not be classified or run counts as a failure.
	failed += len(errs)

	if *jsonOut {
		out := struct {
			Files   []*conformance.Report `json:"files"`
			Errors  []fileError           `json:"errors,omitempty"`
			Passed  int                   `json:"passed"`
			Failed  int                   `json:"failed"`
			Skipped int                   `json:"skipped"`
		}{reports, errs, passed, failed, skipped}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(stderr, "mlsvectors:", err)
			return 1
		}
	} else {
		if skipped > 0 {
			fmt.Fprintf(stdout, "%d skipped (unsupported cipher suite)\n", skipped)
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
