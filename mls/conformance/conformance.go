// Package conformance runs the MLS interoperability test vectors published
// by the IETF MLS working group (github.com/mlswg/mls-implementations,
// test-vectors.md) against this module's MLS implementation.
//
// A vector file is a JSON array of entries of one kind. Classify works out
// the kind from the file's upstream name or, for any other name (such as
// the interop/passive scenario files), from the fields of its first entry.
// Run checks every entry and reports each one as passed, failed (with the
// first mismatch found) or skipped; an entry is skipped only when its cipher
// suite is not implemented.
package conformance

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// Kind names a kind of test vector, by its upstream file name without
// ".json".
type Kind string

// The vector kinds of test-vectors.md.
const (
	TreeMath                    Kind = "tree-math"
	CryptoBasics                Kind = "crypto-basics"
	SecretTree                  Kind = "secret-tree"
	MessageProtection           Kind = "message-protection"
	KeySchedule                 Kind = "key-schedule"
	PSKSecret                   Kind = "psk_secret"
	TranscriptHashes            Kind = "transcript-hashes"
	Welcome                     Kind = "welcome"
	TreeOperations              Kind = "tree-operations"
	TreeValidation              Kind = "tree-validation"
	TreeKEM                     Kind = "treekem"
	Messages                    Kind = "messages"
	Deserialization             Kind = "deserialization"
	PassiveClientWelcome        Kind = "passive-client-welcome"
	PassiveClientHandlingCommit Kind = "passive-client-handling-commit"
	PassiveClientRandom         Kind = "passive-client-random"
	// PassiveClient is any other file in the passive-client format, such
	// as the interop/passive scenario files.
	PassiveClient Kind = "passive-client"
)

