package profile

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
)

// fakeStorage is a persistent store for memBackend: what persist wrote,
// row by row, as IndexedDB would keep it.
type fakeStorage struct {
	rows map[string]rowChange
	fail error // persist fails with this when set
}

func (f *fakeStorage) persist(changes []rowChange) error {
	if f.fail != nil {
		return f.fail
	}
	for _, c := range changes {
		k := c.Meta + "\x00" + string(c.Bucket) + string(c.ID)
		if c.Sealed == nil {
			delete(f.rows, k)
		} else {
			f.rows[k] = c
		}
	}
	return nil
}

func (f *fakeStorage) open(t *testing.T) Backend {
	b, err := newMemBackend(slices.Collect(maps.Values(f.rows)), f.persist)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fakeStorage) dump(*testing.T) []byte {
	var b bytes.Buffer
	for _, r := range f.rows {
		b.WriteString(r.Meta)
		b.Write(r.Bucket)
		b.Write(r.ID)
		b.Write(r.Sealed)
	}
	return b.Bytes()
}

func TestMemoryBackendContract(t *testing.T) {
	runContract(t, func(t *testing.T) backendEnv {
		f := &fakeStorage{rows: map[string]rowChange{}}
		return backendEnv{open: f.open, dump: f.dump}
	})
}

// A transaction whose write to the persistent store fails leaves memory
// as it was: the next read does not see rows that were never stored.
func TestMemoryBackendFailedWriteRollsBack(t *testing.T) {
	f := &fakeStorage{rows: map[string]rowChange{}}
	s, err := CreateOn(f.open(t), "mem", []byte("pw"), contractKDF)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	f.fail = errors.New("QuotaExceededError")
	if err := s.Put("b", "k", []byte("new")); err == nil || !errors.Is(err, f.fail) {
		t.Fatalf("Put with a failing store: %v", err)
	}
	if err := s.Put("b", "k2", []byte("new")); err == nil {
		t.Fatal("Put with a failing store succeeded")
	}
	f.fail = nil
	if got, err := s.List("b"); err != nil || len(got) != 1 || string(got[0].Value) != "old" {
		t.Fatalf("after failed writes, List = %v, %v", got, err)
	}
	if err := s.Put("b", "k3", []byte("3")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenOn(f.open(t), "mem", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.List("b"); err != nil || len(got) != 2 || got[1].Key != "k3" {
		t.Fatalf("after reopening, List = %v, %v", got, err)
	}
}

// A failed write is ErrStorage, which callers take as "nothing was
// stored, try again"; an error of the transaction's own logic is returned
// as it was, without the mark.
func TestStorageErrorsAreMarked(t *testing.T) {
	f := &fakeStorage{rows: map[string]rowChange{}}
	s, err := CreateOn(f.open(t), "mem", []byte("pw"), contractKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.fail = errors.New("QuotaExceededError")
	if err := s.Put("b", "k", []byte("v")); !errors.Is(err, ErrStorage) || !errors.Is(err, f.fail) {
		t.Errorf("a failed commit: %v, want ErrStorage wrapping the backend's error", err)
	}
	f.fail = nil
	refused := errors.New("refused by the caller")
	if err := s.Update(func(tx *Tx) error { return refused }); err != refused {
		t.Errorf("the transaction's own error came back as %v", err)
	}
	if _, err := s.Get("b", "missing"); err != ErrNotFound {
		t.Errorf("a missing row: %v, want ErrNotFound unmarked", err)
	}
	s.Close()
	if err := s.Put("b", "k", []byte("v")); !errors.Is(err, ErrStorage) {
		t.Errorf("a closed profile: %v, want ErrStorage", err)
	}
}

// Rows read back from storage with the wrong shape are refused at open.
func TestMemoryBackendRejectsMalformedRows(t *testing.T) {
	for _, r := range []rowChange{
		{Bucket: []byte("short"), ID: make([]byte, rowIDSize), Seq: 1, Sealed: []byte{1}},
		{Bucket: make([]byte, bucketIDSize), ID: make([]byte, rowIDSize), Seq: 0, Sealed: []byte{1}},
		{Bucket: make([]byte, bucketIDSize), ID: make([]byte, rowIDSize), Seq: 1},
	} {
		if _, err := newMemBackend([]rowChange{r}, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("row %+v: %v", r, err)
		}
	}
}
