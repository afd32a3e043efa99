package mls

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

func b(s string) []byte { return []byte(s) }

func sampleLeafNode(src LeafNodeSource) LeafNode {
	ln := LeafNode{
		EncryptionKey: b("enc-key-32-bytes................"),
		SignatureKey:  b("sig-key-32-bytes................"),
		Credential:    NewBasicCredential(b("alice")),
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolVersionMLS10},
			CipherSuites: []ciphersuite.ID{1, 2, 0x0A0A},
			Extensions:   []ExtensionType{0x0A0A},
			Proposals:    []ProposalType{},
			Credentials:  []CredentialType{CredentialTypeBasic, CredentialTypeX509},
		},
		Source:     src,
		Extensions: Extensions{{Type: 0x0A0A, Data: []byte{}}, NewApplicationIDExtension(b("app"))},
		Signature:  b("signature"),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = Lifetime{NotBefore: 1, NotAfter: 1 << 40}
	case LeafNodeSourceCommit:
		ln.ParentHash = b("parent-hash")
	}
	return ln
}

func sampleKeyPackage() KeyPackage {
	return KeyPackage{
		Version:     ProtocolVersionMLS10,
		CipherSuite: 1,
		InitKey:     b("init-key"),
		LeafNode:    sampleLeafNode(LeafNodeSourceKeyPackage),
		Extensions:  Extensions{},
		Signature:   b("kp-sig"),
	}
}

func sampleGroupContext() GroupContext {
	rc := RequiredCapabilities{ExtensionTypes: []ExtensionType{}, ProposalTypes: []ProposalType{8}, CredentialTypes: []CredentialType{1}}
	es := ExternalSenders{{SignatureKey: b("ext"), Credential: Credential{Type: CredentialTypeX509, Certificates: [][]byte{b("c1"), b("c2")}}}}
	return GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: 1, GroupID: b("group"), Epoch: 7,
		TreeHash: b("th"), ConfirmedTranscriptHash: b("cth"),
		Extensions: Extensions{rc.Extension(), es.Extension()},
	}
}

func sampleProposals() []Proposal {
	kp := sampleKeyPackage()
	return []Proposal{
		{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp}},
		{Type: ProposalTypeUpdate, Update: &Update{LeafNode: sampleLeafNode(LeafNodeSourceUpdate)}},
		{Type: ProposalTypeRemove, Remove: &Remove{Removed: 5}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{Type: PSKTypeExternal, ExternalID: b("id"), Nonce: b("nonce")}}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionPSKUsageBranch, GroupID: b("g"), Epoch: 3, Nonce: b("n")}}},
		{Type: ProposalTypeReInit, ReInit: &ReInit{GroupID: b("new"), Version: 1, CipherSuite: 2, Extensions: Extensions{}}},
		{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: b("kem")}},
		{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: Extensions{(&ExternalPub{PublicKey: b("pub")}).Extension()}}},
	}
}

func sampleCommit() Commit {
	props := sampleProposals()
	c := Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefReference, Reference: b("ref")}}}
	for i := range props {
		c.Proposals = append(c.Proposals, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &props[i]})
	}
	c.Path = &UpdatePath{
		LeafNode: sampleLeafNode(LeafNodeSourceCommit),
		Nodes: []UpdatePathNode{
			{EncryptionKey: b("k1"), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: b("ko"), Ciphertext: b("ct")}}},
			{EncryptionKey: b("k2"), EncryptedPathSecret: []HPKECiphertext{}},
		},
	}
	return c
}

