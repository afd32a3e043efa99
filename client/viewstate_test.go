package client

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// View state survives closing and reopening the profile, is sealed (its
// bytes appear nowhere in the profile's files), refuses an oversized
// value leaving the old one, and an empty value deletes it.
func TestViewStateSealedAndKept(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	opts := testOptions(t, "alice")
	c, err := Init(ctx, opts, s.url, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.ViewState(ctx, "web-unread"); err != nil || v != nil {
		t.Fatalf("a new profile's view state: %q, %v", v, err)
	}
	canary := []byte(`{"@bob":3,"canary":"view-state-canary-7d1f"}`)
	if err := c.SetViewState(ctx, "web-unread", canary); err != nil {
		t.Fatal(err)
	}
	if err := c.SetViewState(ctx, "web-unread", make([]byte, MaxViewState+1)); !errors.Is(err, ErrViewStateTooLarge) {
		t.Fatalf("an oversized value: %v, want ErrViewStateTooLarge", err)
	}
	if err := c.SetViewState(ctx, "", canary); err == nil {
		t.Fatal("a view state without a name was accepted")
	}
	c.Close()
	if found := filesContaining(t, opts.Dir, []byte("view-state-canary")); len(found) > 0 {
		t.Fatalf("the view state is in the clear in %v", found)
	}
	c, err = Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.ViewState(ctx, "web-unread"); err != nil || !bytes.Equal(v, canary) {
		t.Fatalf("after reopening: %q, %v; want %q", v, err, canary)
	}
	if err := c.SetViewState(ctx, "web-unread", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := c.ViewState(ctx, "web-unread"); err != nil || v != nil {
		t.Fatalf("after deleting: %q, %v", v, err)
	}
}
