package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
)

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) CreateInvite(ctx context.Context, code string, expires time.Time) error {
	if code == "" {
		return fmt.Errorf("create invite: empty code: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		t, err := tx.Exec(ctx, `INSERT INTO invites (code, expires) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING`, code, expires.UnixMilli())
		if err != nil {
			return fmt.Errorf("create invite: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("create invite: %w", store.ErrExists)
		}
		return nil
	})
}

func checkDevice(dev store.Device) error {
	if dev.ID == "" || dev.Username == "" || len(dev.PublicKey) == 0 {
		return fmt.Errorf("device needs id, username and key: %w", store.ErrBadRequest)
	}
	return nil
}

func insertDevice(ctx context.Context, tx pgx.Tx, dev store.Device) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = $1 OR public_key = $2`, dev.ID, dev.PublicKey).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("device id or key in use: %w", store.ErrExists)
	}
	created := dev.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.Exec(ctx, `INSERT INTO devices (id, username, public_key, created) VALUES ($1, $2, $3, $4)`,
		dev.ID, dev.Username, dev.PublicKey, created.UnixMilli())
	if uniqueViolation(err, "") {
		// Another node took the id or key since the check.
		return fmt.Errorf("device id or key in use: %w", store.ErrExists)
	}
	return err
}

func (s *Store) CreateAccount(ctx context.Context, dev store.Device, invite string) error {
	if err := checkDevice(dev); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE username = $1`, dev.Username).Scan(&n); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("create account %q: %w", dev.Username, store.ErrExists)
		}
		skeleton := wire.UsernameSkeleton(dev.Username)
		var like string
		err := tx.QueryRow(ctx, `SELECT username FROM accounts WHERE skeleton = $1 LIMIT 1`, skeleton).Scan(&like)
		if err == nil {
			return fmt.Errorf("create account %q: it looks like %q: %w", dev.Username, like, store.ErrLookalike)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("create account: %w", err)
		}
		if invite != "" {
			t, err := tx.Exec(ctx, `DELETE FROM invites WHERE code = $1 AND expires > $2`, invite, nowMilli())
			if err != nil {
				return fmt.Errorf("create account: %w", err)
			}
			if t.RowsAffected() != 1 {
				return fmt.Errorf("create account: %w", store.ErrInvalidInvite)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO accounts (username, created, skeleton) VALUES ($1, $2, $3)`, dev.Username, nowMilli(), skeleton)
		switch {
		case uniqueViolation(err, "accounts_pkey"):
			return fmt.Errorf("create account %q: %w", dev.Username, store.ErrExists)
		case uniqueViolation(err, "accounts_skeleton"):
			return fmt.Errorf("create account %q: it looks like an account made at the same time: %w", dev.Username, store.ErrLookalike)
		case err != nil:
			return fmt.Errorf("create account: %w", err)
		}
		if err := insertDevice(ctx, tx, dev); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		return nil
	})
}

const deviceCols = `id, username, public_key, created, last_seen`

func scanDevice(row pgx.Row) (store.Device, error) {
	var d store.Device
	var created, seen int64
	if err := row.Scan(&d.ID, &d.Username, &d.PublicKey, &created, &seen); err != nil {
		return d, err
	}
	d.Created = fromMilli(created)
	if seen != 0 {
		d.LastSeen = fromMilli(seen)
	}
	return d, nil
}

func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("device: %w", s.read(err))
	}
	return d, nil
}

func (s *Store) DevicesByID(ctx context.Context, ids []string) (map[string]store.Device, error) {
	out := make(map[string]store.Device, len(ids))
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("devices by id: %w", s.read(err))
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("devices by id: %w", s.read(err))
		}
		out[d.ID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devices by id: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) DeviceByKey(ctx context.Context, key []byte) (store.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE public_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("device by key: %w", store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("device by key: %w", s.read(err))
	}
	return d, nil
}

func (s *Store) Devices(ctx context.Context, username string) ([]store.Device, error) {
	devs, err := devicesOf(ctx, s.pool, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		err = s.read(err)
	}
	return devs, err
}

func devicesOf(ctx context.Context, q querier, username string) ([]store.Device, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE username = $1`, username).Scan(&n); err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("account %q: %w", username, store.ErrNotFound)
	}
	rows, err := q.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE username = $1 ORDER BY created, id`, username)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	return out, nil
}

func (s *Store) RemoveDevice(ctx context.Context, id string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		convs, err := lockPendingConversations(ctx, tx, []string{id})
		if err != nil {
			return fmt.Errorf("remove device: %w", err)
		}
		// Cascades delete key packages, inbox, member rows, and its
		// pending changes and verdicts.
		t, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("remove device: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("remove device %q: %w", id, store.ErrNotFound)
		}
		return settleAll(ctx, tx, convs)
	})
}

func (s *Store) DeleteAccount(ctx context.Context, username string) ([]string, error) {
	var ids []string
	err := s.write(ctx, func(tx pgx.Tx) error {
		ids = nil
		// The account's row is locked: no device can be linked to it
		// while it is being deleted.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE username = $1 FOR UPDATE`, username); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		devs, err := devicesOf(ctx, tx, username)
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
		convs, err := lockPendingConversations(ctx, tx, ids)
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		for _, q := range []string{
			// Cascades delete key packages, inbox, member rows, and their
			// pending changes and verdicts.
			`DELETE FROM devices WHERE username = $1`,
			`DELETE FROM links WHERE username = $1`,
			// Its own settings go; others' blocks of it stay (the name
			// stays taken, so a block keeps meaning the same person).
			`DELETE FROM blocks WHERE username = $1`,
			`DELETE FROM privacy WHERE username = $1`,
			// The account's signed list goes with its devices; the account
			// key stays bound to the name, which stays taken.
			`UPDATE accounts SET device_list = NULL WHERE username = $1`,
		} {
			if _, err := tx.Exec(ctx, q, username); err != nil {
				return fmt.Errorf("delete account: %w", err)
			}
		}
		if err := settleAll(ctx, tx, convs); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		return nil
	})
	return ids, err
}

