// Package devicelist is an account's list of its devices, signed with the
// account key: what lets every client tell the devices an account added
// from a "ghost" the server added (docs/transparency.md).
//
// The account key is an Ed25519 key made by the account's first device at
// "parley init" and kept by that device (the primary) only: only it can
// change the list, so a lost or stolen secondary device cannot add
// devices. Each list names, per device, the key it authenticates to the
// server with and its MLS signature key; a version that only goes up
// orders lists. The server stores the latest list and hands it out, but
// cannot make one: clients verify the signature, pin each account's key
// the first time they see it, and refuse devices that are not in the list.
package devicelist

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Device is one device in a list.
type Device struct {
	ID      string
	AuthKey ed25519.PublicKey // authenticates the device to the server
	MLSKey  []byte            // its MLS leaf signature key
	Added   time.Time
}

// List is an account's device list.
type List struct {
	Username   string
	AccountKey ed25519.PublicKey
	Version    uint64
	Devices    []Device
	Signed     time.Time
}

// Errors callers branch on.
var (
	ErrMalformed    = errors.New("devicelist: malformed device list")
	ErrBadSignature = errors.New("devicelist: device list signature does not verify under its account key")
)

// MaxDevices bounds a list, whatever a server allows.
const MaxDevices = 256

// signingContext separates these signatures from every other use of an
// account key.
const signingContext = "parley device list v1\x00"

// Device returns the listed device with id.
func (l List) Device(id string) (Device, bool) {
	for _, d := range l.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return Device{}, false
}

// HasMLSKey reports whether the device id is listed with MLS signature
// key k.
func (l List) HasMLSKey(id string, k []byte) bool {
	d, ok := l.Device(id)
	return ok && bytes.Equal(d.MLSKey, k)
}

// Sign encodes l and signs it with priv, whose public key must be
// l.AccountKey.
func Sign(l List, priv ed25519.PrivateKey) (*parleypb.SignedDeviceList, error) {
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), l.AccountKey) {
		return nil, errors.New("devicelist: signing key is not the list's account key")
	}
	if err := check(l); err != nil {
		return nil, err
	}
	pb := &parleypb.DeviceList{Username: l.Username, AccountKey: l.AccountKey, Version: l.Version, SignedUnix: l.Signed.Unix()}
	for _, d := range l.Devices {
		pb.Devices = append(pb.Devices, &parleypb.ListedDevice{DeviceId: d.ID, AuthKey: d.AuthKey, MlsSignatureKey: d.MLSKey, AddedUnix: d.Added.Unix()})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("devicelist: encode: %w", err)
	}
	return &parleypb.SignedDeviceList{List: b, Signature: ed25519.Sign(priv, append([]byte(signingContext), b...))}, nil
}

// Verify decodes a signed list and checks that it is well formed and
// signed by the account key it names. It does not say whether that key is
// the right one for the account: the caller compares it with the key it
// pinned (or, later, with the transparency log).
func Verify(s *parleypb.SignedDeviceList) (List, error) {
	if s == nil || len(s.List) == 0 {
		return List{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	var pb parleypb.DeviceList
	if err := proto.Unmarshal(s.List, &pb); err != nil {
		return List{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(pb.AccountKey) != ed25519.PublicKeySize {
		return List{}, fmt.Errorf("%w: account key of %d bytes", ErrMalformed, len(pb.AccountKey))
	}
	if ciphersuite.IsSmallOrderEd25519(pb.AccountKey) {
		return List{}, fmt.Errorf("%w: account key of small order", ErrMalformed)
	}
	if len(s.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(pb.AccountKey, append([]byte(signingContext), s.List...), s.Signature) {
		return List{}, ErrBadSignature
	}
	if len(pb.Devices) > MaxDevices {
		return List{}, fmt.Errorf("%w: %d devices", ErrMalformed, len(pb.Devices))
	}
	l := List{Username: pb.Username, AccountKey: pb.AccountKey, Version: pb.Version, Signed: time.Unix(pb.SignedUnix, 0).UTC()}
	for _, d := range pb.Devices {
		l.Devices = append(l.Devices, Device{ID: d.DeviceId, AuthKey: d.AuthKey, MLSKey: d.MlsSignatureKey, Added: time.Unix(d.AddedUnix, 0).UTC()})
	}
	if err := check(l); err != nil {
		return List{}, err
	}
	return l, nil
}

// check is what every list must satisfy.
func check(l List) error {
	if err := wire.CheckUsername(l.Username); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if l.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrMalformed)
	}
	if len(l.Devices) > MaxDevices {
		return fmt.Errorf("%w: %d devices", ErrMalformed, len(l.Devices))
	}
	seen := make(map[string]bool, len(l.Devices))
	for _, d := range l.Devices {
		if d.ID == "" || len(d.ID) > 64 || seen[d.ID] {
			return fmt.Errorf("%w: device id %q empty, too long or repeated", ErrMalformed, d.ID)
		}
		seen[d.ID] = true
		if len(d.AuthKey) != ed25519.PublicKeySize || len(d.MLSKey) == 0 || len(d.MLSKey) > 2048 {
			return fmt.Errorf("%w: device %s keys", ErrMalformed, d.ID)
		}
	}
	return nil
}
