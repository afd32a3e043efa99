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