func (s *Store) CreateLink(ctx context.Context, l store.Link) error {
	if l.Username == "" || l.Code == "" || len(l.PublicKey) == 0 {
		return fmt.Errorf("create link: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE username = $1`, l.Username).Scan(&n); err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("create link: account %q: %w", l.Username, store.ErrNotFound)
		}
		// An expired link with the same code may be reused.
		if _, err := tx.Exec(ctx, `DELETE FROM links WHERE username = $1 AND code = $2 AND expires <= $3`, l.Username, l.Code, nowMilli()); err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		t, err := tx.Exec(ctx, `INSERT INTO links (username, code, public_key, expires, mls_key, link_mac) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (username, code) DO NOTHING`,
			l.Username, l.Code, l.PublicKey, l.Expires.UnixMilli(), l.MLSKey, l.MAC)
		if err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("create link: %w", store.ErrExists)
		}
		return nil
	})
}

func (s *Store) ApproveLink(ctx context.Context, username, code string, dev store.Device, confirmation []byte, now time.Time) (store.Device, error) {
	orig := dev
	err := s.write(ctx, func(tx pgx.Tx) error {
		dev = orig
		var key []byte
		err := tx.QueryRow(ctx, `DELETE FROM links WHERE username = $1 AND code = $2 AND expires > $3 RETURNING public_key`,
			username, code, now.UnixMilli()).Scan(&key)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("approve link: %w", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("approve link: %w", err)
		}
		if len(dev.PublicKey) > 0 && !bytes.Equal(dev.PublicKey, key) {
			return fmt.Errorf("approve link: the pending link holds another key than the one the approver checked: %w", store.ErrBadRequest)
		}
		dev.Username = username
		dev.PublicKey = key
		if dev.Created.IsZero() {
			dev.Created = now
		}
		if err := checkDevice(dev); err != nil {
			return fmt.Errorf("approve link: %w", err)
		}
		if err := insertDevice(ctx, tx, dev); err != nil {
			return fmt.Errorf("approve link: %w", err)
		}
		if len(confirmation) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE devices SET link_confirmation = $1 WHERE id = $2`, confirmation, dev.ID); err != nil {
				return fmt.Errorf("approve link: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Device{}, err
	}
	dev.Created = fromMilli(dev.Created.UnixMilli())
	return dev, nil
}

func (s *Store) Link(ctx context.Context, username, code string, now time.Time) (store.Link, error) {
	l := store.Link{Username: username, Code: code}
	var expires int64
	err := s.pool.QueryRow(ctx, `SELECT public_key, expires, mls_key, link_mac FROM links WHERE username = $1 AND code = $2 AND expires > $3`,
		username, code, now.UnixMilli()).Scan(&l.PublicKey, &expires, &l.MLSKey, &l.MAC)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("link: %w", store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("link: %w", s.read(err))
	}
	l.Expires = fromMilli(expires)
	return l, nil
}

func (s *Store) TakeLinkConfirmation(ctx context.Context, deviceID string) ([]byte, error) {
	// Every authentication asks; almost always there is nothing to take,
	// and one read answers that.
	var pending bool
	err := s.pool.QueryRow(ctx, `SELECT link_confirmation IS NOT NULL FROM devices WHERE id = $1`, deviceID).Scan(&pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("link confirmation: %w", store.ErrUnknownDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("link confirmation: %w", s.read(err))
	}
	if !pending {
		return nil, nil
	}
	var c []byte
	err = s.write(ctx, func(tx pgx.Tx) error {
		c = nil
		err := tx.QueryRow(ctx, `SELECT link_confirmation FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&c)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("link confirmation: %w", store.ErrUnknownDevice)
		}
		if err != nil {
			return fmt.Errorf("link confirmation: %w", err)
		}
		if c == nil {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET link_confirmation = NULL WHERE id = $1`, deviceID); err != nil {
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
	return s.write(ctx, func(tx pgx.Tx) error {
		var key []byte
		var version int64
		err := tx.QueryRow(ctx, `SELECT account_key, device_list_version FROM accounts WHERE username = $1 FOR UPDATE`, l.Username).Scan(&key, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("publish device list: account %q: %w", l.Username, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("publish device list: %w", err)
		}
		if key != nil && !bytes.Equal(key, l.AccountKey) && !l.ResetKey {
			return fmt.Errorf("publish device list: %w", store.ErrAccountKey)
		}
		if l.Version <= uint64(version) {
			return fmt.Errorf("publish device list: version %d, stored %d: %w", l.Version, version, store.ErrStaleVersion)
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET account_key = $1, device_list = $2, device_list_version = $3 WHERE username = $4`,
			l.AccountKey, l.Signed, int64(l.Version), l.Username); err != nil {
			return fmt.Errorf("publish device list: %w", err)
		}
		return nil
	})
}

