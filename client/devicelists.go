package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/wire"
)

// No ghosts (docs/transparency.md). Every account signs its own device
// list with an account key that only its primary device (the one that ran
// "parley init") holds. This client trusts a device of anyone's account,
// its own included, only if that account's list, signed by the account
// key this client pinned the first time it saw the account, names the
// device with its MLS signature key. So a device row the server adds, or
// a key package it swaps, reaches nobody's conversations.

// Errors callers branch on.
var (
	// ErrAccountKeyChanged: the server hands out a device list signed by
	// another account key than the one pinned for the user.
	ErrAccountKeyChanged = errors.New("client: the account key changed")
	// ErrListRollback: the server hands out an older device list than one
	// this client has already seen.
	ErrListRollback = errors.New("client: the server served an older device list")
	// ErrUnlistedDevice: a device is not in its account's signed list.
	ErrUnlistedDevice = errors.New("client: a device is not in its account's signed device list")
	// ErrLinkTampered: the new device's keys do not match the link code.
	ErrLinkTampered = errors.New("client: the keys the server relayed for the new device do not match its link code")
	// ErrOutsider: a commit or proposal from outside the group.
	ErrOutsider = errors.New("client: MLS message from outside the group")
	// ErrNotPrimary: only the primary device can change the device list.
	ErrNotPrimary = errors.New("client: only this account's primary device (the one that ran parley init) can add or remove devices")
)

// bucketPins holds, per user, the pinned account key and the highest
// list version seen.
const bucketPins = "pins"

type pin struct {
	AccountKey []byte    `json:"account_key"`
	Version    uint64    `json:"version"`
	Pinned     time.Time `json:"pinned"`
	// Devices are the devices (id → MLS signature key) of the last list
	// verified: they stay trusted, and only they, if the account is
	// deleted and the server has no list any more.
	Devices map[string][]byte `json:"devices,omitempty"`
	// Verified, if set, is the hash of the account key and devices the
	// user had when the user verified them (Verify): while the account's
	// devices differ from it, nothing is sent to them.
	Verified []byte `json:"verified,omitempty"`
	// Epoch is the key transparency epoch at which the list was last
	// verified in the directory.
	Epoch uint64 `json:"epoch,omitempty"`
}

// deviceSetHash summarises an account key and its devices.
func (p pin) deviceSetHash() []byte {
	h := sha256.New()
	h.Write(p.AccountKey)
	ids := make([]string, 0, len(p.Devices))
	for id := range p.Devices {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(h, "\x00%s\x00%x", id, p.Devices[id])
	}
	return h.Sum(nil)
}

// mlsPublicKey is this device's MLS signature public key (suite 1 signs
// with Ed25519).
func (a *account) mlsPublicKey() []byte {
	return ed25519.NewKeyFromSeed(a.SignKey).Public().(ed25519.PublicKey)
}

// isPrimary reports whether this device holds the account key.
func (a *account) isPrimary() bool { return len(a.AccountKey) == ed25519.SeedSize }

// verifiedList fetches user's signed device list and checks it: signed by
// the account key pinned for user (pinning it the first time), and not
// older than the newest seen. The own account's key is pinned at init
// (primary) or by the approving device's link confirmation.
func (c *Client) verifiedList(ctx context.Context, conn *transport.Conn, user string) (devicelist.List, error) {
	s, res, err := c.ktLookup(ctx, conn, user)
	if err == nil && s == nil {
		// The directory proves the account has no list: a deleted
		// account (or one from before signed lists). Its devices from the
		// last list verified stay trusted (the server delivers nothing to
		// a deleted account's devices any more); no other device can come
		// in.
		var p pin
		if perr := c.store.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketPins, user, &p) }); perr == nil && len(p.Devices) > 0 {
			l := devicelist.List{Username: user, AccountKey: p.AccountKey, Version: p.Version}
			for id, k := range p.Devices {
				l.Devices = append(l.Devices, devicelist.Device{ID: id, MLSKey: k})
			}
			return l, nil
		}
		return devicelist.List{}, fmt.Errorf("%w: %s has no signed device list in this server's key transparency directory (the account was deleted, has not published one yet, or does not exist)", ErrUnlistedDevice, user)
	}
	if err != nil {
		return devicelist.List{}, err
	}
	l, err := devicelist.Verify(s)
	if err != nil {
		return devicelist.List{}, fmt.Errorf("device list of %s from the server: %w", user, err)
	}
	if l.Username != user {
		return devicelist.List{}, fmt.Errorf("%w: the server answered %s's device list with %s's", devicelist.ErrMalformed, user, l.Username)
	}
	err = c.store.Update(func(tx *profile.Tx) error {
		var p pin
		err := tx.GetJSON(bucketPins, user, &p)
		switch {
		case errors.Is(err, profile.ErrNotFound):
			if user == c.acct.User {
				return fmt.Errorf("client: this device has no pinned account key for its own account")
			}
			p = pin{AccountKey: l.AccountKey, Pinned: c.opts.now().UTC()}
		case err != nil:
			return err
		case !bytes.Equal(p.AccountKey, l.AccountKey):
			return fmt.Errorf("%w: %s's devices are now signed by account key %s, not %s: the server may be adding devices to %s's account (or %s started over); compare safety numbers with %s before trusting it",
				ErrAccountKeyChanged, user, fingerprint(l.AccountKey), fingerprint(p.AccountKey), user, user, user)
		case l.Version < p.Version:
			return fmt.Errorf("%w: %s's list version %d after version %d", ErrListRollback, user, l.Version, p.Version)
		}
		p.Version, p.Epoch = l.Version, res.Entry.Epoch
		p.Devices = make(map[string][]byte, len(l.Devices))
		for _, d := range l.Devices {
			p.Devices[d.ID] = d.MLSKey
		}
		return tx.PutJSON(bucketPins, user, p)
	})
	return l, err
}

