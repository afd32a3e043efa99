//go:build js && wasm

package profile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"syscall/js"
)

// In the browser a profile is an IndexedDB database named dir, with two
// object stores: "meta" (name → bytes) and "items" (hex(bucket‖id) →
// {b: bucket, i: id, s: seq, v: sealed}). Only sealed rows and the
// plaintext Argon2id header are written, exactly as in the SQLite file.
const (
	idbVersion    = 1
	idbMetaStore  = "meta"
	idbItemsStore = "items"
)

// Exists reports whether the browser has a profile database named dir.
func Exists(dir string) bool {
	names, err := await(js.Global().Get("indexedDB").Call("databases"))
	if err != nil {
		return false
	}
	for i := range names.Length() {
		if names.Index(i).Get("name").String() == dir {
			return true
		}
	}
	return false
}

// Create makes a new profile in the IndexedDB database dir.
func Create(dir string, passphrase []byte, kdf KDFParams) (*Store, error) {
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("profile: empty passphrase")
	}
	b, err := openIndexedDB(dir)
	if err != nil {
		return nil, err
	}
	s, err := CreateOn(b, dir, passphrase, kdf)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

// Open opens the profile in the IndexedDB database dir.
func Open(dir string, passphrase []byte) (*Store, error) {
	if !Exists(dir) {
		return nil, ErrNotExist
	}
	b, err := openIndexedDB(dir)
	if err != nil {
		return nil, err
	}
	s, err := OpenOn(b, dir, passphrase)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

// Remove deletes the IndexedDB database dir.
func Remove(dir string) {
	await(js.Global().Get("indexedDB").Call("deleteDatabase", dir))
}

type idbBackend struct {
	*memBackend
	db js.Value
}

func (b *idbBackend) Close() error {
	err := b.memBackend.Close()
	b.db.Call("close")
	return err
}

func openIndexedDB(name string) (*idbBackend, error) {
	req := js.Global().Get("indexedDB").Call("open", name, idbVersion)
	upgrade := js.FuncOf(func(this js.Value, args []js.Value) any {
		db := req.Get("result")
		stores := db.Get("objectStoreNames")
		if !stores.Call("contains", idbMetaStore).Bool() {
			db.Call("createObjectStore", idbMetaStore)
		}
		if !stores.Call("contains", idbItemsStore).Bool() {
			db.Call("createObjectStore", idbItemsStore)
		}
		return nil
	})
	defer upgrade.Release()
	req.Set("onupgradeneeded", upgrade)
	db, err := await(req)
	if err != nil {
		return nil, fmt.Errorf("profile: open IndexedDB %q: %w", name, err)
	}
	rows, err := loadIndexedDB(db)
	if err != nil {
		db.Call("close")
		return nil, err
	}
	b := &idbBackend{db: db}
	b.memBackend, err = newMemBackend(rows, b.write)
	if err != nil {
		db.Call("close")
		return nil, err
	}
	return b, nil
}

// loadIndexedDB reads every row in one read-only transaction.
func loadIndexedDB(db js.Value) ([]storedRow, error) {
	tx := db.Call("transaction", js.ValueOf([]any{idbMetaStore, idbItemsStore}), "readonly")
	metaKeys, metaVals := tx.Call("objectStore", idbMetaStore).Call("getAllKeys"), tx.Call("objectStore", idbMetaStore).Call("getAll")
	items := tx.Call("objectStore", idbItemsStore).Call("getAll")
	var rows []storedRow
	keys, err := await(metaKeys)
	if err != nil {
		return nil, fmt.Errorf("profile: read IndexedDB: %w", err)
	}
	vals, err := await(metaVals)
	if err != nil {
		return nil, fmt.Errorf("profile: read IndexedDB: %w", err)
	}
	if keys.Length() != vals.Length() {
		return nil, fmt.Errorf("%w: meta keys and values differ", ErrCorrupt)
	}
	for i := range keys.Length() {
		v, err := goBytes(vals.Index(i))
		if err != nil {
			return nil, err
		}
		rows = append(rows, storedRow{Meta: keys.Index(i).String(), Sealed: v})
	}
	all, err := await(items)
	if err != nil {
		return nil, fmt.Errorf("profile: read IndexedDB: %w", err)
	}
	for i := range all.Length() {
		it := all.Index(i)
		if it.Type() != js.TypeObject || it.Get("s").Type() != js.TypeNumber {
			return nil, fmt.Errorf("%w: an IndexedDB row has the wrong shape", ErrCorrupt)
		}
		bucket, err1 := goBytes(it.Get("b"))
		id, err2 := goBytes(it.Get("i"))
		sealed, err3 := goBytes(it.Get("v"))
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		rows = append(rows, storedRow{Bucket: bucket, ID: id, Seq: int64(it.Get("s").Float()), Sealed: sealed})
	}
	return rows, nil
}

// write stores one transaction's changed rows in one IndexedDB
// transaction and waits for it to complete.
func (b *idbBackend) write(changes []rowChange) error {
	tx := b.db.Call("transaction", js.ValueOf([]any{idbMetaStore, idbItemsStore}), "readwrite")
	done := awaitTx(tx)
	meta, items := tx.Call("objectStore", idbMetaStore), tx.Call("objectStore", idbItemsStore)
	for _, c := range changes {
		switch {
		case c.Meta != "" && c.Sealed == nil:
			meta.Call("delete", c.Meta)
		case c.Meta != "":
			meta.Call("put", jsBytes(c.Sealed), c.Meta)
		case c.Sealed == nil:
			items.Call("delete", hex.EncodeToString(c.Bucket)+hex.EncodeToString(c.ID))
		default:
			row := js.Global().Get("Object").New()
			row.Set("b", jsBytes(c.Bucket))
			row.Set("i", jsBytes(c.ID))
			row.Set("s", c.Seq)
			row.Set("v", jsBytes(c.Sealed))
			items.Call("put", row, hex.EncodeToString(c.Bucket)+hex.EncodeToString(c.ID))
		}
	}
	tx.Call("commit")
	if err := <-done; err != nil {
		return fmt.Errorf("IndexedDB: %w", err)
	}
	return nil
}

func jsBytes(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

func goBytes(v js.Value) ([]byte, error) {
	if !v.InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, fmt.Errorf("%w: an IndexedDB value is not bytes", ErrCorrupt)
	}
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	return b, nil
}

// await waits for an IDBRequest (or a Promise) to settle. It must not be
// called from a js.FuncOf callback: the event loop has to run meanwhile.
func await(req js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	if req.InstanceOf(js.Global().Get("Promise")) {
		var ok, fail js.Func
		ok = js.FuncOf(func(_ js.Value, args []js.Value) any { ch <- result{v: args[0]}; return nil })
		fail = js.FuncOf(func(_ js.Value, args []js.Value) any {
			ch <- result{err: errors.New(args[0].Call("toString").String())}
			return nil
		})
		req.Call("then", ok, fail)
		r := <-ch
		ok.Release()
		fail.Release()
		return r.v, r.err
	}
	ok := js.FuncOf(func(js.Value, []js.Value) any { ch <- result{v: req.Get("result")}; return nil })
	fail := js.FuncOf(func(js.Value, []js.Value) any { ch <- result{err: domError(req.Get("error"))}; return nil })
	blocked := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- result{err: errors.New("blocked by another tab that has the profile open: close it and reload")}
		return nil
	})
	req.Set("onsuccess", ok)
	req.Set("onerror", fail)
	req.Set("onblocked", blocked)
	r := <-ch
	req.Set("onsuccess", js.Null())
	req.Set("onerror", js.Null())
	req.Set("onblocked", js.Null())
	ok.Release()
	fail.Release()
	blocked.Release()
	return r.v, r.err
}

// awaitTx returns a channel that gets nil when the IDBTransaction
// completes, or its error when it fails or aborts.
func awaitTx(tx js.Value) <-chan error {
	ch := make(chan error, 1)
	var complete, fail js.Func
	release := func() { complete.Release(); fail.Release() }
	complete = js.FuncOf(func(js.Value, []js.Value) any { ch <- nil; release(); return nil })
	fail = js.FuncOf(func(js.Value, []js.Value) any {
		err := domError(tx.Get("error"))
		ch <- err
		release()
		return nil
	})
	tx.Set("oncomplete", complete)
	tx.Set("onerror", fail)
	tx.Set("onabort", fail)
	return ch
}

func domError(e js.Value) error {
	if e.IsNull() || e.IsUndefined() {
		return errors.New("aborted")
	}
	return fmt.Errorf("%s: %s", e.Get("name").String(), e.Get("message").String())
}
