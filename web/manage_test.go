package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/historyfile"
)

// unreadName is the view state the module keeps the unread counts under
// (web/wasm/manage.go).
const unreadName = "web-unread"

// awaitJS evaluates a JavaScript expression that gives a Promise of a
// string and returns the string.
func (p *page) awaitJS(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return s
}

// Message requests, unread counts across a reload, mute and search in
// the browser. The page turns message requests on (alice's CLI device
// gets the setting); two strangers write: their messages wait under
// "Message requests", not in the list, and get no receipt; the page
// deletes erin's and accepts dave's, whose message then shows and is
// read on dave's side while erin's stays "sent". bob's messages count as
// unread, and the count survives a reload (sealed in the profile, not in
// the browser's storage in the clear). Muting bob in the page mutes him
// on alice's CLI device too, and his next message adds no unread count.
// Search finds bob's message by a word of it, and its hit opens his
// conversation. The page exports the history to an encrypted file that a
// new device of alice's imports (dave's message is in it), and imports
// a file alice's CLI device exported (a wrong passphrase refused).
func TestWebRequestsMuteSearchInBrowser(t *testing.T) {
	p := linkedPage(t, "alice", "bob", "dave", "erin")
	bg := context.Background()
	alice, bob, dave, erin := p.users["alice"], p.users["bob"], p.users["dave"], p.users["erin"]

	// bob is a contact: alice wrote to him (from her CLI device).
	if _, err := alice.SendText(bg, "@bob", "hi bob"); err != nil {
		t.Fatal(err)
	}
	// alice's own setting (off, as linkedPage leaves it) reaches the page;
	// the page turns requests on, and alice's CLI device follows.
	p.waitJS("the page shows requests off", `!document.getElementById("setting-requests").checked`)
	p.do("turning message requests on", chromedp.Focus(chromedp.CSS("#setting-requests")), chromedp.KeyEvent(" "))
	p.until("alice's CLI device has requests on", func() (bool, string) {
		if _, err := alice.Sync(bg); err != nil {
			t.Fatal(err)
		}
		s, err := alice.Settings(bg)
		return err == nil && s.MessageRequests, fmt.Sprintf("%+v %v", s, err)
	})

	fromDave, fromErin := randomText("hello from dave "), randomText("hello from erin ")
	daveSent, err := dave.SendText(bg, "@alice", fromDave)
	if err != nil {
		t.Fatal(err)
	}
	erinSent, err := erin.SendText(bg, "@alice", fromErin)
	if err != nil {
		t.Fatal(err)
	}
	p.waitJS("both requests listed", `document.querySelector('#request-list li[data-user="dave"]') && document.querySelector('#request-list li[data-user="erin"]')`)
	if r := p.text(`#request-list li[data-user="dave"]`); !strings.Contains(r, fromDave) {
		t.Fatalf("dave's request does not show his message: %q", r)
	}
	if p.eval(`String(!!document.querySelector('#conversations button[data-target="@dave"], #conversations button[data-target="@erin"]'))`) != "false" {
		t.Fatal("a message request is in the conversation list")
	}
	state := func(c *client.Client, id string) string {
		if _, err := c.Sync(bg); err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(bg, id)
		if err != nil || len(info.Members) != 1 {
			t.Fatalf("info of %s: %+v %v", id, info, err)
		}
		return info.Members[0].State
	}
	if s := state(dave, daveSent.ID); s != client.StateSent {
		t.Fatalf("before alice accepted, dave sees his message %s", s)
	}
	p.press("deleting erin's request", `#request-list li[data-user="erin"] .delete`)
	p.waitJS("erin's request gone", `!document.querySelector('#request-list li[data-user="erin"]')`)
	p.press("accepting dave's request", `#request-list li[data-user="dave"] .accept`)
	p.waitJS("dave's conversation open", `document.getElementById("conversation-title").textContent === "@dave"`)
	p.waitMessage("dave's message shown", fromDave)
	p.waitJS("the requests box gone", `document.getElementById("requests").hidden`)
	p.until("dave sees his message read", func() (bool, string) {
		s := state(dave, daveSent.ID)
		return s == client.StateRead, s
	})
	if s := state(erin, erinSent.ID); s != client.StateSent {
		t.Fatalf("erin, whose request was deleted, sees her message %s", s)
	}

	// Unread counts, kept across a reload.
	for _, text := range []string{"bob one", "bob two"} {
		if _, err := bob.SendText(bg, "@alice", text); err != nil {
			t.Fatal(err)
		}
	}
	p.waitJS("two unread from bob", `document.querySelector('#conversations button[data-target="@bob"] .unread')?.textContent === "2"`)
	// The counts are in the sealed profile: nothing in IndexedDB or
	// localStorage names them, nor holds the requests' text.
	dump, err := base64.StdEncoding.DecodeString(p.awaitJS(dumpStorageJS))
	if err != nil || len(dump) < 10_000 {
		t.Fatalf("reading the browser's storage: %d bytes, %v", len(dump), err)
	}
	for _, clear := range []string{`"@bob":2`, unreadName, fromDave, fromErin} {
		if bytes.Contains(dump, []byte(clear)) {
			t.Errorf("the browser's storage holds %q in the clear", clear)
		}
	}
	p.do("reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#unlock-pass")),
		chromedp.SendKeys(chromedp.CSS("#unlock-pass"), "browser passphrase\r"), chromedp.WaitVisible(chromedp.CSS("#compose-form")))
	p.waitJS("still two unread from bob after reloading", `document.querySelector('#conversations button[data-target="@bob"] .unread')?.textContent === "2"`)
	p.open("@bob")
	p.waitMessage("bob's messages", "bob two")
	p.waitJS("no unread count once open", `!document.querySelector('#conversations .unread')`)

	// Mute bob (the person: his direct conversation), until unmuted.
	p.do("muting bob", chromedp.Focus(chromedp.CSS("#mute")), chromedp.KeyEvent(kb.End))
	p.waitJS("the list shows bob muted", `document.querySelector('#conversations button[data-target="@bob"]').textContent.includes("🔕")`)
	p.until("alice's CLI device has bob muted", func() (bool, string) {
		if _, err := alice.Sync(bg); err != nil {
			t.Fatal(err)
		}
		ms, err := alice.Mutes(bg)
		return err == nil && slices.ContainsFunc(ms, func(m client.Mute) bool { return m.Conversation == "@bob" && m.Forever }), fmt.Sprintf("%+v %v", ms, err)
	})
	p.open("@dave")
	muted := randomText("while muted ")
	if _, err := bob.SendText(bg, "@alice", muted); err != nil {
		t.Fatal(err)
	}
	p.until("the browser has bob's message sent while muted", func() (bool, string) {
		return strings.Contains(p.awaitJS(`parley.history("@bob", 200)`), muted), "not yet"
	})
	// Events come in order: once dave's next message, sent after the
	// browser stored bob's, shows in the open conversation, bob's would
	// have been counted.
	later := randomText("after the muted one ")
	if _, err := dave.SendText(bg, "@alice", later); err != nil {
		t.Fatal(err)
	}
	p.waitMessage("dave's later message shown", later)
	p.waitJS("the list drawn after it", `document.querySelector('#conversations button[data-target="@bob"]')`)
	if p.eval(`String(!!document.querySelector('#conversations button[data-target="@bob"] .unread'))`) != "false" {
		t.Fatal("a muted conversation counts unread messages")
	}

	// Search.
	p.do("searching", chromedp.Focus(chromedp.CSS("#search-query")), chromedp.SendKeys(chromedp.CSS("#search-query"), muted[len("while muted "):]+"\r"))
	p.waitJS("one hit", `document.querySelectorAll("#search-results .search-hit").length === 1`)
	if hit := p.text("#search-results .search-hit"); !strings.Contains(hit, "@bob") || !strings.Contains(hit, muted) {
		t.Fatalf("the search hit says %q", hit)
	}
	p.press("opening the hit", "#search-results .search-hit")
	p.waitJS("bob's conversation open", `document.getElementById("conversation-title").textContent === "@bob"`)

	// Export: the page saves an encrypted history file, which a new
	// device of alice's (linked after everything above, so it received
	// none of it) imports with the passphrase: dave's message is there.
	p.press("opening export and import", "#backup summary")
	p.do("exporting", chromedp.SendKeys(chromedp.CSS("#export-pass"), "export pass"),
		chromedp.SendKeys(chromedp.CSS("#export-pass2"), "export pass\r"))
	p.waitJS("exported", `document.getElementById("backup-status").textContent.startsWith("Exported")`)
	exported := filepath.Join(p.downloads, "parley-history-alice.bin")
	var file []byte
	p.until("the browser saved the history file", func() (bool, string) {
		var err error
		file, err = os.ReadFile(exported)
		return err == nil && len(file) > 0, fmt.Sprint(err) // Chromium renames it into place once complete
	})
	if bytes.Contains(file, []byte(fromDave)) || bytes.Contains(file, []byte(muted)) {
		t.Fatal("the history file holds messages in the clear")
	}
	codes := make(chan string, 1)
	linked := make(chan *client.Client, 1)
	go func() {
		c, err := client.LinkDevice(bg, client.Options{Dir: filepath.Join(t.TempDir(), "alice2"), Passphrase: []byte("pw alice2"),
			KDF: &fastKDF, KTMonitorEvery: -1}, p.url, "alice", func(code string, _ time.Time) { codes <- code })
		if err != nil {
			t.Errorf("linking alice's second CLI device: %v", err)
		}
		linked <- c
	}()
	select {
	case code := <-codes:
		if _, _, err := alice.ApproveDevice(bg, code, time.Minute); err != nil {
			t.Fatal(err)
		}
	case <-linked:
		t.FailNow() // linking failed before it had a code
	}
	alice2 := <-linked
	if alice2 == nil {
		t.FailNow()
	}
	defer alice2.Close()
	if _, err := alice2.Import(bg, bytes.NewReader(file), []byte("wrong pass"), nil); err == nil {
		t.Fatal("the history file opened with a wrong passphrase")
	}
	if _, err := alice2.Import(bg, bytes.NewReader(file), []byte("export pass"), nil); err != nil {
		t.Fatalf("importing the browser's history file: %v", err)
	}
	if msgs, err := alice2.History(bg, "@dave", 100); err != nil || !slices.ContainsFunc(msgs, func(m client.Message) bool { return m.Text == fromDave }) {
		t.Fatalf("alice's new device's history with dave after importing the browser's file: %+v %v", msgs, err)
	}

	// Import: a file alice's CLI device made; a wrong passphrase changes
	// nothing, the right one adds what the browser lacked, the rest
	// counted as already there.
	var cliFile bytes.Buffer
	cliRes, err := alice.Export(bg, &cliFile, []byte("cli pass"), historyfile.KDF{Time: 1, MemoryKiB: 64, Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cliPath := filepath.Join(t.TempDir(), "from-cli.bin")
	if err := os.WriteFile(cliPath, cliFile.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p.do("importing with a wrong passphrase", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{cliPath}),
		chromedp.SendKeys(chromedp.CSS("#import-pass"), "not it\r"))
	p.waitJS("the wrong passphrase refused", `!document.getElementById("error").hidden && document.getElementById("backup-status").textContent === ""`)
	p.do("importing", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{cliPath}),
		chromedp.SendKeys(chromedp.CSS("#import-pass"), "cli pass\r"))
	p.waitJS("imported", `document.getElementById("backup-status").textContent.startsWith("Imported")`)
	var added, convs, skipped int
	if _, err := fmt.Sscanf(p.text("#backup-status"), "Imported %d messages of %d conversations (%d already here)", &added, &convs, &skipped); err != nil {
		t.Fatalf("the page says %q: %v", p.text("#backup-status"), err)
	}
	if added+skipped != cliRes.Messages || skipped == 0 {
		t.Fatalf("the page imported %d and skipped %d of the %d messages alice's CLI device exported", added, skipped, cliRes.Messages)
	}
	p.phoneWidth()
}
