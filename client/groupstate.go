package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/wire"
)

// extensionGroupState is Parley's GroupContext extension holding a
// group's name, topic, picture and admins (docs/protocol.md, "Group
// state"). Its type is in the range RFC 9420 §17.3 reserves for private
// use (0xF000-0xFFFF). Because it is in the GroupContext, every member
// agrees on it: it enters the key schedule (§8.1), and it changes only by
// a GroupContextExtensions proposal (§12.1.7) in a commit, which every
// member's client checks against the committer's role (checkCommitPolicy).
const extensionGroupState mls.ExtensionType = 0xF0A1

// groupStateVersion is the first byte of the extension's data.
const groupStateVersion = 1

// Bounds of the group state, checked by the decoder.
const (
	maxGroupTitleBytes = 128
	maxGroupTopicBytes = 1024
	maxGroupAdmins     = 1000
	maxPictureType     = 100
	maxPictureBytes    = 5 << 20 // a picture larger than this is refused when set
)

// Roles of group members.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Errors of group administration.
var (
	// ErrNotAdmin means the action needs an admin of the group.
	ErrNotAdmin = errors.New("client: only an admin of the group can do that")
	// ErrPolicy marks a commit every member refuses because its
	// committer had no right to make it (see checkCommitPolicy).
	ErrPolicy = errors.New("client: refused a commit that breaks the group's roles")
	// ErrBadGroupState means the group state extension is malformed.
	ErrBadGroupState = errors.New("client: malformed group state")
)

// groupPicture is an encrypted attachment (like a file message's):
// the blob on the server and what decrypts and checks it.
type groupPicture struct {
	Blob   string // hex of the 16-byte blob id
	Key    []byte // filecrypt key, 32 bytes
	SHA256 []byte // of the plaintext
	Size   int64
	Type   string // media type, e.g. image/png
}

// groupProfile is the content of the extension:
//
//	struct {
//	    uint8 version = 1;
//	    opaque name<V>;
//	    opaque topic<V>;
//	    optional<Picture> picture;
//	    opaque admins<V>;        /* a vector of opaque usernames<V>, sorted, unique */
//	} ParleyGroupState;
//
//	struct {
//	    opaque blob_id<V>;       /* 16 bytes */
//	    opaque key<V>;           /* 32 bytes */
//	    opaque sha256<V>;        /* 32 bytes */
//	    uint64 size;
//	    opaque media_type<V>;
//	} Picture;
//
// The encoding is canonical: the decoder accepts exactly what the encoder
// writes, so equal states have equal bytes.
type groupProfile struct {
	Name    string
	Topic   string
	Picture *groupPicture
	Admins  []string
}

func (s *groupProfile) marshal() []byte {
	w := codec.NewWriter(nil)
	w.U8(groupStateVersion)
	w.Opaque([]byte(s.Name))
	w.Opaque([]byte(s.Topic))
	w.Optional(s.Picture != nil, func(w *codec.Writer) {
		p := s.Picture
		id, _ := hex.DecodeString(p.Blob)
		w.Opaque(id)
		w.Opaque(p.Key)
		w.Opaque(p.SHA256)
		w.U64(uint64(p.Size))
		w.Opaque([]byte(p.Type))
	})
	w.Vector(func(w *codec.Writer) {
		for _, a := range s.Admins {
			w.Opaque([]byte(a))
		}
	})
	return w.Bytes()
}

// extension wraps s as the GroupContext extension.
func (s *groupProfile) extension() mls.Extension {
	return mls.Extension{Type: extensionGroupState, Data: s.marshal()}
}

// checkLabel accepts printable UTF-8 of at most max bytes.
func checkLabel(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrBadGroupState, what, max)
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: %s is not printable UTF-8", ErrBadGroupState, what)
	}
	return nil
}

