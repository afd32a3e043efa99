package moderation_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/hashing"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// hashAt returns a PDQ hash with bits [0, n) of base flipped.
func flip(base pdq.Hash, n int) pdq.Hash {
	for k := range n {
		base[k/8] ^= 1 << (k % 8)
	}
	return base
}

func baseHash() pdq.Hash {
	var h pdq.Hash
	for i := range h {
		h[i] = byte(i*37 + 11)
	}
	return h
}

func pdqMedia(h pdq.Hash, quality int) moderation.Media {
	d := &pdq.Dihedral{Quality: quality}
	for i := range d.Hashes {
		d.Hashes[i] = flip(h, 100+i) // far from h
	}
	d.Hashes[pdq.Rotate90] = h
	return moderation.Media{PDQ: d}
}

func entry(t *testing.T, h pdq.Hash, tags ...string) hashlist.Entry {
	e, err := hashlist.NewEntry(hashlist.PDQ, h.String(), tags)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newService(t *testing.T, st moderation.Store, threshold int) *moderation.Service {
	t.Helper()
	s, err := moderation.New(context.Background(), moderation.Config{Store: st, Threshold: threshold, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatchThresholdAndQuality(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := baseHash()
	low := flip(baseHash(), 200)
	st.ImportBank(ctx, moderation.Bank{Name: "gifct", Label: "terrorist content", Action: hashlist.Block},
		[]hashlist.Entry{entry(t, h), entry(t, low, "quality:40")})
	s := newService(t, st, 0)
	if s.Threshold() != 31 || s.MinQuality() != 50 {
		t.Fatalf("defaults %d/%d", s.Threshold(), s.MinQuality())
	}
	for _, tc := range []struct {
		dist, quality, want int
	}{{0, 100, 1}, {31, 100, 1}, {32, 100, 0}, {10, 50, 1}, {10, 49, 0}} {
		ms := s.Match(pdqMedia(flip(h, tc.dist), tc.quality))
		if len(ms) != tc.want {
			t.Errorf("distance %d quality %d: %d matches, want %d", tc.dist, tc.quality, len(ms), tc.want)
			continue
		}
		if tc.want == 1 && (ms[0].Distance != tc.dist || ms[0].Bank != "gifct" || ms[0].Action != hashlist.Block || ms[0].Label != "terrorist content") {
			t.Errorf("match %+v", ms[0])
		}
	}
	// The list entry tagged quality:40 is ignored.
	if ms := s.Match(pdqMedia(low, 100)); len(ms) != 0 {
		t.Errorf("low-quality list entry matched: %+v", ms)
	}
	strict := newService(t, st, 8)
	if ms := strict.Match(pdqMedia(flip(h, 9), 100)); len(ms) != 0 {
		t.Errorf("threshold 8 matched distance 9")
	}
}

// Block matches come before review matches whatever their distances:
// the rescan of published posts acts on the first match only, so a post
// on both kinds of list is taken down, not merely held.
func TestBlockMatchesComeFirst(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := baseHash()
	st.ImportBank(ctx, moderation.Bank{Name: "review", Label: "maybe", Action: hashlist.Review}, []hashlist.Entry{entry(t, h)})
	st.ImportBank(ctx, moderation.Bank{Name: "block", Label: "known", Action: hashlist.Block}, []hashlist.Entry{entry(t, flip(h, 5))})
	s := newService(t, st, 0)
	ms := s.Match(pdqMedia(h, 100))
	if len(ms) != 2 || ms[0].Action != hashlist.Block || ms[0].Distance != 5 || ms[1].Action != hashlist.Review || ms[1].Distance != 0 {
		t.Fatalf("matches %+v, want the block match (distance 5) before the review match (distance 0)", ms)
	}
}

func TestIndexFollowsChangesAndLoadsAtStart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s := newService(t, st, 0)
	var added []moderation.Change
	s.OnAdded(func(_ context.Context, cs []moderation.Change) { added = append(added, cs...) })

	var entries []hashlist.Entry
	var hashes []pdq.Hash
	for i := range 50 {
		var h pdq.Hash
		for j := range h {
			h[j] = byte(i*131 + j*17 + (i*j)%251)
		}
		hashes = append(hashes, h)
		entries = append(entries, entry(t, h))
	}
	md5 := hashing.Digests{MD5: [16]byte{1, 2, 3}}
	md5e, _ := hashlist.NewEntry(hashlist.MD5, fmt.Sprintf("%x", md5.MD5), nil)
	meta := moderation.Bank{Name: "a", Action: hashlist.Review}
	st.ImportBank(ctx, meta, append(entries[:40:40], md5e))
	if len(s.Match(pdqMedia(hashes[0], 100))) != 0 {
		t.Fatal("matched before Refresh")
	}
	// Lookups keep working while Refresh applies changes.
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			s.Match(pdqMedia(hashes[1], 100))
			n++
			select {
			case <-stop:
				done <- n
				return
			default:
			}
		}
	}()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if n := <-done; n == 0 {
		t.Fatal("no lookups ran")
	}
	if len(added) != 41 {
		t.Fatalf("OnAdded got %d changes, want 41", len(added))
	}
	if ms := s.Match(moderation.Media{Digests: md5}); len(ms) != 1 || ms[0].Type != hashlist.MD5 || ms[0].Action != hashlist.Review {
		t.Fatalf("md5 match %+v", ms)
	}
	// Replace with 30..49: 0..29 deleted, 40..49 added.
	added = nil
	st.ImportBank(ctx, meta, entries[30:])
	s.Refresh(ctx)
	if len(added) != 10 {
		t.Fatalf("OnAdded got %d, want 10", len(added))
	}
	for i, h := range hashes {
		got := len(s.Match(pdqMedia(h, 100))) > 0
		if got != (i >= 30) {
			t.Errorf("hash %d matched %v", i, got)
		}
	}
	if p, e := s.Len(); p != 20 || e != 0 {
		t.Fatalf("Len %d/%d", p, e)
	}
	// A new service loads the same state from storage.
	s2 := newService(t, st, 0)
	for i, h := range hashes {
		if got := len(s2.Match(pdqMedia(h, 100))) > 0; got != (i >= 30) {
			t.Errorf("reloaded: hash %d matched %v", i, got)
		}
	}
	// Removing the bank empties the index.
	st.RemoveBank(ctx, "a")
	s.Refresh(ctx)
	if p, e := s.Len(); p != 0 || e != 0 {
		t.Fatalf("after removal Len %d/%d", p, e)
	}
}

func TestRunPollsOtherProcesses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t)
	s, err := moderation.New(ctx, moderation.Config{Store: st, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	h := baseHash()
	st.ImportBank(ctx, moderation.Bank{Name: "a", Action: hashlist.Block}, []hashlist.Entry{entry(t, h)})
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Match(pdqMedia(h, 100))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not apply the import")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestActionChangeWithoutEntryChange(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := baseHash()
	meta := moderation.Bank{Name: "a", Label: "first", Action: hashlist.Review}
	st.ImportBank(ctx, meta, []hashlist.Entry{entry(t, h)})
	s := newService(t, st, 0)
	if ms := s.Match(pdqMedia(h, 100)); len(ms) != 1 || ms[0].Action != hashlist.Review {
		t.Fatalf("before: %+v", ms)
	}
	meta.Action, meta.Label = hashlist.Block, "second"
	st.ImportBank(ctx, meta, []hashlist.Entry{entry(t, h)})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := s.Match(pdqMedia(h, 100)); len(ms) != 1 || ms[0].Action != hashlist.Block || ms[0].Label != "second" {
		t.Fatalf("after: %+v", ms)
	}
}

// openShared opens two handles on one database: the server's and one
// standing for "parleyd admin lists ..." in another process.
func openShared(t *testing.T) (server, admin *modsqlite.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moderation.db")
	for _, s := range []**modsqlite.Store{&server, &admin} {
		st, err := modsqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*s = st
	}
	return server, admin
}

// checkMatch runs one upload-style check of h.
func checkMatch(t *testing.T, s *moderation.Service, h pdq.Hash) []moderation.Match {
	t.Helper()
	end, err := s.BeginCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer end()
	return s.Match(pdqMedia(h, 100))
}

// A check is made against every bank change committed before it, also
// by another process, without waiting for Run's poll (an hour here):
// new entries, a changed action with the same entries, a removed bank.
func TestCheckAppliesChangesFromOtherProcesses(t *testing.T) {
	ctx := context.Background()
	st, admin := openShared(t)
	s, err := moderation.New(ctx, moderation.Config{Store: st, PollInterval: time.Hour, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := baseHash()
	meta := moderation.Bank{Name: "gifct", Label: "terrorist content", Action: hashlist.Review}
	if _, _, err := admin.ImportBank(ctx, meta, []hashlist.Entry{entry(t, h)}); err != nil {
		t.Fatal(err)
	}
	if ms := checkMatch(t, s, h); len(ms) != 1 || ms[0].Action != hashlist.Review {
		t.Fatalf("check right after the import: %+v, want one review match", ms)
	}
	// The same entries, now a block list: no entry changes, yet the next
	// check must refuse rather than hold.
	meta.Action = hashlist.Block
	if _, _, err := admin.ImportBank(ctx, meta, []hashlist.Entry{entry(t, h)}); err != nil {
		t.Fatal(err)
	}
	if ms := checkMatch(t, s, h); len(ms) != 1 || ms[0].Action != hashlist.Block {
		t.Fatalf("check right after the action change: %+v, want one block match", ms)
	}
	if err := admin.RemoveBank(ctx, "gifct"); err != nil {
		t.Fatal(err)
	}
	if ms := checkMatch(t, s, h); len(ms) != 0 {
		t.Fatalf("check right after the removal: %+v", ms)
	}
}

// countingStore counts Banks reads (one per Refresh that finds changes)
// and can hold them until released.
type countingStore struct {
	moderation.Store
	banks atomic.Int32
	hold  chan struct{}
}

func (c *countingStore) Banks(ctx context.Context) ([]moderation.Bank, error) {
	c.banks.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	return c.Store.Banks(ctx)
}

// A burst of checks after an import shares one Refresh instead of
// refreshing once each.
func TestConcurrentChecksShareOneRefresh(t *testing.T) {
	ctx := context.Background()
	st, admin := openShared(t)
	cs := &countingStore{Store: st}
	s, err := moderation.New(ctx, moderation.Config{Store: cs, PollInterval: time.Hour, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := baseHash()
	if _, _, err := admin.ImportBank(ctx, moderation.Bank{Name: "a", Action: hashlist.Block}, []hashlist.Entry{entry(t, h)}); err != nil {
		t.Fatal(err)
	}
	cs.banks.Store(0)
	cs.hold = make(chan struct{})
	const n = 16
	var wg sync.WaitGroup
	matched := make(chan int, n)
	for range n {
		wg.Go(func() {
			end, err := s.BeginCheck(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			matched <- len(s.Match(pdqMedia(h, 100)))
			end()
		})
	}
	// Let every check find the index behind before the refresh goes on.
	time.Sleep(100 * time.Millisecond)
	close(cs.hold)
	wg.Wait()
	close(matched)
	for m := range matched {
		if m != 1 {
			t.Fatalf("a check matched %d entries, want 1", m)
		}
	}
	if got := cs.banks.Load(); got != 1 {
		t.Fatalf("%d concurrent checks read the banks %d times, want one shared refresh", n, got)
	}
}

// UpToDate returns only after the OnAdded listeners have run for the
// changes committed before it: the channel layer relies on that to never
// serve a post a new list matches.
func TestUpToDateWaitsForListeners(t *testing.T) {
	ctx := context.Background()
	st, admin := openShared(t)
	s, err := moderation.New(ctx, moderation.Config{Store: st, PollInterval: time.Hour, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []moderation.Change
	started := make(chan struct{})
	s.OnAdded(func(_ context.Context, added []moderation.Change) {
		close(started)
		time.Sleep(100 * time.Millisecond) // a rescan takes a while
		mu.Lock()
		got = append(got, added...)
		mu.Unlock()
	})
	h := baseHash()
	if _, _, err := admin.ImportBank(ctx, moderation.Bank{Name: "a", Action: hashlist.Block}, []hashlist.Entry{entry(t, h)}); err != nil {
		t.Fatal(err)
	}
	// A Refresh under way (Run's) has applied the entry to the index and
	// is running the listeners: UpToDate must wait for them.
	go s.Refresh(ctx)
	<-started
	if err := s.UpToDate(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Entry.Value != h.String() {
		t.Fatalf("listeners got %+v by the time UpToDate returned", got)
	}
}
