package channelsrv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chanpg"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/internal/datadir"
	"github.com/parleychat/parley/internal/sqlitedb"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modpg"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// Where says where the channel and moderation stores are: the PostgreSQL
// database DB (a postgres:// URL; schemas "channels" and "moderation",
// beside the delivery store's tables) if set, shared by every node,
// else SQLite files in the data directory Data.
type Where struct {
	Data string
	DB   string
	// Create makes the SQLite files if they are missing; only "parleyd
	// serve" does (an admin command pointed at the wrong directory must
	// fail, not write to a new database the server never reads).
	Create bool
}

// OpenModeration opens the moderation store.
func OpenModeration(ctx context.Context, w Where) (moderation.Store, error) {
	if w.DB != "" {
		return modpg.Open(ctx, w.DB, nil)
	}
	path := filepath.Join(w.Data, ModerationDB)
	if w.Create {
		return modsqlite.Open(ctx, path)
	}
	s, err := modsqlite.OpenExisting(ctx, path)
	if errors.Is(err, sqlitedb.ErrNoDatabase) {
		return nil, datadir.Missing(w.Data, ModerationDB)
	}
	return s, err
}

// OpenChannels opens the channel store.
func OpenChannels(ctx context.Context, w Where) (channels.Store, error) {
	if w.DB != "" {
		return chanpg.Open(ctx, w.DB, nil)
	}
	path := filepath.Join(w.Data, ChannelsDB)
	if w.Create {
		return chansqlite.Open(ctx, path)
	}
	s, err := chansqlite.OpenExisting(ctx, path)
	if errors.Is(err, sqlitedb.ErrNoDatabase) {
		return nil, datadir.Missing(w.Data, ChannelsDB)
	}
	return s, err
}

// openStores opens both stores for the server.
func openStores(ctx context.Context, w Where) (moderation.Store, channels.Store, error) {
	ms, err := OpenModeration(ctx, w)
	if err != nil {
		return nil, nil, fmt.Errorf("channelsrv: moderation store: %w", err)
	}
	cs, err := OpenChannels(ctx, w)
	if err != nil {
		ms.Close()
		return nil, nil, fmt.Errorf("channelsrv: channel store: %w", err)
	}
	return ms, cs, nil
}
