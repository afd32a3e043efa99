package directory

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/transparency/commit"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
)

// The benchmarks below run against one directory of benchLabels accounts
// and benchEpochs epochs (one a minute for two years), built once per
// process, lazily, by the first benchmark that needs it (about 10 s), so
// that "go test" without -bench never builds it. Figures and
// commands are in docs/benchmarks.md ("Directory at 1 million accounts").
//
// The state is made with Restore, not by preparing a million updates (a
// VRF proof each, about 100 s): benchTracked labels are real (VRF proof,
// commitment to a signed 3-device list, chained leaf); the others have
// random indexes and leaf values and an 80-byte random stand-in for their
// VRF proof, which nothing checks since they are only ever updated, never
// looked up. Earlier log entries carry random prefix roots; Restore checks
// only the last one, which is the tree's.
const (
	benchLabels  = 1_000_000
	benchEpochs  = 1 << 20
	benchBatch   = 10_000
	benchTracked = 256
	// benchKnownAt is the epoch of the tracked labels' (only) version.
	benchKnownAt = 1000
	// benchBehind is how many epochs older than the served one the
	// searching client's latest checkpoint is.
	benchBehind = 1000
	benchOrigin = "parley.example/kt"
	// benchSizes is how many log sizes the log proofs' sizes are averaged
	// over (answers).
	benchSizes = 1024
)

var benchT0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type trackedLabel struct {
	label   string
	current Opening // its version, as the server's storage keeps it
	leaf    prefix.Value
}

var bench struct {
	once sync.Once
	err  error

	dir       *Directory
	cfg       Config
	witness   note.Signer
	keys      Keys // a client's: requires the directory's and the witness's signatures
	tracked   []trackedLabel
	list      []byte    // a signed 3-device list, as a directory value
	clock     time.Time // the latest epoch's time
	newLabels int       // labels added by BenchmarkPrepareCommit10kNew1M so far

	heapMiB, logMiB, restoreSec float64
}

func benchLabel(i int) string { return fmt.Sprintf("user%07d", i) }

// signedList is a typical value: an account's signed list of three devices,
// encoded as the server stores and serves it.
func signedList(label string) ([]byte, error) {
	pub, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, err
	}
	l := devicelist.List{Username: label, AccountKey: pub, Version: 1, Signed: benchT0}
	for range 3 {
		id := make([]byte, 16) // the server's device ids: 16 random bytes in hex
		crand.Read(id)
		auth, _, _ := ed25519.GenerateKey(crand.Reader)
		mlsKey, _, _ := ed25519.GenerateKey(crand.Reader)
		l.Devices = append(l.Devices, devicelist.Device{ID: fmt.Sprintf("%x", id), AuthKey: auth, MLSKey: mlsKey, Added: benchT0})
	}
	s, err := devicelist.Sign(l, priv)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(s)
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchDirectory(b *testing.B) {
	b.Helper()
	bench.once.Do(func() { bench.err = buildBench() })
	if bench.err != nil {
		b.Fatal(bench.err)
	}
}