// fingerprint is a short form of an account key for messages.
func fingerprint(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:6])
}

// pinOwn pins this account's own key.
func (c *Client) pinOwn(tx *profile.Tx, key []byte) error {
	return tx.PutJSON(bucketPins, c.acct.User, pin{AccountKey: key, Pinned: c.opts.now().UTC()})
}

// publishList signs and publishes the account's next device list, made
// by edit from the current one (nil for the first). Primary only.
func (c *Client) publishList(ctx context.Context, conn *transport.Conn, first bool, edit func(*devicelist.List)) (devicelist.List, error) {
	if !c.acct.isPrimary() {
		return devicelist.List{}, ErrNotPrimary
	}
	priv := ed25519.NewKeyFromSeed(c.acct.AccountKey)
	var l devicelist.List
	if first {
		l = devicelist.List{Username: c.acct.User, AccountKey: priv.Public().(ed25519.PublicKey)}
	} else {
		var err error
		if l, err = c.verifiedList(ctx, conn, c.acct.User); err != nil {
			return l, err
		}
	}
	edit(&l)
	l.Version++
	l.Signed = c.opts.now().UTC()
	s, err := devicelist.Sign(l, priv)
	if err != nil {
		return l, err
	}
	if err := conn.PublishDeviceList(ctx, s); err != nil {
		return l, err
	}
	if err := c.store.Update(func(tx *profile.Tx) error {
		var p pin
		if err := tx.GetJSON(bucketPins, c.acct.User, &p); err != nil && !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		p.AccountKey, p.Pinned = l.AccountKey, c.opts.now().UTC()
		return tx.PutJSON(bucketPins, c.acct.User, p)
	}); err != nil {
		return l, err
	}
	// What this device does next (add the new device to conversations,
	// publish again) must see the list, and others see it only once it is
	// in the directory.
	return l, c.waitForDirectory(ctx, conn, l.Version)
}

// checkListed makes sure the device (user, id) with MLS signature key k
// is in user's signed list.
func checkListed(l devicelist.List, id string, k []byte) error {
	if !l.HasMLSKey(id, k) {
		return fmt.Errorf("%w: %s/%s (MLS key %s) is not in %s's list (version %d): the server may be adding a device to %s's account",
			ErrUnlistedDevice, l.Username, id, fingerprint(k), l.Username, l.Version, l.Username)
	}
	return nil
}

// checkRoster verifies every member of g against its account's signed
// list before this device sends to the group: a member the server slipped
// in (by a forged key package, a ghost device or a commit nobody's client
// would make) gets nothing. Rosters already verified are remembered by
// hash, so a send costs a list fetch only after the membership changed.
func (c *Client) checkRoster(ctx context.Context, conn *transport.Conn, r *convRecord, g *mls.Group) error {
	type leaf struct {
		s   Sender
		key []byte
	}
	var leaves []leaf
	h := sha256.New()
	for _, m := range g.Members() {
		s, err := memberIdentity(m)
		if err != nil {
			return fmt.Errorf("%w: a member of %s has no Parley identity", ErrUnlistedDevice, r.label())
		}
		leaves = append(leaves, leaf{s, m.SignatureKey})
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return strings.Compare(a.s.User+"/"+a.s.Device, b.s.User+"/"+b.s.Device) })
	for _, l := range leaves {
		fmt.Fprintf(h, "%s/%s=%x;", l.s.User, l.s.Device, l.key)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	var known string
	if err := c.store.Update(func(tx *profile.Tx) error {
		b, err := tx.Get(bucketRosters, hexID(r.ID))
		if err == nil {
			known = string(b)
		}
		return nil
	}); err != nil {
		return err
	}
	if known == sum {
		return nil
	}
	lists := map[string]devicelist.List{}
	for _, l := range leaves {
		list, ok := lists[l.s.User]
		if !ok {
			var err error
			if list, err = c.verifiedList(ctx, conn, l.s.User); err != nil {
				return fmt.Errorf("%s: %w", r.label(), err)
			}
			lists[l.s.User] = list
		}
		if err := checkListed(list, l.s.Device, l.key); err != nil {
			return fmt.Errorf("%s: not sending: %w", r.label(), err)
		}
	}
	return c.store.Update(func(tx *profile.Tx) error { return tx.Put(bucketRosters, hexID(r.ID), []byte(sum)) })
}

