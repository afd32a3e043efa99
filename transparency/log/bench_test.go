package log

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// benchEpochs is the size of the log the proof benchmarks run against: one
// epoch a minute for two years is about 2^20.
const benchEpochs = 1 << 20

var bench struct {
	once sync.Once
	log  *Log
	key  key
	cp   *SignedCheckpoint
}

func benchLog(b *testing.B) (*Log, *SignedCheckpoint) {
	b.Helper()
	bench.once.Do(func() {
		bench.key = newKey(b, origin)
		store := &MemStore{}
		// Fill the store directly (Append would sign 2^20 checkpoints).
		for i := range int64(benchEpochs) {
			rec, _ := Entry{Epoch: uint64(i), Time: t0.Add(time.Duration(i) * time.Minute), PrefixRoot: root(int(i))}.MarshalBinary()
			hs, err := tlog.StoredHashes(i, rec, store)
			if err != nil {
				panic(err)
			}
			if err := store.Append(i, rec, hs); err != nil {
				panic(err)
			}
		}
		l, err := Open(store, origin, bench.key.signer)
		if err != nil {
			panic(err)
		}
		signed, err := l.Checkpoint()
		if err != nil {
			panic(err)
		}
		bench.log = l
		bench.cp, err = OpenCheckpoint(signed, Policy{Origin: origin, Log: bench.key.verifier})
		if err != nil {
			panic(err)
		}
	})
	return bench.log, bench.cp
}

// BenchmarkAppend appends one epoch and signs the new checkpoint.
func BenchmarkAppend(b *testing.B) {
	k := newKey(b, origin)
	l, err := Open(&MemStore{}, origin, k.signer)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := l.Append(root(i), t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyEntry1M verifies an epoch's inclusion in a checkpoint of a
// 2^20-epoch log, and reports the proof's encoded size.
func BenchmarkVerifyEntry1M(b *testing.B) {
	l, cp := benchLog(b)
	const epoch = benchEpochs/2 + 12345
	e, _ := l.Entry(epoch)
	p, err := l.ProveEntry(epoch, cp.Size)
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := EncodeProof(p)
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyEntry(cp.Checkpoint, e, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "proof-bytes")
}

// BenchmarkAdvance1M verifies a signed checkpoint of a 2^20-epoch log and
// its consistency with one 1 000 epochs older.
func BenchmarkAdvance1M(b *testing.B) {
	l, cp := benchLog(b)
	old := cp.Size - 1000
	p, err := l.ProveConsistency(old, cp.Size)
	if err != nil {
		b.Fatal(err)
	}
	oldHash, err := tlog.TreeHash(old, l.store)
	if err != nil {
		b.Fatal(err)
	}
	oldNote, err := Sign(Checkpoint{Origin: origin, Size: old, Hash: oldHash}, bench.key.signer)
	if err != nil {
		b.Fatal(err)
	}
	policy := Policy{Origin: origin, Log: bench.key.verifier}
	oldSC, err := OpenCheckpoint(oldNote, policy)
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := EncodeProof(p)
	b.ReportAllocs()
	for b.Loop() {
		v := &Verifier{policy: policy, latest: oldSC}
		if _, err := v.Advance(cp.Note, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "proof-bytes")
	b.ReportMetric(float64(len(cp.Note)), "checkpoint-bytes")
}

// BenchmarkBaselineSHA256_64 and BenchmarkBaselineEd25519Verify are the
// units: one node hash, one signature check.
func BenchmarkBaselineSHA256_64(b *testing.B) {
	var buf [64]byte
	for b.Loop() {
		h := sha256.Sum256(buf[:])
		buf[0] = h[0]
	}
}

func BenchmarkBaselineEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := Checkpoint{Origin: origin, Size: benchEpochs, Hash: tlog.Hash(root(1))}.Text()
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
