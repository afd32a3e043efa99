//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"
	"time"

	"github.com/parleychat/parley/client"
)

// maxDownload bounds an attachment the page takes into memory (the
// module holds a download whole to check its digest before the page
// sees a byte of it).
const maxDownload = 256 << 20

// exportChat adds the conversation features to the page's API: files,
// groups, receipts, settings and the everyday features (reply, react,
// edit, delete, timer, typing). Every method needs an open profile.
func (a *app) exportChat(export func(name string, fn func(args []js.Value) (any, error))) {
	open := func(fn func(ctx context.Context, c *client.Client, args []js.Value) (any, error)) func([]js.Value) (any, error) {
		return func(args []js.Value) (any, error) {
			if a.c == nil {
				return nil, errNotOpen
			}
			return fn(context.Background(), a.c, args)
		}
	}
	// sendFile(target, name, Uint8Array, onProgress(done, total)) → Sent
	export("sendFile", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		if len(args) < 3 || args[2].Type() != js.TypeObject {
			return nil, errors.New("sendFile: no file data")
		}
		data := make([]byte, args[2].Get("length").Int())
		js.CopyBytesToGo(data, args[2])
		sent, err := c.SendFileData(ctx, argString(args, 0), argString(args, 1), bytesReader(data), int64(len(data)), progressTo(args, 3))
		if err != nil {
			return nil, err
		}
		return jsonText(sent)
	}))
	// fileBytes(id, onProgress) → {name, size, sha256, data: Uint8Array},
	// only once the digest matched.
	export("fileBytes", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		data, info, err := c.FileBytes(ctx, argString(args, 0), maxDownload, progressTo(args, 1))
		if err != nil {
			return nil, err
		}
		arr := js.Global().Get("Uint8Array").New(len(data))
		js.CopyBytesToJS(arr, data)
		out := js.Global().Get("Object").New()
		out.Set("name", info.Name)
		out.Set("size", info.Size)
		out.Set("sha256", info.SHA256)
		out.Set("data", arr)
		return out, nil
	}))
	export("reply", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.SendReply(ctx, argString(args, 0), argString(args, 1), argString(args, 2)))
	}))
	export("react", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.React(ctx, argString(args, 0), argString(args, 1), argBool(args, 2)))
	}))
	export("edit", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.Edit(ctx, argString(args, 0), argString(args, 1)))
	}))
	export("deleteForEveryone", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.DeleteForEveryone(ctx, argString(args, 0)))
	}))
	export("deleteForMe", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return nil, c.DeleteForMe(ctx, argString(args, 0))
	}))
	// setTimer(target, seconds): 0 turns disappearing messages off.
	export("setTimer", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.SetTimer(ctx, argString(args, 0), time.Duration(argInt(args, 1))*time.Second))
	}))
	export("typing", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return c.SendTyping(ctx, argString(args, 0), argBool(args, 1))
	}))
	// createGroup(name, ["bob", ...]) → Conversation
	export("createGroup", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		users, err := argUsers(args, 1)
		if err != nil {
			return nil, err
		}
		return jsonResult(c.CreateGroup(ctx, argString(args, 0), users))
	}))
	export("addMembers", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		users, err := argUsers(args, 1)
		if err != nil {
			return nil, err
		}
		return nil, c.AddMembers(ctx, argString(args, 0), users)
	}))
	export("removeMembers", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		users, err := argUsers(args, 1)
		if err != nil {
			return nil, err
		}
		return nil, c.RemoveMembers(ctx, argString(args, 0), users)
	}))
	export("leaveGroup", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return nil, c.LeaveGroup(ctx, argString(args, 0))
	}))
	export("renameGroup", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		name := argString(args, 1)
		return jsonResult(c.SetGroup(ctx, argString(args, 0), client.GroupSettings{Name: &name}))
	}))
	export("groupInfo", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.GroupInfo(ctx, argString(args, 0)))
	}))
	export("settings", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.Settings(ctx))
	}))
	// setReadReceipts(on): off sends delivery receipts only (and shows
	// others' reads as deliveries), as `parley settings receipts off`.
	export("setReadReceipts", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		return jsonResult(c.SetSetting(ctx, client.SettingReadReceipts, argBool(args, 0)))
	}))
	// receipts(["id", ...]) → {id: {state, read, delivered, members}}: one
	// line per sent message, from what the members' clients reported.
	export("receipts", open(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		var ids []string
		if err := json.Unmarshal([]byte(argString(args, 0)), &ids); err != nil {
			return nil, fmt.Errorf("receipts: %w", err)
		}
		out := map[string]receiptSummary{}
		for _, id := range ids {
			info, err := c.Info(ctx, id)
			if err != nil {
				continue // deleted or expired since the page listed it
			}
			out[id] = summarize(info)
		}
		return jsonText(out)
	}))
}

// receiptSummary is a sent message's receipts as the page shows them.
type receiptSummary struct {
	State     string `json:"state"` // read (by everyone), delivered (to everyone) or sent
	Read      int    `json:"read"`
	Delivered int    `json:"delivered"` // including those who read it
	Members   int    `json:"members"`
}

func summarize(info client.MessageInfo) receiptSummary {
	s := receiptSummary{Members: len(info.Members)}
	for _, m := range info.Members {
		switch m.State {
		case client.StateRead:
			s.Read++
			s.Delivered++
		case client.StateDelivered:
			s.Delivered++
		}
	}
	switch {
	case s.Members > 0 && s.Read == s.Members:
		s.State = client.StateRead
	case s.Members > 0 && s.Delivered == s.Members:
		s.State = client.StateDelivered
	default:
		s.State = client.StateSent
	}
	return s
}

func jsonResult[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return jsonText(v)
}

// progressTo makes a client.Progress that calls the page's function
// args[i](done, total), if there is one.
func progressTo(args []js.Value, i int) client.Progress {
	if i >= len(args) || args[i].Type() != js.TypeFunction {
		return nil
	}
	fn := args[i]
	return func(done, total int64) { fn.Invoke(float64(done), float64(total)) }
}

func argBool(args []js.Value, i int) bool {
	return i < len(args) && args[i].Type() == js.TypeBoolean && args[i].Bool()
}

// argUsers reads a JSON array of user names.
func argUsers(args []js.Value, i int) ([]string, error) {
	var users []string
	if err := json.Unmarshal([]byte(argString(args, i)), &users); err != nil {
		return nil, fmt.Errorf("a list of users: %w", err)
	}
	if len(users) == 0 {
		return nil, errors.New("name at least one user")
	}
	return users, nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
