package log_test

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleychat/parley/transparency/commit"
	ktlog "github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
)

// Example walks the whole path of a search: the directory commits to
// alice's device list, puts the commitment in the prefix tree, appends the
// tree's root to the log and signs a checkpoint, which a witness cosigns;
// bob's client checks the checkpoint, the epoch's entry in it, the prefix
// tree proof against the entry's root, and the commitment against the
// device list it was given.
func Example() {
	// Keys: the directory's and one auditor's.
	skey, vkey, _ := note.GenerateKey(rand.Reader, "parley.example/kt")
	logSigner, _ := note.NewSigner(skey)
	logVerifier, _ := note.NewVerifier(vkey)
	wskey, wvkey, _ := note.GenerateKey(rand.Reader, "auditor.example")
	witness, _ := note.NewSigner(wskey)
	witnessVerifier, _ := note.NewVerifier(wvkey)

	// Directory, epoch 0.
	label, version := []byte("alice"), uint32(1)
	devices := []byte("alice's signed device list, version 1")
	c, opening, _ := commit.New(rand.Reader, label, version, devices)
	index := prefix.Index(sha256.Sum256(label)) // the server uses VRF(label)
	tree, _ := prefix.Empty().Insert([]prefix.Entry{{Index: index, Value: prefix.Value(c)}})
	l, _ := ktlog.Open(&ktlog.MemStore{}, "parley.example/kt", logSigner)
	entry, signed, _ := l.Append(tree.Root(), time.Now())
	sc, _ := ktlog.OpenCheckpoint(signed, ktlog.Policy{Origin: "parley.example/kt", Log: logVerifier})
	cosigned, _ := ktlog.Cosign(sc, witness)
	entryProof, _ := l.ProveEntry(entry.Epoch, sc.Size)
	_, _, treeProof := tree.Lookup(index)

	// Bob's client, which requires the auditor's cosignature.
	v, _ := ktlog.NewVerifier(ktlog.Policy{
		Origin:    "parley.example/kt",
		Log:       logVerifier,
		Witnesses: []note.Verifier{witnessVerifier},
		Quorum:    1,
	}, nil)
	cp, err := v.Advance(cosigned, nil)
	fmt.Println("checkpoint:", err)
	fmt.Println("entry:", ktlog.VerifyEntry(cp.Checkpoint, entry, entryProof))
	fmt.Println("tree:", prefix.VerifyInclusion(entry.PrefixRoot, index, prefix.Value(c), treeProof))
	fmt.Println("devices:", commit.Verify(c, opening, label, version, devices))
	fmt.Println("ghost:", commit.Verify(c, opening, label, version, []byte("alice's devices and a ghost")))
	// Output:
	// checkpoint: <nil>
	// entry: <nil>
	// tree: <nil>
	// devices: <nil>
	// ghost: commit: commitment does not match the opening, label, version and value
}
