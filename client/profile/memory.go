package profile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// memBackend holds every sealed row in memory and hands each committed
// transaction's changed rows to persist, which must make them durable
// before returning. It is the IndexedDB backend's core (IndexedDB
// transactions commit as soon as control returns to the event loop, so a
// Go transaction cannot stay open across them): rows are loaded at open,
// fn runs against memory, and a failed persist rolls the memory back.
type memBackend struct {
	mu      sync.Mutex // serialises Update
	lk      chanLock
	meta    map[string][]byte
	buckets map[string]*memBucket
	persist func([]rowChange) error
	closed  bool
}

type memBucket struct {
	rows map[string]*memRow
	next int64 // the seq of the next new row
}

type memRow struct {
	seq    int64
	sealed []byte
}

// rowChange is one row a transaction changed, as it must be stored: a
// meta row (Meta set) or an item; Sealed nil means deleted.
type rowChange struct {
	Meta   string
	Bucket []byte
	ID     []byte
	Seq    int64
	Sealed []byte
}

// storedRow is a row read back from the persistent store at open.
type storedRow = rowChange

func newMemBackend(rows []storedRow, persist func([]rowChange) error) (*memBackend, error) {
	m := &memBackend{lk: newChanLock(), meta: map[string][]byte{}, buckets: map[string]*memBucket{}, persist: persist}
	for _, r := range rows {
		if r.Meta != "" {
			m.meta[r.Meta] = r.Sealed
			continue
		}
		if len(r.Bucket) != bucketIDSize || len(r.ID) != rowIDSize || r.Seq < 1 || r.Sealed == nil {
			return nil, fmt.Errorf("%w: a stored row has the wrong shape", ErrCorrupt)
		}
		b := m.bucket(r.Bucket)
		b.rows[string(r.ID)] = &memRow{seq: r.Seq, sealed: r.Sealed}
		b.next = max(b.next, r.Seq+1)
	}
	return m, nil
}

func (m *memBackend) bucket(id []byte) *memBucket {
	b := m.buckets[string(id)]
	if b == nil {
		b = &memBucket{rows: map[string]*memRow{}, next: 1}
		m.buckets[string(id)] = b
	}
	return b
}

var errClosed = errors.New("profile: closed")

func (m *memBackend) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memBackend) Lock(ctx context.Context) (func(), error) { return m.lk.lock(ctx) }

func (m *memBackend) Update(ctx context.Context, fn func(RawTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	tx := &memTx{m: m, touched: map[string]rowChange{}}
	err := fn(tx)
	if err == nil && len(tx.touched) > 0 && m.persist != nil {
		if err = m.persist(tx.changes()); err != nil {
			err = fmt.Errorf("profile: commit: %w", err)
		}
	}
	if err != nil {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i]()
		}
		return err
	}
	return nil
}

type memTx struct {
	m       *memBackend
	undo    []func()
	touched map[string]rowChange // by kind and identifiers; current state read at commit
}

// changes lists the touched rows as they now stand, in a stable order.
func (t *memTx) changes() []rowChange {
	out := make([]rowChange, 0, len(t.touched))
	for _, c := range t.touched {
		if c.Meta != "" {
			c.Sealed = t.m.meta[c.Meta]
		} else if r := t.m.buckets[string(c.Bucket)].rows[string(c.ID)]; r != nil {
			c.Seq, c.Sealed = r.seq, r.sealed
		} else {
			c.Seq, c.Sealed = 0, nil
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b rowChange) int {
		return cmp.Or(cmp.Compare(a.Meta, b.Meta), cmp.Compare(string(a.Bucket), string(b.Bucket)), cmp.Compare(string(a.ID), string(b.ID)))
	})
	return out
}

func (t *memTx) Meta(name string) ([]byte, error) {
	v, ok := t.m.meta[name]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(v), nil
}

func (t *memTx) PutMeta(name string, value []byte) error {
	old, had := t.m.meta[name]
	t.undo = append(t.undo, func() {
		if had {
			t.m.meta[name] = old
		} else {
			delete(t.m.meta, name)
		}
	})
	t.m.meta[name] = slices.Clone(value)
	t.touched["m"+name] = rowChange{Meta: name}
	return nil
}

func (t *memTx) Get(bucket, id []byte) ([]byte, error) {
	b := t.m.buckets[string(bucket)]
	if b == nil || b.rows[string(id)] == nil {
		return nil, ErrNotFound
	}
	return slices.Clone(b.rows[string(id)].sealed), nil
}

func (t *memTx) touch(b *memBucket, bucket, id []byte) {
	old, next := b.rows[string(id)], b.next
	t.undo = append(t.undo, func() {
		if old != nil {
			b.rows[string(id)] = old
		} else {
			delete(b.rows, string(id))
		}
		b.next = next
	})
	t.touched["r"+string(bucket)+string(id)] = rowChange{Bucket: slices.Clone(bucket), ID: slices.Clone(id)}
}

func (t *memTx) Put(bucket, id, sealed []byte) error {
	b := t.m.bucket(bucket)
	t.touch(b, bucket, id)
	if r := b.rows[string(id)]; r != nil {
		b.rows[string(id)] = &memRow{seq: r.seq, sealed: slices.Clone(sealed)}
		return nil
	}
	b.rows[string(id)] = &memRow{seq: b.next, sealed: slices.Clone(sealed)}
	b.next++
	return nil
}

func (t *memTx) Delete(bucket, id []byte) error {
	b := t.m.buckets[string(bucket)]
	if b == nil || b.rows[string(id)] == nil {
		return nil
	}
	t.touch(b, bucket, id)
	delete(b.rows, string(id))
	return nil
}

func (t *memTx) DeleteBucket(bucket []byte) error {
	b := t.m.buckets[string(bucket)]
	if b == nil {
		return nil
	}
	for id := range b.rows {
		t.touch(b, bucket, []byte(id))
		delete(b.rows, id)
	}
	return nil
}

func (t *memTx) List(bucket []byte) ([]RawRow, error) {
	b := t.m.buckets[string(bucket)]
	if b == nil {
		return nil, nil
	}
	type seqRow struct {
		seq int64
		row RawRow
	}
	rows := make([]seqRow, 0, len(b.rows))
	for id, r := range b.rows {
		rows = append(rows, seqRow{r.seq, RawRow{ID: []byte(id), Sealed: slices.Clone(r.sealed)}})
	}
	slices.SortFunc(rows, func(a, b seqRow) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]RawRow, len(rows))
	for i, r := range rows {
		out[i] = r.row
	}
	return out, nil
}

func (t *memTx) Count(bucket []byte) (int, error) {
	if b := t.m.buckets[string(bucket)]; b != nil {
		return len(b.rows), nil
	}
	return 0, nil
}
