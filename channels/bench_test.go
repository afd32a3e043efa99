package channels_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/pdq"
)

// BenchmarkAnalyse measures hashing one upload: MD5, SHA-256, decoding a
// 1600x1004 JPEG and its 8 dihedral PDQ hashes.
func BenchmarkAnalyse(b *testing.B) {
	e := newEnvTB(b)
	data, _ := readImage(b, "bridge-mods", "aaa-orig.jpg")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := e.svc.Analyse(data, "image/jpeg"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRescan measures checking 2 000 published image posts against a
// list update of 1 000 PDQ hashes (what runs after each import).
func BenchmarkRescan(b *testing.B) {
	e := newEnvTB(b)
	data, _ := readImage(b, "reg-test-input", "pen-and-coaster.png")
	m, err := e.svc.Analyse(data, "")
	if err != nil {
		b.Fatal(err)
	}
	for range 2000 {
		if _, err := e.svc.Publish(e.ctx, channels.Post{Channel: "news", Author: "alice", Media: []channels.Media{m}}, [][]byte{data}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	var entries []hashlist.Entry
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		var h pdq.Hash
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		en, _ := hashlist.NewEntry(hashlist.PDQ, h.String(), nil)
		entries = append(entries, en)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Alternate between two disjoint halves so every refresh adds 500.
		half := entries[(i%2)*500 : (i%2)*500+500]
		e.importBank("bench", hashlist.Block, half...)
	}
}
