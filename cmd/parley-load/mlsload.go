package main

import (
	"fmt"
	"sync"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// With --mls every device holds a real RFC 9420 group per conversation,
// in cipher suite 1 (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the
// one every implementation must support). The creator adds the others
// with key packages they made and sends the real Commit and Welcome
// through the server; each message is a Group.Encrypt'd application
// message, and a recipient counts it delivered only once Group.Process
// has opened it. The clients' MLS work then runs on the generator's
// cores: the figures are what users would see end to end. Without --mls
// payloads are random bytes prepared in advance and the figures are the
// server's alone.

const mlsSuite ciphersuite.ID = 1

// mlsDevice is one device's MLS identity and groups.
type mlsDevice struct {
	suite *ciphersuite.Suite
	priv  []byte
	cred  mls.Credential

	mu     sync.Mutex // an mls.Group is not safe for concurrent use
	groups map[string]*mls.Group
}

func newMLSDevice(deviceID string) (*mlsDevice, error) {
	s, err := ciphersuite.Lookup(mlsSuite)
	if err != nil {
		return nil, err
	}
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		return nil, err
	}
	return &mlsDevice{suite: s, priv: priv, cred: mls.NewBasicCredential([]byte(deviceID)), groups: map[string]*mls.Group{}}, nil
}

// createMLSGroup makes cv's group at its first member, adds the others
// and has them join from the Welcome (handed over in memory; the server
// also stores and pushes it). It returns the Commit and Welcome to send.
func createMLSGroup(cv *conversation) (commit, welcome []byte, err error) {
	creator := cv.members[0].mls
	g, err := mls.CreateGroup(creator.suite, cv.id, creator.cred, creator.priv, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: create group: %w", err)
	}
	var kps [][]byte
	var bundles []*mls.KeyPackageBundle
	for _, m := range cv.members[1:] {
		kp, b, err := mls.NewKeyPackage(m.mls.suite, m.mls.cred, m.mls.priv, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: key package: %w", err)
		}
		kps, bundles = append(kps, kp), append(bundles, b)
	}
	out, err := g.Add(kps...)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: add members: %w", err)
	}
	if _, err := g.MergePendingCommit(); err != nil {
		return nil, nil, fmt.Errorf("mls: merge commit: %w", err)
	}
	creator.set(cv.id, g)
	for i, m := range cv.members[1:] {
		mg, err := mls.JoinFromWelcome(out.Welcome, bundles[i], nil, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: join from welcome: %w", err)
		}
		m.mls.set(cv.id, mg)
	}
	return out.Commit, out.Welcome, nil
}

func (d *mlsDevice) set(conv []byte, g *mls.Group) {
	d.mu.Lock()
	d.groups[string(conv)] = g
	d.mu.Unlock()
}

// encrypt protects plaintext for conv and returns the message and the
// epoch to send it in.
func (d *mlsDevice) encrypt(conv, plaintext []byte) ([]byte, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[string(conv)]
	if g == nil {
		return nil, 0, fmt.Errorf("mls: no group for conversation %x", conv)
	}
	ct, err := g.Encrypt(plaintext, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("mls: encrypt: %w", err)
	}
	return ct, g.Epoch(), nil
}

// decrypt opens an application message of conv.
func (d *mlsDevice) decrypt(conv, msg []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[string(conv)]
	if g == nil {
		return nil, fmt.Errorf("mls: no group for conversation %x", conv)
	}
	res, err := g.Process(msg)
	if err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	if res.Plaintext == nil {
		return nil, fmt.Errorf("mls: %v is not an application message", res.Kind)
	}
	return res.Plaintext, nil
}