func (s *Store) DeviceList(ctx context.Context, username string) (store.DeviceList, error) {
	l := store.DeviceList{Username: username}
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT account_key, device_list_version, device_list FROM accounts WHERE username = $1 AND device_list IS NOT NULL`,
		username).Scan(&l.AccountKey, &version, &l.Signed)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("device list of %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("device list of %q: %w", username, s.read(err))
	}
	l.Version = uint64(version)
	return l, nil
}

func (s *Store) Privacy(ctx context.Context, username string) (store.Privacy, error) {
	p, err := loadPrivacy(ctx, s.pool, username)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			err = s.read(err)
		}
		return p, fmt.Errorf("privacy of %q: %w", username, err)
	}
	return p, nil
}

func loadPrivacy(ctx context.Context, q querier, username string) (store.Privacy, error) {
	p := store.Privacy{GroupInvites: store.GroupInvitesEveryone}
	var invites *int16
	err := q.QueryRow(ctx, `SELECT p.group_invites FROM accounts a LEFT JOIN privacy p ON p.username = a.username
		WHERE a.username = $1`, username).Scan(&invites)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, store.ErrNotFound
	}
	if err != nil {
		return p, err
	}
	if invites != nil {
		p.GroupInvites = store.GroupInvites(*invites)
	}
	rows, err := q.Query(ctx, `SELECT blocked FROM blocks WHERE username = $1 ORDER BY blocked`, username)
	if err != nil {
		return p, err
	}
	p.Blocked, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return p, err
}

func (s *Store) UpdatePrivacy(ctx context.Context, username string, block, unblock []string, invites store.GroupInvites) (store.Privacy, error) {
	switch invites {
	case 0, store.GroupInvitesEveryone, store.GroupInvitesContacts:
	default:
		return store.Privacy{}, fmt.Errorf("update privacy: group invites %d: %w", invites, store.ErrBadRequest)
	}
	var p store.Privacy
	err := s.write(ctx, func(tx pgx.Tx) error {
		// Locking the account's row serialises its updates, so that two
		// at once cannot together pass MaxBlocked.
		t, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE username = $1 FOR UPDATE`, username)
		if err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("update privacy: account %q: %w", username, store.ErrNotFound)
		}
		var n int
		for _, b := range block {
			if b == username {
				return fmt.Errorf("update privacy: cannot block yourself: %w", store.ErrBadRequest)
			}
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE username = $1`, b).Scan(&n); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("update privacy: no account %q to block: %w", b, store.ErrNotFound)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO blocks (username, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING`, username, b); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		if len(unblock) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM blocks WHERE username = $1 AND blocked = ANY($2)`, username, unblock); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM blocks WHERE username = $1`, username).Scan(&n); err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		if n > store.MaxBlocked {
			return fmt.Errorf("update privacy: at most %d blocked accounts: %w", store.MaxBlocked, store.ErrBadRequest)
		}
		if invites != 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO privacy (username, group_invites) VALUES ($1, $2)
				ON CONFLICT (username) DO UPDATE SET group_invites = excluded.group_invites`, username, int16(invites)); err != nil {
				return fmt.Errorf("update privacy: %w", err)
			}
		}
		p, err = loadPrivacy(ctx, tx, username)
		if err != nil {
			return fmt.Errorf("update privacy: %w", err)
		}
		return nil
	})
	return p, err
}

func (s *Store) AddKeyPackages(ctx context.Context, deviceID string, kps []store.KeyPackage, lastResort *store.KeyPackage) (int, error) {
	for _, kp := range kps {
		if len(kp.Data) == 0 {
			return 0, fmt.Errorf("add key packages: empty key package: %w", store.ErrBadRequest)
		}
	}
	if lastResort != nil && len(lastResort.Data) == 0 {
		return 0, fmt.Errorf("add key packages: empty last-resort package: %w", store.ErrBadRequest)
	}
	var count int
	err := s.write(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = $1`, deviceID).Scan(&n); err != nil {
			return fmt.Errorf("add key packages: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("add key packages: %w", store.ErrUnknownDevice)
		}
		if len(kps) > 0 {
			rows := make([][]any, len(kps))
			for i, kp := range kps {
				rows[i] = []any{deviceID, int32(suiteOrOne(kp.Suite)), false, nonNil(kp.Ref), kp.Data}
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"key_packages"}, []string{"device_id", "suite", "last_resort", "ref", "data"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("add key packages: %w", err)
			}
		}
		if lastResort != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO key_packages (device_id, suite, last_resort, ref, data) VALUES ($1, $2, true, $3, $4)
				ON CONFLICT (device_id, suite) WHERE last_resort DO UPDATE SET ref = excluded.ref, data = excluded.data`,
				deviceID, int32(suiteOrOne(lastResort.Suite)), nonNil(lastResort.Ref), lastResort.Data); err != nil {
				return fmt.Errorf("add key packages: %w", err)
			}
		}
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = $1 AND NOT last_resort`, deviceID).Scan(&count)
	})
	return count, err
}