// Kinds lists every kind Run understands.
func Kinds() []Kind {
	ks := make([]Kind, 0, len(runners))
	for k := range runners {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Status is the outcome of one entry.
type Status int

const (
	Passed Status = iota
	Failed
	Skipped
)

func (s Status) String() string {
	switch s {
	case Passed:
		return "pass"
	case Failed:
		return "fail"
	case Skipped:
		return "skip"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText makes Status readable in JSON output.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is the outcome of one entry of a vector file.
type Result struct {
	Index int    `json:"index"`
	Suite uint16 `json:"cipher_suite,omitempty"`
	// Status is pass, fail or skip.
	Status Status `json:"status"`
	// Reason says why an entry failed or was skipped.
	Reason string `json:"reason,omitempty"`
}

// Report is the outcome of one vector file.
type Report struct {
	Path    string   `json:"path"`
	Kind    Kind     `json:"kind"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Skipped int      `json:"skipped"`
	Results []Result `json:"results"`
}

// ErrUnclassified means a file is not a vector file of any known kind.
var ErrUnclassified = errors.New("conformance: cannot classify vector file")

// errUnsupportedSuite marks an entry whose cipher suite is not implemented;
// Run reports it as skipped.
var errUnsupportedSuite = errors.New("unsupported cipher suite")

// runner checks one entry and returns its cipher suite (0 when the kind
// has none) and the first problem found.
type runner func(entry json.RawMessage) (suite uint16, err error)

var runners = map[Kind]runner{
	TreeMath:                    runTreeMath,
	CryptoBasics:                runCryptoBasics,
	SecretTree:                  runSecretTree,
	MessageProtection:           runMessageProtection,
	KeySchedule:                 runKeySchedule,
	PSKSecret:                   runPSKSecret,
	TranscriptHashes:            runTranscriptHashes,
	Welcome:                     runWelcome,
	TreeOperations:              runTreeOperations,
	TreeValidation:              runTreeValidation,
	TreeKEM:                     runTreeKEM,
	Messages:                    runMessages,
	Deserialization:             runDeserialization,
	PassiveClientWelcome:        runPassiveClient,
	PassiveClientHandlingCommit: runPassiveClient,
	PassiveClientRandom:         runPassiveClient,
	PassiveClient:               runPassiveClient,
}

// fingerprints identify a kind by fields only its entries have, for files
// not named after their kind. They are tried in order.
var fingerprints = []struct {
	kind   Kind
	fields []string
}{
	{PassiveClient, []string{"initial_epoch_authenticator", "welcome", "epochs"}},
	{MessageProtection, []string{"proposal_priv", "commit_priv", "application_priv"}},
	{Messages, []string{"mls_welcome", "mls_group_info", "mls_key_package"}},
	{TreeMath, []string{"n_leaves", "n_nodes", "root"}},
	{CryptoBasics, []string{"ref_hash", "expand_with_label", "derive_secret"}},
	{SecretTree, []string{"sender_data", "leaves", "encryption_secret"}},
	{KeySchedule, []string{"initial_init_secret", "epochs"}},
	{PSKSecret, []string{"psks", "psk_secret"}},
	{TranscriptHashes, []string{"authenticated_content", "interim_transcript_hash_before"}},
	{Welcome, []string{"init_priv", "signer_pub", "key_package", "welcome"}},
	{TreeOperations, []string{"tree_before", "proposal", "tree_after"}},
	{TreeValidation, []string{"tree", "resolutions", "tree_hashes"}},
	{TreeKEM, []string{"ratchet_tree", "leaves_private", "update_paths"}},
	{Deserialization, []string{"vlbytes_header", "length"}},
}

// Classify returns the kind of a vector file, from its base name if that is
// an upstream vector file name, otherwise from the fields of its first entry.
func Classify(name string, data []byte) (Kind, error) {
	base := strings.TrimSuffix(filepath.Base(name), ".json")
	if _, ok := runners[Kind(base)]; ok {
		return Kind(base), nil
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return "", fmt.Errorf("%w %s: not a JSON array of objects: %v", ErrUnclassified, name, err)
	}
	if len(entries) == 0 {
		return "", fmt.Errorf("%w %s: no entries", ErrUnclassified, name)
	}
	for _, fp := range fingerprints {
		if hasAll(entries[0], fp.fields) {
			return fp.kind, nil
		}
	}
	return "", fmt.Errorf("%w %s: fields match no known kind", ErrUnclassified, name)
}

func hasAll(m map[string]json.RawMessage, fields []string) bool {
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			return false
		}
	}
	return true
}

// Run checks every entry of a vector file of the given kind.
func Run(kind Kind, data []byte) ([]Result, error) {
	run, ok := runners[kind]
	if !ok {
		return nil, fmt.Errorf("conformance: unknown kind %q", kind)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", kind, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("conformance: %s: no entries", kind)
	}
	results := make([]Result, len(entries))
	for i, e := range entries {
		results[i] = runEntry(run, i, e)
	}
	return results, nil
}

// runEntry runs one entry, turning a panic into a failure so that one bad
// entry cannot hide the results of the others.
func runEntry(run runner, i int, e json.RawMessage) (res Result) {
	res.Index = i
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Reason = Failed, fmt.Sprintf("panic: %v", p)
		}
	}()
	suite, err := run(e)
	res.Suite = suite
	switch {
	case err == nil:
		res.Status = Passed
	case errors.Is(err, errUnsupportedSuite):
		res.Status, res.Reason = Skipped, err.Error()
	default:
		res.Status, res.Reason = Failed, err.Error()
	}
	return res
}

// RunFile classifies and runs one vector file.
func RunFile(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kind, err := Classify(path, data)
	if err != nil {
		return nil, err
	}
	results, err := Run(kind, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &Report{Path: path, Kind: kind, Results: results}
	for _, res := range results {
		switch res.Status {
		case Passed:
			r.Passed++
		case Failed:
			r.Failed++
		case Skipped:
			r.Skipped++
		}
	}
	return r, nil
}

// Files expands paths into the vector files they name: a file as itself,
// a folder as every .json file below it, in lexical order.
func Files(paths ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// hexBytes is binary data written as a hex string in the vectors.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// suite looks up a vector's cipher suite, wrapping errUnsupportedSuite for
// one this module does not implement.
func suite(id uint16) (*ciphersuite.Suite, error) {
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if errors.Is(err, ciphersuite.ErrUnsupportedSuite) {
		return nil, fmt.Errorf("%w 0x%04x", errUnsupportedSuite, id)
	}
	return s, err
}

// decode unmarshals one entry strictly enough to notice a misnamed file.
func decode(entry json.RawMessage, v any) error {
	if err := json.Unmarshal(entry, v); err != nil {
		return fmt.Errorf("decode entry: %w", err)
	}
	return nil
}

// checker collects the first mismatch of an entry.
type checker struct{ err error }

func (c *checker) bytes(what string, got, want []byte) {
	if c.err == nil && !bytes.Equal(got, want) {
		c.err = fmt.Errorf("%s = %x, want %x", what, got, want)
	}
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *checker) ok(what string, err error) bool {
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("%s: %w", what, err)
	}
	return c.err == nil
}
