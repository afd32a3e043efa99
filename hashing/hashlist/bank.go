package hashlist

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Action is what Parley does with an upload that matches a bank.
type Action string

const (
	// Block refuses the upload to a public channel.
	Block Action = "block"
	// Review holds it for a human moderator before anyone sees it.
	Review Action = "review"
	// Log publishes it and only records the match as a decision, for
	// lists a server wants to measure before it acts on them.
	Log Action = "log"
)

// ErrBadBank is returned by Bank.Validate.
var ErrBadBank = errors.New("hashlist: invalid bank")

// Bank is a named, versioned set of hashes from one source, with the
// action to take on a match.
type Bank struct {
	Name    string   // unique identifier, e.g. "gifct-tvec"
	Source  string   // where it comes from, e.g. a URL or "tcap"
	Label   string   // human-readable description
	Tags    []string // apply to every entry, e.g. "tvec"
	Action  Action
	Version int64 // increases with every import that changes Entries
	Entries []Entry
}

// Validate checks the bank's metadata and every entry, and that no two
// entries share a type and value.
func (b *Bank) Validate() error {
	if b.Name == "" || len(b.Name) > 128 || strings.ContainsFunc(b.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: name must be 1 to 128 printable characters", ErrBadBank)
	}
	if b.Action != Block && b.Action != Review && b.Action != Log {
		return fmt.Errorf("%w %q: action %q (want block, review or log)", ErrBadBank, b.Name, b.Action)
	}
	if b.Version < 0 {
		return fmt.Errorf("%w %q: negative version", ErrBadBank, b.Name)
	}
	for _, t := range b.Tags {
		if _, err := normaliseTag(t); err != nil {
			return fmt.Errorf("%w %q: %v", ErrBadBank, b.Name, err)
		}
	}
	seen := make(map[string]bool, len(b.Entries))
	for i, e := range b.Entries {
		n, err := NewEntry(e.Type, e.Value, e.Tags)
		if err != nil {
			return fmt.Errorf("%w %q: entry %d: %v", ErrBadBank, b.Name, i+1, err)
		}
		if n.Value != e.Value {
			return fmt.Errorf("%w %q: entry %d: value not normalised", ErrBadBank, b.Name, i+1)
		}
		if seen[e.Key()] {
			return fmt.Errorf("%w %q: entry %d: duplicate %s", ErrBadBank, b.Name, i+1, e.Key())
		}
		seen[e.Key()] = true
	}
	return nil
}

// Delta is what changes between two versions of a bank's entries.
type Delta struct {
	Added   []Entry // in new, not in old
	Removed []Entry // in old, not in new: upstream withdrew them
	Changed []Entry // in both with different tags (the new version)
}

// Empty reports whether there is nothing to apply.
func (d Delta) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Diff compares two entry sets by type and value. Applying it to
// old gives new, and diffing a set with itself is empty, so re-importing an
// unchanged list is a no-op. Results are sorted by key.
func Diff(old, new []Entry) Delta {
	var d Delta
	oldBy := make(map[string]Entry, len(old))
	for _, e := range old {
		oldBy[e.Key()] = e
	}
	newBy := make(map[string]Entry, len(new))
	for _, e := range new {
		newBy[e.Key()] = e
		o, ok := oldBy[e.Key()]
		switch {
		case !ok:
			d.Added = append(d.Added, e)
		case !slices.Equal(o.Tags, e.Tags):
			d.Changed = append(d.Changed, e)
		}
	}
	for _, e := range old {
		if _, ok := newBy[e.Key()]; !ok {
			d.Removed = append(d.Removed, e)
		}
	}
	for _, s := range [][]Entry{d.Added, d.Removed, d.Changed} {
		sortEntries(s)
	}
	return d
}

// Apply returns entries with d applied, sorted by key.
func Apply(entries []Entry, d Delta) []Entry {
	by := make(map[string]Entry, len(entries))
	for _, e := range entries {
		by[e.Key()] = e
	}
	for _, e := range d.Removed {
		delete(by, e.Key())
	}
	for _, e := range d.Added {
		by[e.Key()] = e
	}
	for _, e := range d.Changed {
		by[e.Key()] = e
	}
	out := make([]Entry, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	sortEntries(out)
	return out
}

// DiffTCAP turns an incremental TCAP page into a Delta against the current
// entries: upserts that are new or retagged, and deletions of hashes the
// bank holds.
func DiffTCAP(current []Entry, page *TCAPPage) Delta {
	next := Apply(current, Delta{Added: page.Upserts, Removed: page.Deletions})
	return Diff(current, next)
}

// Update returns a copy of b holding entries, with the version increased
// if they differ from b's, together with the diff to apply to indexes.
func (b *Bank) Update(entries []Entry) (*Bank, Delta) {
	d := Diff(b.Entries, entries)
	nb := *b
	nb.Tags = slices.Clone(b.Tags)
	if d.Empty() {
		nb.Entries = slices.Clone(b.Entries)
		return &nb, d
	}
	nb.Entries = Apply(b.Entries, d)
	nb.Version++
	return &nb, d
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Value, b.Value))
	})
}
