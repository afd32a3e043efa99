//go:build js && wasm

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/parleychat/parley/client"
)

// unreadState is the name of the view state (client.ViewState) holding
// the unread counts: sealed in the profile like everything else, so a
// reload keeps them and nothing is written to the browser's storage in
// the clear.
const unreadState = "web-unread"

// requestPoll is how often the module looks for new message requests:
// a request's messages are not events (client/requests.go), so the page
// would otherwise not learn of one until something else happened.
const requestPoll = 3 * time.Second

// unread counts, per conversation, the text and file messages from
// others that arrived while it was not on screen (muted conversations
// excepted), as `parley chat` does, but kept across reloads.
type unread struct {
	mu      sync.Mutex
	counts  map[string]int
	viewing string // the conversation on screen, "" when none or the tab is hidden
}

// load reads the counts of the profile just opened.
func (u *unread) load(ctx context.Context, c *client.Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = map[string]int{}
	if b, err := c.ViewState(ctx, unreadState); err == nil && b != nil {
		if json.Unmarshal(b, &u.counts) != nil {
			u.counts = map[string]int{} // a bad value starts from zero
		}
	}
}

// save stores the counts; call with mu held.
func (u *unread) save(ctx context.Context, c *client.Client) error {
	b, err := json.Marshal(u.counts)
	if err != nil {
		return err
	}
	if len(u.counts) == 0 {
		b = nil
	}
	return c.SetViewState(ctx, unreadState, b)
}

// count notes an event: a message that counts and is not on screen adds
// one to its conversation.
func (u *unread) count(ctx context.Context, c *client.Client, e client.Event) {
	m := e.Message
	if e.Type != client.EventMessage || m == nil || m.Muted || m.Sender.User == c.Self().User ||
		(m.Kind != client.KindText && m.Kind != client.KindFile) {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if m.Conversation == u.viewing {
		return
	}
	u.counts[m.Conversation]++
	u.save(ctx, c) // if it fails, the count holds until the page closes
}

// view sets the conversation on screen and clears its count.
func (u *unread) view(ctx context.Context, c *client.Client, target string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.viewing = target
	if _, ok := u.counts[target]; !ok {
		return nil
	}
	delete(u.counts, target)
	return u.save(ctx, c)
}

func (u *unread) of(target string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[target]
}

// listEntry is a conversation as the page's list shows it.
type listEntry struct {
	client.Conversation
	Unread int `json:"unread,omitempty"`
}

// conversations lists the conversations with their unread counts.
func (a *app) conversations(ctx context.Context, c *client.Client) (any, error) {
	convs, err := c.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]listEntry, 0, len(convs))
	for _, cv := range convs {
		out = append(out, listEntry{Conversation: cv, Unread: a.unread.of(cv.Label)})
	}
	return jsonText(out)
}

