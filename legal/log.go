package legal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/store"
	tlogpkg "github.com/parleychat/parley/transparency/log"
)

// Log is the legal log: its records (kept in the store) in a tlog Merkle
// tree whose checkpoints the server signs with a note key of the log's
// own, in the same format as the key transparency log's.
type Log struct {
	origin string
	signer note.Signer
	mem    *tlogpkg.MemStore
	recs   [][]byte
}

// OpenLog loads the legal log from the store.
func OpenLog(ctx context.Context, st store.Store, origin string, signer note.Signer) (*Log, error) {
	recs, err := st.LegalLog(ctx)
	if err != nil {
		return nil, err
	}
	l := &Log{origin: origin, signer: signer, mem: new(tlogpkg.MemStore)}
	for _, r := range recs {
		if err := l.add(r); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Log) add(rec []byte) error {
	n := int64(len(l.recs))
	hashes, err := tlog.StoredHashes(n, rec, l.mem)
	if err != nil {
		return err
	}
	if err := l.mem.Append(n, rec, hashes); err != nil {
		return err
	}
	l.recs = append(l.recs, rec)
	return nil
}

// Size is the number of records.
func (l *Log) Size() int64 { return int64(len(l.recs)) }

// Checkpoint signs the log's current checkpoint.
func (l *Log) Checkpoint() ([]byte, error) {
	h, err := tlog.TreeHash(l.Size(), l.mem)
	if err != nil {
		return nil, err
	}
	return tlogpkg.Sign(tlogpkg.Checkpoint{Origin: l.origin, Size: l.Size(), Hash: h}, l.signer)
}

// find returns the index of a record.
func (l *Log) find(rec []byte) (int64, bool) {
	for i, r := range l.recs {
		if bytes.Equal(r, rec) {
			return int64(i), true
		}
	}
	return 0, false
}

// Save stores r with its newest event's record appended to the log (nil:
// no new event).
func (l *Log) Save(ctx context.Context, st store.Store, r *Request, rec []byte) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	sr := store.LegalRequest{ID: r.ID, Recorded: r.Recorded, Data: data}
	if p := r.Preservation; p != nil && p.Released.IsZero() {
		sr.PreservedUntil = p.Until
	}
	n, err := st.LegalPut(ctx, sr, rec)
	if err != nil {
		return err
	}
	if rec != nil {
		return l.follow(ctx, st, n, rec)
	}
	return nil
}

// follow brings the in-memory log up to the store's after record rec was
// stored at index n: another process (the server releasing preserved
// data, another admin command) may have appended in between, which is
// fine, as the store numbers records; only a record that is not where the
// store says is an error.
func (l *Log) follow(ctx context.Context, st store.Store, n int64, rec []byte) error {
	if n == l.Size() {
		return l.add(rec)
	}
	recs, err := st.LegalLog(ctx)
	if err != nil {
		return err
	}
	if n >= int64(len(recs)) || !bytes.Equal(recs[n], rec) {
		return fmt.Errorf("legal: record %d in the store is not the one just written", n)
	}
	for _, r := range recs[l.Size():] {
		if err := l.add(r); err != nil {
			return err
		}
	}
	return nil
}

// AppendReport appends a record for a report (no request) and returns its
// index.
func (l *Log) AppendReport(ctx context.Context, st store.Store, rec []byte) (int64, error) {
	n, err := st.LegalAppend(ctx, rec)
	if err != nil {
		return 0, err
	}
	return n, l.follow(ctx, st, n, rec)
}

// Load returns a stored request.
func Load(ctx context.Context, st store.Store, id string) (*Request, error) {
	sr, err := st.LegalGet(ctx, id)
	if err != nil {
		return nil, err
	}
	var r Request
	if err := json.Unmarshal(sr.Data, &r); err != nil {
		return nil, fmt.Errorf("legal: stored request %s: %w", id, err)
	}
	return &r, nil
}

// List returns every stored request, oldest first.
func List(ctx context.Context, st store.Store) ([]*Request, error) {
	srs, err := st.LegalList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Request, 0, len(srs))
	for _, sr := range srs {
		var r Request
		if err := json.Unmarshal(sr.Data, &r); err != nil {
			return nil, fmt.Errorf("legal: stored request %s: %w", sr.ID, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// ReleaseExpired deletes the preserved data of every request whose
// preservation period is over, logging each release; it returns how many.
func (l *Log) ReleaseExpired(ctx context.Context, st store.Store, now time.Time) (int, error) {
	rs, err := List(ctx, st)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rs {
		rec, err := Release(r, now)
		if err != nil {
			return n, err
		}
		if rec == nil {
			continue
		}
		if err := l.Save(ctx, st, r, rec); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