func buildBench() error {
	before := heapAlloc()

	skey, _, err := GenerateNoteKey(crand.Reader, benchOrigin)
	if err != nil {
		return err
	}
	signer, _, err := NewNoteKey(skey)
	if err != nil {
		return err
	}
	vk, err := vrf.GenerateKey(crand.Reader)
	if err != nil {
		return err
	}
	wskey, wvkey, err := GenerateNoteKey(crand.Reader, "witness.example")
	if err != nil {
		return err
	}
	ws, err := note.NewSigner(wskey)
	if err != nil {
		return err
	}
	wv, err := note.NewVerifier(wvkey)
	if err != nil {
		return err
	}
	// The directory itself has no witnesses configured, so each Commit
	// serves at once (the epoch benchmarks commit one after the other); the
	// clients' policy requires one, and answers are cosigned for them
	// (cosign) as a gated directory would serve them.
	cfg := Config{Origin: benchOrigin, Signer: signer, VRF: vk}
	bench.cfg, bench.witness = cfg, ws

	r := rand.New(rand.NewPCG(1, 2))
	stored := make([]StoredLabel, benchLabels)
	for i := range stored {
		s := &stored[i]
		s.Label = benchLabel(i)
		s.Version = 1
		if i < benchTracked {
			if s.Index, s.VRFProof, err = indexFor(vk, s.Label); err != nil {
				return err
			}
			list, err := signedList(s.Label)
			if err != nil {
				return err
			}
			c, o, err := commit.New(crand.Reader, []byte(s.Label), 1, list)
			if err != nil {
				return err
			}
			s.Epoch = benchKnownAt
			s.Value = LeafValue(prefix.Value{}, s.Epoch, c)
			bench.tracked = append(bench.tracked, trackedLabel{label: s.Label, leaf: s.Value,
				current: Opening{Epoch: s.Epoch, Version: 1, Opening: o, Value: list}})
			continue
		}
		fill(r, s.Index[:])
		fill(r, s.Value[:])
		s.VRFProof = make([]byte, 80)
		fill(r, s.VRFProof)
		s.Epoch = r.Uint64N(benchEpochs)
	}
	if bench.list, err = signedList("user0000000"); err != nil {
		return err
	}

	// The last epoch's prefix root: the tree of the stored labels.
	entries := make([]prefix.Entry, len(stored))
	for i, s := range stored {
		entries[i] = prefix.Entry{Index: s.Index, Value: s.Value}
	}
	tree, err := prefix.Build(entries)
	if err != nil {
		return err
	}
	root := tree.Root()
	tree, entries = nil, nil

	records := make([][]byte, benchEpochs)
	for i := range records {
		e := log.Entry{Epoch: uint64(i), Time: benchT0.Add(time.Duration(i) * time.Minute)}
		if i == benchEpochs-1 {
			e.PrefixRoot = root
		} else {
			fill(r, e.PrefixRoot[:])
		}
		if records[i], err = e.MarshalBinary(); err != nil {
			return err
		}
	}
	bench.clock = benchT0.Add(time.Duration(benchEpochs-1) * time.Minute)

	start := time.Now()
	d, err := Restore(cfg, records, stored, nil)
	if err != nil {
		return err
	}
	bench.restoreSec = time.Since(start).Seconds()
	stored, records = nil, nil
	bench.dir = d
	bench.heapMiB = float64(heapAlloc()-before) / (1 << 20)

	// The log's share, measured apart: the same records in a store of
	// their own.
	before = heapAlloc()
	st := new(log.MemStore)
	if err := copyLog(st, d); err != nil {
		return err
	}
	bench.logMiB = float64(heapAlloc()-before) / (1 << 20)
	runtime.KeepAlive(st)

	bench.keys = Keys{
		Policy:    log.Policy{Origin: benchOrigin, Log: d.Verifier(), Witnesses: []note.Verifier{wv}, Quorum: 1},
		VRF:       d.VRFPublic(),
		MaxAhead:  time.Minute,
		MaxBehind: time.Hour,
	}
	return nil
}

