package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/safety"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/wire"
)

// LinkDevice makes opts.Dir a new device of username's account. It
// creates the profile, asks the server for a link code and calls onCode
// with it; the user enters the code on an existing device (ApproveDevice).
// LinkDevice then waits for the approval (until the code expires or ctx
// ends), uploads key packages and returns. The existing device adds the
// new one to every conversation; later Syncs see messages from then on.
func LinkDevice(ctx context.Context, opts Options, serverURL, username string, onCode func(code string, expires time.Time)) (*Client, error) {
	if err := wire.CheckUsername(username); err != nil {
		return nil, err
	}
	st, err := profile.Create(opts.Dir, opts.Passphrase, opts.kdf())
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, store: st}
	if err := c.link(ctx, serverURL, username, onCode); err != nil {
		c.Close()
		removeProfile(opts.Dir)
		return nil, err
	}
	return c, nil
}

func (c *Client) link(ctx context.Context, serverURL, username string, onCode func(string, time.Time)) error {
	acct := &account{Server: serverURL, User: username, Created: c.opts.now().UTC(),
		DeviceKey: randomBytes(ed25519.SeedSize), SignKey: randomBytes(ed25519.SeedSize)}
	conn, err := transport.Dial(ctx, serverURL, &transport.Options{HTTPClient: c.opts.HTTPClient})
	if err != nil {
		return err
	}
	// The secret half of the code never goes to the server; it MACs this
	// device's keys for the approving device (end-to-end linking).
	secret := randomBytes(linkSecretLen)
	authPub := acct.deviceKey().Public().(ed25519.PublicKey)
	code, expires, err := conn.RequestLinkE2E(ctx, username, acct.deviceKey(), acct.mlsPublicKey(), linkMAC(secret, username, authPub, acct.mlsPublicKey()))
	if err != nil {
		conn.Close()
		return err
	}
	if err := c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketAccount, keySelf, acct) }); err != nil {
		conn.Close()
		return err
	}
	onCode(linkCode(code, secret), expires)
	// Wait for the server's link_approved push (polling as a fallback):
	// Authenticate succeeds once the device exists. The server closes
	// connections that stay unauthenticated for long, so redial as needed.
	var sess *transport.Session
	for {
		if conn.Err() != nil {
			conn.Close()
			nc, err := transport.Dial(ctx, serverURL, &transport.Options{HTTPClient: c.opts.HTTPClient})
			if err != nil {
				if time.Now().After(expires) {
					return ErrLinkExpired
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
			conn = nc
		}
		sess, err = conn.AuthenticateAs(ctx, acct.deviceKey(), acct.User)
		if err == nil {
			break
		}
		if !errors.Is(err, wire.ErrUnauthenticated) && !errors.Is(err, wire.ErrNotFound) &&
			!errors.Is(err, wire.ErrRateLimited) && !errors.Is(err, transport.ErrClosed) {
			conn.Close()
			return err
		}
		if time.Now().After(expires) {
			conn.Close()
			return ErrLinkExpired
		}
		if err := waitLinkApproved(ctx, conn, 2*time.Second); err != nil {
			conn.Close()
			return err
		}
	}
	// The approving device's confirmation carries the account key,
	// MACed with the link secret: the server cannot hand this device a
	// key of its own making.
	accountKey, err := openLinkConfirmation(secret, username, authPub, sess.LinkConfirmation)
	if err != nil {
		conn.Close()
		return err
	}
	acct.DeviceID = sess.DeviceID
	acct.Linked = true
	if err := c.store.Update(func(tx *profile.Tx) error {
		if err := tx.PutJSON(bucketAccount, keySelf, acct); err != nil {
			return err
		}
		c.acct = acct
		return c.pinOwn(tx, accountKey)
	}); err != nil {
		conn.Close()
		return err
	}
	c.conn = conn
	return c.withLock(ctx, func() error {
		// The approving device publishes the list naming this device
		// right after approving; wait for it, checked like any list.
		for {
			l, err := c.verifiedList(ctx, conn, username)
			if err != nil && !errors.Is(err, ErrUnlistedDevice) {
				return err
			}
			if err == nil && checkListed(l, acct.DeviceID, acct.mlsPublicKey()) == nil {
				break
			}
			if time.Now().After(expires) {
				return fmt.Errorf("the approving device did not add this device to the account's signed device list: %w", ErrUnlistedDevice)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		return c.replenishKeyPackages(ctx, sess.KeyPackageCounts, sess.KeyPackageLowThreshold, true)
	})
}

// waitLinkApproved waits up to d for the link_approved push.
func waitLinkApproved(ctx context.Context, conn *transport.Conn, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case <-conn.Done():
			return nil // the caller redials
		case ev, ok := <-conn.Events():
			if !ok || ev.Type == transport.EventLinkApproved {
				return nil
			}
		}
	}
}

// Device is a device of this account.
type Device struct {
	ID      string    `json:"id"`
	Current bool      `json:"current"`
	Created time.Time `json:"created"`
	// Key is the device's Ed25519 identity key, hex.
	Key string `json:"key"`
	// Signed reports whether the account's signed device list names the
	// device with this key. A device the server lists that the account
	// did not sign is a ghost: nobody's client sends to it.
	Signed bool `json:"signed"`
}

// Devices lists this account's devices.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var out []Device
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		devs, err := conn.ListDevices(ctx)
		if err != nil {
			return err
		}
		own, err := c.verifiedList(ctx, conn, c.acct.User)
		if err != nil {
			return err
		}
		for _, d := range devs {
			ld, ok := own.Device(d.ID)
			out = append(out, Device{ID: d.ID, Current: d.ID == c.acct.DeviceID, Created: d.Created.UTC(), Key: hexID(d.PublicKey),
				Signed: ok && bytes.Equal(ld.AuthKey, d.PublicKey)})
		}
		return nil
	})
	return out, err
}