// pollRequests calls onEvent({"type": "requests"}) whenever the pending
// message requests or the settings (which another device of the account
// may change) change, until ctx is done.
func (a *app) pollRequests(ctx context.Context, c *client.Client, onEvent js.Value) {
	last := ""
	t := time.NewTicker(requestPoll)
	defer t.Stop()
	for {
		rs, err := c.Requests(ctx)
		st, err2 := c.Settings(ctx)
		if err == nil && err2 == nil {
			var sig strings.Builder
			fmt.Fprintf(&sig, "%+v;", st) // changed on another device
			for _, r := range rs {
				fmt.Fprintf(&sig, "%s:%d;", r.User, r.Messages)
			}
			if s := sig.String(); s != last {
				last = s
				onEvent.Invoke(`{"type":"requests"}`)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// opened makes a call that needs the profile open.
func (a *app) opened(fn func(ctx context.Context, c *client.Client, args []js.Value) (any, error)) func([]js.Value) (any, error) {
	return func(args []js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		return fn(context.Background(), a.c, args)
	}
}

// exportManage adds the calls of the page's requests, mute, search,
// forwarding and group administration (web/static/manage.js and the
// group panel of chat.js), each the client library's, as the CLI's
// command of the same name:
//
//   - viewing(target): the conversation on screen ("" when none or the
//     tab is hidden); clears its unread count.
//   - setMessageRequests(on) → Settings; requests() → [MessageRequest]; acceptRequest(user) → [Message];
//     deleteRequest(user) → number deleted.
//   - mute(target, seconds) → Mute (0: until unmuted); unmute(target).
//   - search(query) → [Message], newest first.
//   - forward(id, target) → Sent.
//   - setTopic(group, topic) → GroupInfo; setAdmin(group, user, admin).
//   - setPicture(group, Uint8Array) → GroupInfo; groupPicture(group) →
//     {type, data: Uint8Array}, only once its digest matched the one in
//     the group's state.
//   - createInvite(group) → Invite; joinRequests(group) → [JoinRequest];
//     answerJoin(group, user, deny); joinGroup(code) → the admin asked.
//
// maxPicture bounds a group picture the page hands the module (the
// client library allows the same).
const maxPicture = 10 << 20

func (a *app) exportManage(export func(name string, fn func(args []js.Value) (any, error))) {
	open := a.opened
	export("viewing", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return nil, a.unread.view(ctx, c, argString(args, 0))
	}))
	// setMessageRequests(on), as `parley settings requests on|off`.
	export("setMessageRequests", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.SetSetting(ctx, client.SettingMessageRequests, argBool(args, 0)))
	}))
	export("requests", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.Requests(ctx))
	}))
	export("acceptRequest", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.AcceptRequest(ctx, argString(args, 0)))
	}))
	export("deleteRequest", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return c.DeleteRequest(ctx, argString(args, 0))
	}))
	export("mute", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.SetMuteMode(ctx, argString(args, 0), time.Duration(argInt(args, 1))*time.Second, argBool(args, 2)))
	}))
	export("unmute", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return c.Unmute(ctx, argString(args, 0))
	}))
	export("search", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		msgs, err := c.Search(ctx, argString(args, 0), 50)
		if err != nil {
			return nil, err
		}
		return jsonText(slices.DeleteFunc(msgs, func(m client.Message) bool { return m.Kind == client.KindReceipt }))
	}))
	export("forward", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		target := strings.TrimSpace(argString(args, 1))
		if target == "" {
			return nil, errors.New("forward to whom? @user or #group")
		}
		if !strings.HasPrefix(target, "@") && !strings.HasPrefix(target, "#") {
			target = "@" + target
		}
		return jsonResult(c.Forward(ctx, argString(args, 0), target))
	}))
	export("setTopic", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		topic := argString(args, 1)
		return jsonResult(c.SetGroup(ctx, argString(args, 0), client.GroupSettings{Topic: &topic}))
	}))
	export("setPicture", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		if len(args) < 2 || args[1].Type() != js.TypeObject {
			return nil, errors.New("setPicture: no image data")
		}
		n := args[1].Get("length").Int()
		if n <= 0 || n > maxPicture {
			return nil, fmt.Errorf("a group picture must be 1 byte to %d MiB", maxPicture>>20)
		}
		data := make([]byte, n)
		js.CopyBytesToGo(data, args[1])
		return jsonResult(c.SetGroup(ctx, argString(args, 0), client.GroupSettings{Picture: data}))
	}))
	export("groupPicture", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		data, typ, err := c.GroupPictureBytes(ctx, argString(args, 0))
		if err != nil {
			return nil, err
		}
		arr := js.Global().Get("Uint8Array").New(len(data))
		js.CopyBytesToJS(arr, data)
		out := js.Global().Get("Object").New()
		out.Set("type", typ)
		out.Set("data", arr)
		return out, nil
	}))
	export("setAdmin", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return nil, c.SetAdmin(ctx, argString(args, 0), argString(args, 1), argBool(args, 2))
	}))
	export("createInvite", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.CreateInvite(ctx, argString(args, 0)))
	}))
	export("joinRequests", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.JoinRequests(ctx, argString(args, 0)))
	}))
	export("joinGroup", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return c.JoinGroup(ctx, strings.TrimSpace(argString(args, 0)))
	}))
	export("answerJoin", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return nil, c.ApproveJoin(ctx, argString(args, 0), argString(args, 1), argBool(args, 2))
	}))
}
