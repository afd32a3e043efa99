package legal

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/sqlitestore"
)

func testLog(t testing.TB) (*Log, store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, err := note.GenerateKey(rand.Reader, "legal.test/legal")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	l, err := OpenLog(ctx, st, "legal.test/legal", signer)
	if err != nil {
		t.Fatal(err)
	}
	return l, st, vkey
}

// Preserved data is held until the period ends and then deleted, with a
// record of the release; an answer after that says nothing of it.
func TestPreservationEnds(t *testing.T) {
	ctx := context.Background()
	l, st, _ := testLog(t)
	if err := st.CreateAccount(ctx, store.Device{ID: "d1", Username: "alice", PublicKey: []byte("k1"), Created: time.Now()}, ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r, err := NewRequest(now, "Agency", "GB", "preservation", "P-1", []string{"alice"}, "preserve", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	e, rec, _ := r.RecordEvent()
	r.Entries = append(r.Entries, e)
	if err := l.Save(ctx, st, r, rec); err != nil {
		t.Fatal(err)
	}
	src := Sources{Store: st}
	if _, err := Preserve(ctx, src, r, now, now.AddDate(2, 0, 0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("two years: %v", err)
	}
	rec, err = Preserve(ctx, src, r, now, now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctx, st, r, rec); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ReleaseExpired(ctx, st, now.Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("released early: %d %v", n, err)
	}
	if n, err := l.ReleaseExpired(ctx, st, now.Add(49*time.Hour)); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	got, err := Load(ctx, st, r.ID)
	if err != nil || got.Preservation.Accounts != nil || got.Preservation.Released.IsZero() || len(got.Entries) != 3 {
		t.Fatalf("after release: %+v %v", got.Preservation, err)
	}
	sr, _ := st.LegalGet(ctx, r.ID)
	if strings.Contains(string(sr.Data), `"d1"`) {
		t.Fatal("the preserved device is still stored after the release")
	}
	if l.Size() != 3 {
		t.Fatalf("log size %d, want request, preservation, release", l.Size())
	}
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]string{"2026": "2026-01-01..2027-01-01", "2026H2": "2026-07-01..2027-01-01", "2026Q2": "2026-04-01..2026-07-01"} {
		p, err := ParsePeriod(in)
		if err != nil || p.From.Format(time.DateOnly)+".."+p.To.Format(time.DateOnly) != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
	for _, bad := range []string{"", "26", "2026H3", "2026Q5", "2026-07"} {
		if _, err := ParsePeriod(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzVerifyPublication: a published file is untrusted input to whoever
// checks it: no panic, and nothing but a genuine publication verifies.
func FuzzVerifyPublication(f *testing.F) {
	ctx := context.Background()
	l, st, vkey := testLog(f)
	r, _ := NewRequest(time.Now(), "Agency", "GB", "subpoena", "S-1", []string{"alice"}, "subscriber data", time.Time{})
	e, rec, _ := r.RecordEvent()
	r.Entries = append(r.Entries, e)
	if err := l.Save(ctx, st, r, rec); err != nil {
		f.Fatal(err)
	}
	rec, _ = Respond(ctx, Sources{Store: st}, r, time.Now(), "")
	if err := l.Save(ctx, st, r, rec); err != nil {
		f.Fatal(err)
	}
	p, err := l.Publish(r, time.Now(), vkey)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(p)
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := VerifyPublication(b, vkey); err != nil {
			return
		}
		var q Publication
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal("verified what does not parse")
		}
		for _, e := range q.Entries {
			if !strings.Contains(string(good), e.Private) {
				t.Fatalf("verified an entry the log never held: %+v", e)
			}
		}
	})
}

// Two processes append to the legal log (the server releasing preserved
// data while an admin command runs): each one's view catches up with the
// store instead of failing, and its proofs cover the records of both.
func TestLogSharedByTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a, st, vkey := testLog(t)
	b, err := OpenLog(ctx, st, a.origin, a.signer)
	if err != nil {
		t.Fatal(err)
	}
	save := func(l *Log, ref string) *Request {
		r, err := NewRequest(time.Now(), "Agency", "GB", "subpoena", ref, []string{"alice"}, "data", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		e, rec, _ := r.RecordEvent()
		r.Entries = append(r.Entries, e)
		if err := l.Save(ctx, st, r, rec); err != nil {
			t.Fatalf("save through a log that is behind: %v", err)
		}
		return r
	}
	save(a, "A-1")
	r := save(b, "B-1") // b has not seen A-1
	if a.Size() != 1 || b.Size() != 2 {
		t.Fatalf("sizes %d and %d", a.Size(), b.Size())
	}
	rec, _ := Respond(ctx, Sources{Store: st}, r, time.Now(), "")
	if err := b.Save(ctx, st, r, rec); err != nil {
		t.Fatal(err)
	}
	p, err := b.Publish(r, time.Now(), vkey)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := json.Marshal(p)
	if cp, err := VerifyPublication(file, vkey); err != nil || cp.Size != 3 {
		t.Fatalf("publication: size %d, %v", cp.Size, err)
	}
}
