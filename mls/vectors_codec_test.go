package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// TestVectorMessagesRoundTrip decodes every MLS message, proposal, commit
// and ratchet tree carried by the protocol-level vector files and checks
// that each re-encodes to the same bytes. The protocol checks on them
// belong to the group tests; this isolates the codec.
func TestVectorMessagesRoundTrip(t *testing.T) {
	kinds := map[string]func() roundTripper{
		"key_package":      func() roundTripper { return new(MLSMessage) },
		"welcome":          func() roundTripper { return new(MLSMessage) },
		"commit":           func() roundTripper { return new(MLSMessage) },
		"proposals":        func() roundTripper { return new(MLSMessage) },
		"proposal_pub":     func() roundTripper { return new(MLSMessage) },
		"proposal_priv":    func() roundTripper { return new(MLSMessage) },
		"commit_pub":       func() roundTripper { return new(MLSMessage) },
		"commit_priv":      func() roundTripper { return new(MLSMessage) },
		"application_priv": func() roundTripper { return new(MLSMessage) },
	}
	files := []string{"welcome.json", "passive-client-welcome.json", "message-protection.json", "interop-passive/application.json", "interop-passive/welcome_join.json", "interop-passive/external_join.json"}
	counts := map[string]int{}
	for _, file := range files {
		raw, err := os.ReadFile(shareddata.Path(t, "testdata", "mls", file))
		if err != nil {
			t.Fatal(err)
		}
		var entries []map[string]any
		if err := json.Unmarshal(raw, &entries); err != nil {
			t.Fatal(err)
		}
		var walk func(key string, v any)
		walk = func(key string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					walk(k, x)
				}
			case []any:
				for _, x := range v {
					walk(key, x)
				}
			case string:
				data, err := hex.DecodeString(v)
				if err != nil {
					return
				}
				var enc []byte
				switch {
				case key == "ratchet_tree":
					tree, err := DecodeRatchetTree(nil, data)
					if err != nil {
						t.Fatalf("%s: ratchet_tree: %v", file, err)
					}
					enc = tree.Marshal()
				case key == "commit" && file == "message-protection.json":
					var c Commit
					if err := c.Unmarshal(data); err != nil {
						t.Fatalf("%s: commit: %v", file, err)
					}
					enc = c.Marshal()
				case key == "proposal" && file == "message-protection.json":
					var p Proposal
					if err := p.Unmarshal(data); err != nil {
						t.Fatalf("%s: proposal: %v", file, err)
					}
					enc = p.Marshal()
				case kinds[key] != nil:
					m := kinds[key]()
					if err := m.Unmarshal(data); err != nil {
						t.Fatalf("%s: %s: %v", file, key, err)
					}
					enc = m.Marshal()
				default:
					return
				}
				if !bytes.Equal(enc, data) {
					t.Fatalf("%s: %s does not re-encode to the same bytes", file, key)
				}
				counts[key]++
			}
		}
		for _, e := range entries {
			walk("", e)
			// Trees given out of band must also be parent-hash valid.
			if s, ok := e["ratchet_tree"].(string); ok {
				suite := vectorSuite(t, uint16(e["cipher_suite"].(float64)))
				data, _ := hex.DecodeString(s)
				tree, err := DecodeRatchetTree(suite, data)
				if err != nil {
					t.Fatal(err)
				}
				if err := tree.VerifyParentHashes(); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
			}
		}
	}
	t.Logf("round-tripped: %v", counts)
	for _, k := range []string{"key_package", "welcome", "commit", "ratchet_tree", "proposal_priv", "commit_pub"} {
		if counts[k] == 0 {
			t.Errorf("no %s found in the vectors", k)
		}
	}
}