func fill(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

// copyLog appends every record of d's log to st.
func copyLog(st *log.MemStore, d *Directory) error {
	for n := range d.Size() {
		rec, err := d.Record(uint64(n))
		if err != nil {
			return err
		}
		hs, err := tlog.StoredHashes(n, rec, st)
		if err != nil {
			return err
		}
		if err := st.Append(n, rec, hs); err != nil {
			return err
		}
	}
	return nil
}

// cosign adds the witness's signature to a checkpoint of the directory, as
// the served note of a witness-gated directory carries it.
func cosign(signed []byte) ([]byte, error) {
	cp, err := log.OpenCheckpoint(signed, log.Policy{Origin: benchOrigin, Log: bench.dir.Verifier()})
	if err != nil {
		return nil, err
	}
	return log.Cosign(cp, bench.witness)
}

// checkpointAt is the cosigned checkpoint of the log's first size epochs: a
// client's latest before it searches.
func checkpointAt(size int64) ([]byte, error) {
	h, err := tlog.TreeHash(size, bench.dir.logStore)
	if err != nil {
		return nil, err
	}
	return log.Sign(log.Checkpoint{Origin: benchOrigin, Size: size, Hash: h}, bench.cfg.Signer, bench.witness)
}

// answer is the directory's answer about a tracked label to a client whose
// latest checkpoint has size known, as the server would send it: the
// Lookup, its cosigned checkpoint, and the label's current version.
func answer(t *trackedLabel, known int64) (*Answer, error) {
	l, err := bench.dir.Search(t.label, known)
	if err != nil {
		return nil, err
	}
	if !l.Found || l.Epoch != t.current.Epoch {
		return nil, fmt.Errorf("%s: found %v at epoch %d", t.label, l.Found, l.Epoch)
	}
	a := &Answer{Lookup: *l, Current: &t.current}
	if a.Checkpoint, err = cosign(l.Checkpoint); err != nil {
		return nil, err
	}
	return a, nil
}

// answerSize is the bytes of an answer as a client receives it, in the
// encodings of the transparency packages (no framing): the checkpoint note,
// the consistency proof and entry proof (log.EncodeProof), the log record,
// the VRF proof, the prefix proof (MarshalBinary), and for a found label
// the opening's fixed fields (epoch 8, previous leaf 32, version 4,
// opening 16). value is the device list's size, apart.
type answerSize struct {
	checkpoint, consistency, record, entryProof, vrfProof, prefixProof, opening, value int
}

func sizeOf(a *Answer) (answerSize, error) {
	var s answerSize
	cons, err := log.EncodeProof(a.Consistency)
	if err != nil {
		return s, err
	}
	ep, err := log.EncodeProof(a.EntryProof)
	if err != nil {
		return s, err
	}
	pp, err := a.Proof.MarshalBinary()
	if err != nil {
		return s, err
	}
	s = answerSize{checkpoint: len(a.Checkpoint), consistency: len(cons), record: len(a.Record), entryProof: len(ep),
		vrfProof: len(a.VRFProof), prefixProof: len(pp)}
	if a.Current != nil {
		s.opening = 8 + 32 + 4 + commit.OpeningSize
		s.value = len(a.Current.Value)
	}
	return s, nil
}

// answers returns the answers about every tracked label to a client that
// is behind epochs behind, their mean sizes, and the whole answer's mean
// and largest size (the device list apart). The two log proofs' sizes
// depend on the exact sizes of the trees: the entry proof of the latest
// epoch has about one hash per 1 bit of the size-1 (20 at 2^20, as few as
// 1 at 2^20+1). So for them the figures are over benchSizes served sizes
// drawn at random from the last half of the log (2^19 to 2^20 epochs: an
// answer at any time in the log's second year), not the current size
// alone; the prefix proof's are over the tracked labels.
func answers(b *testing.B, behind int64) (as []*Answer, mean answerSize, proofs, largest float64) {
	b.Helper()
	_, size := bench.dir.Published()
	as = make([]*Answer, len(bench.tracked))
	var sum answerSize
	maxPrefix := 0
	for i := range bench.tracked {
		a, err := answer(&bench.tracked[i], size-behind)
		if err != nil {
			b.Fatal(err)
		}
		s, err := sizeOf(a)
		if err != nil {
			b.Fatal(err)
		}
		as[i] = a
		sum.checkpoint += s.checkpoint
		sum.record += s.record
		sum.vrfProof += s.vrfProof
		sum.prefixProof += s.prefixProof
		sum.opening += s.opening
		sum.value += s.value
		maxPrefix = max(maxPrefix, s.prefixProof)
	}
	n := len(as)
	mean = answerSize{checkpoint: sum.checkpoint / n, record: sum.record / n, vrfProof: sum.vrfProof / n,
		prefixProof: sum.prefixProof / n, opening: sum.opening / n, value: sum.value / n}
	var cons, entry, maxLog int
	r := rand.New(rand.NewPCG(3, 4))
	for range benchSizes {
		t := size - r.Int64N(size/2)
		p, err := bench.dir.log.ProveConsistency(t-behind, t)
		if err != nil {
			b.Fatal(err)
		}
		ep, err := bench.dir.log.ProveEntry(uint64(t-1), t)
		if err != nil {
			b.Fatal(err)
		}
		c, e := 1+len(p)*32, 1+len(ep)*32
		cons, entry, maxLog = cons+c, entry+e, max(maxLog, c+e)
	}
	mean.consistency, mean.entryProof = cons/benchSizes, entry/benchSizes
	fixed := float64(sum.checkpoint+sum.record+sum.vrfProof+sum.opening) / float64(n)
	proofs = fixed + float64(sum.prefixProof)/float64(n) + float64(cons+entry)/benchSizes
	largest = fixed + float64(maxPrefix+maxLog)
	return as, mean, proofs, largest
}

// clients returns n Verifiers whose latest checkpoint is that of size
// known (what VerifySearch advances from); made outside the timed part.
func clients(b *testing.B, known int64, n int) []*log.Verifier {
	b.Helper()
	old, err := checkpointAt(known)
	if err != nil {
		b.Fatal(err)
	}
	vs := make([]*log.Verifier, n)
	for i := range vs {
		if vs[i], err = log.NewVerifier(bench.keys.Policy, old); err != nil {
			b.Fatal(err)
		}
	}
	return vs
}

// BenchmarkBaselineEd25519Verify is the unit of the client figures: one
// signature check (a checkpoint note carries two here).
func BenchmarkBaselineEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(crand.Reader)
	msg := log.Checkpoint{Origin: benchOrigin, Size: benchEpochs, Hash: tlog.Hash{1}}.Text()
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkMemory1M reports the directory's live heap after Restore at 1M
// labels and 2^20 epochs (heap-MiB), the log's share of it measured apart
// (log-MiB), and how long Restore took (restore-s: a server's start). The
// timed loop does nothing.
func BenchmarkMemory1M(b *testing.B) {
	benchDirectory(b)
	for b.Loop() {
		_ = bench.dir.Len()
	}
	b.ReportMetric(bench.heapMiB, "heap-MiB")
	b.ReportMetric(bench.logMiB, "log-MiB")
	b.ReportMetric((bench.heapMiB-bench.logMiB)*(1<<20)/benchLabels, "B/label")
	b.ReportMetric(bench.restoreSec, "restore-s")
}

// BenchmarkSearch1M is the server's work for one search answer (the
// checkpoint's cosignature is already on the served note), and reports the
// answer's size: answer-B is everything but the device list (list-B).
func BenchmarkSearch1M(b *testing.B) {
	benchDirectory(b)
	_, mean, proofs, largest := answers(b, benchBehind)
	_, size := bench.dir.Published()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bench.dir.Search(bench.tracked[i%len(bench.tracked)].label, size-benchBehind); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(proofs, "answer-B")
	b.ReportMetric(largest, "answer-max-B")
	b.ReportMetric(float64(mean.value), "list-B")
	b.ReportMetric(float64(mean.checkpoint), "checkpoint-B")
	b.ReportMetric(float64(mean.consistency), "consistency-B")
	b.ReportMetric(float64(mean.entryProof), "entry-proof-B")
	b.ReportMetric(float64(mean.prefixProof), "prefix-proof-B")
	b.ReportMetric(float64(size), "epochs")
}

// BenchmarkVerifySearch1M is a client's check of a search answer
// (VerifySearch): the cosigned checkpoint and its consistency with the
// client's latest, 1 000 epochs older; the entry; the VRF proof; the
// prefix proof; the opening.
func BenchmarkVerifySearch1M(b *testing.B) {
	benchDirectory(b)
	as, _, _, _ := answers(b, benchBehind)
	_, size := bench.dir.Published()
	now := bench.clock.Add(10 * time.Second)
	var vs []*log.Verifier
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		k := i % len(as)
		if k == 0 {
			b.StopTimer()
			vs = clients(b, size-benchBehind, len(as))
			b.StartTimer()
		}
		r, err := VerifySearch(vs[k], bench.keys, bench.tracked[k].label, as[k], now)
		if err != nil || !r.Found {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMonitor1M is an owner's check of its own account when nothing
// changed since it last looked (VerifyHistory, no versions), every=N epochs
// after its latest checkpoint: one check per N epochs. answer-B is the
// whole answer, device list included (VerifySearch needs the current
// opening and value to recompute the leaf); B/day is that at one epoch a
// minute, 1440/N checks a day.
func BenchmarkMonitor1M(b *testing.B) {
	benchDirectory(b)
	for _, every := range []int64{1, 60, 180, 240, 360, 1440} {
		b.Run(fmt.Sprintf("every=%d", every), func(b *testing.B) {
			as, mean, proofs, largest := answers(b, every)
			_, size := bench.dir.Published()
			now := bench.clock.Add(10 * time.Second)
			var vs []*log.Verifier
			i := 0
			for b.Loop() {
				k := i % len(as)
				if k == 0 {
					b.StopTimer()
					vs = clients(b, size-every, len(as))
					b.StartTimer()
				}
				t := &bench.tracked[k]
				if _, err := VerifyHistory(vs[k], bench.keys, t.label, Known{Leaf: t.leaf, Epoch: t.current.Epoch}, as[k], nil, now); err != nil {
					b.Fatal(err)
				}
				i++
			}
			whole := proofs + float64(mean.value)
			b.ReportMetric(whole, "answer-B")
			b.ReportMetric(largest+float64(mean.value), "answer-max-B")
			b.ReportMetric(float64(mean.consistency), "consistency-B")
			b.ReportMetric(whole*1440/float64(every), "B/day")
		})
	}
}

// updates returns an epoch's worth of changes: new versions of benchBatch
// distinct untracked labels, the n-th batch of them.
func updates(n int) []Change {
	cs := make([]Change, benchBatch)
	for i := range cs {
		label := benchLabel(benchTracked + (n*benchBatch+i)%(benchLabels-benchTracked))
		v, _ := bench.dir.Version(label)
		cs[i] = Change{Label: label, Version: v + 1, Value: bench.list}
	}
	return cs
}

// newLabels returns benchBatch labels not yet in the directory.
func newLabels() []Change {
	cs := make([]Change, benchBatch)
	for i := range cs {
		cs[i] = Change{Label: fmt.Sprintf("new%07d", bench.newLabels), Version: 1, Value: bench.list}
		bench.newLabels++
	}
	return cs
}

// gcSeconds is the CPU time the garbage collector has spent so far; the
// epoch benchmarks report its share per epoch (gc-ms/op), since on one core
// marking the directory's heap competes with the epoch loop.
func gcSeconds() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// publish prepares and commits one epoch.
func publish(cs []Change) (*Epoch, error) {
	bench.clock = bench.clock.Add(time.Minute)
	e, err := bench.dir.Prepare(crand.Reader, bench.clock, cs)
	if err != nil {
		return nil, err
	}
	return e, bench.dir.Commit(e)
}

// BenchmarkPrepareCommit10k1M publishes an epoch in which 10 000 of the
// 1M accounts publish a new device list: Prepare (commitments, chained
// leaves, the tree, the signed checkpoint) and Commit. Run with -cpu 1.
func BenchmarkPrepareCommit10k1M(b *testing.B) {
	benchDirectory(b)
	n := 0
	gc0, ops := gcSeconds(), 0
	for b.Loop() {
		ops++
		b.StopTimer()
		cs := updates(n)
		n++
		b.StartTimer()
		if _, err := publish(cs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((gcSeconds()-gc0)*1000/float64(ops), "gc-ms/op")
}

// BenchmarkBaselineTreeInsert10k1M is the prefix tree's share of an
// epoch, in the same run: new values for the indexes of the 10 000 labels
// of an update epoch (spread over the whole tree, as VRF outputs are), in
// the directory's tree, nothing else.
func BenchmarkBaselineTreeInsert10k1M(b *testing.B) {
	benchDirectory(b)
	tree := bench.dir.tree
	batch := make([]prefix.Entry, 0, benchBatch)
	for _, c := range updates(0) {
		batch = append(batch, prefix.Entry{Index: bench.dir.labels[c.Label].index, Value: prefix.Value{1}})
	}
	for b.Loop() {
		if _, err := tree.Insert(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditorApply10k1M is an auditor keeping up with the directory:
// for an epoch of 10 000 updates, it decodes the changes it is sent,
// applies them (Apply: recomputes each chained leaf, the tree and checks
// the root) and cosigns the new checkpoint. The directory's Prepare and
// Commit of each epoch are outside the timed part. The auditor starts
// from the directory's state (its tree and a copy of its log), as if it
// had followed it from the first epoch. changes-B is what it is sent per
// epoch.
func BenchmarkAuditorApply10k1M(b *testing.B) {
	benchDirectory(b)
	a := NewAuditor(log.Policy{Origin: benchOrigin, Log: bench.dir.Verifier()})
	if err := copyLog(a.store, bench.dir); err != nil {
		b.Fatal(err)
	}
	a.tree, a.size = bench.dir.tree, bench.dir.Size()
	last, err := bench.dir.log.Entry(uint64(a.size - 1))
	if err != nil {
		b.Fatal(err)
	}
	a.last = last
	n, changesB := 0, 0
	for b.Loop() {
		b.StopTimer()
		e, err := publish(updates(n + 50))
		if err != nil {
			b.Fatal(err)
		}
		n++
		enc, _ := e.Changes().MarshalBinary()
		changesB = len(enc)
		cp := bench.dir.Latest()
		b.StartTimer()
		c, err := ParseChanges(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Apply(e.Record, c); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Cosign(cp, bench.witness); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(changesB), "changes-B")
}

// BenchmarkPrepareCommit10kNew1M is the same with 10 000 new accounts,
// each of which costs a VRF proof. Every iteration adds 10 000 labels, so
// it comes last.
func BenchmarkPrepareCommit10kNew1M(b *testing.B) {
	benchDirectory(b)
	gc0, ops := gcSeconds(), 0
	for b.Loop() {
		ops++
		b.StopTimer()
		cs := newLabels()
		b.StartTimer()
		if _, err := publish(cs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((gcSeconds()-gc0)*1000/float64(ops), "gc-ms/op")
}