// ApproveDevice approves the link code shown on a new device, waits for
// the new device to publish key packages, and adds it to every
// conversation of this device. It returns the new device and how many
// conversations it was added to. Only the primary device can approve: it
// checks the new device's keys against the code's secret, signs the
// account's new device list and confirms the account key to the new
// device.
func (c *Client) ApproveDevice(ctx context.Context, code string, wait time.Duration) (Device, int, error) {
	dev, err := c.approveLink(ctx, code)
	if err != nil {
		return Device{}, 0, err
	}
	out := Device{ID: dev.ID, Created: dev.Created.UTC(), Key: hexID(dev.PublicKey)}
	n, err := c.addOwnDevice(ctx, dev.ID, wait)
	return out, n, err
}

// approveLink is ApproveDevice up to the signed list naming the new
// device, before it is added to any conversation.
func (c *Client) approveLink(ctx context.Context, code string) (transport.Device, error) {
	serverCode, secret, err := splitLinkCode(code)
	if err != nil {
		return transport.Device{}, err
	}
	if !c.acct.isPrimary() {
		return transport.Device{}, ErrNotPrimary
	}
	var dev transport.Device
	err = c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		pl, err := conn.InspectLink(ctx, serverCode)
		if err != nil {
			return err
		}
		if len(pl.PublicKey) != ed25519.PublicKeySize || !hmac.Equal(linkMAC(secret, c.acct.User, pl.PublicKey, pl.MLSKey), pl.MAC) {
			return fmt.Errorf("%w: nothing was approved; do not trust this server with new devices", ErrLinkTampered)
		}
		accountKey := ed25519.NewKeyFromSeed(c.acct.AccountKey).Public().(ed25519.PublicKey)
		dev, err = conn.ApproveLinkE2E(ctx, serverCode, pl.PublicKey, linkConfirmation(secret, c.acct.User, accountKey, pl.PublicKey))
		if err != nil {
			return err
		}
		if !bytes.Equal(dev.PublicKey, pl.PublicKey) {
			return fmt.Errorf("%w: the server created the device with another key", ErrLinkTampered)
		}
		_, err = c.publishList(ctx, conn, false, func(l *devicelist.List) {
			l.Devices = append(l.Devices, devicelist.Device{ID: dev.ID, AuthKey: pl.PublicKey, MLSKey: pl.MLSKey, Added: c.opts.now().UTC()})
		})
		return err
	})
	return dev, err
}

