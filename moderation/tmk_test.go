package moderation_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/moderation"
)

func referenceTMK(t *testing.T, name string) (*video.TMK, hashlist.Entry) {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "video", "tmk", name+".tmk"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := video.ReadTMK(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	v, err := hashlist.TMKValue(h)
	if err != nil {
		t.Fatal(err)
	}
	e, err := hashlist.NewEntry(hashlist.TMK, v, []string{"video:" + name})
	if err != nil {
		t.Fatal(err)
	}
	return h, e
}

// TestTMKEntriesCompact: TMK entries are indexed in the compact form (the
// level-1 vector in memory, the full hash read back for level 2), and match
// exactly as the full reference comparison does: the grey-bar chair upload
// matches the listed original chair with both levels, doorknob and pattern
// do not; a list change's rescan matches the same way; Match.Key is
// IndexKey; a deleted entry stops matching.
func TestTMKEntriesCompact(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	names := []string{"chair-orig-22-sd-bar", "doorknob-hd-no-bar", "pattern-sd-grey-bar"}
	var entries []hashlist.Entry
	for _, n := range names {
		_, e := referenceTMK(t, n)
		entries = append(entries, e)
	}
	if _, _, err := st.ImportBank(ctx, moderation.Bank{Name: "tmk", Action: hashlist.Review}, entries); err != nil {
		t.Fatal(err)
	}
	spill := t.TempDir()
	s, err := moderation.New(ctx, moderation.Config{Store: st, SpillDir: spill, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if full, compact := moderation.VideoEntryForms(s); full != 0 || compact != 3 {
		t.Fatalf("%d TMK entries held in full, %d compact; want 0 and 3", full, compact)
	}
	// The full hashes are in a file in SpillDir that no one else can
	// open: unlinked at once, held open by this process only.
	if names, _ := os.ReadDir(spill); len(names) != 0 {
		t.Errorf("spill directory holds %v", names)
	}
	if runtime.GOOS == "linux" {
		fds, _ := os.ReadDir("/proc/self/fd")
		found := false
		for _, fd := range fds {
			l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if strings.HasPrefix(l, filepath.Join(spill, "parley-tmk-")) && strings.HasSuffix(l, "(deleted)") {
				found = true
			}
		}
		if !found {
			t.Error("no open, deleted spill file in SpillDir")
		}
	}
	upload, _ := referenceTMK(t, "chair-22-sd-grey-bar")
	ms := s.Match(moderation.Media{TMK: upload})
	if len(ms) != 1 || ms[0].Hash != entries[0].Fingerprint() || ms[0].Key != moderation.IndexKey(entries[0]) ||
		!strings.Contains(ms[0].Detail, "level-2 score 1.0000") {
		t.Fatalf("chair upload: %+v", ms)
	}
	if want, _ := video.MatchTMK(upload, must(referenceTMK(t, names[0])), 0.7, 0.7); !want.Match {
		t.Fatal("the reference comparison itself does not match")
	}
	door, _ := referenceTMK(t, "doorknob-hd-no-bar")
	if ms := s.Match(moderation.Media{TMK: door}); len(ms) != 1 || ms[0].Hash != entries[1].Fingerprint() {
		t.Fatalf("doorknob upload: %+v", ms)
	}

	// A list change: the rescan of the new entries matches the same way.
	_, grey := referenceTMK(t, "chair-22-sd-grey-bar")
	if _, _, err := st.ImportBank(ctx, moderation.Bank{Name: "more", Action: hashlist.Block}, []hashlist.Entry{grey}); err != nil {
		t.Fatal(err)
	}
	var added []moderation.Change
	s.OnAdded(func(_ context.Context, a []moderation.Change) { added = append(added, a...) })
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 {
		t.Fatalf("%d changes added", len(added))
	}
	orig, _ := referenceTMK(t, "chair-orig-22-sd-bar")
	if rs := s.NewRescan(added).Match(moderation.Media{TMK: orig}); len(rs) != 1 || rs[0].Bank != "more" || rs[0].Key != moderation.IndexKey(grey) {
		t.Fatalf("rescan: %+v", rs)
	}
	if full, compact := moderation.VideoEntryForms(s); full != 0 || compact != 4 {
		t.Fatalf("after the change: %d full, %d compact", full, compact)
	}

	// Removing the original chair: the grey-bar upload now matches only
	// the second bank's entry.
	if _, _, err := st.ImportBank(ctx, moderation.Bank{Name: "tmk", Action: hashlist.Review}, entries[1:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := s.Match(moderation.Media{TMK: upload}); len(ms) != 1 || ms[0].Bank != "more" {
		t.Fatalf("after removal: %+v", ms)
	}
}

func must(h *video.TMK, _ hashlist.Entry) *video.TMK { return h }
