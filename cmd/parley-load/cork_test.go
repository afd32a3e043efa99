package main

import (
	"bytes"
	"net"
	"testing"
)

// writeCounter records each Write to the connection under a corkedConn.
type writeCounter struct {
	net.Conn
	writes [][]byte
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

// Frames written while corked leave in one write, in order; uncorked
// writes pass straight through.
func TestCorkedConnBatches(t *testing.T) {
	under := &writeCounter{}
	c := &corkedConn{Conn: under}
	c.Write([]byte("pong"))
	c.cork()
	c.Write([]byte("one,"))
	c.Write([]byte("two"))
	if len(under.writes) != 1 {
		t.Fatalf("%d writes reached the socket while corked", len(under.writes)-1)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("three"))
	want := []string{"pong", "one,two", "three"}
	if len(under.writes) != len(want) {
		t.Fatalf("writes %q, want %q", under.writes, want)
	}
	for i, w := range want {
		if string(under.writes[i]) != w {
			t.Fatalf("writes %q, want %q", under.writes, want)
		}
	}
	c.cork()
	if err := c.uncork(); err != nil || len(under.writes) != 3 {
		t.Fatalf("an empty batch wrote (err %v, %d writes)", err, len(under.writes))
	}
}
