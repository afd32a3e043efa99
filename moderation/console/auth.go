package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id's cost parameters (RFC 9106).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 is RFC 9106's second recommended option (§4: 64 MiB,
// three passes), with two lanes.
var DefaultArgon2 = Argon2Params{Memory: 64 << 10, Time: 3, Threads: 2}

// HashPassword hashes a password with argon2id under a fresh salt and
// returns it in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), which carries its
// parameters so that they can change without invalidating old hashes.
func HashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(h)), nil
}

// CheckPassword reports whether password matches a HashPassword hash
// (compared in constant time).
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// MinPassword is the shortest password a moderator may have.
const MinPassword = 12

// CheckNewPassword says what is wrong with a new password, if anything.
func CheckNewPassword(pw string) error {
	if len([]rune(pw)) < MinPassword {
		return fmt.Errorf("a moderator's password has at least %d characters", MinPassword)
	}
	return nil
}

// TOTP is RFC 6238 with its defaults (HMAC-SHA1, 30-second steps, six
// digits), which every authenticator app implements: written out here in
// a few lines rather than taken from a module.
const (
	totpStep   = 30 * time.Second
	totpDigits = 6
)

// NewTOTPSecret returns a fresh 160-bit TOTP secret (RFC 4226 §4's
// recommended length).
func NewTOTPSecret() []byte {
	b := make([]byte, 20)
	rand.Read(b)
	return b
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// TOTPSecretText is the secret as authenticator apps take it (base32).
func TOTPSecretText(secret []byte) string { return b32.EncodeToString(secret) }

// TOTPURL is the otpauth:// URL (the de facto Key URI format) that an
// authenticator app reads from a QR code or a paste.
func TOTPURL(issuer, name string, secret []byte) string {
	v := url.Values{"secret": {TOTPSecretText(secret)}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + url.PathEscape(issuer+":"+name) + "?" + v.Encode()
}

// TOTPCode returns the code for secret at t.
func TOTPCode(secret []byte, t time.Time) string {
	return hotp(secret, uint64(t.Unix())/uint64(totpStep/time.Second))
}

func hotp(secret []byte, counter uint64) string {
	m := hmac.New(sha1.New, secret)
	binary.Write(m, binary.BigEndian, counter)
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, v%1_000_000)
}

var errTOTP = errors.New("wrong code")

// checkTOTP accepts the code of the current step or of the one before or
// after (clock drift, RFC 6238 §5.2), and returns its step: the caller
// records it in the store (moderation.Store.UseTOTPStep), which refuses a
// step not above the last one used, on every node, so a code is used once.
func checkTOTP(secret []byte, code string, now time.Time) (uint64, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != totpDigits {
		return 0, errTOTP
	}
	c := uint64(now.Unix()) / uint64(totpStep/time.Second)
	for _, step := range []uint64{c - 1, c, c + 1} {
		if subtle.ConstantTimeCompare([]byte(hotp(secret, step)), []byte(code)) == 1 {
			return step, nil
		}
	}
	return 0, errTOTP
}