// bucketRosters remembers, per conversation, the hash of the last roster
// checkRoster verified.
const bucketRosters = "rosters"

// End-to-end linking. The code the new device shows is the server's
// 8-digit code, then a secret the server never sees. The new device MACs
// its keys with the secret; the approving device checks the MAC on what
// the server relays, and MACs the account key back, so that each side
// knows it talks to the other and not to the server.

const linkSecretLen = 10 // 80 bits, 16 base32 characters

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// linkCode joins the server's code and the secret for display.
func linkCode(serverCode string, secret []byte) string {
	s := linkEncoding.EncodeToString(secret)
	var parts []string
	for len(s) > 4 {
		parts, s = append(parts, s[:4]), s[4:]
	}
	return serverCode + "-" + strings.Join(append(parts, s), "-")
}

// splitLinkCode parses a code typed on the approving device.
func splitLinkCode(code string) (serverCode string, secret []byte, err error) {
	code = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), " ", ""))
	serverCode, rest, ok := strings.Cut(code, "-")
	if !ok || len(serverCode) != wire.LinkCodeDigits {
		return "", nil, fmt.Errorf("client: a link code is %d digits and a secret, as the new device shows it (12345678-ABCD-...)", wire.LinkCodeDigits)
	}
	secret, err = linkEncoding.DecodeString(strings.ReplaceAll(rest, "-", ""))
	if err != nil || len(secret) != linkSecretLen {
		return "", nil, errors.New("client: the secret part of the link code is mistyped: copy it as the new device shows it")
	}
	return serverCode, secret, nil
}

// linkMAC binds the new device's keys to the link secret.
func linkMAC(secret []byte, user string, authKey, mlsKey []byte) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "parley link request v1\x00%s\x00", user)
	m.Write(authKey)
	m.Write(mlsKey)
	return m.Sum(nil)
}

// linkConfirmation is what the approving device hands the new one: the
// account key, MACed with the link secret together with the new device's
// key.
func linkConfirmation(secret []byte, user string, accountKey, newAuthKey []byte) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "parley link confirmation v1\x00%s\x00", user)
	m.Write(accountKey)
	m.Write(newAuthKey)
	return append(bytes.Clone(accountKey), m.Sum(nil)...)
}

// openLinkConfirmation checks a confirmation and returns the account key.
func openLinkConfirmation(secret []byte, user string, newAuthKey, conf []byte) ([]byte, error) {
	if len(conf) != ed25519.PublicKeySize+sha256.Size {
		return nil, fmt.Errorf("%w: no valid confirmation from the approving device", ErrLinkTampered)
	}
	key := conf[:ed25519.PublicKeySize]
	if !hmac.Equal(linkConfirmation(secret, user, key, newAuthKey), conf) {
		return nil, fmt.Errorf("%w: the approval's confirmation does not match the link code", ErrLinkTampered)
	}
	return key, nil
}

// ErrVerifiedChanged: a contact the user verified has other devices now.
var ErrVerifiedChanged = errors.New("client: a verified contact's devices changed")

// Verified describes a contact after Verify.
type Verified struct {
	User     string `json:"user"`
	Verified bool   `json:"verified"`
	Devices  int    `json:"devices"`
	Version  uint64 `json:"list_version"`
}

// Verify marks user as verified (or, with clear, no longer verified): the
// user has compared safety numbers with them and found them equal. Until
// the contact's account key or devices change, nothing changes; after,
// this client sends them nothing until the user compares again and runs
// Verify once more. Call it right after comparing: it verifies what the
// server shows now.
func (c *Client) Verify(ctx context.Context, user string, clear bool) (Verified, error) {
	user = strings.TrimPrefix(user, "@")
	if user == c.acct.User {
		return Verified{}, errors.New("client: verify your contacts, not yourself")
	}
	var out Verified
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		l, err := c.verifiedList(ctx, conn, user)
		if errors.Is(err, ErrAccountKeyChanged) && !clear {
			// The user compared safety numbers after the account key
			// changed (a lost primary device, or a new account): take
			// the new key, as the directory serves it.
			l, err = c.acceptAccountKey(ctx, conn, user)
		}
		if err != nil {
			return err
		}
		return c.store.Update(func(tx *profile.Tx) error {
			var p pin
			if err := tx.GetJSON(bucketPins, user, &p); err != nil {
				return err
			}
			p.Verified = nil
			if !clear {
				p.Verified = p.deviceSetHash()
			}
			out = Verified{User: user, Verified: !clear, Devices: len(l.Devices), Version: l.Version}
			return tx.PutJSON(bucketPins, user, p)
		})
	})
	return out, err
}

