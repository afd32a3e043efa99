package content

import (
	"encoding/hex"
	"strings"
	"testing"
)

// The examples of draft-ietf-mimi-content-08 (§5 and Appendix C), rebuilt
// from the values their annotated EDN gives, with the message id the draft
// states for each. The id is a SHA-256 over the encoding, so a matching id
// means this package encodes each example to the draft's exact bytes; the
// test also decodes those bytes again.
const (
	room  = "mimi://example.com/r/engineering_team"
	alice = "mimi://example.com/u/alice-smith"
	bob   = "mimi://example.com/u/bob-jones"
	cathy = "mimi://example.com/u/cathy-washington"

	idOriginal = "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4"
	idReply    = "015354973c2b65ca937bf1e035ae53a5ab80e947afa43d46920d4202e5cc0b27"
	idReaction = "0158c4288911e50a8f6be3f47746b6682f10fd91bc8c05557aa589a3157aff68"
)

type draftExample struct {
	name   string
	sender string
	id     string
	c      Content
}

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func salt(s string) (out [SaltSize]byte) { copy(out[:], h(s)); return }

func mid(s string) *MessageID {
	var id MessageID
	copy(id[:], h(s))
	return &id
}

func uris(t testing.TB, sender string) []Extension {
	var c Content
	if err := c.SetExtension(SenderURIKey, sender); err != nil {
		t.Fatal(err)
	}
	if err := c.SetExtension(RoomURIKey, room); err != nil {
		t.Fatal(err)
	}
	return c.Extensions
}

func single(d Disposition, lang, ctype, body string) Part {
	return Part{Disposition: d, Language: lang, Cardinality: SinglePart, ContentType: ctype, Content: []byte(body)}
}

