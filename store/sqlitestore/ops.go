package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
)

func nowMilli() int64 { return time.Now().UnixMilli() }

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms) }

func (s *Store) CreateInvite(ctx context.Context, code string, expires time.Time) error {
	if code == "" {
		return fmt.Errorf("create invite: empty code: %w", store.ErrBadRequest)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invites WHERE code = ?`, code).Scan(&n); err != nil {
			return fmt.Errorf("create invite: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("create invite: %w", store.ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO invites (code, expires) VALUES (?, ?)`, code, expires.UnixMilli()); err != nil {
			return fmt.Errorf("create invite: %w", err)
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

func insertDevice(ctx context.Context, tx *sql.Tx, dev store.Device) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ? OR public_key = ?`, dev.ID, dev.PublicKey).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("device id or key in use: %w", store.ErrExists)
	}
	created := dev.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (id, username, public_key, created) VALUES (?, ?, ?, ?)`,
		dev.ID, dev.Username, dev.PublicKey, created.UnixMilli())
	return err
}

func (s *Store) CreateAccount(ctx context.Context, dev store.Device, invite string) error {
	if err := checkDevice(dev); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username = ?`, dev.Username).Scan(&n); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("create account %q: %w", dev.Username, store.ErrExists)
		}
		skeleton := wire.UsernameSkeleton(dev.Username)
		var like string
		err := tx.QueryRowContext(ctx, `SELECT username FROM accounts WHERE skeleton = ? LIMIT 1`, skeleton).Scan(&like)
		if err == nil {
			return fmt.Errorf("create account %q: it looks like %q: %w", dev.Username, like, store.ErrLookalike)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("create account: %w", err)
		}
		if invite != "" {
			res, err := tx.ExecContext(ctx, `DELETE FROM invites WHERE code = ? AND expires > ?`, invite, nowMilli())
			if err != nil {
				return fmt.Errorf("create account: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("create account: %w", store.ErrInvalidInvite)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (username, created, skeleton) VALUES (?, ?, ?)`, dev.Username, nowMilli(), skeleton); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		if err := insertDevice(ctx, tx, dev); err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		return nil
	})
}

const deviceCols = `id, username, public_key, created, last_seen`

func scanDevice(row interface{ Scan(...any) error }) (store.Device, error) {
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
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("device: %w", err)
	}
	return d, nil
}

// devicesByIDChunk bounds the ids of one query (SQLite allows 32 766
// parameters).
const devicesByIDChunk = 500

func (s *Store) DevicesByID(ctx context.Context, ids []string) (map[string]store.Device, error) {
	out := make(map[string]store.Device, len(ids))
	for chunk := range slices.Chunk(ids, devicesByIDChunk) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("devices by id: %w", err)
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("devices by id: %w", err)
			}
			out[d.ID] = d
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("devices by id: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("devices by id: %w", err)
		}
	}
	return out, nil
}

func (s *Store) DeviceByKey(ctx context.Context, key []byte) (store.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE public_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device by key: %w", store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("device by key: %w", err)
	}
	return d, nil
}

func (s *Store) Devices(ctx context.Context, username string) ([]store.Device, error) {
	return devicesOf(ctx, s.r, username)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func devicesOf(ctx context.Context, q querier, username string) ([]store.Device, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username = ?`, username).Scan(&n); err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("account %q: %w", username, store.ErrNotFound)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE username = ? ORDER BY created, id`, username)
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
	return out, rows.Err()
}

func (s *Store) RemoveDevice(ctx context.Context, id string) error {
	return s.writeMembership(ctx, func(tx *sql.Tx) error {
		convs, err := pendingConversations(ctx, tx, []string{id})
		if err != nil {
			return fmt.Errorf("remove device: %w", err)
		}
		// Cascades delete key packages, inbox, member rows, and its
		// pending changes and verdicts.
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("remove device: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("remove device %q: %w", id, store.ErrNotFound)
		}
		return settleAll(ctx, tx, s.log, convs)
	})
}

