package server

import (
	"slices"
	"testing"
)

// The hub hands out each device's list as it is: a list handed out must
// not change when the device's connections later do (a push ranging
// over it would skip or repeat a connection), and a look-up allocates
// nothing.
func TestHubListsAreCopiedOnChange(t *testing.T) {
	h := newHub()
	a, b, c := &conn{}, &conn{}, &conn{}
	h.add("d", a)
	h.add("d", b)
	h.add("d", b) // twice: once in the list
	held := h.conns("d")
	if !slices.Equal(held, []*conn{a, b}) {
		t.Fatalf("conns = %v, want [a b]", held)
	}
	h.add("d", c)
	h.remove("d", a)
	if !slices.Equal(held, []*conn{a, b}) {
		t.Fatalf("a list handed out changed to %v", held)
	}
	if got := h.conns("d"); !slices.Equal(got, []*conn{b, c}) {
		t.Fatalf("conns after add c, remove a = %v, want [b c]", got)
	}
	h.remove("d", b)
	h.remove("d", c)
	h.remove("d", c) // not there: nothing happens
	if got := h.conns("d"); len(got) != 0 {
		t.Fatalf("conns after removing all = %v", got)
	}
	if _, ok := h.m["d"]; ok {
		t.Fatal("an offline device is still in the hub's map")
	}
	h.add("e", a)
	if n := testing.AllocsPerRun(100, func() { _ = h.conns("e") }); n != 0 {
		t.Fatalf("conns allocates %v times per call", n)
	}
}
