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
)

// Settings are this profile's own settings (`parley settings`). They are
// kept in the profile, per device, and carried by export and import.
type Settings struct {
	// ReadReceipts (default on): send read receipts. When off, this
	// device sends delivery receipts instead, and shows others' read
	// receipts as deliveries only (as Signal does: no one sees reads
	// while hiding their own).
	ReadReceipts bool `json:"read_receipts"`
	// MessageRequests (default off): a direct conversation started by
	// someone the user never talked to waits in "parley requests" until
	// accepted (requests.go).
	MessageRequests bool `json:"message_requests"`
}

var settingDefaults = map[string]bool{SettingReadReceipts: true, SettingMessageRequests: false}

// settingOn reads a setting in a transaction.
func settingOn(tx *profile.Tx, name string) bool {
	v, err := tx.Get(bucketSettings, name)
	if err != nil {
		return settingDefaults[name]
	}
	return string(v) == "on"
}

func readReceiptsOn(tx *profile.Tx) bool { return settingOn(tx, SettingReadReceipts) }

func requestsOn(tx *profile.Tx) bool { return settingOn(tx, SettingMessageRequests) }

func loadSettings(tx *profile.Tx) Settings {
	return Settings{ReadReceipts: readReceiptsOn(tx), MessageRequests: requestsOn(tx)}
}

// Settings returns this profile's settings.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var s Settings
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error { s = loadSettings(tx); return nil })
	})
	return s, err
}

// SetSetting turns setting name (SettingReadReceipts,
// SettingMessageRequests) on or off and returns the settings.
func (c *Client) SetSetting(ctx context.Context, name string, on bool) (Settings, error) {
	if _, ok := settingDefaults[name]; !ok {
		return Settings{}, fmt.Errorf("client: no setting %q (receipts, requests)", name)
	}
	v := "off"
	if on {
		v = "on"
	}
	var s Settings
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			if err := tx.Put(bucketSettings, name, []byte(v)); err != nil {
				return err
			}
			s = loadSettings(tx)
			return nil
		})
	})
	return s, err
}
