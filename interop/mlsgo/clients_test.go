package mlsgo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	mlsgo "github.com/thomas-vilte/mls-go"
	gocs "github.com/thomas-vilte/mls-go/ciphersuite"
)

// client is one group member, of either implementation. Methods fail the
// test on error. Commits are merged by their committer before returning.
type client interface {
	Name() string
	// KeyPackage returns a fresh KeyPackage MLSMessage for this client.
	KeyPackage() []byte
	Create()
	Join(welcome []byte)
	Add(keyPackage []byte) (commit, welcome []byte)
	Remove(name string) (commit []byte)
	Update() (commit []byte)
	ProcessCommit(commit []byte)
	Send(plaintext []byte) []byte
	Receive(ciphertext []byte) []byte
	Epoch() uint64
	EpochAuthenticator() []byte
	Export(label string, context []byte, length int) []byte
}

// parleyClient drives package mls.
type parleyClient struct {
	t       testing.TB
	name    string
	suite   *ciphersuite.Suite
	sigPriv []byte
	bundle  *mls.KeyPackageBundle
	group   *mls.Group
	cfg     mls.Config
}

func newParley(t testing.TB, name string, id uint16) *parleyClient {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	// mls-go v1.6.0 cannot find the end of a Commit or Proposal in a
	// padded PrivateMessage (its framing scanner expects the auth data to
	// end the plaintext, but RFC 9420 §6.3 allows zero padding after it),
	// so Parley sends unpadded PrivateMessages to it.
	cfg := mls.Config{PaddingBlock: 1}
	return &parleyClient{t: t, name: name, suite: s, sigPriv: priv, cfg: cfg}
}

func (c *parleyClient) Name() string { return c.name }

func (c *parleyClient) KeyPackage() []byte {
	c.t.Helper()
	kp, bundle, err := mls.NewKeyPackage(c.suite, mls.NewBasicCredential([]byte(c.name)), c.sigPriv, nil)
	if err != nil {
		c.t.Fatalf("%s: key package: %v", c.name, err)
	}
	c.bundle = bundle
	return kp
}

func (c *parleyClient) Create() {
	c.t.Helper()
	g, err := mls.CreateGroup(c.suite, []byte("interop "+c.name), mls.NewBasicCredential([]byte(c.name)), c.sigPriv, &mls.CreateOptions{Config: c.cfg})
	if err != nil {
		c.t.Fatalf("%s: create: %v", c.name, err)
	}
	c.group = g
}

func (c *parleyClient) Join(welcome []byte) {
	c.t.Helper()
	g, err := mls.JoinFromWelcome(welcome, c.bundle, nil, &c.cfg)
	if err != nil {
		c.t.Fatalf("%s: join: %v", c.name, err)
	}
	c.group = g
}

func (c *parleyClient) merge(out *mls.CommitOutput, err error, what string) *mls.CommitOutput {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %s: %v", c.name, what, err)
	}
	if _, err := c.group.MergePendingCommit(); err != nil {
		c.t.Fatalf("%s: merge %s: %v", c.name, what, err)
	}
	return out
}

func (c *parleyClient) Add(kp []byte) ([]byte, []byte) {
	c.t.Helper()
	out, err := c.group.Add(kp)
	out = c.merge(out, err, "add")
	return out.Commit, out.Welcome
}

func (c *parleyClient) Remove(name string) []byte {
	c.t.Helper()
	for _, m := range c.group.Members() {
		if string(m.Credential.Identity) == name {
			out, err := c.group.Remove(m.LeafIndex)
			return c.merge(out, err, "remove "+name).Commit
		}
	}
	c.t.Fatalf("%s: no member %s", c.name, name)
	return nil
}

func (c *parleyClient) Update() []byte {
	c.t.Helper()
	out, err := c.group.Update()
	return c.merge(out, err, "update").Commit
}

func (c *parleyClient) ProcessCommit(commit []byte) {
	c.t.Helper()
	res, err := c.group.Process(commit)
	if err != nil {
		c.t.Fatalf("%s: process commit: %v", c.name, err)
	}
	if res.Kind != mls.ResultCommit {
		c.t.Fatalf("%s: processed a commit as kind %d", c.name, res.Kind)
	}
}

func (c *parleyClient) Send(pt []byte) []byte {
	c.t.Helper()
	ct, err := c.group.Encrypt(pt, nil)
	if err != nil {
		c.t.Fatalf("%s: encrypt: %v", c.name, err)
	}
	return ct
}

func (c *parleyClient) Receive(ct []byte) []byte {
	c.t.Helper()
	res, err := c.group.Process(ct)
	if err != nil {
		c.t.Fatalf("%s: decrypt: %v", c.name, err)
	}
	if res.Kind != mls.ResultApplication {
		c.t.Fatalf("%s: processed an application message as kind %d", c.name, res.Kind)
	}
	return res.Plaintext
}

func (c *parleyClient) Epoch() uint64              { return c.group.Epoch() }
func (c *parleyClient) EpochAuthenticator() []byte { return c.group.EpochAuthenticator() }
func (c *parleyClient) Export(label string, ctx []byte, n int) []byte {
	c.t.Helper()
	out, err := c.group.Export(label, ctx, n)
	if err != nil {
		c.t.Fatalf("%s: export: %v", c.name, err)
	}
	return out
}