// parseGroupState decodes the extension's data, strictly: a state that
// breaks a bound or is not in canonical form is an error.
func parseGroupState(b []byte) (*groupProfile, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != groupStateVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadGroupState, v)
	}
	s := &groupProfile{Name: string(r.Opaque()), Topic: string(r.Opaque())}
	if r.Optional() {
		id, key, sum := r.Opaque(), r.Opaque(), r.Opaque()
		size := r.U64()
		typ := string(r.Opaque())
		if r.Err() == nil {
			if len(id) != 16 || len(key) != 32 || len(sum) != 32 || size == 0 || size > maxPictureBytes {
				return nil, fmt.Errorf("%w: bad picture reference", ErrBadGroupState)
			}
			if err := checkLabel("picture type", typ, maxPictureType); err != nil {
				return nil, err
			}
			s.Picture = &groupPicture{Blob: hex.EncodeToString(id), Key: key, SHA256: sum, Size: int64(size), Type: typ}
		}
	}
	var bad error
	r.ReadVector(func(r *codec.Reader) {
		a := string(r.Opaque())
		if r.Err() != nil || bad != nil {
			return
		}
		switch {
		case len(s.Admins) == maxGroupAdmins:
			bad = fmt.Errorf("%w: more than %d admins", ErrBadGroupState, maxGroupAdmins)
		case wire.CheckUsername(a) != nil:
			bad = fmt.Errorf("%w: admin %q is not a username", ErrBadGroupState, a)
		case len(s.Admins) > 0 && a <= s.Admins[len(s.Admins)-1]:
			bad = fmt.Errorf("%w: admins not sorted or repeated", ErrBadGroupState)
		default:
			s.Admins = append(s.Admins, a)
		}
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadGroupState, err)
	}
	if bad != nil {
		return nil, bad
	}
	if err := checkLabel("name", s.Name, maxGroupTitleBytes); err != nil {
		return nil, err
	}
	if err := checkLabel("topic", s.Topic, maxGroupTopicBytes); err != nil {
		return nil, err
	}
	return s, nil
}

// groupStateOf returns the group's state, nil if it has none (a direct
// conversation, or a group made before roles existed).
func groupStateOf(ext mls.Extensions) (*groupProfile, []byte, error) {
	d, ok := ext.Find(extensionGroupState)
	if !ok {
		return nil, nil, nil
	}
	s, err := parseGroupState(d)
	return s, d, err
}

func (s *groupProfile) isAdmin(user string) bool {
	_, ok := slices.BinarySearch(s.Admins, user)
	return ok
}

// mayAdminister reports whether user acts as an admin in a group whose
// members (users) are given: an admin, or anyone once no member is an
// admin any more (the last admin left), so that a group is never stuck.
func (s *groupProfile) mayAdminister(user string, members map[string]bool) bool {
	if s.isAdmin(user) {
		return true
	}
	for u := range members {
		if s.isAdmin(u) {
			return false
		}
	}
	return true
}

// withAdmin returns a copy of s with user added to (or, with !admin,
// removed from) the admins.
func (s *groupProfile) withAdmin(user string, admin bool) *groupProfile {
	n := *s
	n.Admins = slices.DeleteFunc(slices.Clone(s.Admins), func(a string) bool { return a == user })
	if admin {
		n.Admins = append(n.Admins, user)
		slices.Sort(n.Admins)
	}
	return &n
}

// commitChange is what a commit did, as the policy sees it.
type commitChange struct {
	Committer string          // the committer's user
	Members   map[string]bool // users in the group before the commit
	Added     []Sender
	Removed   []Sender
	// LeftOnOwn reports whether a removed device asked to leave itself
	// (a Remove proposal it sent, committed by anyone).
	LeftOnOwn func(Sender) bool
}

