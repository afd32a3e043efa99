package client

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/content"
)

// FuzzJoinRequest: a join request from a stranger either is refused as
// malformed content or holds a handle and a secret of the right sizes
// that encode back to a request meaning the same.
func FuzzJoinRequest(f *testing.F) {
	good, _ := content.Marshal(joinRequest{Handle: make([]byte, inviteHandleSz), Secret: bytes.Repeat([]byte{1}, inviteSecretSz)})
	f.Add(good)
	f.Add([]byte{0x82, 0x40, 0x40})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseJoinRequest(b)
		if err != nil {
			if !errors.Is(err, errBadContent) {
				t.Fatalf("error without errBadContent: %v", err)
			}
			return
		}
		if len(req.Handle) != inviteHandleSz || len(req.Secret) != inviteSecretSz {
			t.Fatalf("accepted sizes %d, %d", len(req.Handle), len(req.Secret))
		}
		again, err := content.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseJoinRequest(again)
		if err != nil || !bytes.Equal(back.Handle, req.Handle) || !bytes.Equal(back.Secret, req.Secret) {
			t.Fatalf("re-encoded request: %+v, %v", back, err)
		}
	})
}

// FuzzParseInvite: a pasted code is refused with ErrBadInvite or names a
// valid user with a handle and secret that format back to the same code.
func FuzzParseInvite(f *testing.F) {
	key := base64.RawURLEncoding.EncodeToString(make([]byte, inviteHandleSz+inviteSecretSz))
	f.Add(invitePrefix + "alice:" + key)
	f.Add(invitePrefix + "alice:")
	f.Add("parley-invite:Alice:" + key)
	f.Add(invitePrefix + "alice:" + key[:len(key)-1] + "B") // non-zero padding bits
	f.Fuzz(func(t *testing.T, code string) {
		inviter, req, err := parseInvite(code)
		if err != nil {
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("error without ErrBadInvite: %v", err)
			}
			return
		}
		again := invitePrefix + inviter + ":" + base64.RawURLEncoding.EncodeToString(append(bytes.Clone(req.Handle), req.Secret...))
		if again != strings.TrimSpace(code) {
			t.Fatalf("%q formats back as %q", code, again)
		}
	})
}
