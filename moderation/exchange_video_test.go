package moderation_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"slices"
	"testing"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/moderation"
)

// tmkVariants returns n distinct TMK entries made from a reference .tmk
// file (the frame count, which matching ignores, tells them apart).
func tmkVariants(t *testing.T, n int) []hashlist.Entry {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "video", "tmk", "doorknob-hd-no-bar.tmk"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := video.ReadTMK(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out []hashlist.Entry
	for i := range n {
		h.FrameCount = int32(1000 + i)
		v, err := hashlist.TMKValue(h)
		if err != nil {
			t.Fatal(err)
		}
		e, err := hashlist.NewEntry(hashlist.TMK, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// vPDQ and TMK hashes travel over the checkpointed exchange like image
// hashes: a first sync copies them (in several pages, since 60 TMK records
// are more than one page may carry), a withdrawal removes one, and the
// synced bank matches what the publisher has.
func TestExchangeSyncVideoHashes(t *testing.T) {
	defer moderation.SetServePageBytes(1 << 20)()
	ctx := context.Background()
	a, b := openStore(t), openStore(t)
	srv := httptest.NewServer(moderation.ExchangeHandler(a))
	defer srv.Close()
	vp, err := hashlist.NewEntry(hashlist.VPDQ, `["0000000000000000000000000000000000000000000000000000000000000001,100,0.000"]`, []string{"ideology:test"})
	if err != nil {
		t.Fatal(err)
	}
	entries := append([]hashlist.Entry{vp}, tmkVariants(t, 8)...)
	if _, err := moderation.Confirm(ctx, a, "confirmed", entries, "mod-a", "post:1"); err != nil {
		t.Fatal(err)
	}
	tok, err := moderation.Publish(ctx, a, "confirmed")
	if err != nil {
		t.Fatal(err)
	}
	opts := moderation.SyncOptions{URL: srv.URL + moderation.PathExchange + "confirmed", Token: tok,
		Bank: moderation.Bank{Name: "from-a", Label: "confirmed by A"}}
	res, err := moderation.Sync(ctx, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 9 || res.Pages < 3 {
		t.Fatalf("first sync %+v, want 9 added over at least 3 pages", res)
	}
	if got, want := keys(t, b, "from-a"), keys(t, a, "confirmed"); !slices.Equal(got, want) {
		t.Fatal("B's bank differs from A's")
	}
	es, _ := b.Entries(ctx, "from-a")
	if i := slices.IndexFunc(es, func(e hashlist.Entry) bool { return e.Type == hashlist.VPDQ }); i < 0 || !slices.Contains(es[i].Tags, "ideology:test") {
		t.Fatalf("vpdq entry or its ideology lost: %v", i)
	}
	if _, err := a.ApplyDelta(ctx, mustBank(t, a, "confirmed"), hashlist.Delta{Removed: entries[1:2]}, ""); err != nil {
		t.Fatal(err)
	}
	if res, err = moderation.Sync(ctx, b, opts); err != nil || res.Removed != 1 {
		t.Fatalf("withdrawal sync %+v, %v", res, err)
	}
	// The synced TMK entry still decodes as the reference hash.
	es, _ = b.Entries(ctx, "from-a")
	for _, e := range es {
		if e.Type == hashlist.TMK {
			raw, _ := base64.StdEncoding.DecodeString(e.Value)
			if _, err := video.ReadTMK(bytes.NewReader(raw)); err != nil {
				t.Fatalf("synced tmk: %v", err)
			}
		}
	}
}
