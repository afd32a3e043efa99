package client

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/client/profile"
)

// bucketSettings holds this profile's settings: name → "on" or "off".
const bucketSettings = "settings"

// Setting names (parley settings NAME on|off).
const (
	SettingReadReceipts    = "receipts"
	SettingMessageRequests = "requests"
	SettingTyping          = "typing"
)

// Settings are this account's settings (`parley settings`). Each device
// keeps them in its profile, and a change made on one device reaches the
// account's other devices (ownsync.go); export and import carry them.
type Settings struct {
	// ReadReceipts (default on): send read receipts. When off, this
	// device sends delivery receipts instead, and shows others' read
	// receipts as deliveries only (as Signal does: no one sees reads
	// while hiding their own).
	ReadReceipts bool `json:"read_receipts"`
	// MessageRequests (default on, as in Signal and WhatsApp): a direct
	// conversation started by someone the user never talked to waits in
	// "parley requests" until accepted (requests.go). Turning them off
	// shows the pending ones too (the next Sync reports them), except
	// blocked people's.
	MessageRequests bool `json:"message_requests"`
	// Typing (default on): send typing indicators (typing.go). Others'
	// indicators are shown either way.
	Typing bool `json:"typing"`
}

var settingDefaults = map[string]bool{SettingReadReceipts: true, SettingMessageRequests: true, SettingTyping: true}

// settingOn reads a setting in a transaction.
func settingOn(tx *profile.Tx, name string) bool {
	v, err := tx.Get(bucketSettings, name)
	if err != nil {
		if name == SettingTyping {
			// The row of versions before "parley settings typing".
			if off, err := tx.Has(bucketSettings, settingNoTyping); err == nil && off {
				return false
			}
		}
		return settingDefaults[name]
	}
	return string(v) == "on"
}

// migrateTyping moves the typing setting of older versions (a
// "no-typing" row meaning off) to the "typing" setting.
func migrateTyping(tx *profile.Tx) error {
	off, err := tx.Has(bucketSettings, settingNoTyping)
	if err != nil || !off {
		return err
	}
	if ok, err := tx.Has(bucketSettings, SettingTyping); err != nil {
		return err
	} else if !ok {
		if err := tx.Put(bucketSettings, SettingTyping, []byte("off")); err != nil {
			return err
		}
	}
	return tx.Delete(bucketSettings, settingNoTyping)
}

func readReceiptsOn(tx *profile.Tx) bool { return settingOn(tx, SettingReadReceipts) }

func requestsOn(tx *profile.Tx) bool { return settingOn(tx, SettingMessageRequests) }

func loadSettings(tx *profile.Tx) Settings {
	return Settings{ReadReceipts: readReceiptsOn(tx), MessageRequests: requestsOn(tx), Typing: settingOn(tx, SettingTyping)}
}

// Settings returns this account's settings as this device has them.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var s Settings
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			if err := migrateTyping(tx); err != nil {
				return err
			}
			s = loadSettings(tx)
			return nil
		})
	})
	return s, err
}

// SetSetting turns setting name (SettingReadReceipts,
// SettingMessageRequests, SettingTyping) on or off, sends the change to
// this account's other devices, and returns the settings.
func (c *Client) SetSetting(ctx context.Context, name string, on bool) (Settings, error) {
	if _, ok := settingDefaults[name]; !ok {
		return Settings{}, fmt.Errorf("client: no setting %q (receipts, requests, typing)", name)
	}
	v := "off"
	if on {
		v = "on"
	}
	var s Settings
	err := c.withLock(ctx, func() error {
		err := c.store.Update(func(tx *profile.Tx) error {
			if err := migrateTyping(tx); err != nil {
				return err
			}
			if err := tx.Put(bucketSettings, name, []byte(v)); err != nil {
				return err
			}
			if name == SettingMessageRequests && !on {
				if err := releaseRequests(tx); err != nil {
					return err
				}
			}
			if err := c.putOwn(tx, ownSetting+name, []byte(v), false); err != nil {
				return err
			}
			s = loadSettings(tx)
			return nil
		})
		if err == nil {
			c.shareOwnNow(ctx)
		}
		return err
	})
	return s, err
}