func (s *Store) DeleteAccount(ctx context.Context, username string) ([]string, error) {
	var ids []string
	err := s.writeMembership(ctx, func(tx *sql.Tx) error {
		ids = nil
		devs, err := devicesOf(ctx, tx, username)
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
		convs, err := pendingConversations(ctx, tx, ids)
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		// Cascades delete key packages, inbox, member rows, and their
		// pending changes and verdicts.
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE username = ?`, username); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		if err := settleAll(ctx, tx, s.log, convs); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE username = ?`, username); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		// Its own settings go; others' blocks of it stay (the name stays
		// taken, so a block keeps meaning the same person).
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE username = ?`, username); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM privacy WHERE username = ?`, username); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		// The account's signed list goes with its devices; the account key
		// stays bound to the name, which stays taken.
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET device_list = NULL WHERE username = ?`, username); err != nil {
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
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username = ?`, l.Username).Scan(&n); err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("create link: account %q: %w", l.Username, store.ErrNotFound)
		}
		// An expired link with the same code may be reused.
		if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE username = ? AND code = ? AND expires <= ?`, l.Username, l.Code, nowMilli()); err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM links WHERE username = ? AND code = ?`, l.Username, l.Code).Scan(&n); err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("create link: %w", store.ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO links (username, code, public_key, expires, mls_key, link_mac) VALUES (?, ?, ?, ?, ?, ?)`,
			l.Username, l.Code, l.PublicKey, l.Expires.UnixMilli(), l.MLSKey, l.MAC)
		if err != nil {
			return fmt.Errorf("create link: %w", err)
		}
		return nil
	})
}

func (s *Store) ApproveLink(ctx context.Context, username, code string, dev store.Device, confirmation []byte, now time.Time) (store.Device, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var key []byte
		err := tx.QueryRowContext(ctx, `DELETE FROM links WHERE username = ? AND code = ? AND expires > ? RETURNING public_key`,
			username, code, now.UnixMilli()).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
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
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET link_confirmation = ? WHERE id = ?`, confirmation, dev.ID); err != nil {
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, deviceID).Scan(&n); err != nil {
			return fmt.Errorf("add key packages: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("add key packages: %w", store.ErrUnknownDevice)
		}
		for _, kp := range kps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_packages (device_id, ref, data, last_resort, suite) VALUES (?, ?, ?, 0, ?)`,
				deviceID, nonNil(kp.Ref), kp.Data, suiteOrOne(kp.Suite)); err != nil {
				return fmt.Errorf("add key packages: %w", err)
			}
		}
		if lastResort != nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE device_id = ? AND last_resort = 1 AND suite = ?`,
				deviceID, suiteOrOne(lastResort.Suite)); err != nil {
				return fmt.Errorf("add key packages: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_packages (device_id, ref, data, last_resort, suite) VALUES (?, ?, ?, 1, ?)`,
				deviceID, nonNil(lastResort.Ref), lastResort.Data, suiteOrOne(lastResort.Suite)); err != nil {
				return fmt.Errorf("add key packages: %w", err)
			}
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = ? AND last_resort = 0`, deviceID).Scan(&count)
	})
	return count, err
}

// suiteOrOne reads a zero cipher suite as suite 1, the suite of every key
// package from before suites were declared.
func suiteOrOne(s uint16) uint16 {
	if s == 0 {
		return 1
	}
	return s
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (s *Store) CountKeyPackages(ctx context.Context, deviceID string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = ? AND last_resort = 0`, deviceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count key packages: %w", err)
	}
	return n, nil
}

func (s *Store) KeyPackageCounts(ctx context.Context, deviceID string) (map[uint16]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT suite, SUM(1 - last_resort) FROM key_packages WHERE device_id = ? GROUP BY suite`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count key packages: %w", err)
	}
	defer rows.Close()
	out := map[uint16]int{}
	for rows.Next() {
		var suite uint16
		var n int
		if err := rows.Scan(&suite, &n); err != nil {
			return nil, fmt.Errorf("count key packages: %w", err)
		}
		out[suite] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count key packages: %w", err)
	}
	return out, nil
}

func (s *Store) ConsumeKeyPackages(ctx context.Context, username string, devices []string, suite uint16) ([]store.DeviceKeyPackage, error) {
	suite = suiteOrOne(suite)
	var out []store.DeviceKeyPackage
	err := s.write(ctx, func(tx *sql.Tx) error {
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
			var (
				rowID int64
				kp    store.KeyPackage
				last  bool
			)
			err := tx.QueryRowContext(ctx, `SELECT id, ref, data, last_resort, suite FROM key_packages WHERE device_id = ? AND suite = ?
				ORDER BY last_resort, id LIMIT 1`, id, suite).Scan(&rowID, &kp.Ref, &kp.Data, &last, &kp.Suite)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("consume key packages: %w", err)
			}
			if !last {
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE id = ?`, rowID); err != nil {
					return fmt.Errorf("consume key packages: %w", err)
				}
			}
			dk := store.DeviceKeyPackage{DeviceID: id, KeyPackage: kp, LastResort: last}
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = ? AND suite = ? AND last_resort = 0`, id, suite).Scan(&dk.Remaining); err != nil {
				return fmt.Errorf("consume key packages: %w", err)
			}
			out = append(out, dk)
		}
		return nil
	})
	return out, err
}

func (s *Store) CreateConversation(ctx context.Context, id []byte, creator string) error {
	if err := store.CheckConversationID(id); err != nil {
		return fmt.Errorf("create conversation: %w", err)
	}
	return s.writeMembership(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, creator).Scan(&n); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("create conversation: creator: %w", store.ErrUnknownDevice)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversations WHERE id = ?`, id).Scan(&n); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("create conversation: %w", store.ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, epoch, head_seq, created) VALUES (?, 0, 0, ?)`, id, nowMilli()); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO members (conversation_id, device_id, cursor) VALUES (?, ?, 0)`, id, creator); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		return nil
	})
}