// goClient drives github.com/thomas-vilte/mls-go through its Client API.
type goClient struct {
	t       testing.TB
	name    string
	c       *mlsgo.Client
	groupID []byte
}

var (
	ctx   = context.Background()
	quiet = slog.New(slog.DiscardHandler)
)

func newGo(t testing.TB, name string, id uint16) *goClient {
	t.Helper()
	c, err := mlsgo.NewClient([]byte(name), gocs.CipherSuite(id), mlsgo.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &goClient{t: t, name: name, c: c}
}

func (c *goClient) Name() string { return c.name }

func (c *goClient) check(err error, what string) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s (mls-go): %s: %v", c.name, what, err)
	}
}

func (c *goClient) KeyPackage() []byte {
	c.t.Helper()
	kp, err := c.c.FreshKeyPackageBytes(ctx)
	c.check(err, "key package")
	return kp
}

func (c *goClient) Create() {
	c.t.Helper()
	id, err := c.c.CreateGroup(ctx)
	c.check(err, "create")
	c.groupID = id
}

func (c *goClient) Join(welcome []byte) {
	c.t.Helper()
	id, err := c.c.JoinGroup(ctx, welcome)
	c.check(err, "join")
	c.groupID = id
}

func (c *goClient) Add(kp []byte) ([]byte, []byte) {
	c.t.Helper()
	// mls-go's InviteMember takes a bare KeyPackage, as its
	// FreshKeyPackageBytes produces; unwrap an MLSMessage.
	var m mls.MLSMessage
	if err := m.Unmarshal(kp); err == nil && m.KeyPackage != nil {
		kp = m.KeyPackage.Marshal()
	}
	commit, welcome, err := c.c.InviteMember(ctx, c.groupID, kp)
	c.check(err, "add")
	return commit, welcome
}

func (c *goClient) Remove(name string) []byte {
	c.t.Helper()
	commit, err := c.c.RemoveMember(ctx, c.groupID, []byte(name))
	c.check(err, "remove "+name)
	return commit
}

// Update commits a fresh path with an empty commit. (mls-go's SelfUpdate
// commits an Update proposal from the committer itself, which RFC 9420
// §12.2 forbids, and which Parley therefore rejects.)
func (c *goClient) Update() []byte {
	c.t.Helper()
	commit, _, err := c.c.CommitPendingProposals(ctx, c.groupID)
	c.check(err, "update")
	return commit
}

func (c *goClient) ProcessCommit(commit []byte) {
	c.t.Helper()
	c.check(c.c.ProcessCommit(ctx, c.groupID, commit), "process commit")
}

func (c *goClient) Send(pt []byte) []byte {
	c.t.Helper()
	ct, err := c.c.SendMessage(ctx, c.groupID, pt)
	c.check(err, "encrypt")
	return ct
}

func (c *goClient) Receive(ct []byte) []byte {
	c.t.Helper()
	m, err := c.c.ReceiveMessage(ctx, c.groupID, ct)
	c.check(err, "decrypt")
	return m.Plaintext
}

func (c *goClient) Epoch() uint64 {
	c.t.Helper()
	e, err := c.c.Epoch(ctx, c.groupID)
	c.check(err, "epoch")
	return e
}

func (c *goClient) EpochAuthenticator() []byte {
	c.t.Helper()
	a, err := c.c.EpochAuthenticator(ctx, c.groupID)
	c.check(err, "epoch authenticator")
	return a
}

func (c *goClient) Export(label string, ctx2 []byte, n int) []byte {
	c.t.Helper()
	out, err := c.c.Export(ctx, c.groupID, label, ctx2, n)
	c.check(err, "export")
	return out
}

// agree checks that all members share epoch, epoch authenticator and
// exporter output.
func agree(t testing.TB, what string, members ...client) {
	t.Helper()
	ref := members[0]
	epoch, auth := ref.Epoch(), ref.EpochAuthenticator()
	exp := ref.Export("interop", []byte(what), 32)
	for _, m := range members[1:] {
		if e := m.Epoch(); e != epoch {
			t.Fatalf("%s: %s is in epoch %d, %s in %d", what, m.Name(), e, ref.Name(), epoch)
		}
		if a := m.EpochAuthenticator(); !bytes.Equal(a, auth) {
			t.Fatalf("%s: epoch authenticators differ: %s %x, %s %x", what, m.Name(), a, ref.Name(), auth)
		}
		if x := m.Export("interop", []byte(what), 32); !bytes.Equal(x, exp) {
			t.Fatalf("%s: exporter outputs differ between %s and %s", what, m.Name(), ref.Name())
		}
	}
}

// talk has every member send a message that every other member decrypts.
func talk(t testing.TB, what string, members ...client) {
	t.Helper()
	for _, s := range members {
		pt := fmt.Appendf(nil, "%s: hello from %s", what, s.Name())
		ct := s.Send(pt)
		for _, r := range members {
			if r == s {
				continue
			}
			if got := r.Receive(ct); !bytes.Equal(got, pt) {
				t.Fatalf("%s: %s decrypted %q from %s, want %q", what, r.Name(), got, s.Name(), pt)
			}
		}
	}
}
