package mls

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

type passiveClientVector struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	KeyPackage     hexBytes `json:"key_package"`
	SignaturePriv  hexBytes `json:"signature_priv"`
	EncryptionPriv hexBytes `json:"encryption_priv"`
	InitPriv       hexBytes `json:"init_priv"`
	Welcome        hexBytes `json:"welcome"`
	RatchetTree    hexBytes `json:"ratchet_tree"`
	ExternalPSKs   []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func TestPassiveClientVectors(t *testing.T) {
	for _, file := range []string{
		"passive-client-welcome.json",
		"interop-passive/application.json",
		"interop-passive/welcome_join.json",
		"interop-passive/external_join.json",
		// Upstream files not in the shared folder (see testdata/passive/SOURCE.md).
		"testdata/passive/passive-client-handling-commit.json",
		"testdata/passive/passive-client-random.json",
	} {
		t.Run(file, func(t *testing.T) {
			var vectors []passiveClientVector
			if filepath.Dir(file) == "testdata/passive" {
				raw, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(raw, &vectors); err != nil {
					t.Fatal(err)
				}
			} else {
				loadVectors(t, file, &vectors)
			}
			passed, epochs := 0, 0
			for i, v := range vectors {
				t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
					if vectorSuite(t, v.CipherSuite) == nil {
						t.Fatalf("suite %d unsupported", v.CipherSuite)
					}
					epochs += runPassiveClient(t, &v)
					if !t.Failed() {
						passed++
					}
				})
			}
			t.Logf("%s: %d/%d entries passed, %d epochs followed", file, passed, len(vectors), epochs)
		})
	}
}

func runPassiveClient(t *testing.T, v *passiveClientVector) int {
	kp, err := parseKeyPackage(v.KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	bundle := &KeyPackageBundle{KeyPackage: *kp, InitPriv: v.InitPriv, EncryptionPriv: v.EncryptionPriv, SignaturePriv: v.SignaturePriv}
	psks := map[string][]byte{}
	for _, p := range v.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := &Config{PSKLookup: func(id []byte) ([]byte, bool) { s, ok := psks[string(id)]; return s, ok }}
	g, err := JoinFromWelcome(v.Welcome, bundle, v.RatchetTree, cfg)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		t.Fatal("initial epoch authenticator differs")
	}
	for i, ep := range v.Epochs {
		for j, p := range ep.Proposals {
			if _, err := g.Process(p); err != nil {
				t.Fatalf("epoch %d proposal %d: %v", i, j, err)
			}
		}
		res, err := g.Process(ep.Commit)
		if err != nil {
			t.Fatalf("epoch %d commit: %v", i, err)
		}
		if res.Kind != ResultCommit {
			t.Fatalf("epoch %d: result kind %d", i, res.Kind)
		}
		if !bytes.Equal(g.EpochAuthenticator(), ep.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator differs", i)
		}
	}
	return len(v.Epochs)
}
