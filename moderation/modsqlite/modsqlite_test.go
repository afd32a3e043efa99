package modsqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modtest"
)

func TestContract(t *testing.T) {
	modtest.Run(t, func(t *testing.T) moderation.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "moderation.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "moderation.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ImportBank(ctx, moderation.Bank{Name: "a", Action: "review"}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Bank(ctx, "a")
	if err != nil || b.Action != "review" {
		t.Fatalf("after reopen: %+v, %v", b, err)
	}
}
