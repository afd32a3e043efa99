package keyschedule

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/treemath"
)

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

func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "mls", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func lookup(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %x, want %x", what, got, want)
	}
}

// encodeGroupContext builds a GroupContext with no extensions (§8.1), as
// the key-schedule vectors specify.
func encodeGroupContext(suite ciphersuite.ID, groupID []byte, epoch uint64, treeHash, confirmed []byte) []byte {
	w := codec.NewWriter(nil)
	w.U16(1) // mls10
	w.U16(uint16(suite))
	w.Opaque(groupID)
	w.U64(epoch)
	w.Opaque(treeHash)
	w.Opaque(confirmed)
	w.Opaque(nil) // extensions
	return w.Bytes()
}

func TestKeyScheduleVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite       ciphersuite.ID `json:"cipher_suite"`
		GroupID           hexBytes       `json:"group_id"`
		InitialInitSecret hexBytes       `json:"initial_init_secret"`
		Epochs            []struct {
			TreeHash                hexBytes `json:"tree_hash"`
			CommitSecret            hexBytes `json:"commit_secret"`
			PSKSecret               hexBytes `json:"psk_secret"`
			ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
			GroupContext            hexBytes `json:"group_context"`
			JoinerSecret            hexBytes `json:"joiner_secret"`
			WelcomeSecret           hexBytes `json:"welcome_secret"`
			InitSecret              hexBytes `json:"init_secret"`
			SenderDataSecret        hexBytes `json:"sender_data_secret"`
			EncryptionSecret        hexBytes `json:"encryption_secret"`
			ExporterSecret          hexBytes `json:"exporter_secret"`
			EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
			ExternalSecret          hexBytes `json:"external_secret"`
			ConfirmationKey         hexBytes `json:"confirmation_key"`
			MembershipKey           hexBytes `json:"membership_key"`
			ResumptionPSK           hexBytes `json:"resumption_psk"`
			ExternalPub             hexBytes `json:"external_pub"`
			Exporter                struct {
				Label   string   `json:"label"` // used verbatim, though it looks like hex
				Context hexBytes `json:"context"`
				Length  int      `json:"length"`
				Secret  hexBytes `json:"secret"`
			} `json:"exporter"`
		} `json:"epochs"`
	}
	loadVectors(t, "key-schedule.json", &vectors)
	if len(vectors) != 7 {
		t.Fatalf("got %d vectors, want 7", len(vectors))
	}
	for _, v := range vectors {
		s := lookup(t, v.CipherSuite)
		t.Run(s.String(), func(t *testing.T) {
			initSecret := []byte(v.InitialInitSecret)
			for i, ep := range v.Epochs {
				gc := encodeGroupContext(v.CipherSuite, v.GroupID, uint64(i), ep.TreeHash, ep.ConfirmedTranscriptHash)
				eq(t, "group_context", gc, ep.GroupContext)
				e, err := NewEpoch(s, initSecret, ep.CommitSecret, ep.PSKSecret, gc)
				if err != nil {
					t.Fatalf("epoch %d: %v", i, err)
				}
				eq(t, "joiner_secret", e.JoinerSecret, ep.JoinerSecret)
				eq(t, "welcome_secret", e.WelcomeSecret, ep.WelcomeSecret)
				eq(t, "init_secret", e.InitSecret, ep.InitSecret)
				eq(t, "sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret)
				eq(t, "encryption_secret", e.EncryptionSecret, ep.EncryptionSecret)
				eq(t, "exporter_secret", e.ExporterSecret, ep.ExporterSecret)
				eq(t, "epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator)
				eq(t, "external_secret", e.ExternalSecret, ep.ExternalSecret)
				eq(t, "confirmation_key", e.ConfirmationKey, ep.ConfirmationKey)
				eq(t, "membership_key", e.MembershipKey, ep.MembershipKey)
				eq(t, "resumption_psk", e.ResumptionPSK, ep.ResumptionPSK)
				_, pub, err := e.ExternalKeyPair()
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "external_pub", pub, ep.ExternalPub)
				exp, err := e.Export(ep.Exporter.Label, ep.Exporter.Context, ep.Exporter.Length)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "exporter", exp, ep.Exporter.Secret)

				// A joiner starting from joiner_secret reaches the same epoch.
				ws, err := WelcomeSecret(s, ep.JoinerSecret, ep.PSKSecret)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "WelcomeSecret", ws, ep.WelcomeSecret)
				j, err := FromJoinerSecret(s, bytes.Clone(ep.JoinerSecret), ep.PSKSecret, gc)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "joiner's epoch_authenticator", j.EpochAuthenticator, ep.EpochAuthenticator)
				eq(t, "joiner's init_secret", j.InitSecret, ep.InitSecret)

				initSecret = e.InitSecret
			}
		})
	}
}

func TestPSKSecretVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite ciphersuite.ID `json:"cipher_suite"`
		PSKs        []struct {
			PSKID    hexBytes `json:"psk_id"`
			PSK      hexBytes `json:"psk"`
			PSKNonce hexBytes `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret hexBytes `json:"psk_secret"`
	}
	loadVectors(t, "psk_secret.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vectors {
		s := lookup(t, v.CipherSuite)
		var psks []PSK
		for _, p := range v.PSKs {
			id := PreSharedKeyID{Type: PSKExternal, ExternalID: p.PSKID, Nonce: p.PSKNonce}
			enc, err := id.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			psks = append(psks, PSK{ID: enc, Secret: p.PSK})
		}
		got, err := PSKSecret(s, psks)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v.PSKSecret) {
			t.Errorf("vector %d (suite %d, %d PSKs): psk_secret = %x, want %x", i, v.CipherSuite, len(psks), got, v.PSKSecret)
		}
	}
}

func TestSecretTreeVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite      ciphersuite.ID `json:"cipher_suite"`
		EncryptionSecret hexBytes       `json:"encryption_secret"`
		SenderData       struct {
			SenderDataSecret hexBytes `json:"sender_data_secret"`
			Ciphertext       hexBytes `json:"ciphertext"`
			Key              hexBytes `json:"key"`
			Nonce            hexBytes `json:"nonce"`
		} `json:"sender_data"`
		Leaves [][]struct {
			Generation       uint32   `json:"generation"`
			ApplicationKey   hexBytes `json:"application_key"`
			ApplicationNonce hexBytes `json:"application_nonce"`
			HandshakeKey     hexBytes `json:"handshake_key"`
			HandshakeNonce   hexBytes `json:"handshake_nonce"`
		} `json:"leaves"`
	}
	loadVectors(t, "secret-tree.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	checked := 0
	for _, v := range vectors {
		s := lookup(t, v.CipherSuite)
		key, nonce := SenderDataKeyNonce(s, v.SenderData.SenderDataSecret, v.SenderData.Ciphertext)
		eq(t, "sender data key", key, v.SenderData.Key)
		eq(t, "sender data nonce", nonce, v.SenderData.Nonce)

		tree, err := NewSecretTree(s, bytes.Clone(v.EncryptionSecret), uint32(len(v.Leaves)), Window{})
		if err != nil {
			t.Fatal(err)
		}
		for l, gens := range v.Leaves {
			for _, g := range gens {
				leaf := treemath.LeafIndex(l)
				hs, err := tree.Key(leaf, HandshakeRatchet, g.Generation)
				if err != nil {
					t.Fatalf("suite %d leaf %d generation %d: %v", v.CipherSuite, l, g.Generation, err)
				}
				app, err := tree.Key(leaf, ApplicationRatchet, g.Generation)
				if err != nil {
					t.Fatalf("suite %d leaf %d generation %d: %v", v.CipherSuite, l, g.Generation, err)
				}
				eq(t, "handshake key", hs.Key, g.HandshakeKey)
				eq(t, "handshake nonce", hs.Nonce, g.HandshakeNonce)
				eq(t, "application key", app.Key, g.ApplicationKey)
				eq(t, "application nonce", app.Nonce, g.ApplicationNonce)
				checked++
			}
		}
	}
	t.Logf("checked %d leaf generations", checked)
}

func TestTranscriptHashVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite                 ciphersuite.ID `json:"cipher_suite"`
		ConfirmationKey             hexBytes       `json:"confirmation_key"`
		AuthenticatedContent        hexBytes       `json:"authenticated_content"`
		InterimTranscriptHashBefore hexBytes       `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHash     hexBytes       `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHash       hexBytes       `json:"interim_transcript_hash_after"`
	}
	loadVectors(t, "transcript-hashes.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		s := lookup(t, v.CipherSuite)
		// AuthenticatedContent ends with FramedContentAuthData, whose last
		// field for a Commit is confirmation_tag<V>: an Nh-byte MAC behind
		// its length header. Everything before it is exactly the
		// ConfirmedTranscriptHashInput (wire_format, content, signature).
		ac := v.AuthenticatedContent
		hdr := codec.AppendVarint(nil, s.Nh())
		n := len(ac) - s.Nh() - len(hdr)
		if n < 0 || !bytes.Equal(ac[n:n+len(hdr)], hdr) {
			t.Fatalf("suite %d: authenticated_content does not end with an Nh-byte confirmation tag", v.CipherSuite)
		}
		confirmedInput, tag := ac[:n], ac[n+len(hdr):]
		confirmed := ConfirmedTranscriptHash(s, v.InterimTranscriptHashBefore, confirmedInput)
		eq(t, "confirmed_transcript_hash", confirmed, v.ConfirmedTranscriptHash)
		e := &Epoch{Suite: s, ConfirmationKey: v.ConfirmationKey}
		if err := e.VerifyConfirmationTag(confirmed, tag); err != nil {
			t.Errorf("suite %d: confirmation tag: %v", v.CipherSuite, err)
		}
		eq(t, "interim_transcript_hash", InterimTranscriptHash(s, confirmed, tag), v.InterimTranscriptHash)
	}
}