func sampleMessages() []MLSMessage {
	commit := sampleCommit()
	props := sampleProposals()
	gi := GroupInfo{GroupContext: sampleGroupContext(), Extensions: Extensions{}, ConfirmationTag: b("tag"), Signer: 3, Signature: b("sig")}
	kp := sampleKeyPackage()
	msgs := []MLSMessage{
		{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: FramedContent{GroupID: b("g"), Epoch: 1, Sender: Sender{Type: SenderTypeMember, Index: 2}, AuthenticatedData: []byte{}, ContentType: ContentTypeCommit, Commit: &commit},
			Auth:    FramedContentAuthData{Signature: b("s"), ConfirmationTag: b("ct")}, MembershipTag: b("mt")}},
		{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: FramedContent{GroupID: b("g"), Epoch: 1, Sender: Sender{Type: SenderTypeExternal, Index: 0}, AuthenticatedData: b("ad"), ContentType: ContentTypeProposal, Proposal: &props[2]},
			Auth:    FramedContentAuthData{Signature: b("s")}}},
		{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: FramedContent{GroupID: b("g"), Epoch: 1, Sender: Sender{Type: SenderTypeNewMemberProposal}, AuthenticatedData: b("ad"), ContentType: ContentTypeProposal, Proposal: &props[0]},
			Auth:    FramedContentAuthData{Signature: b("s")}}},
		{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: FramedContent{GroupID: b("g"), Epoch: 1, Sender: Sender{Type: SenderTypeNewMemberCommit}, AuthenticatedData: b("ad"), ContentType: ContentTypeCommit, Commit: &Commit{Proposals: []ProposalOrRef{}}},
			Auth:    FramedContentAuthData{Signature: b("s"), ConfirmationTag: b("t")}}},
		{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
			Content: FramedContent{GroupID: b("g"), Epoch: 1, Sender: Sender{Type: SenderTypeMember, Index: 0}, AuthenticatedData: b("ad"), ContentType: ContentTypeApplication, ApplicationData: b("hi")},
			Auth:    FramedContentAuthData{Signature: b("s")}, MembershipTag: b("mt")}},
		{Version: 1, WireFormat: WireFormatPrivateMessage, PrivateMessage: &PrivateMessage{GroupID: b("g"), Epoch: 9, ContentType: ContentTypeApplication, AuthenticatedData: []byte{}, EncryptedSenderData: b("esd"), Ciphertext: b("ct")}},
		{Version: 1, WireFormat: WireFormatWelcome, Welcome: &Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{{NewMember: b("ref"), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: b("k"), Ciphertext: b("c")}}}, EncryptedGroupInfo: b("egi")}},
		{Version: 1, WireFormat: WireFormatGroupInfo, GroupInfo: &gi},
		{Version: 1, WireFormat: WireFormatKeyPackage, KeyPackage: &kp},
	}
	return msgs
}

type roundTripper interface {
	Marshal() []byte
	Unmarshal([]byte) error
}