// addOwnDevice adds a new device of this account to every conversation,
// waiting up to wait for its key packages.
func (c *Client) addOwnDevice(ctx context.Context, deviceID string, wait time.Duration) (int, error) {
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	deadline := time.Now().Add(wait)
	added := 0
	for {
		var pending int
		err := c.withLock(ctx, func() error {
			conn, err := c.connection(ctx)
			if err != nil {
				return err
			}
			if err := c.syncAll(ctx, conn); err != nil {
				return err
			}
			// The own-devices conversation (ownsync.go) is made now if
			// the account has none; the loop adds the new device to it
			// like to every conversation, and the state follows.
			if err := c.ensureOwnConv(ctx, conn); err != nil {
				return fmt.Errorf("the conversation of this account's own devices: %w", err)
			}
			defer c.shareOwnState(ctx, conn, false)
			var convs []*convRecord
			if err := c.store.Update(func(tx *profile.Tx) (err error) { convs, err = listConvs(tx); return err }); err != nil {
				return err
			}
			for _, r := range convs {
				if r.Removed || r.Request {
					// A message request gets the device once accepted (at
					// a sync): a commit now would tell its sender that
					// the user is active.
					continue
				}
				var present bool
				var suite ciphersuite.ID
				if err := c.store.Update(func(tx *profile.Tx) error {
					g, err := loadGroup(tx, r.ID)
					if err != nil {
						return err
					}
					_, present = groupDevices(g)[Sender{User: c.acct.User, Device: deviceID}]
					suite = g.Suite().ID()
					return nil
				}); err != nil {
					return err
				}
				if present {
					continue
				}
				kps, err := retryRateLimited(ctx, func() ([]transport.DeviceKeyPackage, error) {
					return conn.FetchKeyPackagesOf(ctx, uint16(suite), c.acct.User, deviceID)
				})
				if err != nil {
					return err
				}
				if len(kps) == 0 {
					pending++
					continue
				}
				own, err := c.verifiedList(ctx, conn, c.acct.User)
				if err != nil {
					return err
				}
				if err := c.checkKeyPackage(kps[0], c.acct.User, own, suite); err != nil {
					return err
				}
				pre := map[string][]transport.DeviceKeyPackage{c.acct.User: kps}
				if err := c.addUsers(ctx, r, nil, false, pre); err != nil {
					return fmt.Errorf("add the new device to %s: %w", r.label(), err)
				}
				if r.Kind != ConvSelf {
					added++ // the user's conversations: the devices' own one is not shown
				}
			}
			return nil
		})
		if err != nil || pending == 0 {
			return added, err
		}
		if time.Now().After(deadline) {
			return added, fmt.Errorf("client: the new device did not publish key packages within %v; it will be added when this device next runs parley devices add again", wait)
		}
		select {
		case <-ctx.Done():
			return added, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// RemoveDevice removes another device of this account from the account
// and then from every conversation, so it cannot read anything sent
// afterwards. It returns the number of conversations it was removed from.
func (c *Client) RemoveDevice(ctx context.Context, deviceID string) (int, error) {
	if deviceID == c.acct.DeviceID {
		return 0, errors.New("client: remove this device from another one")
	}
	if !c.acct.isPrimary() {
		return 0, ErrNotPrimary
	}
	removed := 0
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		devs, err := conn.ListDevices(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, d := range devs {
			found = found || d.ID == deviceID
		}
		if !found {
			return fmt.Errorf("%w: no device %s", wire.ErrNotFound, deviceID)
		}
		// Out of the signed list first: from then on no client trusts it.
		if _, err := c.publishList(ctx, conn, false, func(l *devicelist.List) {
			l.Devices = slices.DeleteFunc(l.Devices, func(d devicelist.Device) bool { return d.ID == deviceID })
		}); err != nil {
			return fmt.Errorf("sign the device list without %s: %w", deviceID, err)
		}
		// Off the server first: the device is disconnected and can fetch
		// nothing more, and no other device of ours re-adds it while its
		// removal commits are being made.
		if err := conn.RemoveDevice(ctx, deviceID); err != nil {
			return err
		}
		convs, err := c.currentConversations(ctx, conn)
		if err != nil {
			return err
		}
		target := Sender{User: c.acct.User, Device: deviceID}
		for _, r := range convs {
			before := removed
			err := c.removeDevices(ctx, r, func(s Sender) bool {
				if s == target {
					if r.Kind == ConvSelf {
						return true // removed, not counted: not one of the user's conversations
					}
					removed = before + 1
					return true
				}
				return false
			}, nil)
			if err != nil {
				return fmt.Errorf("remove the device from %s: %w", r.label(), err)
			}
		}
		return nil
	})
	return removed, err
}

// ResetAccountKey recovers from a lost primary device: this device makes
// a new account key, becomes the primary, signs a list of itself alone
// and removes the account's other devices from the server and from every
// conversation (link them again afterwards). It is loud on purpose:
// every contact sees "account key changed" and sends nothing until they
// compare safety numbers and run parley verify again, and any other
// device of the account (the lost one too, if someone has it) raises a
// security alert. It returns the devices removed.
func (c *Client) ResetAccountKey(ctx context.Context) ([]string, error) {
	if c.acct.isPrimary() {
		return nil, errors.New("client: this device is the primary and holds the account key: there is nothing to recover (remove a lost secondary device with parley devices remove)")
	}
	var removed []string
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		// The history so far is checked under the old key first: after
		// the reset, this device checks only what follows.
		if err := c.monitorOwn(ctx, conn, true); err != nil {
			return fmt.Errorf("this account's history in the directory: %w", err)
		}
		cur, err := c.verifiedList(ctx, conn, c.acct.User)
		if err != nil {
			return fmt.Errorf("this account's current device list: %w", err)
		}
		seed := randomBytes(ed25519.SeedSize)
		priv := ed25519.NewKeyFromSeed(seed)
		l := devicelist.List{Username: c.acct.User, AccountKey: priv.Public().(ed25519.PublicKey), Version: cur.Version + 1, Signed: c.opts.now().UTC(),
			Devices: []devicelist.Device{{ID: c.acct.DeviceID, AuthKey: c.acct.deviceKey().Public().(ed25519.PublicKey), MLSKey: c.acct.mlsPublicKey(), Added: c.opts.now().UTC()}}}
		s, err := devicelist.Sign(l, priv)
		if err != nil {
			return err
		}
		if err := conn.ResetAccountKey(ctx, s); err != nil {
			return err
		}
		c.acct.AccountKey = seed
		if err := c.store.Update(func(tx *profile.Tx) error {
			if err := tx.PutJSON(bucketAccount, keySelf, c.acct); err != nil {
				return err
			}
			// The new key is this account's from now on; the history in
			// the directory starts over at the next check.
			if err := tx.PutJSON(bucketPins, c.acct.User, pin{AccountKey: l.AccountKey, Pinned: c.opts.now().UTC()}); err != nil {
				return err
			}
			return tx.Delete(bucketKT, "own")
		}); err != nil {
			return err
		}
		if err := c.waitForDirectory(ctx, conn, l.Version); err != nil {
			return err
		}
		if err := c.restartOwnHistory(ctx, conn, l.Version); err != nil {
			return err
		}
		for _, d := range cur.Devices {
			if d.ID == c.acct.DeviceID {
				continue
			}
			if err := conn.RemoveDevice(ctx, d.ID); err != nil && !errors.Is(err, wire.ErrNotFound) {
				return fmt.Errorf("remove device %s from the server: %w", d.ID, err)
			}
			removed = append(removed, d.ID)
		}
		convs, err := c.currentConversations(ctx, conn)
		if err != nil {
			return err
		}
		for _, r := range convs {
			if err := c.removeDevices(ctx, r, func(s Sender) bool {
				return s.User == c.acct.User && s.Device != c.acct.DeviceID
			}, nil); err != nil {
				return fmt.Errorf("remove the old devices from %s: %w", r.label(), err)
			}
		}
		return nil
	})
	return removed, err
}

