package moderation_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
	"github.com/parleychat/parley/moderation/modtest"
)

func openStore(t *testing.T) *modsqlite.Store { return openStoreB(t) }

func openStoreB(t testing.TB) *modsqlite.Store {
	t.Helper()
	s, err := modsqlite.Open(context.Background(), filepath.Join(t.TempDir(), "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func keys(t *testing.T, s moderation.Store, bank string) []string {
	t.Helper()
	es, err := s.Entries(context.Background(), bank)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Key())
	}
	return out
}

func TestExchangeSync(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t), openStore(t)
	srv := httptest.NewServer(http.StripPrefix("", moderation.ExchangeHandler(a)))
	defer srv.Close()

	confirmed := []hashlist.Entry{
		modtest.Entry(hashlist.PDQ, 1, "ideology:far-right"),
		modtest.Entry(hashlist.MD5, 2),
		modtest.Entry(hashlist.SHA256, 3),
	}
	if _, err := moderation.Confirm(ctx, a, "confirmed", confirmed[:2], "mod-a", "post:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := moderation.Confirm(ctx, a, "confirmed", confirmed[2:], "mod-a", "post:2"); err != nil {
		t.Fatal(err)
	}
	tok, err := moderation.Publish(ctx, a, "confirmed")
	if err != nil {
		t.Fatal(err)
	}
	// limit=2 makes the first sync take two pages.
	opts := moderation.SyncOptions{URL: srv.URL + moderation.PathExchange + "confirmed?limit=2", Token: tok,
		Bank: moderation.Bank{Name: "from-a", Label: "confirmed by server A"}}
	res, err := moderation.Sync(ctx, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages != 2 || res.Added != 3 || res.Removed != 0 {
		t.Fatalf("first sync %+v", res)
	}
	if got, want := keys(t, b, "from-a"), keys(t, a, "confirmed"); !slices.Equal(got, want) {
		t.Fatalf("B has %v, A has %v", got, want)
	}
	es, _ := b.Entries(ctx, "from-a")
	if !slices.ContainsFunc(es, func(e hashlist.Entry) bool { return slices.Contains(e.Tags, "ideology:far-right") }) {
		t.Fatalf("ideology tag lost: %+v", es)
	}
	bb, _ := b.Bank(ctx, "from-a")
	if bb.Action != hashlist.Block || bb.Source == "" || bb.Checkpoint == "" {
		t.Fatalf("synced bank %+v", bb)
	}

	// Nothing new: nothing changes.
	res, err = moderation.Sync(ctx, b, opts)
	if err != nil || res.Added+res.Removed != 0 {
		t.Fatalf("idle sync %+v, %v", res, err)
	}
	if nb, _ := b.Bank(ctx, "from-a"); nb.Version != bb.Version {
		t.Fatalf("idle sync bumped the version %d→%d", bb.Version, nb.Version)
	}

	// A withdraws one hash; B's next sync removes it.
	if _, err := a.ApplyDelta(ctx, mustBank(t, a, "confirmed"), hashlist.Delta{Removed: confirmed[1:2]}, ""); err != nil {
		t.Fatal(err)
	}
	res, err = moderation.Sync(ctx, b, opts)
	if err != nil || res.Removed != 1 || res.Added != 0 || res.Pages != 1 {
		t.Fatalf("deletion sync %+v, %v", res, err)
	}
	if got, want := keys(t, b, "from-a"), keys(t, a, "confirmed"); !slices.Equal(got, want) || len(got) != 2 {
		t.Fatalf("after deletion B has %v, A has %v", got, want)
	}

	// A wrong token is refused and changes nothing.
	before, _ := b.LastChange(ctx)
	bad := opts
	bad.Token = tok[:len(tok)-1] + "x"
	if _, err := moderation.Sync(ctx, b, bad); !errors.Is(err, moderation.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	bad.Token = ""
	if _, err := moderation.Sync(ctx, b, bad); !errors.Is(err, moderation.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	// An unpublished bank looks the same as a wrong token.
	bad = opts
	bad.URL = srv.URL + moderation.PathExchange + "nope"
	if _, err := moderation.Sync(ctx, b, bad); !errors.Is(err, moderation.ErrUnauthorized) {
		t.Fatalf("unknown bank: %v", err)
	}
	if after, _ := b.LastChange(ctx); after != before {
		t.Fatal("refused syncs changed B")
	}
	// A new token revokes the old one.
	if _, err := moderation.Publish(ctx, a, "confirmed"); err != nil {
		t.Fatal(err)
	}
	if _, err := moderation.Sync(ctx, b, opts); !errors.Is(err, moderation.ErrUnauthorized) {
		t.Fatalf("revoked token: %v", err)
	}
}

func mustBank(t *testing.T, s moderation.Store, name string) moderation.Bank {
	t.Helper()
	b, err := s.Bank(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExchangeHandlerBadRequests(t *testing.T) {
	ctx := context.Background()
	a := openStore(t)
	moderation.Confirm(ctx, a, "c", []hashlist.Entry{modtest.Entry(hashlist.MD5, 1)}, "m", "")
	tok, _ := moderation.Publish(ctx, a, "c")
	h := moderation.ExchangeHandler(a)
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/v1/exchange/c?checkpoint=-1", 400},
		{"GET", "/v1/exchange/c?checkpoint=abc", 400},
		{"GET", "/v1/exchange/c?limit=0", 400},
		{"GET", "/v1/exchange/c?limit=100000", 400},
		{"POST", "/v1/exchange/c", 405},
		{"GET", "/v1/exchange/c?checkpoint=0", 200},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.target, w.Code, tc.want, w.Body)
		}
	}
}

func FuzzDecodeExchangePage(f *testing.F) {
	f.Add([]byte(`{"count":1,"next":null,"previous":null,"checkpoint":"3","results":[{"id":3,"hash_digest":"` + strings.Repeat("ab", 16) + `","algorithm":"MD5","deleted":false}]}`))
	f.Add([]byte(`{"count":0,"next":"x","checkpoint":"1700000000,5","results":[]}`))
	f.Add([]byte(`{"checkpoint":"a b","results":[]}`))
	f.Add([]byte(`{"checkpoint":"1","results":[{"hash_digest":"zz","algorithm":"PDQ","deleted":true}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := moderation.DecodeExchangePage(bytes.NewReader(data))
		if err != nil {
			if p != nil {
				t.Fatal("page returned with an error")
			}
			return
		}
		if len(p.Checkpoint) > 256 {
			t.Fatalf("checkpoint of %d bytes accepted", len(p.Checkpoint))
		}
		for _, e := range append(p.Upserts, p.Deletions...) {
			if n, err := hashlist.NewEntry(e.Type, e.Value, e.Tags); err != nil || n.Value != e.Value {
				t.Fatalf("invalid entry %+v accepted", e)
			}
		}
		// What decodes can be applied: it never leaves a store half-done.
		d := hashlist.DiffTCAP(nil, p)
		_ = hashlist.Apply(nil, d)
	})
}