func draftExamples(t testing.TB) []draftExample {
	const md = TypeMarkdown
	html := func(lang, title, n, alt string) Part {
		return single(Render, lang, "text/html;charset=utf-8",
			"<html><body><h1>"+title+"</h1>\n<img src=\"cid:"+n+"@local.invalid\" alt=\""+alt+"\"/>\n</body></html>")
	}
	choice := func(n string) Part {
		return Part{Disposition: Render, Cardinality: MultiPart, Semantics: ChooseOne,
			Parts: []Part{html("en", "Welcome!", n, "Welcome image"), html("fr", "Bienvenue!", n, "Image bienvenue")}}
	}
	return []draftExample{
		{"original (§5.1)", alice, idOriginal, Content{Salt: salt("5eed9406c2545547ab6f09f20a18b003"),
			Extensions: uris(t, alice), Body: single(Render, "", md, "Hi everyone, we just shipped release 2.0. __Good  work__!")}},
		{"reply (§5.2)", bob, idReply, Content{Salt: salt("11a458c73b8dd2cf404db4b378b8fe4d"), InReplyTo: mid(idOriginal),
			Extensions: uris(t, bob), Body: single(Render, "", md, "Right on! _Congratulations_ 'all!")}},
		{"reaction (§5.3)", cathy, idReaction, Content{Salt: salt("d37bc0e6a8b4f04e9e6382375f587bf6"), InReplyTo: mid(idOriginal),
			Extensions: uris(t, cathy), Body: single(Reaction, "", TypePlainText, "\u2764")}},
		{"mention (§5.4)", cathy, "018d825adf9f6be00dcafc5704c4102f5022e74219d0b603e4ba7622654042af", Content{
			Salt: salt("04f290e215d0f82d1750bfa8b7dc089d"), InReplyTo: mid(idOriginal), Extensions: uris(t, cathy),
			Body: single(Render, "", md, "Kudos to [@Alice Smith](mimi://example.com/u/alice-smith) for making the release happen!")}},
		{"mention in HTML (§5.4)", cathy, "01967ff8e9a66819738ad5cf26d2e0388a3b81d86b0f61d129c077d043ee2a4e", Content{
			Salt: salt("15d9705fd5bf5e02b0af47c85f8b98fe"), InReplyTo: mid(idOriginal), Extensions: uris(t, cathy),
			Body: single(Render, "", "text/html;charset=utf-8", `<p>Kudos to <a href="mimi://example.com/u/alice-smith">@Alice Smith</a> for making the release happen!</p>`)}},
		{"edit (§5.5)", bob, "014028c0deddbdea56bec26172f6ede953d11024cb82b8192b5e2aea62d7fb47", Content{
			Salt: salt("b8c2e6d8800ecf45df39be6c45f4c042"), Replaces: mid(idReply), InReplyTo: mid(idOriginal), Extensions: uris(t, bob),
			Body: single(Render, "", md, "Right on! _Congratulations_ y'all!")}},
		{"delete (§5.6)", bob, "011d9efc78d04d4dcf4d82b07d5199bbef37011c1f0c7e004b6111c6dda504b4", Content{
			Salt: salt("0a590d73b2c7761c39168be5ebf7f2e6"), Replaces: mid(idReply), InReplyTo: mid(idOriginal), Extensions: uris(t, bob),
			Body: Part{Disposition: Render, Cardinality: NullPart}}},
		{"unlike (§5.7)", cathy, "013aadbb8f313253c8930f4e93c6ca54b2ed06d258185bdcec3870534c8a4ec4", Content{
			Salt: salt("c5ba86dc9fd272e58ca52ec805b79199"), Replaces: mid(idReaction), InReplyTo: mid(idOriginal), Extensions: uris(t, cathy),
			Body: Part{Disposition: Reaction, Cardinality: NullPart}}},
		{"expiring (§5.8)", alice, "01e59db8173939facc2c8a4a0f0ae8d0c7a11a81239626630c9464a8d6717a03", Content{
			Salt: salt("33be993eb39f418f9295afc2ae160d2d"), Expires: &Expiration{Relative: false, Time: 1644390004}, Extensions: uris(t, alice),
			Body: single(Render, "", md, "__*VPN GOING DOWN*__ I'm rebooting the VPN in ten minutes unless anyone objects.")}},
		{"attachment (§5.9)", bob, "0176180c7d19a925021fe446d241134d05c38e0d999cdc0f39c391d2377ed9d1", Content{
			Salt: salt("18fac6371e4e53f1aeaf8a013155c166"), Extensions: uris(t, bob),
			Body: Part{Disposition: Attachment, Language: "en", Cardinality: ExternalPart, ContentType: "video/mp4", External: &External{
				URL: "https://example.com/storage/8ksB4bSrrRE.mp4", Size: 708234961, EncAlg: 1,
				Key: h("21399320958a6f4c745dde670d95e0d8"), Nonce: h("c86cf2c33f21527d1dd76f5b"), HashAlg: HashSHA256,
				ContentHash: h("9ab17a8cf0890baaae7ee016c7312fcc080ba46498389458ee44f0276e783163"),
				Description: "2 hours of key signing video", Filename: "bigfile.mp4"}}}},
		{"conferencing (§5.10)", alice, "01496d15a8dba28d7397f9868b70768e4a67f765d5b5b1ae9e03848c5fdeb0ba", Content{
			Salt: salt("678ac6cd54de049c3e9665cd212470fa"), TopicID: []byte("Foo 118"), Extensions: uris(t, alice),
			Body: Part{Disposition: Session, Cardinality: ExternalPart, External: &External{
				URL: "https://example.com/join/12345", Description: "Join the Foo 118 conference"}}}},
		{"multipart-1 (Appendix C.1)", alice, "01da5a515ec5db42cc4dcc19b90c3c31245d8a1cfcce11318f24eb11dce0990e", Content{
			Salt: salt("261c953e178af653fe3d42641b91d814"), Extensions: uris(t, alice),
			Body: Part{Disposition: Render, Cardinality: MultiPart, Semantics: ChooseOne, Parts: []Part{
				single(Render, "", md, "# Welcome!"),
				{Disposition: Render, Cardinality: SinglePart, ContentType: "application/vnd.examplevendor-fancy-im-message", Content: h("dc861ebaa718fd7c3ca159f71a2001")},
			}}}},
		{"multipart-2 (Appendix C.2)", alice, "01d65918c6c51c8e76546337276ae6f4bfd873d867d5cb57c76bcdca3d999dd7", Content{
			Salt: salt("8528dc2d92e4f1944d62042907ab94d0"), Extensions: uris(t, alice),
			Body: Part{Disposition: Reaction, Cardinality: MultiPart, Semantics: ProcessAll, Parts: []Part{
				single(Reaction, "", TypePlainText, "\u2764"), single(Reaction, "", TypePlainText, "\U0001F973"), single(Reaction, "", TypePlainText, "\U0001F91E"),
			}}}},
		{"multipart-3 (Appendix C.3)", alice, "01cfebeadbdb83c1eefb6403ba4852daf8bbbf9cd53bf5035a74d5d741950c9f", Content{
			Salt: salt("b8362793168d18c049b882d4642a2274"), Extensions: uris(t, alice),
			Body: Part{Disposition: Render, Cardinality: MultiPart, Semantics: ChooseOne, Parts: []Part{
				{Disposition: Render, Cardinality: MultiPart, Semantics: ProcessAll, Parts: []Part{
					choice("5"), {Disposition: Inline, Cardinality: SinglePart, ContentType: "image/gif", Content: h("dc861ebaa718fd7c3ca159f71a2001a7")}}},
				{Disposition: Render, Cardinality: MultiPart, Semantics: ProcessAll, Parts: []Part{
					choice("10"), {Disposition: Inline, Cardinality: SinglePart, ContentType: "image/png", Content: h("fa444237451a05a72bb0f67037cc1669")}}},
			}}}},
	}
}