// ErrConfirmUsername is returned by DeleteAccount when the confirmation
// is not the account's own username.
var ErrConfirmUsername = errors.New("client: to delete the account, confirm with its username")

// DeleteAccount deletes this account on the server: every device, with
// its keys, inbox and conversation cursors. confirm must be the account's
// username. The name stays taken so no one can pass for the deleted user.
// Other members' clients still hold the account's devices in their MLS
// groups until they commit their removal, but the server no longer
// delivers anything to them. The local profile is left as it is (its
// history is the user's): delete it yourself.
func (c *Client) DeleteAccount(ctx context.Context, confirm string) error {
	if confirm != c.acct.User {
		return fmt.Errorf("%w (%s)", ErrConfirmUsername, c.acct.User)
	}
	return c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		return conn.DeleteAccount(ctx, confirm)
	})
}

// SafetyNumber returns the safety number of this account and user, from
// the signature keys of every device of both in their direct conversation
// (created if needed). Both sides compute the same number.
func (c *Client) SafetyNumber(ctx context.Context, user string) (string, error) {
	var number string
	err := c.withLock(ctx, func() error {
		_, r, err := c.prepare(ctx, "@"+user)
		if err != nil {
			return err
		}
		return c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			number, err = safetyNumber(g, c.acct.User, r.Peer)
			return err
		})
	})
	return number, err
}

func safetyNumber(g *mls.Group, a, b string) (string, error) {
	pa, pb := safety.Party{User: a}, safety.Party{User: b}
	for _, m := range g.Members() {
		s, err := memberIdentity(m)
		if err != nil {
			return "", err
		}
		switch s.User {
		case a:
			pa.Keys = append(pa.Keys, m.SignatureKey)
		case b:
			pb.Keys = append(pb.Keys, m.SignatureKey)
		}
	}
	return safety.Number(pa, pb)
}

// currentConversations catches up and returns the conversations this
// device is still in. Call with the lock held.
func (c *Client) currentConversations(ctx context.Context, conn *transport.Conn) ([]*convRecord, error) {
	if err := c.syncAll(ctx, conn); err != nil {
		return nil, err
	}
	var convs []*convRecord
	if err := c.store.Update(func(tx *profile.Tx) (err error) { convs, err = listConvs(tx); return err }); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(convs, func(r *convRecord) bool { return r.Removed }), nil
}
