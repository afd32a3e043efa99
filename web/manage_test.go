package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parleychat/parley/client"
)

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
// conversation.
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
	p.phoneWidth()
}
