package moderation_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/moderation"
)

// BenchmarkMatch measures one upload's check (8 dihedral PDQ lookups and
// two exact lookups) against a bank of 100 000 PDQ hashes.
func BenchmarkMatch(b *testing.B) {
	ctx := context.Background()
	st := openStoreB(b)
	r := rand.New(rand.NewPCG(1, 2))
	var entries []hashlist.Entry
	var hs []pdq.Hash
	for range 100_000 {
		var h pdq.Hash
		for i := range h {
			h[i] = byte(r.Uint32())
		}
		hs = append(hs, h)
		e, _ := hashlist.NewEntry(hashlist.PDQ, h.String(), nil)
		entries = append(entries, e)
	}
	if _, _, err := st.ImportBank(ctx, moderation.Bank{Name: "big", Action: hashlist.Block}, entries); err != nil {
		b.Fatal(err)
	}
	s, err := moderation.New(ctx, moderation.Config{Store: st, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	queries := make([]moderation.Media, 64)
	for i := range queries {
		queries[i] = pdqMedia(flip(hs[i*997], 20), 100)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if len(s.Match(queries[i%len(queries)])) == 0 {
			b.Fatal("no match")
		}
	}
}
