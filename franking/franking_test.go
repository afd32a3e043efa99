package franking

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func honest(t testing.TB, key ed25519.PrivateKey, now time.Time) Reported {
	salt := make([]byte, SaltSize)
	rand.Read(salt)
	content := []byte("the exact content bytes")
	tag, err := Tag(salt, content)
	if err != nil {
		t.Fatal(err)
	}
	c := Context{Conversation: []byte("conv"), SenderUser: "mallory", SenderDevice: "dev1", Accepted: now.Add(-time.Hour).Truncate(time.Millisecond)}
	frank, err := Frank(key, tag, c)
	if err != nil {
		t.Fatal(err)
	}
	return Reported{Context: c, Content: content, Salt: salt, Tag: tag, Frank: frank}
}

// Each of the reporter's possible lies is caught, and the honest report
// verifies.
func TestVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	if err := Verify(pub, honest(t, key, now), now, DefaultMaxAge); err != nil {
		t.Fatalf("honest report: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		lie  func(m *Reported)
		pub  ed25519.PublicKey
		now  time.Time
		want error
	}{
		{"altered content", func(m *Reported) { m.Content = []byte("what the reporter wishes was said") }, pub, now, ErrAltered},
		{"another salt", func(m *Reported) { m.Salt = make([]byte, SaltSize) }, pub, now, ErrAltered},
		{"re-attributed", func(m *Reported) { m.SenderUser = "alice" }, pub, now, ErrForged},
		{"another device", func(m *Reported) { m.SenderDevice = "dev2" }, pub, now, ErrForged},
		{"another conversation", func(m *Reported) { m.Conversation = []byte("other") }, pub, now, ErrForged},
		{"another time", func(m *Reported) { m.Accepted = m.Accepted.Add(time.Second) }, pub, now, ErrForged},
		{"forged frank", func(m *Reported) { m.Frank = bytes.Repeat([]byte{1}, 64) }, pub, now, ErrForged},
		{"another server", func(m *Reported) {}, other, now, ErrForged},
		{"another tag", func(m *Reported) { m.Tag, _ = Tag(m.Salt, []byte("x")) }, pub, now, ErrForged},
		{"too old", func(m *Reported) {}, pub, now.Add(31 * 24 * time.Hour), ErrTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := honest(t, key, now)
			tc.lie(&m)
			if err := Verify(tc.pub, m, tc.now, DefaultMaxAge); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAAD(t *testing.T) {
	tag := bytes.Repeat([]byte{7}, TagSize)
	got, err := TagFromAAD(AAD(tag))
	if err != nil || !bytes.Equal(got, tag) {
		t.Fatalf("round trip: %x %v", got, err)
	}
	if _, err := TagFromAAD(nil); !errors.Is(err, ErrNoTag) {
		t.Fatalf("empty AAD: %v", err)
	}
	if _, err := TagFromAAD(AAD(tag)[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short AAD: %v", err)
	}
}

func FuzzTagFromAAD(f *testing.F) {
	f.Add(AAD(bytes.Repeat([]byte{7}, TagSize)))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := TagFromAAD(b)
		if err != nil {
			return
		}
		if !bytes.Equal(AAD(tag), b) {
			t.Fatal("accepted an AAD that is not the encoding of its tag")
		}
	})
}

// FuzzVerify: a report's fields are the reporter's to choose; whatever
// they are, Verify does not panic and accepts only a genuine franked
// message (here, none but the seed's).
func FuzzVerify(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	h := honest(f, key, now)
	f.Add(h.Conversation, h.SenderUser, h.SenderDevice, h.Accepted.UnixMilli(), h.Content, h.Salt, h.Tag, h.Frank)
	f.Fuzz(func(t *testing.T, conv []byte, user, dev string, ms int64, content, salt, tag, frank []byte) {
		m := Reported{Context: Context{Conversation: conv, SenderUser: user, SenderDevice: dev, Accepted: time.UnixMilli(ms)},
			Content: content, Salt: salt, Tag: tag, Frank: frank}
		if Verify(pub, m, now, DefaultMaxAge) != nil {
			return
		}
		if !bytes.Equal(content, h.Content) || !bytes.Equal(tag, h.Tag) || user != h.SenderUser || dev != h.SenderDevice || !bytes.Equal(conv, h.Conversation) {
			t.Fatalf("accepted a message the server never franked: %+v", m)
		}
	})
}