// checkVerified refuses to send to a group with a verified contact whose
// devices changed since they were verified.
func (c *Client) checkVerified(g *mls.Group) error {
	users := map[string]bool{}
	for _, m := range g.Members() {
		if s, err := memberIdentity(m); err == nil && s.User != c.acct.User {
			users[s.User] = true
		}
	}
	return c.store.Update(func(tx *profile.Tx) error {
		for u := range users {
			var p pin
			err := tx.GetJSON(bucketPins, u, &p)
			if errors.Is(err, profile.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if len(p.Verified) > 0 && !hmac.Equal(p.Verified, p.deviceSetHash()) {
				return fmt.Errorf("%w: %s's devices changed since you verified %s: compare safety numbers again (parley safety-number @%s), then parley verify @%s",
					ErrVerifiedChanged, u, u, u, u)
			}
		}
		return nil
	})
}

// ErrNotInSignedList: this device is not in its own account's signed
// device list (a profile from before signed lists, whose account another
// device signed first).
var ErrNotInSignedList = errors.New("client: this device is not in its account's signed device list")

// upgradeToSignedList brings a profile made before signed device lists
// (no account key, no pinned own key) into them. If the account has no
// list yet, this device becomes its primary: it makes the account key and
// signs a list of itself alone (other devices of the account are not
// trusted on the server's word; link them again). If another device
// already signed one, this device is not in it and says so. Profiles made
// since (init, or linked) return at once.
func (c *Client) upgradeToSignedList(ctx context.Context, conn *transport.Conn) error {
	if c.acct.isPrimary() {
		return nil
	}
	pinned := false
	if err := c.store.Update(func(tx *profile.Tx) error {
		var p pin
		err := tx.GetJSON(bucketPins, c.acct.User, &p)
		pinned = err == nil
		if errors.Is(err, profile.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil || pinned {
		return err
	}
	s, _, err := c.ktLookup(ctx, conn, c.acct.User)
	if err != nil {
		return err
	}
	if s != nil {
		return fmt.Errorf("%w: another device of %s signs its device list now; link this device again from that one (parley devices link, then parley devices add there)", ErrNotInSignedList, c.acct.User)
	}
	c.acct.AccountKey = randomBytes(ed25519.SeedSize)
	if err := c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketAccount, keySelf, c.acct) }); err != nil {
		return err
	}
	_, err = c.publishList(ctx, conn, true, func(l *devicelist.List) {
		l.Devices = []devicelist.Device{{ID: c.acct.DeviceID, AuthKey: c.acct.deviceKey().Public().(ed25519.PublicKey),
			MLSKey: c.acct.mlsPublicKey(), Added: c.opts.now().UTC()}}
	})
	if err != nil {
		return fmt.Errorf("sign this account's first device list: %w", err)
	}
	c.warn(nil, nil, fmt.Errorf("this profile predates signed device lists: this device now holds %s's account key and signed a list of itself; link your other devices again", c.acct.User))
	return nil
}

// acceptAccountKey pins user's new account key and devices from the
// directory's list, after the user compared safety numbers (Verify).
func (c *Client) acceptAccountKey(ctx context.Context, conn *transport.Conn, user string) (devicelist.List, error) {
	s, res, err := c.ktLookup(ctx, conn, user)
	if err != nil {
		return devicelist.List{}, err
	}
	if s == nil {
		return devicelist.List{}, fmt.Errorf("%w: %s has no device list in the directory", ErrUnlistedDevice, user)
	}
	l, err := devicelist.Verify(s)
	if err != nil {
		return devicelist.List{}, fmt.Errorf("device list of %s: %w", user, err)
	}
	if l.Username != user {
		return devicelist.List{}, fmt.Errorf("%w: the directory answered %s's device list with %s's", devicelist.ErrMalformed, user, l.Username)
	}
	p := pin{AccountKey: l.AccountKey, Version: l.Version, Pinned: c.opts.now().UTC(), Epoch: res.Entry.Epoch, Devices: map[string][]byte{}}
	for _, d := range l.Devices {
		p.Devices[d.ID] = d.MLSKey
	}
	return l, c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketPins, user, p) })
}
