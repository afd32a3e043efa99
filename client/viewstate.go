package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/client/profile"
)

// A front end's own view state (the web page's unread counts): small
// values it wants back after a restart, kept in this device's profile and
// so sealed like everything else in it, never in the browser's storage in
// the clear. Local to this device: not sent to the account's other
// devices and not exported (it describes what this screen showed, not
// the account).

// bucketViewState: name → the front end's value.
const bucketViewState = "view-state"

// MaxViewState bounds one view-state value.
const MaxViewState = 64 << 10

// ErrViewStateTooLarge means a view-state value is over MaxViewState.
var ErrViewStateTooLarge = fmt.Errorf("client: view state is limited to %d bytes", MaxViewState)

// ViewState returns the value stored under name, or nil if there is none.
func (c *Client) ViewState(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("client: name the view state")
	}
	var v []byte
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			b, err := tx.Get(bucketViewState, name)
			if errors.Is(err, profile.ErrNotFound) {
				return nil
			}
			v = b
			return err
		})
	})
	return v, err
}

// SetViewState stores value under name (nil or empty deletes it).
func (c *Client) SetViewState(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errors.New("client: name the view state")
	}
	if len(value) > MaxViewState {
		return ErrViewStateTooLarge
	}
	return c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			if len(value) == 0 {
				return tx.Delete(bucketViewState, name)
			}
			return tx.Put(bucketViewState, name, value)
		})
	})
}
