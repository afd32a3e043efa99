package pgstore

import (
	"context"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.DB(t)) })
}
