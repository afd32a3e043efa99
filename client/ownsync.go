package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/wire"
)

// Own-device sync (docs/protocol.md, "Own-device sync"). The choices a
// user makes on one device (settings, mutes, message-request decisions,
// invite codes and denied join requests) hold on all of the account's
// devices. Each device keeps them as entries key → value, each stamped
// with a hybrid logical clock (milliseconds, bumped past every stamp
// seen) and the device that wrote it; the newest stamp wins, the device
// id breaking ties, so every device ends with the same state whatever
// order the updates arrive in. A removal is an entry too (a tombstone),
// so an older value cannot come back.
//
// Devices exchange the whole state, end to end, in the account's
// own-devices conversation: an MLS group of this account's devices
// alone (kind ConvSelf, ids of ownConvIDSize bytes), created by the
// primary device when it links the second one and given to every device
// linked later like any conversation. Whoever adds a device sends the
// state right after, so a newly linked device starts with it. A device
// accepts this content only in that conversation, only while every
// member is one of its own account's devices, and only from those: no
// one else can change a user's settings.
//
// Blocks are not here: the server keeps the block list (it must, to
// refuse a blocked person's invitations) and every device fetches it at
// each sync (privacy.go).

// ConvSelf is the kind of the own-devices conversation. It is never
// listed and takes no user messages.
const ConvSelf = "self"

const (
	// ownConvIDSize is the length of own-devices conversation ids:
	// neither a group's (groupIDSize) nor a direct conversation's.
	ownConvIDSize = 24
	typeOwnSync   = "application/vnd.parley.own-sync+cbor"
	kindOwnSync   = "own_sync"
	// bucketOwnSync: key → ownEntry (JSON); bucketOwnMeta holds the clock
	// and whether the state changed since it was last sent.
	bucketOwnSync = "own-sync"
	bucketOwnMeta = "own-sync-meta"
	ownVersion    = 1
)

// Limits on a received state: a device has a few settings, and at most
// this many mutes, decisions and invites are kept.
const (
	maxOwnEntries  = 4096
	maxOwnKey      = 128
	maxOwnValue    = 1024
	maxOwnDeviceID = 128
)

// ErrBadOwnSync means an own-device sync content is malformed.
var ErrBadOwnSync = errors.New("client: malformed own-device sync content")

// ownEntry is one synced key's newest value.
type ownEntry struct {
	_       struct{} `cbor:",toarray"`
	Key     string   `json:"k"`
	Value   []byte   `json:"v,omitempty"`
	Deleted bool     `json:"del,omitempty"`
	Stamp   uint64   `json:"t"`
	Device  string   `json:"d"`
}

// newer reports whether e wins over old.
func (e *ownEntry) newer(old *ownEntry) bool {
	return e.Stamp > old.Stamp || e.Stamp == old.Stamp && e.Device > old.Device
}

// ownState is the content of a sync message: CBOR
// [version, [[key, value, deleted, stamp, device], ...]].
type ownState struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	Entries []ownEntry
}

var ownDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxArrayElements: maxOwnEntries,
		MaxNestedLevels:  4,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

var ownEncMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// encodeOwnState encodes a state (entries sorted by key).
func encodeOwnState(entries []ownEntry) ([]byte, error) {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b ownEntry) int { return strings.Compare(a.Key, b.Key) })
	return ownEncMode.Marshal(ownState{Version: ownVersion, Entries: entries})
}

// decodeOwnState decodes and checks a received state strictly: known
// keys only, each value of its key's form, no key twice. Pure.
func decodeOwnState(b []byte) ([]ownEntry, error) {
	var st ownState
	if err := ownDecMode.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOwnSync, err)
	}
	if st.Version != ownVersion {
		return nil, fmt.Errorf("%w: version %d (update Parley on this device)", ErrBadOwnSync, st.Version)
	}
	seen := map[string]bool{}
	for i := range st.Entries {
		e := &st.Entries[i]
		if seen[e.Key] {
			return nil, fmt.Errorf("%w: key %q twice", ErrBadOwnSync, e.Key)
		}
		seen[e.Key] = true
		if err := checkOwnEntry(e); err != nil {
			return nil, err
		}
	}
	return st.Entries, nil
}

