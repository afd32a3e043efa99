package directory

import (
	"bytes"
	"testing"

	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
)

// FuzzVerifySearch feeds VerifySearch answers whose every part may be
// replaced by arbitrary bytes, decoded the way a client decodes the wire
// (log.DecodeProof, prefix.ParseProof, the opening's fixed sizes). It must
// never panic, and whatever it accepts must say what the honest answer
// says: alice present, with her value.
func FuzzVerifySearch(f *testing.F) {
	s := newServer(f)
	s.epoch("alice=A1", "bob=B1")
	s.epoch("alice=A2")
	honest := s.search("alice", 0)
	keys := s.keys(f)
	consistency, _ := log.EncodeProof(honest.Consistency)
	entryProof, _ := log.EncodeProof(honest.EntryProof)
	proof, _ := honest.Proof.MarshalBinary()
	cur := honest.Current
	f.Add(honest.Checkpoint, consistency, honest.Record, entryProof, honest.VRFProof, proof, cur.Prev[:], cur.Opening[:], cur.Value, cur.Epoch, cur.Version)
	f.Fuzz(func(t *testing.T, checkpoint, consistency, record, entryProof, vrfProof, prefixProof, prev, opening, value []byte, epoch uint64, version uint32) {
		a := &Answer{Lookup: Lookup{Checkpoint: checkpoint, Record: record, VRFProof: vrfProof}}
		var err error
		if a.Consistency, err = log.DecodeProof(consistency); err != nil && len(consistency) > 0 {
			return
		}
		if a.EntryProof, err = log.DecodeProof(entryProof); err != nil {
			return
		}
		if a.Proof, err = prefix.ParseProof(prefixProof); err != nil {
			return
		}
		if len(prev) == 32 && len(opening) == 16 {
			o := &Opening{Epoch: epoch, Version: version, Value: value}
			copy(o.Prev[:], prev)
			copy(o.Opening[:], opening)
			a.Current = o
		}
		v, err := log.NewVerifier(keys.Policy, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := VerifySearch(v, keys, "alice", a, s.now)
		if err != nil {
			return
		}
		if !r.Found || !bytes.Equal(r.Current.Value, []byte("A2")) {
			t.Fatalf("accepted another answer: found %v, value %q", r.Found, r.Current.Value)
		}
	})
}
