package client

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
)

// replenishKeyPackages uploads a batch of fresh key packages (and, if
// withLastResort, a new last-resort package) when the server holds fewer
// than threshold. The private halves are stored before the upload, so a
// package handed out by the server can always be used. Call with the
// profile lock held.
func (c *Client) replenishKeyPackages(ctx context.Context, remaining, threshold int, withLastResort bool) error {
	batch := c.opts.KeyPackageBatch
	if batch <= 0 {
		batch = 20
	}
	if remaining >= threshold && !withLastResort {
		return nil
	}
	conn := c.conn
	if conn == nil {
		return fmt.Errorf("client: not connected")
	}
	s, err := suite()
	if err != nil {
		return err
	}
	var kps []transport.KeyPackage
	var lastResort *transport.KeyPackage
	err = c.store.Update(func(tx *profile.Tx) error {
		n := batch
		if n < threshold-remaining {
			n = threshold - remaining
		}
		for i := 0; i <= n; i++ {
			lr := i == n
			if lr && !withLastResort {
				break
			}
			msg, bundle, err := mls.NewKeyPackage(s, c.credential(), c.acct.SignKey, &mls.KeyPackageOptions{LastResort: lr})
			if err != nil {
				return fmt.Errorf("make key package: %w", err)
			}
			ref := bundle.KeyPackage.Ref(s)
			b, err := bundle.MarshalBinary()
			if err != nil {
				return err
			}
			if err := tx.Put(bucketKeyPackages, hexID(ref), b); err != nil {
				return err
			}
			kp := transport.KeyPackage{Ref: ref, Data: msg}
			if lr {
				// The previous last-resort package is replaced on the
				// server; forget its private keys.
				if old, err := tx.Get(bucketLastResort, "ref"); err == nil {
					if err := tx.Delete(bucketKeyPackages, string(old)); err != nil {
						return err
					}
				}
				if err := tx.Put(bucketLastResort, "ref", []byte(hexID(ref))); err != nil {
					return err
				}
				lastResort = &kp
			} else {
				kps = append(kps, kp)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := conn.UploadKeyPackages(ctx, kps, lastResort); err != nil {
		return fmt.Errorf("upload key packages: %w", err)
	}
	return nil
}

// takeBundle finds the private bundle of one of refs (hex), deleting it
// unless it is the last-resort package.
func takeBundle(tx *profile.Tx, refs []string) (*mls.KeyPackageBundle, error) {
	lr, _ := tx.Get(bucketLastResort, "ref")
	for _, ref := range refs {
		b, err := tx.Get(bucketKeyPackages, ref)
		if err != nil {
			continue
		}
		bundle := new(mls.KeyPackageBundle)
		if err := bundle.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("key package bundle: %w", err)
		}
		if string(lr) != ref {
			if err := tx.Delete(bucketKeyPackages, ref); err != nil {
				return nil, err
			}
		}
		return bundle, nil
	}
	return nil, fmt.Errorf("client: the Welcome is for none of this device's key packages")
}