// TestDraftExamples: every example of the draft encodes to bytes whose
// message id is the one the draft gives, and those bytes decode back to
// the same content.
func TestDraftExamples(t *testing.T) {
	for _, ex := range draftExamples(t) {
		t.Run(ex.name, func(t *testing.T) {
			id, b, err := ex.c.MessageID(ex.sender, room)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(id[:]); got != ex.id {
				t.Errorf("message id %s, the draft says %s", got, ex.id)
			}
			back, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			again, err := back.Encode()
			if err != nil || string(again) != string(b) {
				t.Fatalf("re-encoding differs (%v)", err)
			}
			if s, _ := back.Extension(SenderURIKey); string(s) == "" {
				t.Error("sender URI extension lost")
			}
		})
	}
}

// TestDraftOriginalBytes checks the original message (§5.1) byte for byte
// against the hex dump the draft prints.
func TestDraftOriginalBytes(t *testing.T) {
	want := h("87 50 5eed9406c2545547ab6f09f20a18b003 f6 40 f6 f6 a2" +
		" 01 7820 6d696d693a2f2f6578616d706c652e636f6d2f752f616c6963652d736d697468" +
		" 02 7825 6d696d693a2f2f6578616d706c652e636f6d2f722f656e67696e656572696e675f7465616d" +
		" 85 01 60 01 781e 746578742f6d61726b646f776e3b76617269616e743d47464d2d4d494d49" +
		" 5839 48692065766572796f6e652c207765206a75737420736869707065642072656c656173652032" +
		"2e302e205f5f476f6f642020776f726b5f5f21")
	ex := draftExamples(t)[0]
	got, err := ex.c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != hex.EncodeToString(want) {
		t.Fatalf("encoding\n got %x\nwant %x", got, want)
	}
	// The part index of §3.4 / Appendix C.3: 11 parts, depth first.
	mp3 := draftExamples(t)[len(draftExamples(t))-1].c
	var types []string
	mp3.PartIndexes(func(i int, p *Part) {
		if p.Cardinality == SinglePart {
			types = append(types, p.ContentType)
		}
	})
	if len(types) != 6 || types[2] != "image/gif" || types[5] != "image/png" {
		t.Fatalf("part walk: %v", types)
	}
}
