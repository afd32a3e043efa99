package client

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// replenishKeyPackages replenishes every suite this device publishes key
// packages for, given the server's count per suite (Session): a suite the
// server holds nothing of also gets a last-resort package.
func (c *Client) replenishKeyPackages(ctx context.Context, counts map[uint16]int, threshold int, withLastResort bool) error {
	for _, id := range c.keyPackageSuites() {
		n, held := counts[uint16(id)]
		if err := c.replenishSuite(ctx, id, n, threshold, withLastResort || !held); err != nil {
			return err
		}
	}
	return nil
}

// lastResortKey is the key, in bucketLastResort, of the ref of a suite's
// last-resort package ("ref" for suite 1, as before there were others).
func lastResortKey(id ciphersuite.ID) string {
	if id == classicSuite {
		return "ref"
	}
	return fmt.Sprintf("ref-%04x", uint16(id))
}

// replenishSuite uploads a batch of fresh key packages of suite id (and,
// if withLastResort, a new last-resort package) when the server holds
// fewer than threshold. The private halves are stored before the upload,
// so a package handed out by the server can always be used. Call with the
// profile lock held.
func (c *Client) replenishSuite(ctx context.Context, id ciphersuite.ID, remaining, threshold int, withLastResort bool) error {
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
	s, err := ciphersuite.Lookup(id)
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
			msg, bundle, err := mls.NewKeyPackage(s, c.credential(), c.acct.SignKey, &mls.KeyPackageOptions{LastResort: lr, Capabilities: leafCapabilities(s)})
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
			kp := transport.KeyPackage{Ref: ref, Data: msg, Suite: uint16(id)}
			if lr {
				// The previous last-resort package of the suite is
				// replaced on the server; forget its private keys.
				if old, err := tx.Get(bucketLastResort, lastResortKey(id)); err == nil {
					if err := tx.Delete(bucketKeyPackages, string(old)); err != nil {
						return err
					}
				}
				if err := tx.Put(bucketLastResort, lastResortKey(id), []byte(hexID(ref))); err != nil {
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
		return fmt.Errorf("upload %s key packages: %w", suiteName(id), err)
	}
	return nil
}

// takeBundle finds the private bundle of one of refs (hex), deleting it
// unless it is a last-resort package.
func takeBundle(tx *profile.Tx, refs []string) (*mls.KeyPackageBundle, error) {
	lastResort := map[string]bool{}
	for _, id := range knownSuites {
		if lr, err := tx.Get(bucketLastResort, lastResortKey(id)); err == nil {
			lastResort[string(lr)] = true
		}
	}
	for _, ref := range refs {
		b, err := tx.Get(bucketKeyPackages, ref)
		if err != nil {
			continue
		}
		bundle := new(mls.KeyPackageBundle)
		if err := bundle.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("key package bundle: %w", err)
		}
		if !lastResort[ref] {
			if err := tx.Delete(bucketKeyPackages, ref); err != nil {
				return nil, err
			}
		}
		return bundle, nil
	}
	return nil, fmt.Errorf("client: the Welcome is for none of this device's key packages")
}