func loadConversation(ctx context.Context, q querier, id []byte) (store.Conversation, error) {
	c := store.Conversation{ID: id}
	err := q.QueryRowContext(ctx, `SELECT epoch, head_seq FROM conversations WHERE id = ?`, id).Scan(&c.Epoch, &c.HeadSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("conversation: %w", store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("conversation: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT device_id FROM members WHERE conversation_id = ? AND until_seq IS NULL ORDER BY device_id`, id)
	if err != nil {
		return c, fmt.Errorf("conversation: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return c, fmt.Errorf("conversation: %w", err)
		}
		c.Members = append(c.Members, d)
	}
	return c, rows.Err()
}

func (s *Store) Conversation(ctx context.Context, id []byte) (store.Conversation, error) {
	return loadConversation(ctx, s.r, id)
}

func (s *Store) Memberships(ctx context.Context, deviceID string) ([]store.Membership, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT conversation_id, cursor, until_seq FROM members WHERE device_id = ? ORDER BY conversation_id`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	var out []store.Membership
	for rows.Next() {
		var m store.Membership
		var until sql.NullInt64
		if err := rows.Scan(&m.ID, &m.Cursor, &until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("memberships: %w", err)
		}
		m.RemovedAt = uint64(until.Int64)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	for i := range out {
		c, err := loadConversation(ctx, s.r, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("memberships: %w", err)
		}
		out[i].Conversation = c
	}
	return out, nil
}

func (s *Store) Fetch(ctx context.Context, deviceID string, conv []byte, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("fetch: limit must be positive: %w", store.ErrBadRequest)
	}
	// The member's cursor and the rows in one read snapshot; the index
	// as published now. The index only holds committed rows, published
	// in seq order, so an entry whose row the snapshot does not show is
	// either deleted (trimmed, expired, disappeared: not delivered) or
	// newer than the snapshot, and those newer ones are the last entries
	// of the conversation: skipping them leaves no gap (logindex.go).
	// Entries the index does not show yet are the newest too.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	defer tx.Rollback()
	var cursor int64
	var until sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT cursor, until_seq FROM members WHERE conversation_id = ? AND device_id = ?`, conv, deviceID).Scan(&cursor, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("fetch: %w", store.ErrNotMember)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	maxSeq := uint64(1<<62 - 1)
	if until.Valid {
		maxSeq = uint64(until.Int64)
	}
	var out []store.Message
	for after := uint64(cursor); len(out) < limit; {
		entries := s.log.read(conv, after, maxSeq, limit-len(out))
		if len(entries) == 0 {
			break
		}
		found, err := readLogRows(ctx, tx, conv, entries)
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		for _, e := range entries {
			if m, ok := found[e.rowid]; ok && m.Seq == e.seq {
				out = append(out, m)
			} // else deleted after the index was read
		}
		after = entries[len(entries)-1].seq
	}
	return out, nil
}

// readLogRows reads conv's rows of entries, by rowid. Where the rows lie
// close together in the log (a backlog queued for an offline device) one
// range scan of the rowids reads them; scattered among other
// conversations' rows, each is looked up.
func readLogRows(ctx context.Context, tx *sql.Tx, conv []byte, entries []logRow) (map[int64]store.Message, error) {
	lo, hi := entries[0].rowid, entries[0].rowid
	for _, e := range entries {
		lo, hi = min(lo, e.rowid), max(hi, e.rowid)
	}
	found := make(map[int64]store.Message, len(entries))
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			m := store.Message{ConversationID: conv}
			var rowid, stored int64
			if err := rows.Scan(&rowid, &m.Seq, &m.ID, &m.Epoch, &m.Kind, &m.Sender, &m.Payload, &stored); err != nil {
				return err
			}
			m.Stored = fromMilli(stored)
			found[rowid] = m
		}
		return rows.Err()
	}
	const cols = `SELECT rowid, seq, id, epoch, kind, sender, payload, stored FROM messages`
	if hi-lo < 4*int64(len(entries)) {
		rows, err := tx.QueryContext(ctx, cols+` WHERE rowid BETWEEN ? AND ? AND conversation_id = ?`, lo, hi, conv)
		if err != nil {
			return nil, err
		}
		return found, scan(rows)
	}
	stmt, err := tx.PrepareContext(ctx, cols+` WHERE rowid = ? AND conversation_id = ?`)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, e := range entries {
		rows, err := stmt.QueryContext(ctx, e.rowid, conv)
		if err != nil {
			return nil, err
		}
		if err := scan(rows); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// Ack runs in the group commit with the appends: one Ack per delivered
// message used to cost a transaction and an fsync of its own.
func (s *Store) Ack(ctx context.Context, deviceID string, conv []byte, seq uint64) error {
	return s.batched(ctx, appendReq{ack: &ackReq{device: deviceID, conv: bytesClone(conv), seq: seq}})
}

// ackTx is Ack on the plain SQL path (see runInSavepoint).
func ackTx(ctx context.Context, tx txQuerier, log *logIndex, r *ackReq) error {
	var cursor, head uint64
	var until sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT m.cursor, m.until_seq, c.head_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.conversation_id = ? AND m.device_id = ?`, r.conv, r.device).Scan(&cursor, &until, &head)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("ack: %w", store.ErrNotMember)
	}
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if r.seq > head {
		return fmt.Errorf("ack: seq %d beyond head %d: %w", r.seq, head, store.ErrBadRequest)
	}
	if until.Valid && r.seq >= uint64(until.Int64) {
		// A removed device that caught up leaves for good.
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = ? AND device_id = ?`, r.conv, r.device); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	} else if r.seq > cursor {
		if _, err := tx.ExecContext(ctx, `UPDATE members SET cursor = ? WHERE conversation_id = ? AND device_id = ?`, r.seq, r.conv, r.device); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return trimLog(ctx, tx, log, r.conv)
}

// trimLog deletes the messages every member (including removed devices
// still catching up) has acknowledged.
func trimLog(ctx context.Context, tx txQuerier, log *logIndex, conv []byte) error {
	var low sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(cursor) FROM members WHERE conversation_id = ?`, conv).Scan(&low); err != nil {
		return fmt.Errorf("trim log: %w", err)
	}
	if !low.Valid {
		return nil // no members: the conversation's log stays for the retention
	}
	if err := trimLogged(ctx, tx, log, conv, uint64(low.Int64)); err != nil {
		return fmt.Errorf("trim log: %w", err)
	}
	return nil
}

func (s *Store) FetchInbox(ctx context.Context, deviceID string, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("fetch inbox: limit must be positive: %w", store.ErrBadRequest)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, conversation_id, epoch, kind, sender, payload, stored FROM inbox
		WHERE device_id = ? ORDER BY seq LIMIT ?`, deviceID, limit)
	if err != nil {
		return nil, fmt.Errorf("fetch inbox: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var m store.Message
		var stored int64
		if err := rows.Scan(&m.Seq, &m.ID, &m.ConversationID, &m.Epoch, &m.Kind, &m.Sender, &m.Payload, &stored); err != nil {
			return nil, fmt.Errorf("fetch inbox: %w", err)
		}
		m.Stored = fromMilli(stored)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Store) AckInbox(ctx context.Context, deviceID string, seq uint64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var head uint64
		err := tx.QueryRowContext(ctx, `SELECT inbox_head FROM devices WHERE id = ?`, deviceID).Scan(&head)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ack inbox: %w", store.ErrUnknownDevice)
		}
		if err != nil {
			return fmt.Errorf("ack inbox: %w", err)
		}
		if seq > head {
			return fmt.Errorf("ack inbox: seq %d beyond head %d: %w", seq, head, store.ErrBadRequest)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE device_id = ? AND seq <= ?`, deviceID, seq); err != nil {
			return fmt.Errorf("ack inbox: %w", err)
		}
		return nil
	})
}

func (s *Store) DeleteExpired(ctx context.Context, before, now time.Time) (int, error) {
	var total int
	err := s.writeMembership(ctx, func(tx *sql.Tx) error {
		b, n := before.UnixMilli(), now.UnixMilli()
		expired, err := expireLogged(ctx, tx, s.log, b)
		if err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		total = expired
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM message_ids WHERE stored < ?`, b},
			{`DELETE FROM epoch_commits WHERE stored < ?`, b},
			{`DELETE FROM inbox WHERE stored < ?`, b},
			{`DELETE FROM links WHERE expires <= ?`, n},
			{`DELETE FROM invites WHERE expires <= ?`, n},
		} {
			res, err := tx.ExecContext(ctx, q.sql, q.arg)
			if err != nil {
				return fmt.Errorf("delete expired: %w", err)
			}
			k, _ := res.RowsAffected()
			total += int(k)
		}
		// A change no one gave a verdict on within the retention stays as
		// it is: the removed device a member, the added one too.
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_changes WHERE stored < ?`, b); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_voters WHERE NOT EXISTS (SELECT 1 FROM pending_changes p
			WHERE p.conversation_id = pending_voters.conversation_id AND p.seq = pending_voters.seq)`); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		// Removed devices with nothing left to read are gone for good.
		if err := dropCaughtUp(ctx, tx, s.log); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		return nil
	})
	return total, err
}

var _ = bytes.Equal
