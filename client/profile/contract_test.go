package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// backendEnv is one backend under the contract: open opens (again) the
// same storage, dump returns every byte it has persisted (read back from
// the storage, not from memory) for the plaintext checks.
type backendEnv struct {
	open func(t *testing.T) Backend
	dump func(t *testing.T) []byte
}

// contractKDF keeps the contract fast; Open reads the costs back from the
// header.
var contractKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// runContract is the contract every Backend runs (SQLite, memory, and
// IndexedDB in the browser: web's TestProfileContractInBrowser): the same
// sealing through the Store, and the backend's transactions.
func runContract(t *testing.T, newEnv func(t *testing.T) backendEnv) {
	pass := []byte("correct horse")
	create := func(t *testing.T, env backendEnv) *Store {
		t.Helper()
		s, err := CreateOn(env.open(t), "contract", pass, contractKDF)
		if err != nil {
			t.Fatalf("CreateOn: %v", err)
		}
		return s
	}
	reopen := func(t *testing.T, env backendEnv, s *Store, p []byte) (*Store, error) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		b := env.open(t)
		s2, err := OpenOn(b, "contract", p)
		if err != nil {
			b.Close()
		}
		return s2, err
	}
	list := func(t *testing.T, s *Store, bucket string) string {
		t.Helper()
		items, err := s.List(bucket)
		if err != nil {
			t.Fatalf("List(%s): %v", bucket, err)
		}
		var b bytes.Buffer
		for _, it := range items {
			fmt.Fprintf(&b, "%s=%s ", it.Key, it.Value)
		}
		return b.String()
	}

	t.Run("RoundTripAndReopen", func(t *testing.T) {
		env := newEnv(t)
		s := create(t, env)
		for _, kv := range [][2]string{{"b", "2"}, {"a", "1"}, {"c", "3"}} {
			if err := s.Put("letters", kv[0], []byte(kv[1])); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put("letters", "b", []byte("two")); err != nil { // keeps its place
			t.Fatal(err)
		}
		if err := s.Put("other", "a", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete("letters", "c"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete("letters", "missing"); err != nil {
			t.Fatalf("deleting a missing row: %v", err)
		}
		if err := s.Put("letters", "d", []byte("4")); err != nil { // goes last
			t.Fatal(err)
		}
		want := "b=two a=1 d=4 "
		if got := list(t, s, "letters"); got != want {
			t.Fatalf("List = %q, want %q", got, want)
		}
		s, err := reopen(t, env, s, pass)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if got := list(t, s, "letters"); got != want {
			t.Fatalf("after reopening, List = %q, want %q", got, want)
		}
		if v, err := s.Get("other", "a"); err != nil || string(v) != "x" {
			t.Fatalf("Get(other, a) = %q, %v", v, err)
		}
		if _, err := s.Get("letters", "c"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted row: %v", err)
		}
		err = s.Update(func(tx *Tx) error {
			if n, err := tx.Count("letters"); err != nil || n != 3 {
				return fmt.Errorf("Count = %d, %v", n, err)
			}
			if ok, err := tx.Has("letters", "a"); err != nil || !ok {
				return fmt.Errorf("Has(a) = %v, %v", ok, err)
			}
			if err := tx.DeleteBucket("letters"); err != nil {
				return err
			}
			if n, err := tx.Count("letters"); err != nil || n != 0 {
				return fmt.Errorf("Count after DeleteBucket = %d, %v", n, err)
			}
			return tx.PutJSON("json", "k", map[string]int{"n": 7})
		})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]int
		if err := s.Update(func(tx *Tx) error { return tx.GetJSON("json", "k", &m) }); err != nil || m["n"] != 7 {
			t.Fatalf("GetJSON = %v, %v", m, err)
		}
		if got := list(t, s, "other"); got != "a=x " {
			t.Fatalf("DeleteBucket touched another bucket: %q", got)
		}
	})

	t.Run("WrongPassphrase", func(t *testing.T) {
		env := newEnv(t)
		s := create(t, env)
		if err := s.Put("b", "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := reopen(t, env, s, []byte("wrong horse")); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("wrong passphrase: %v", err)
		}
		b := env.open(t)
		s, err := OpenOn(b, "contract", pass)
		if err != nil {
			t.Fatalf("the right passphrase after a wrong one: %v", err)
		}
		defer s.Close()
		if v, err := s.Get("b", "k"); err != nil || string(v) != "v" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	})

	t.Run("ExistAndNotExist", func(t *testing.T) {
		env := newEnv(t)
		b := env.open(t)
		if _, err := OpenOn(b, "contract", pass); !errors.Is(err, ErrNotExist) {
			t.Fatalf("opening an empty backend: %v", err)
		}
		s, err := CreateOn(b, "contract", pass, contractKDF)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CreateOn(b, "contract", []byte("other"), contractKDF); !errors.Is(err, ErrExist) {
			t.Fatalf("creating over a profile: %v", err)
		}
		if err := s.Put("b", "k", []byte("v")); err != nil {
			t.Fatalf("the profile after a refused Create: %v", err)
		}
		s.Close()
	})

	t.Run("Rollback", func(t *testing.T) {
		env := newEnv(t)
		s := create(t, env)
		if err := s.Put("b", "keep", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put("gone", "x", []byte("1")); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := s.Update(func(tx *Tx) error {
			for _, step := range []error{
				tx.Put("b", "new", []byte("2")),
				tx.Put("b", "keep", []byte("changed")),
				tx.Delete("b", "keep"),
				tx.Put("b", "keep", []byte("again")),
				tx.DeleteBucket("gone"),
			} {
				if step != nil {
					return step
				}
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v", err)
		}
		check := func(s *Store) {
			t.Helper()
			if got := list(t, s, "b"); got != "keep=1 " {
				t.Fatalf("after a failed Update, b = %q", got)
			}
			if got := list(t, s, "gone"); got != "x=1 " {
				t.Fatalf("after a failed Update, gone = %q", got)
			}
		}
		check(s)
		if err := s.Put("b", "later", []byte("3")); err != nil {
			t.Fatal(err)
		}
		s, err = reopen(t, env, s, pass)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := list(t, s, "b"); got != "keep=1 later=3 " {
			t.Fatalf("after reopening, b = %q", got)
		}
	})

	t.Run("NothingInTheClear", func(t *testing.T) {
		env := newEnv(t)
		s := create(t, env)
		for i := range 20 {
			if err := s.Put("CANARYBUCKET", fmt.Sprintf("CANARYKEY%d", i), fmt.Appendf(nil, "CANARYVALUE%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		data := env.dump(t)
		if !bytes.Contains(data, []byte(`"salt"`)) {
			t.Fatalf("the dump does not hold the header: it does not show what is stored (%d bytes)", len(data))
		}
		for _, c := range []string{"CANARY", "correct horse"} {
			if bytes.Contains(data, []byte(c)) {
				t.Errorf("the stored bytes contain %q", c)
			}
		}
	})

	t.Run("TamperedRowsRejected", func(t *testing.T) {
		// Whoever can write the storage moves a sealed value to another
		// row (or bucket): it fails authentication instead of reading as
		// the other row's data.
		env := newEnv(t)
		s := create(t, env)
		defer s.Close()
		s.Put("b", "a", []byte("alpha"))
		s.Put("b", "z", []byte("omega"))
		s.Put("c", "a", []byte("other"))
		bid, a, z := s.seal.bucketID("b"), s.seal.rowID("b", "a"), s.seal.rowID("b", "z")
		err := s.b.Update(context.Background(), func(tx RawTx) error {
			sealed, err := tx.Get(bid, a)
			if err != nil {
				return err
			}
			if err := tx.Put(bid, z, sealed); err != nil {
				return err
			}
			return tx.Put(s.seal.bucketID("c"), s.seal.rowID("c", "a"), sealed)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get("b", "z"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a moved row: %v", err)
		}
		if _, err := s.List("b"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("List with a moved row: %v", err)
		}
		if _, err := s.Get("c", "a"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a row moved to another bucket: %v", err)
		}
		if v, err := s.Get("b", "a"); err != nil || string(v) != "alpha" {
			t.Fatalf("the untouched row: %q, %v", v, err)
		}
	})

	t.Run("Lock", func(t *testing.T) {
		env := newEnv(t)
		s := create(t, env)
		defer s.Close()
		unlock, err := s.Lock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Lock(ctx); !errors.Is(err, ErrLocked) {
			t.Fatalf("a second Lock while held: %v", err)
		}
		unlock()
		unlock, err = s.Lock(context.Background())
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		unlock()
	})
}
