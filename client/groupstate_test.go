package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/mls"
)

func sampleProfile() *groupProfile {
	return &groupProfile{
		Name: "The Team", Topic: "launch on friday, then rest",
		Picture: &groupPicture{Blob: strings.Repeat("ab", 16), Key: bytes.Repeat([]byte{1}, 32), SHA256: bytes.Repeat([]byte{2}, 32), Size: 1234, Type: "image/png"},
		Admins:  []string{"alice", "bob"},
	}
}

func TestGroupProfileEncoding(t *testing.T) {
	for _, p := range []*groupProfile{sampleProfile(), {Admins: []string{"alice"}}, {}} {
		b := p.marshal()
		got, err := parseGroupState(b)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if !bytes.Equal(got.marshal(), b) {
			t.Fatalf("round trip of %+v changed the bytes", p)
		}
	}
	bad := map[string]func(p *groupProfile){
		"unsorted admins":   func(p *groupProfile) { p.Admins = []string{"bob", "alice"} },
		"repeated admin":    func(p *groupProfile) { p.Admins = []string{"alice", "alice"} },
		"bad admin":         func(p *groupProfile) { p.Admins = []string{"Alice!"} },
		"long name":         func(p *groupProfile) { p.Name = strings.Repeat("x", maxGroupTitleBytes+1) },
		"control in topic":  func(p *groupProfile) { p.Topic = "a\x1b[2Jb" },
		"newline in topic":  func(p *groupProfile) { p.Topic = "a\nb" },
		"not UTF-8":         func(p *groupProfile) { p.Name = "\xff" },
		"short picture key": func(p *groupProfile) { p.Picture.Key = p.Picture.Key[:16] },
		"empty picture":     func(p *groupProfile) { p.Picture.Size = 0 },
		"huge picture":      func(p *groupProfile) { p.Picture.Size = maxPictureBytes + 1 },
		"short blob id":     func(p *groupProfile) { p.Picture.Blob = "abcd" },
		"control in ptype":  func(p *groupProfile) { p.Picture.Type = "image/\x00png" },
	}
	for name, edit := range bad {
		p := sampleProfile()
		edit(p)
		if _, err := parseGroupState(p.marshal()); !errors.Is(err, ErrBadGroupState) {
			t.Errorf("%s: %v, want ErrBadGroupState", name, err)
		}
	}
	good := sampleProfile().marshal()
	for _, b := range [][]byte{nil, {2}, good[:len(good)-1], append(bytes.Clone(good), 0)} {
		if _, err := parseGroupState(b); !errors.Is(err, ErrBadGroupState) {
			t.Errorf("%x: %v, want ErrBadGroupState", b, err)
		}
	}
}

func TestCommitPolicy(t *testing.T) {
	st := &groupProfile{Admins: []string{"alice"}}
	ext := mls.Extensions{st.extension()}
	members := map[string]bool{"alice": true, "bob": true, "carol": true}
	renamed := *st
	renamed.Name = "x"
	cases := []struct {
		name string
		new  mls.Extensions
		ch   commitChange
		ok   bool
	}{
		{"admin adds", ext, commitChange{Committer: "alice", Added: []Sender{{User: "dave"}}}, true},
		{"member adds", ext, commitChange{Committer: "bob", Added: []Sender{{User: "dave"}}}, false},
		{"member adds own device", ext, commitChange{Committer: "bob", Added: []Sender{{User: "bob", Device: "d2"}}}, true},
		{"member removes", ext, commitChange{Committer: "bob", Removed: []Sender{{User: "carol"}}}, false},
		{"member commits a leave", ext, commitChange{Committer: "bob", Removed: []Sender{{User: "carol"}}, LeftOnOwn: func(Sender) bool { return true }}, true},
		{"member renames", mls.Extensions{renamed.extension()}, commitChange{Committer: "bob"}, false},
		{"admin renames", mls.Extensions{renamed.extension()}, commitChange{Committer: "alice"}, true},
		{"member promotes self", mls.Extensions{st.withAdmin("bob", true).extension()}, commitChange{Committer: "bob"}, false},
		{"admin drops the roles", mls.Extensions{}, commitChange{Committer: "alice"}, false},
		{"garbage state", mls.Extensions{{Type: extensionGroupState, Data: []byte{1, 2}}}, commitChange{Committer: "alice"}, false},
		{"member updates only", ext, commitChange{Committer: "bob"}, true},
	}
	for _, c := range cases {
		c.ch.Members = members
		err := checkCommitPolicy(ext, c.new, c.ch)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPolicy)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// No roles (direct conversations, older groups): anything goes.
	if err := checkCommitPolicy(mls.Extensions{}, mls.Extensions{}, commitChange{Committer: "bob", Removed: []Sender{{User: "carol"}}}); err != nil {
		t.Error(err)
	}
	// When no member is an admin any more, members act as admins.
	if err := checkCommitPolicy(ext, ext, commitChange{Committer: "bob", Members: map[string]bool{"bob": true, "carol": true}, Added: []Sender{{User: "dave"}}}); err != nil {
		t.Errorf("group without admins: %v", err)
	}
}

// FuzzGroupState: whatever a member puts in the extension, the decoder
// either rejects it with ErrBadGroupState or accepts exactly the
// canonical encoding of what it returns.
func FuzzGroupState(f *testing.F) {
	f.Add(sampleProfile().marshal())
	f.Add((&groupProfile{Admins: []string{"alice"}}).marshal())
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseGroupState(b)
		if err != nil {
			if !errors.Is(err, ErrBadGroupState) {
				t.Fatalf("error without ErrBadGroupState: %v", err)
			}
			return
		}
		if !bytes.Equal(p.marshal(), b) {
			t.Fatalf("accepted a non-canonical encoding %x", b)
		}
	})
}
