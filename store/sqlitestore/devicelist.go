package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/store"
)

func (s *Store) Link(ctx context.Context, username, code string, now time.Time) (store.Link, error) {
	l := store.Link{Username: username, Code: code}
	var expires int64
	err := s.r.QueryRowContext(ctx, `SELECT public_key, expires, mls_key, link_mac FROM links WHERE username = ? AND code = ? AND expires > ?`,
		username, code, now.UnixMilli()).Scan(&l.PublicKey, &expires, &l.MLSKey, &l.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("link: %w", store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("link: %w", err)
	}
	l.Expires = fromMilli(expires)
	return l, nil
}

func (s *Store) TakeLinkConfirmation(ctx context.Context, deviceID string) ([]byte, error) {
	// Every authentication asks; almost always there is nothing to take,
	// and a read need not wait for the writer.
	var pending bool
	err := s.r.QueryRowContext(ctx, `SELECT link_confirmation IS NOT NULL FROM devices WHERE id = ?`, deviceID).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("link confirmation: %w", store.ErrUnknownDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("link confirmation: %w", err)
	}
	if !pending {
		return nil, nil
	}
	var c []byte
	err = s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT link_confirmation FROM devices WHERE id = ?`, deviceID).Scan(&c)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("link confirmation: %w", store.ErrUnknownDevice)
		}
		if err != nil {
			return fmt.Errorf("link confirmation: %w", err)
		}
		if c == nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET link_confirmation = NULL WHERE id = ?`, deviceID); err != nil {
			return fmt.Errorf("link confirmation: %w", err)
		}
		return nil
	})
	return c, err
}

func (s *Store) PublishDeviceList(ctx context.Context, l store.DeviceList) error {
	if len(l.AccountKey) == 0 || len(l.Signed) == 0 || l.Version == 0 {
		return fmt.Errorf("publish device list: key, list and a version above 0 are required: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var key []byte
		var version uint64
		err := tx.QueryRowContext(ctx, `SELECT account_key, device_list_version FROM accounts WHERE username = ?`, l.Username).Scan(&key, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("publish device list: account %q: %w", l.Username, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("publish device list: %w", err)
		}
		if key != nil && !bytes.Equal(key, l.AccountKey) && !l.ResetKey {
			return fmt.Errorf("publish device list: %w", store.ErrAccountKey)
		}
		if l.Version <= version {
			return fmt.Errorf("publish device list: version %d, stored %d: %w", l.Version, version, store.ErrStaleVersion)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET account_key = ?, device_list = ?, device_list_version = ? WHERE username = ?`,
			l.AccountKey, l.Signed, l.Version, l.Username); err != nil {
			return fmt.Errorf("publish device list: %w", err)
		}
		return nil
	})
}

func (s *Store) DeviceList(ctx context.Context, username string) (store.DeviceList, error) {
	l := store.DeviceList{Username: username}
	err := s.r.QueryRowContext(ctx, `SELECT account_key, device_list_version, device_list FROM accounts WHERE username = ? AND device_list IS NOT NULL`,
		username).Scan(&l.AccountKey, &l.Version, &l.Signed)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("device list of %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("device list of %q: %w", username, err)
	}
	return l, nil
}