// Synced keys: "setting/NAME", "mute/HEXCONV", "request/USER",
// "invite/HEXHANDLE", "join/HEXCONV/USER".
const (
	ownSetting = "setting/"
	ownMute    = "mute/"
	ownRequest = "request/"
	ownInvite  = "invite/"
	ownJoin    = "join/"
)

// Message-request decisions and join-request decisions.
const (
	decisionAccepted = "accepted"
	decisionDeleted  = "deleted"
	decisionDenied   = "denied"
)

func isHexID(s string, minLen, maxLen int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) >= minLen && len(b) <= maxLen && hex.EncodeToString(b) == s
}

// checkOwnEntry checks one entry's key, stamp, device and value.
func checkOwnEntry(e *ownEntry) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrBadOwnSync, e.Key, why) }
	if len(e.Key) > maxOwnKey || !utf8.ValidString(e.Key) {
		return bad("key too long")
	}
	if e.Stamp == 0 || e.Device == "" || len(e.Device) > maxOwnDeviceID || !utf8.ValidString(e.Device) {
		return bad("no stamp or device")
	}
	if len(e.Value) > maxOwnValue {
		return bad("value too long")
	}
	if e.Deleted && len(e.Value) != 0 {
		return bad("a removal with a value")
	}
	switch {
	case strings.HasPrefix(e.Key, ownSetting):
		if _, ok := settingDefaults[e.Key[len(ownSetting):]]; !ok {
			return bad("unknown setting")
		}
		if !e.Deleted && string(e.Value) != "on" && string(e.Value) != "off" {
			return bad("a setting is on or off")
		}
	case strings.HasPrefix(e.Key, ownMute):
		if !isHexID(e.Key[len(ownMute):], 1, wire.MaxConversationID) {
			return bad("bad conversation id")
		}
		if !e.Deleted {
			var m Mute
			if err := strictJSON(e.Value, &m); err != nil || (!m.Forever && m.Until.IsZero()) || (m.Forever && !m.Until.IsZero()) {
				return bad("bad mute")
			}
		}
	case strings.HasPrefix(e.Key, ownRequest):
		if wire.CheckUsername(e.Key[len(ownRequest):]) != nil {
			return bad("bad username")
		}
		if !e.Deleted && string(e.Value) != decisionAccepted && string(e.Value) != decisionDeleted {
			return bad("a request is accepted or deleted")
		}
	case strings.HasPrefix(e.Key, ownInvite):
		if !isHexID(e.Key[len(ownInvite):], inviteHandleSz, inviteHandleSz) {
			return bad("bad invite handle")
		}
		if !e.Deleted {
			var inv inviteRecord
			if err := strictJSON(e.Value, &inv); err != nil || len(inv.Conv) == 0 || len(inv.Conv) > wire.MaxConversationID ||
				len(inv.Secret) != inviteSecretSz || inv.Expires.IsZero() {
				return bad("bad invite")
			}
		}
	case strings.HasPrefix(e.Key, ownJoin):
		conv, user, ok := strings.Cut(e.Key[len(ownJoin):], "/")
		if !ok || !isHexID(conv, 1, wire.MaxConversationID) || wire.CheckUsername(user) != nil {
			return bad("bad join request key")
		}
		if !e.Deleted && string(e.Value) != decisionDenied {
			return bad("a join request decision is denied")
		}
	default:
		return bad("unknown key")
	}
	return nil
}

// strictJSON decodes JSON refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// ownClock returns the next stamp: now in milliseconds, or one past the
// newest stamp this device has seen if that is later (a device whose
// clock is behind still writes newer entries than what it saw).
func (c *Client) ownClock(tx *profile.Tx) (uint64, error) {
	var last uint64
	if v, err := tx.Get(bucketOwnMeta, "clock"); err == nil {
		last, _ = strconv.ParseUint(string(v), 10, 64)
	}
	t := uint64(max(c.opts.now().UnixMilli(), 1))
	if t <= last {
		t = last + 1
	}
	return t, tx.Put(bucketOwnMeta, "clock", []byte(strconv.FormatUint(t, 10)))
}

