package chansqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chantest"
)

func TestContract(t *testing.T) {
	chantest.Run(t, func(t *testing.T) channels.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "channels.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "channels.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChannel(ctx, channels.Channel{ID: "news", Title: "News", Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRescanCheckpoint(ctx, 7); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Channel(ctx, "news")
	if err != nil || c.Owner != "alice" {
		t.Fatalf("after reopen: %+v, %v", c, err)
	}
	if seq, err := s.RescanCheckpoint(ctx); err != nil || seq != 7 {
		t.Fatalf("rescan checkpoint after reopen: %d, %v; want 7", seq, err)
	}
}
