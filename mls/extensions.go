package mls

import (
	"github.com/parleychat/parley/mls/codec"
)

// Extension (RFC 9420 §7.2, §13). Data is kept as raw bytes so that unknown
// extensions round-trip unchanged; the typed helpers below parse the known
// ones on demand.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is an extension list. On decode it is checked to hold at most
// one extension of each type (§13.4).
type Extensions []Extension

func (e Extensions) Encode(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for i := range e {
			w.U16(uint16(e[i].Type))
			w.Opaque(e[i].Data)
		}
	})
}

// decodeExtensions reads an extension list, rejecting duplicate types.
func decodeExtensions(r *codec.Reader) Extensions {
	e := Extensions{}
	r.ReadVector(func(r *codec.Reader) {
		x := Extension{Type: ExtensionType(r.U16()), Data: r.Opaque()}
		if r.Err() != nil {
			return
		}
		if len(e) == maxListEntries {
			invalid(r, "more than %d extensions", maxListEntries)
			return
		}
		if _, dup := e.Find(x.Type); dup {
			invalid(r, "duplicate extension type %d", x.Type)
			return
		}
		e = append(e, x)
	})
	return e
}

func (e *Extensions) Decode(r *codec.Reader) { *e = decodeExtensions(r) }
func (e Extensions) Marshal() []byte         { return marshal(e.Encode) }
func (e *Extensions) Unmarshal(b []byte) error {
	return unmarshal("Extensions", b, e.Decode)
}

// Find returns the data of the extension of type t.
func (e Extensions) Find(t ExtensionType) ([]byte, bool) {
	for i := range e {
		if e[i].Type == t {
			return e[i].Data, true
		}
	}
	return nil, false
}

// Types lists the extension types in order.
func (e Extensions) Types() []ExtensionType {
	t := make([]ExtensionType, len(e))
	for i := range e {
		t[i] = e[i].Type
	}
	return t
}

// ApplicationID returns the application_id extension's value (§5.3.3).
func (e Extensions) ApplicationID() ([]byte, bool, error) {
	d, ok := e.Find(ExtensionApplicationID)
	if !ok {
		return nil, false, nil
	}
	var id []byte
	err := unmarshal("application_id", d, func(r *codec.Reader) { id = r.Opaque() })
	return id, err == nil, err
}

// NewApplicationIDExtension encodes an application_id extension.
func NewApplicationIDExtension(id []byte) Extension {
	return Extension{Type: ExtensionApplicationID, Data: marshal(func(w *codec.Writer) { w.Opaque(id) })}
}

// RequiredCapabilities (RFC 9420 §11.1).
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

func (c *RequiredCapabilities) Encode(w *codec.Writer) {
	encodeU16s(w, c.ExtensionTypes)
	encodeU16s(w, c.ProposalTypes)
	encodeU16s(w, c.CredentialTypes)
}

func (c *RequiredCapabilities) Decode(r *codec.Reader) {
	c.ExtensionTypes = decodeU16s[ExtensionType](r)
	c.ProposalTypes = decodeU16s[ProposalType](r)
	c.CredentialTypes = decodeU16s[CredentialType](r)
}

func (c *RequiredCapabilities) Marshal() []byte { return marshal(c.Encode) }
func (c *RequiredCapabilities) Unmarshal(b []byte) error {
	return unmarshal("RequiredCapabilities", b, c.Decode)
}

// Extension wraps c as a required_capabilities extension.
func (c *RequiredCapabilities) Extension() Extension {
	return Extension{Type: ExtensionRequiredCapabilities, Data: c.Marshal()}
}

// SatisfiedBy reports whether capabilities list everything required (§11.1).
func (c *RequiredCapabilities) SatisfiedBy(caps *Capabilities) bool {
	for _, t := range c.ExtensionTypes {
		if !caps.SupportsExtension(t) {
			return false
		}
	}
	for _, t := range c.ProposalTypes {
		if !caps.SupportsProposal(t) {
			return false
		}
	}
	for _, t := range c.CredentialTypes {
		if !caps.SupportsCredential(t) {
			return false
		}
	}
	return true
}

// RequiredCapabilities parses the required_capabilities extension if present.
func (e Extensions) RequiredCapabilities() (*RequiredCapabilities, bool, error) {
	d, ok := e.Find(ExtensionRequiredCapabilities)
	if !ok {
		return nil, false, nil
	}
	rc := new(RequiredCapabilities)
	if err := rc.Unmarshal(d); err != nil {
		return nil, true, err
	}
	return rc, true, nil
}

// ExternalPub (RFC 9420 §12.4.3.2) carries the HPKE public key external
// joiners encrypt to.
type ExternalPub struct {
	PublicKey []byte
}

func (p *ExternalPub) Encode(w *codec.Writer) { w.Opaque(p.PublicKey) }
func (p *ExternalPub) Decode(r *codec.Reader) { p.PublicKey = r.Opaque() }
func (p *ExternalPub) Marshal() []byte        { return marshal(p.Encode) }
func (p *ExternalPub) Unmarshal(b []byte) error {
	return unmarshal("ExternalPub", b, p.Decode)
}

// Extension wraps p as an external_pub extension.
func (p *ExternalPub) Extension() Extension {
	return Extension{Type: ExtensionExternalPub, Data: p.Marshal()}
}

// ExternalPub parses the external_pub extension if present.
func (e Extensions) ExternalPub() (*ExternalPub, bool, error) {
	d, ok := e.Find(ExtensionExternalPub)
	if !ok {
		return nil, false, nil
	}
	p := new(ExternalPub)
	if err := p.Unmarshal(d); err != nil {
		return nil, true, err
	}
	return p, true, nil
}

// ExternalSender (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

func (s *ExternalSender) Encode(w *codec.Writer) { w.Opaque(s.SignatureKey); s.Credential.Encode(w) }
func (s *ExternalSender) Decode(r *codec.Reader) {
	s.SignatureKey = r.Opaque()
	s.Credential.Decode(r)
}

// ExternalSenders is the external_senders extension's content.
type ExternalSenders []ExternalSender

func (s ExternalSenders) Encode(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for i := range s {
			s[i].Encode(w)
		}
	})
}

func (s *ExternalSenders) Decode(r *codec.Reader) {
	v := ExternalSenders{}
	r.ReadVector(func(r *codec.Reader) {
		var x ExternalSender
		x.Decode(r)
		v = append(v, x)
	})
	*s = v
}

func (s ExternalSenders) Marshal() []byte { return marshal(s.Encode) }
func (s *ExternalSenders) Unmarshal(b []byte) error {
	return unmarshal("ExternalSenders", b, s.Decode)
}

// Extension wraps s as an external_senders extension.
func (s ExternalSenders) Extension() Extension {
	return Extension{Type: ExtensionExternalSenders, Data: s.Marshal()}
}

// ExternalSenders parses the external_senders extension if present.
func (e Extensions) ExternalSenders() (ExternalSenders, bool, error) {
	d, ok := e.Find(ExtensionExternalSenders)
	if !ok {
		return nil, false, nil
	}
	var s ExternalSenders
	if err := s.Unmarshal(d); err != nil {
		return nil, true, err
	}
	return s, true, nil
}

// RatchetTreeData returns the raw ratchet_tree extension (decode it with
// DecodeRatchetTree).
func (e Extensions) RatchetTreeData() ([]byte, bool) { return e.Find(ExtensionRatchetTree) }