// seeOwnStamp moves the clock past a received stamp.
func seeOwnStamp(tx *profile.Tx, t uint64) error {
	var last uint64
	if v, err := tx.Get(bucketOwnMeta, "clock"); err == nil {
		last, _ = strconv.ParseUint(string(v), 10, 64)
	}
	if t <= last {
		return nil
	}
	return tx.Put(bucketOwnMeta, "clock", []byte(strconv.FormatUint(t, 10)))
}

// putOwn records a change the user made on this device, to be sent to
// the other devices. The caller applies it locally.
func (c *Client) putOwn(tx *profile.Tx, key string, value []byte, deleted bool) error {
	t, err := c.ownClock(tx)
	if err != nil {
		return err
	}
	e := ownEntry{Key: key, Value: value, Deleted: deleted, Stamp: t, Device: c.acct.DeviceID}
	if err := tx.PutJSON(bucketOwnSync, key, &e); err != nil {
		return err
	}
	return tx.Put(bucketOwnMeta, "dirty", []byte{1})
}

func getOwn(tx *profile.Tx, key string) (*ownEntry, error) {
	var e ownEntry
	if err := tx.GetJSON(bucketOwnSync, key, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ownEntries returns this device's synced state, first recording (at
// the oldest stamp) the choices made before devices synced them, so a
// device linked now gets them too.
func (c *Client) ownEntries(tx *profile.Tx) ([]ownEntry, error) {
	if ok, err := tx.Has(bucketOwnMeta, "migrated"); err != nil {
		return nil, err
	} else if !ok {
		old := func(key string, value []byte) error {
			if ok, err := tx.Has(bucketOwnSync, key); err != nil || ok {
				return err
			}
			return tx.PutJSON(bucketOwnSync, key, &ownEntry{Key: key, Value: value, Stamp: 1, Device: c.acct.DeviceID})
		}
		if err := migrateTyping(tx); err != nil {
			return nil, err
		}
		for name := range settingDefaults {
			if v, err := tx.Get(bucketSettings, name); err == nil {
				if err := old(ownSetting+name, v); err != nil {
					return nil, err
				}
			}
		}
		for _, b := range []struct{ bucket, prefix string }{{bucketMute, ownMute}, {bucketInvites, ownInvite}} {
			items, err := tx.List(b.bucket)
			if err != nil {
				return nil, err
			}
			for _, it := range items {
				if err := old(b.prefix+it.Key, it.Value); err != nil {
					return nil, err
				}
			}
		}
		if err := tx.Put(bucketOwnMeta, "migrated", []byte{1}); err != nil {
			return nil, err
		}
	}
	items, err := tx.List(bucketOwnSync)
	if err != nil {
		return nil, err
	}
	out := make([]ownEntry, 0, len(items))
	for _, it := range items {
		var e ownEntry
		if err := jsonUnmarshal(it.Value, &e); err != nil {
			return nil, err
		}
		if checkOwnEntry(&e) != nil {
			continue // e.g. a mute stored by an older version in another form: not sent
		}
		out = append(out, e)
	}
	if len(out) > maxOwnEntries {
		// Oldest first out: the newest choices matter.
		slices.SortFunc(out, func(a, b ownEntry) int { return -cmp.Compare(a.Stamp, b.Stamp) })
		out = out[:maxOwnEntries]
	}
	return out, nil
}

// mergeOwn applies a received state: every entry newer than this
// device's is kept and applied. It returns how many were.
func (c *Client) mergeOwn(tx *profile.Tx, entries []ownEntry) (int, error) {
	n := 0
	for i := range entries {
		e := &entries[i]
		old, err := getOwn(tx, e.Key)
		if err != nil && !errors.Is(err, profile.ErrNotFound) {
			return n, err
		}
		if old != nil && !e.newer(old) {
			continue
		}
		if err := seeOwnStamp(tx, e.Stamp); err != nil {
			return n, err
		}
		if err := tx.PutJSON(bucketOwnSync, e.Key, e); err != nil {
			return n, err
		}
		if err := c.applyOwn(tx, e); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// applyOwn makes an entry another device sent take effect here.
func (c *Client) applyOwn(tx *profile.Tx, e *ownEntry) error {
	switch {
	case strings.HasPrefix(e.Key, ownSetting):
		name := e.Key[len(ownSetting):]
		if e.Deleted {
			return tx.Delete(bucketSettings, name)
		}
		if name == SettingTyping {
			if err := tx.Delete(bucketSettings, settingNoTyping); err != nil {
				return err
			}
		}
		if name == SettingMessageRequests && string(e.Value) == "off" {
			if err := releaseRequests(tx); err != nil {
				return err
			}
		}
		return tx.Put(bucketSettings, name, e.Value)
	case strings.HasPrefix(e.Key, ownMute):
		if e.Deleted {
			return tx.Delete(bucketMute, e.Key[len(ownMute):])
		}
		return tx.Put(bucketMute, e.Key[len(ownMute):], e.Value)
	case strings.HasPrefix(e.Key, ownInvite):
		if e.Deleted {
			return tx.Delete(bucketInvites, e.Key[len(ownInvite):])
		}
		return tx.Put(bucketInvites, e.Key[len(ownInvite):], e.Value)
	case strings.HasPrefix(e.Key, ownJoin):
		if e.Deleted {
			return nil
		}
		return tx.Delete(bucketJoinRequests, e.Key[len(ownJoin):])
	case strings.HasPrefix(e.Key, ownRequest):
		user := e.Key[len(ownRequest):]
		if e.Deleted {
			return nil
		}
		r, err := getConv(tx, directID(c.acct.User, user))
		if errors.Is(err, profile.ErrNotFound) {
			return nil // isRequest reads the decision when it arrives
		}
		if err != nil || !r.Request || r.Removed {
			return err
		}
		if string(e.Value) == decisionAccepted {
			r.Request = false
			return putConv(tx, r)
		}
		_, err = deleteRequestHistory(tx, r, e.Stamp)
		return err
	}
	return nil
}

// acceptedElsewhere reports whether another device of the user accepted
// user's message request.
func acceptedElsewhere(tx *profile.Tx, user string) bool {
	e, err := getOwn(tx, ownRequest+user)
	return err == nil && !e.Deleted && string(e.Value) == decisionAccepted
}

// deniedAfter reports whether a device of the user denied user's
// request to join conv after at.
func deniedAfter(tx *profile.Tx, conv []byte, user string, at time.Time) bool {
	e, err := getOwn(tx, ownJoin+hexID(conv)+"/"+user)
	return err == nil && !e.Deleted && e.Stamp >= uint64(max(at.UnixMilli(), 0))
}

// ownConv returns the own-devices conversation, or nil.
func ownConv(tx *profile.Tx) (*convRecord, error) {
	convs, err := listConvs(tx)
	if err != nil {
		return nil, err
	}
	var best *convRecord
	for _, r := range convs {
		if r.Kind == ConvSelf && !r.Removed && (best == nil || r.Created.After(best.Created)) {
			best = r
		}
	}
	return best, nil
}

// isOwnConv reports whether id is the own-devices conversation.
func (c *Client) isOwnConv(id []byte) bool {
	var r *convRecord
	err := c.store.Update(func(tx *profile.Tx) (err error) { r, err = getConv(tx, id); return err })
	return err == nil && r.Kind == ConvSelf
}

// onlyOwnDevices makes sure every member of g is a device of self.
func onlyOwnDevices(members map[Sender]uint32, self string) error {
	for s := range members {
		if s.User != self {
			return fmt.Errorf("%w: %s is in this account's own-devices conversation", ErrOutsider, s.User)
		}
	}
	return nil
}

// ensureOwnConv creates the own-devices conversation if this account
// has none and this device is the primary (the one that links devices),
// with every device of the account in it. Call with the lock held.
func (c *Client) ensureOwnConv(ctx context.Context, conn *transport.Conn) error {
	var r *convRecord
	if err := c.store.Update(func(tx *profile.Tx) (err error) { r, err = ownConv(tx); return err }); err != nil || r != nil {
		return err
	}
	if !c.acct.isPrimary() {
		return nil // the primary creates it and adds this device
	}
	suite, pre, notPQ, err := c.prefetchNew(ctx, conn, nil)
	if err != nil {
		return err
	}
	id := randomBytes(ownConvIDSize)
	if err := conn.CreateConversation(ctx, id); err != nil {
		return err
	}
	r = &convRecord{ID: id, Kind: ConvSelf, Created: c.opts.now().UTC()}
	if err := c.newGroup(r, suite, notPQ); err != nil {
		return err
	}
	if len(pre[c.acct.User]) == 0 {
		return nil // the others are added as they publish key packages
	}
	return c.addUsers(ctx, r, nil, true, pre)
}

// shareOwnState sends this device's synced state to its other devices
// if it changed since it was last sent. Call with the lock held;
// failures warn, and the next sync tries again.
func (c *Client) shareOwnState(ctx context.Context, conn *transport.Conn, force bool) {
	var r *convRecord
	var body []byte
	var members string
	err := c.store.Update(func(tx *profile.Tx) error {
		dirty, err := tx.Has(bucketOwnMeta, "dirty")
		if err != nil {
			return err
		}
		if r, err = ownConv(tx); err != nil || r == nil {
			return err
		}
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		devs := groupDevices(g)
		if len(devs) < 2 {
			r = nil // no other device yet
			return nil
		}
		// A device added since the state was last sent gets it now.
		var names []string
		for s := range devs {
			names = append(names, s.Device)
		}
		slices.Sort(names)
		members = strings.Join(names, ",")
		if last, _ := tx.Get(bucketOwnMeta, "members"); !dirty && !force && string(last) == members {
			r = nil
			return nil
		}
		entries, err := c.ownEntries(tx)
		if err != nil {
			return err
		}
		body, err = encodeOwnState(entries)
		return err
	})
	if err != nil || r == nil {
		if err != nil {
			c.warn(nil, nil, fmt.Errorf("share settings with this account's other devices: %w", err))
		}
		return
	}
	part := content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeOwnSync, Content: body}
	if _, err := c.sendContent(ctx, conn, r, newContent(part), false); err != nil {
		c.warn(r, nil, fmt.Errorf("share settings with this account's other devices: %w", err))
		return
	}
	if err := c.store.Update(func(tx *profile.Tx) error {
		if err := tx.Put(bucketOwnMeta, "members", []byte(members)); err != nil {
			return err
		}
		return tx.Delete(bucketOwnMeta, "dirty")
	}); err != nil {
		c.warn(nil, nil, err)
	}
}

// shareOwnNow connects and sends the state after a change the user made.
// Call with the lock held.
func (c *Client) shareOwnNow(ctx context.Context) {
	conn, err := c.connection(ctx)
	if err != nil {
		return // sent at the next sync
	}
	c.shareOwnState(ctx, conn, false)
}

// acceptOwnSync applies an own-device sync content received in r from
// ev's sender. Anything but this account's other devices in its
// own-devices conversation is refused with a warning, changing nothing.
func (c *Client) acceptOwnSync(tx *profile.Tx, r *convRecord, members map[Sender]uint32, ev *event, entries []ownEntry) error {
	if !c.testNoOwnCheck {
		if r.Kind != ConvSelf || ev.Sender.User != c.acct.User {
			c.warn(r, nil, fmt.Errorf("%w: own-device sync from %s in %s; ignored", ErrOutsider, ev.Sender.User, r.label()))
			return nil
		}
		if err := onlyOwnDevices(members, c.acct.User); err != nil {
			c.warn(r, nil, fmt.Errorf("own-device sync ignored: %w", err))
			return nil
		}
	}
	if ev.Outgoing {
		return nil
	}
	_, err := c.mergeOwn(tx, entries)
	return err
}