// checkCommitPolicy is the rule every member's client applies to every
// commit, against the group state before it (old) and after it (new):
// only an admin may add or remove another user's devices or change the
// state (name, topic, picture, admins). Anyone may add or remove devices
// of their own account and commit a member's own request to leave. A
// group without the extension (direct conversations, older groups) has
// no roles. Deterministic: every member decides the same way on the
// same log, so they stay in the same epoch (see docs/protocol.md).
func checkCommitPolicy(old, new mls.Extensions, ch commitChange) error {
	before, oldData, err := groupStateOf(old)
	if err != nil {
		return fmt.Errorf("%w: the group state before it: %w", ErrPolicy, err)
	}
	if before == nil {
		return nil
	}
	after, newData, err := groupStateOf(new)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if after == nil {
		return fmt.Errorf("%w: %s removed the group's roles", ErrPolicy, ch.Committer)
	}
	if before.mayAdminister(ch.Committer, ch.Members) {
		return nil
	}
	if !bytes.Equal(oldData, newData) {
		return fmt.Errorf("%w: %s, not an admin, changed the group's name, topic, picture or admins", ErrPolicy, ch.Committer)
	}
	for _, a := range ch.Added {
		if a.User != ch.Committer {
			return fmt.Errorf("%w: %s, not an admin, added %s", ErrPolicy, ch.Committer, a.User)
		}
	}
	for _, d := range ch.Removed {
		if d.User != ch.Committer && (ch.LeftOnOwn == nil || !ch.LeftOnOwn(d)) {
			return fmt.Errorf("%w: %s, not an admin, removed %s", ErrPolicy, ch.Committer, d.User)
		}
	}
	return nil
}

// checkJoin applies the roles, as far as a device joining by a Welcome
// can, to the commit that added it: the committer (the member that
// signed the Welcome's GroupInfo, RFC 9420 §12.4.3.1) must be an admin
// in the group state the Welcome carries, or the group has no admin
// among its members, or the committer added a device of its own
// account. The joiner does not see the state before the commit: a
// committer that also rewrote the admin list in the same commit passes
// this check (docs/protocol.md §14, "Known limits").
func checkJoin(g *mls.Group, self string) error {
	st, _, err := groupStateOf(g.GroupContext().Extensions)
	if err != nil {
		return fmt.Errorf("%w: the group state in the Welcome: %w", ErrPolicy, err)
	}
	if st == nil {
		return nil // no roles: a direct conversation or an older group
	}
	leaf, ok := g.WelcomeSigner()
	if !ok {
		return nil
	}
	m, ok := g.Member(leaf)
	if !ok {
		return fmt.Errorf("%w: the Welcome's signer is not a member", ErrPolicy)
	}
	committer, err := memberIdentity(m)
	if err != nil {
		return err
	}
	if committer.User == self || st.mayAdminister(committer.User, memberUserSet(g)) {
		return nil
	}
	return fmt.Errorf("%w: %s, not an admin of the group, added this device", ErrPolicy, committer.User)
}

// leafCapabilities are the capabilities of this client's leaves (key
// packages and the leaf of a group it creates): the defaults (RFC 9420
// §7.2) plus the group state extension, which a GroupContext may carry
// only if every member supports it (§12.1.7).
func leafCapabilities(s *ciphersuite.Suite) *mls.Capabilities {
	return &mls.Capabilities{
		Versions:     []mls.ProtocolVersion{mls.ProtocolVersionMLS10},
		CipherSuites: []ciphersuite.ID{s.ID()},
		Extensions:   []mls.ExtensionType{extensionGroupState, extensionHistoryTransfer},
		Proposals:    []mls.ProposalType{},
		Credentials:  []mls.CredentialType{mls.CredentialTypeBasic, mls.CredentialTypeX509},
	}
}

// serverEpoch is the epoch the server counts for the conversation, which
// requests declare: the MLS epoch plus the commits of the log this device
// did not apply (refused by the group's roles, or unreadable). Every
// member refuses the same commits of the same log, so they agree on it;
// the group goes on in MLS's epoch while the server's moves past the
// refused commit, and no one forks (docs/protocol.md, "Group state").
func serverEpoch(g *mls.Group, r *convRecord) uint64 { return g.Epoch() + r.Skipped }