func (s *Store) CountKeyPackages(ctx context.Context, deviceID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = $1 AND NOT last_resort`, deviceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count key packages: %w", s.read(err))
	}
	return n, nil
}

func (s *Store) KeyPackageCounts(ctx context.Context, deviceID string) (map[uint16]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT suite, COUNT(*) FILTER (WHERE NOT last_resort) FROM key_packages WHERE device_id = $1 GROUP BY suite`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count key packages: %w", s.read(err))
	}
	defer rows.Close()
	out := map[uint16]int{}
	for rows.Next() {
		var suite int32
		var n int
		if err := rows.Scan(&suite, &n); err != nil {
			return nil, fmt.Errorf("count key packages: %w", err)
		}
		out[uint16(suite)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count key packages: %w", s.read(err))
	}
	return out, nil
}

func (s *Store) ConsumeKeyPackages(ctx context.Context, username string, devices []string, suite uint16) ([]store.DeviceKeyPackage, error) {
	suite = suiteOrOne(suite)
	var out []store.DeviceKeyPackage
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = nil
		all, err := devicesOf(ctx, tx, username)
		if err != nil {
			return fmt.Errorf("consume key packages: %w", err)
		}
		ids := make([]string, 0, len(all))
		for _, d := range all {
			ids = append(ids, d.ID)
		}
		if len(devices) > 0 {
			seen := make(map[string]bool, len(devices))
			for _, id := range devices {
				if seen[id] {
					return fmt.Errorf("consume key packages: device %q named twice: %w", id, store.ErrBadRequest)
				}
				seen[id] = true
				if !slices.Contains(ids, id) {
					return fmt.Errorf("consume key packages: device %q of %q: %w", id, username, store.ErrUnknownDevice)
				}
			}
			ids = devices
		}
		for _, id := range ids {
			dk := store.DeviceKeyPackage{DeviceID: id}
			var kpSuite int32
			// The oldest package not being taken by another node right now
			// (SKIP LOCKED: two fetches never get the same one) ...
			err := tx.QueryRow(ctx, `DELETE FROM key_packages WHERE id = (
					SELECT id FROM key_packages WHERE device_id = $1 AND suite = $2 AND NOT last_resort
					ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
				RETURNING ref, data, suite`, id, int32(suite)).Scan(&dk.KeyPackage.Ref, &dk.KeyPackage.Data, &kpSuite)
			if errors.Is(err, pgx.ErrNoRows) {
				// ... else the suite's last-resort one, which is kept.
				dk.LastResort = true
				err = tx.QueryRow(ctx, `SELECT ref, data, suite FROM key_packages WHERE device_id = $1 AND suite = $2 AND last_resort`,
					id, int32(suite)).Scan(&dk.KeyPackage.Ref, &dk.KeyPackage.Data, &kpSuite)
				if errors.Is(err, pgx.ErrNoRows) {
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("consume key packages: %w", err)
			}
			dk.KeyPackage.Suite = uint16(kpSuite)
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = $1 AND suite = $2 AND NOT last_resort`,
				id, int32(suite)).Scan(&dk.Remaining); err != nil {
				return fmt.Errorf("consume key packages: %w", err)
			}
			out = append(out, dk)
		}
		return nil
	})
	return out, err
}

func (s *Store) AccountCreated(ctx context.Context, username string) (time.Time, error) {
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT created FROM accounts WHERE username = $1`, username).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("account %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("account created: %w", s.read(err))
	}
	return fromMilli(created), nil
}

func (s *Store) SeenDevice(ctx context.Context, deviceID string, day time.Time) error {
	d := day.UTC().Truncate(24 * time.Hour).UnixMilli()
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE devices SET last_seen = $1 WHERE id = $2 AND last_seen < $1`, d, deviceID); err != nil {
			return fmt.Errorf("seen device: %w", err)
		}
		return nil
	})
}