func TestRoundTrip(t *testing.T) {
	gc := sampleGroupContext()
	kp := sampleKeyPackage()
	commit := sampleCommit()
	ps := PathSecret{PathSecret: b("ps")}
	cases := []struct {
		name string
		v    roundTripper
		zero func() roundTripper
	}{
		{"GroupContext", &gc, func() roundTripper { return new(GroupContext) }},
		{"KeyPackage", &kp, func() roundTripper { return new(KeyPackage) }},
		{"Commit", &commit, func() roundTripper { return new(Commit) }},
		{"Commit/nopath", &Commit{Proposals: []ProposalOrRef{}}, func() roundTripper { return new(Commit) }},
		{"GroupSecrets", &GroupSecrets{JoinerSecret: b("js"), PathSecret: &ps, PSKs: []PreSharedKeyID{{Type: PSKTypeExternal, ExternalID: b("x"), Nonce: b("n")}}}, func() roundTripper { return new(GroupSecrets) }},
		{"GroupSecrets/nopath", &GroupSecrets{JoinerSecret: b("js"), PSKs: []PreSharedKeyID{}}, func() roundTripper { return new(GroupSecrets) }},
		{"ParentNode", &ParentNode{EncryptionKey: b("k"), ParentHash: []byte{}, UnmergedLeaves: []uint32{1, 7}}, func() roundTripper { return new(ParentNode) }},
		{"Capabilities", &Capabilities{Versions: []ProtocolVersion{1}, CipherSuites: []ciphersuite.ID{}, Extensions: []ExtensionType{}, Proposals: []ProposalType{9}, Credentials: []CredentialType{}}, func() roundTripper { return new(Capabilities) }},
		{"Lifetime", &Lifetime{NotBefore: 3, NotAfter: 1<<64 - 1}, func() roundTripper { return new(Lifetime) }},
	}
	for _, p := range sampleProposals() {
		cases = append(cases, struct {
			name string
			v    roundTripper
			zero func() roundTripper
		}{"Proposal", &p, func() roundTripper { return new(Proposal) }})
	}
	for _, m := range sampleMessages() {
		cases = append(cases, struct {
			name string
			v    roundTripper
			zero func() roundTripper
		}{"MLSMessage", &m, func() roundTripper { return new(MLSMessage) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc := c.v.Marshal()
			got := c.zero()
			if err := got.Unmarshal(enc); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, c.v) {
				t.Fatalf("round trip changed the value:\n got %+v\nwant %+v", got, c.v)
			}
			if !bytes.Equal(got.Marshal(), enc) {
				t.Fatal("re-encoding differs")
			}
			// Every strict prefix is truncated; a trailing byte is extra.
			for i := 0; i < len(enc); i++ {
				if err := c.zero().Unmarshal(enc[:i]); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded", i, len(enc))
				} else if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error does not wrap ErrMalformed: %v", err)
				}
			}
			if err := c.zero().Unmarshal(append(enc[:len(enc):len(enc)], 0)); !errors.Is(err, codec.ErrTrailingData) {
				t.Fatalf("trailing byte: got %v", err)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	kp := sampleKeyPackage()
	kpEnc := kp.Marshal()
	badVersion := append([]byte{0, 2}, kpEnc[2:]...)
	cases := []struct {
		name string
		v    roundTripper
		in   []byte
	}{
		{"KeyPackage/version", new(KeyPackage), badVersion},
		{"Credential/unknown type", new(Credential), []byte{0, 9, 0}},
		{"Proposal/unknown type", new(Proposal), []byte{0, 0x20, 0}},
		{"Proposal/reserved type", new(Proposal), []byte{0, 0, 0}},
		{"Commit/bad optional", new(Commit), []byte{0, 2}},
		{"GroupSecrets/bad optional", new(GroupSecrets), []byte{0, 7, 0}},
		{"MLSMessage/wire format", new(MLSMessage), []byte{0, 1, 0, 9}},
		{"MLSMessage/version", new(MLSMessage), []byte{0, 2, 0, 2}},
		{"Extensions/duplicate", new(Extensions), []byte{6, 0, 1, 0, 0, 1, 0}},
		{"LeafNode/source", new(LeafNode), func() []byte {
			ln := sampleLeafNode(LeafNodeSourceUpdate)
			enc := ln.Marshal()
			// Source is right after enc key, sig key, credential, capabilities.
			off := len(marshal(func(w *codec.Writer) {
				w.Opaque(ln.EncryptionKey)
				w.Opaque(ln.SignatureKey)
				ln.Credential.Encode(w)
				ln.Capabilities.Encode(w)
			}))
			enc[off] = 9
			return enc
		}()},
		{"PrivateMessage/content type", new(PrivateMessage), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0}},
		{"Varint/non-minimal", new(Credential), []byte{0, 1, 0x40, 0x01, 'a'}},
		{"Length beyond input", new(Credential), []byte{0, 1, 0x80, 0xff, 0xff, 0xff}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.v.Unmarshal(c.in); err == nil {
				t.Fatal("decoded invalid input")
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
		})
	}
}

func TestExtensionsHelpers(t *testing.T) {
	gc := sampleGroupContext()
	rc, ok, err := gc.Extensions.RequiredCapabilities()
	if err != nil || !ok || len(rc.ProposalTypes) != 1 || rc.ProposalTypes[0] != 8 {
		t.Fatalf("RequiredCapabilities = %+v %v %v", rc, ok, err)
	}
	es, ok, err := gc.Extensions.ExternalSenders()
	if err != nil || !ok || len(es) != 1 || string(es[0].Credential.Certificates[1]) != "c2" {
		t.Fatalf("ExternalSenders = %+v %v %v", es, ok, err)
	}
	if _, ok, _ := gc.Extensions.ExternalPub(); ok {
		t.Fatal("found absent external_pub")
	}
	ln := sampleLeafNode(LeafNodeSourceKeyPackage)
	id, ok, err := ln.Extensions.ApplicationID()
	if err != nil || !ok || string(id) != "app" {
		t.Fatalf("ApplicationID = %q %v %v", id, ok, err)
	}
	caps := ln.Capabilities
	if rc.SatisfiedBy(&caps) {
		t.Fatal("proposal type 8 is not in the capabilities")
	}
	caps.Proposals = []ProposalType{8}
	if !rc.SatisfiedBy(&caps) {
		t.Fatal("capabilities now cover the requirement")
	}
	bad := Extensions{{Type: ExtensionRequiredCapabilities, Data: []byte{1}}}
	if _, _, err := bad.RequiredCapabilities(); err == nil {
		t.Fatal("parsed a malformed required_capabilities")
	}
}

func TestDecodeRejectsHugeLists(t *testing.T) {
	long := func(n int, elem []byte) []byte {
		return marshal(func(w *codec.Writer) {
			w.Vector(func(w *codec.Writer) {
				for i := 0; i < n; i++ {
					w.Raw(elem)
				}
			})
		})
	}
	var caps Capabilities
	ok := append(long(maxListEntries, []byte{0, 1}), 0, 0, 0, 0)
	if err := caps.Unmarshal(ok); err != nil {
		t.Fatalf("%d versions: %v", maxListEntries, err)
	}
	tooMany := append(long(maxListEntries+1, []byte{0, 1}), 0, 0, 0, 0)
	if err := caps.Unmarshal(tooMany); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d versions: got %v", maxListEntries+1, err)
	}
	var ext Extensions
	many := marshal(func(w *codec.Writer) {
		w.Vector(func(w *codec.Writer) {
			for i := 0; i <= maxListEntries; i++ {
				w.U16(uint16(0x1000 + i))
				w.Opaque(nil)
			}
		})
	})
	if err := ext.Unmarshal(many); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d extensions: got %v", maxListEntries+1, err)
	}
}
