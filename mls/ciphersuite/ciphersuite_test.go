package ciphersuite

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// hexBytes decodes a hex string from the test-vector JSON.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type cryptoBasics struct {
	CipherSuite ID `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func TestCryptoBasicsVectors(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "mls", "crypto-basics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []cryptoBasics
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) != 7 {
		t.Fatalf("got %d vectors, want 7", len(vectors))
	}
	for _, v := range vectors {
		s, err := Lookup(v.CipherSuite)
		if err != nil {
			t.Fatalf("suite %d: %v", v.CipherSuite, err)
		}
		t.Run(s.String(), func(t *testing.T) {
			if got := s.RefHash(v.RefHash.Label, v.RefHash.Value); !bytes.Equal(got, v.RefHash.Out) {
				t.Errorf("RefHash = %x, want %x", got, v.RefHash.Out)
			}
			e := v.ExpandWithLabel
			if got := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length); !bytes.Equal(got, e.Out) {
				t.Errorf("ExpandWithLabel = %x, want %x", got, e.Out)
			}
			d := v.DeriveSecret
			if got := s.DeriveSecret(d.Secret, d.Label); !bytes.Equal(got, d.Out) {
				t.Errorf("DeriveSecret = %x, want %x", got, d.Out)
			}
			dt := v.DeriveTreeSecret
			if got := s.DeriveTreeSecret(dt.Secret, dt.Label, dt.Generation, dt.Length); !bytes.Equal(got, dt.Out) {
				t.Errorf("DeriveTreeSecret = %x, want %x", got, dt.Out)
			}

			sw := v.SignWithLabel
			if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sw.Signature); err != nil {
				t.Errorf("VerifyWithLabel(vector signature): %v", err)
			}
			signer, err := s.NewSigner(sw.Priv)
			if err != nil {
				t.Fatalf("NewSigner: %v", err)
			}
			if !bytes.Equal(signer.Public(), sw.Pub) {
				t.Errorf("Signer.Public = %x, want %x", signer.Public(), sw.Pub)
			}
			sig, err := signer.SignWithLabel(sw.Label, sw.Content)
			if err != nil {
				t.Fatalf("SignWithLabel: %v", err)
			}
			if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sig); err != nil {
				t.Errorf("VerifyWithLabel(own signature): %v", err)
			}
			if err := s.VerifyWithLabel(sw.Pub, sw.Label+"x", sw.Content, sig); !errors.Is(err, ErrVerify) {
				t.Errorf("VerifyWithLabel with another label: err = %v, want ErrVerify", err)
			}

			ew := v.EncryptWithLabel
			pt, err := s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, ew.KEMOutput, ew.Ciphertext)
			if err != nil {
				t.Fatalf("DecryptWithLabel(vector): %v", err)
			}
			if !bytes.Equal(pt, ew.Plaintext) {
				t.Errorf("DecryptWithLabel = %x, want %x", pt, ew.Plaintext)
			}
			kemOut, ct, err := s.EncryptWithLabel(ew.Pub, ew.Label, ew.Context, ew.Plaintext)
			if err != nil {
				t.Fatalf("EncryptWithLabel: %v", err)
			}
			pt, err = s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, kemOut, ct)
			if err != nil || !bytes.Equal(pt, ew.Plaintext) {
				t.Errorf("round trip: %x, %v; want %x", pt, err, ew.Plaintext)
			}
			if pub, err := s.HPKEPublicKey(ew.Priv); err != nil || !bytes.Equal(pub, ew.Pub) {
				t.Errorf("HPKEPublicKey = %x, %v; want %x", pub, err, ew.Pub)
			}
		})
	}
}
