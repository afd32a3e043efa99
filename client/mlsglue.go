package client

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// Cipher suites. A group's suite is fixed when it is created; every
// device publishes key packages for both suites, so that it can be added
// to new conversations and to those created before X-Wing became the
// default. Both sign with Ed25519, so a device's MLS signature key (the
// one its account's signed device list names) serves in either.
const (
	// xwingSuite is the suite of new conversations: X-Wing (ML-KEM-768
	// with X25519) for HPKE, so that recorded traffic stays confidential
	// against a future quantum computer; AES-128-GCM, SHA-256, Ed25519.
	xwingSuite = ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519
	// classicSuite is MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	// (RFC 9420 §17.1): every conversation made before X-Wing, and a new
	// one some invited device cannot join under X-Wing (it runs a Parley
	// from before X-Wing).
	classicSuite ciphersuite.ID = 1
)

// knownSuites are the suites this version publishes key packages for, in
// order of preference.
var knownSuites = []ciphersuite.ID{xwingSuite, classicSuite}

// newGroupSuite is the preferred suite of new conversations.
func (c *Client) newGroupSuite() ciphersuite.ID {
	if c.opts.groupSuite != 0 {
		return c.opts.groupSuite
	}
	return xwingSuite
}

// keyPackageSuites are the suites this device publishes key packages for.
func (c *Client) keyPackageSuites() []ciphersuite.ID {
	if c.opts.keyPackageSuites != nil {
		return c.opts.keyPackageSuites
	}
	return knownSuites
}

// suiteName names a suite for people.
func suiteName(id ciphersuite.ID) string {
	switch id {
	case xwingSuite:
		return "X-Wing (post-quantum)"
	case classicSuite:
		return "suite 1 (X25519, not post-quantum)"
	}
	return fmt.Sprintf("suite %#04x", uint16(id))
}

// groupConfig is the local MLS policy of every group. Handshake messages
// are PrivateMessages so the server learns nothing but the sender's
// device id it already knows from the connection.
func groupConfig() mls.Config {
	return mls.Config{KeptEpochs: 5}
}

// Bucket names of MLS state in the profile.
const (
	bucketGroup       = "group"         // hex(conversation id) → Group.MarshalBinary
	bucketKeyPackages = "keypackage"    // hex(KeyPackageRef) → KeyPackageBundle
	bucketLastResort  = "keypackage-lr" // "ref" → hex(ref) of the last-resort package
)

func (c *Client) credential() mls.Credential {
	return mls.NewBasicCredential(credentialIdentity(c.acct.User, c.acct.DeviceID))
}

func loadGroup(tx *profile.Tx, convID []byte) (*mls.Group, error) {
	b, err := tx.Get(bucketGroup, hexID(convID))
	if err != nil {
		return nil, fmt.Errorf("load group state: %w", err)
	}
	g, err := mls.UnmarshalGroup(b)
	if err != nil {
		return nil, fmt.Errorf("load group state: %w", err)
	}
	return g, nil
}

func saveGroup(tx *profile.Tx, g *mls.Group) error {
	b, err := g.MarshalBinary()
	if err != nil {
		return fmt.Errorf("save group state: %w", err)
	}
	return tx.Put(bucketGroup, hexID(g.GroupID()), b)
}

// memberOf returns the identity of an MLS member.
func memberIdentity(m mls.Member) (Sender, error) {
	if m.Credential.Type != mls.CredentialTypeBasic {
		return Sender{}, errors.New("client: member without a basic credential")
	}
	return parseIdentity(m.Credential.Identity)
}

// groupDevices maps "user/device" to leaf index for the group's members.
func groupDevices(g *mls.Group) map[Sender]uint32 {
	out := make(map[Sender]uint32)
	for _, m := range g.Members() {
		if s, err := memberIdentity(m); err == nil {
			out[s] = m.LeafIndex
		}
	}
	return out
}

// welcomeRefs returns the KeyPackageRefs a Welcome is addressed to.
func welcomeRefs(welcome []byte) ([]string, error) {
	var m mls.MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, err
	}
	if m.WireFormat != mls.WireFormatWelcome || m.Welcome == nil {
		return nil, errors.New("client: inbox entry is not a Welcome")
	}
	var refs []string
	for _, s := range m.Welcome.Secrets {
		refs = append(refs, hex.EncodeToString(s.NewMember))
	}
	return refs, nil
}
