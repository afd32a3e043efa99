//go:build js && wasm

package profile

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
)

var idbTestDBs atomic.Int64

// The IndexedDB backend under the contract. It runs in a browser: web's
// TestProfileContractInBrowser builds this package's tests for js/wasm
// and runs them in headless Chromium.
func TestIndexedDBBackendContract(t *testing.T) {
	runContract(t, func(t *testing.T) backendEnv {
		name := fmt.Sprintf("parley-contract-%d", idbTestDBs.Add(1))
		t.Cleanup(func() { Remove(name) })
		return backendEnv{
			open: func(t *testing.T) Backend {
				b, err := openIndexedDB(name)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			dump: func(t *testing.T) []byte {
				// A fresh connection: what IndexedDB holds, not memory.
				b, err := openIndexedDB(name)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				rows, err := loadIndexedDB(b.db)
				if err != nil {
					t.Fatal(err)
				}
				var all bytes.Buffer
				for _, r := range rows {
					all.WriteString(r.Meta)
					all.Write(r.Bucket)
					all.Write(r.ID)
					all.Write(r.Sealed)
				}
				return all.Bytes()
			},
		}
	})
}

// The IndexedDB profile through the public API: Exists, Create, Open with
// a wrong and the right passphrase, Remove.
func TestIndexedDBProfileLifecycle(t *testing.T) {
	name := fmt.Sprintf("parley-lifecycle-%d", idbTestDBs.Add(1))
	defer Remove(name)
	if Exists(name) {
		t.Fatal("Exists before Create")
	}
	if _, err := Open(name, []byte("pw")); err != ErrNotExist {
		t.Fatalf("Open before Create: %v", err)
	}
	s, err := Create(name, []byte("pw"), contractKDF)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !Exists(name) {
		t.Fatal("not Exists after Create")
	}
	if _, err := Open(name, []byte("wrong")); err != ErrWrongPassphrase {
		t.Fatalf("wrong passphrase: %v", err)
	}
	s, err = Open(name, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("b", "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	s.Close()
	Remove(name)
	if Exists(name) {
		t.Fatal("Exists after Remove")
	}
}
