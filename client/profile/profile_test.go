//go:build !js

package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testKDF keeps tests fast; the parameters are stored in the header, so
// Open uses whatever Create chose.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	s, err := Create(dir, []byte("correct horse"), testKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestRoundTripAndReopen(t *testing.T) {
	s, dir := newStore(t)
	if err := s.Put("b", "k1", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k2", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k1", []byte("v1'")); err != nil { // keeps its place
		t.Fatal(err)
	}
	if err := s.Put("other", "k1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := Open(dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	v, err := s2.Get("b", "k1")
	if err != nil || string(v) != "v1'" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	items, err := s2.List("b")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Key != "k1" || items[1].Key != "k2" || string(items[1].Value) != "v2" {
		t.Fatalf("List = %+v", items)
	}
	if _, err := s2.Get("b", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := s2.Delete("b", "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get("b", "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	s, dir := newStore(t)
	s.Close()
	if _, err := Open(dir, []byte("correct horsf")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Open with wrong passphrase: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope"), []byte("x")); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Open missing: %v", err)
	}
	if _, err := Create(dir, []byte("x"), testKDF); !errors.Is(err, ErrExist) {
		t.Fatalf("Create twice: %v", err)
	}
}

func TestRollback(t *testing.T) {
	s, _ := newStore(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put("b", "k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.Get("b", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled-back Put is visible: %v", err)
	}
}

// TestNothingInTheClear writes distinctive keys and values and checks that
// none of them appears in any file of the profile directory.
func TestNothingInTheClear(t *testing.T) {
	s, dir := newStore(t)
	canaries := []string{"CANARYBUCKET", "CANARYKEY", "CANARYVALUE", "correct horse"}
	for i := range 50 {
		if err := s.Put("CANARYBUCKET", fmt.Sprintf("CANARYKEY%d", i), []byte(fmt.Sprintf("CANARYVALUE%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	checkFiles := func() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range canaries {
				if bytes.Contains(data, []byte(c)) {
					t.Errorf("%s contains %q", e.Name(), c)
				}
			}
			info, _ := e.Info()
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v", e.Name(), info.Mode())
			}
		}
		info, err := os.Stat(dir)
		if err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("dir mode %v, %v", info.Mode(), err)
		}
	}
	checkFiles() // with the WAL present
	s.Close()
	s2, err := Open(dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	checkFiles()
}

func TestLockExcludes(t *testing.T) {
	s, dir := newStore(t)
	s2, err := Open(dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	unlock, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s2.Lock(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock: %v", err)
	}
	unlock()
	unlock2, err := s2.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

func TestKDFBounds(t *testing.T) {
	if _, err := Create(t.TempDir(), []byte("x"), KDFParams{Time: 1, MemoryKiB: 1 << 30, Threads: 1}); err == nil {
		t.Fatal("absurd memory accepted")
	}
	if _, err := Create(t.TempDir(), nil, testKDF); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func FuzzOpenRow(f *testing.F) {
	c := cipherState{encKey: make([]byte, 32), macKey: make([]byte, 32)}
	good, _ := c.sealRow([]byte("b"), []byte("r"), []byte("k"), []byte("v"))
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		k, v, err := c.openRow([]byte("b"), []byte("r"), sealed)
		if err == nil && (string(k) != "k" || string(v) != "v") {
			t.Fatalf("forged row opened: %q %q", k, v)
		}
	})
}