// noteServerEpoch records that the server's epoch is server while the
// group's MLS epoch is mlsEpoch (after a commit of the log, or a Welcome).
func noteServerEpoch(tx *profile.Tx, r *convRecord, server, mlsEpoch uint64) error {
	skipped := uint64(0)
	if server > mlsEpoch {
		skipped = server - mlsEpoch
	}
	if skipped == r.Skipped {
		return nil
	}
	r.Skipped = skipped
	return putConv(tx, r)
}

// commitChangeOf describes a processed commit for checkCommitPolicy:
// before lists the members before it, g is the group after it.
func commitChangeOf(r *convRecord, self string, res *mls.Result, before []mls.Member, g *mls.Group) commitChange {
	ch := commitChange{Members: map[string]bool{}, LeftOnOwn: func(s Sender) bool { return leftByProposal(r, s, self) }}
	if s, err := parseIdentity(res.Credential.Identity); err == nil {
		ch.Committer = s.User
	}
	for _, m := range before {
		if s, err := memberIdentity(m); err == nil {
			ch.Members[s.User] = true
		}
	}
	if res.Commit == nil {
		return ch
	}
	for _, leaf := range res.Commit.Removed {
		for _, m := range before {
			if m.LeafIndex == leaf {
				s, err := memberIdentity(m)
				if err != nil {
					s = Sender{User: "an unknown member"}
				}
				ch.Removed = append(ch.Removed, s)
			}
		}
	}
	for _, leaf := range res.Commit.Added {
		if m, ok := g.Member(leaf); ok {
			s, err := memberIdentity(m)
			if err != nil {
				s = Sender{User: "an unknown member"}
			}
			ch.Added = append(ch.Added, s)
		}
	}
	return ch
}

// checkOwnPlan applies the group's policy to a commit this device is
// about to make, so that a member who is not an admin gets ErrNotAdmin
// instead of a commit every other member would refuse.
func (c *Client) checkOwnPlan(g *mls.Group, p *commitPlan) error {
	old := g.GroupContext().Extensions
	next := old
	if p.opts.GroupContextExtensions != nil {
		next = p.opts.GroupContextExtensions
	}
	ch := commitChange{Committer: c.acct.User, Members: memberUserSet(g)}
	if ms := p.membership; ms != nil {
		ch.Added, ch.Removed = ms.Added, ms.Removed
		ch.LeftOnOwn = func(s Sender) bool { return slices.Contains(ms.Left, s) }
		ch.Removed = append(ch.Removed, ms.Left...)
	}
	if err := checkCommitPolicy(old, next, ch); err != nil {
		if errors.Is(err, ErrPolicy) {
			return fmt.Errorf("%w (%v)", ErrNotAdmin, strings.TrimPrefix(err.Error(), ErrPolicy.Error()+": "))
		}
		return err
	}
	return nil
}

// memberUserSet is the set of users with a device in g.
func memberUserSet(g *mls.Group) map[string]bool {
	out := map[string]bool{}
	for s := range groupDevices(g) {
		out[s.User] = true
	}
	return out
}

// ErrGroupFull means a group would grow past the server's limit of
// members (parleyd --max-group-members).
var ErrGroupFull = errors.New("client: the group is full")

// checkGroupSize refuses, before anything is sent, to add devices that
// take g past the number of accounts the server allows in a group.
func checkGroupSize(conn *transport.Conn, g *mls.Group, added []Sender) error {
	max := conn.MaxGroupMembers()
	if max <= 0 {
		return nil
	}
	users := memberUserSet(g)
	for _, s := range added {
		users[s.User] = true
	}
	if len(users) > max {
		return fmt.Errorf("%w: it would have %d members, and this server allows at most %d", ErrGroupFull, len(users), max)
	}
	return nil
}
