//go:build js && wasm

// Command wasm is the Parley web client's WebAssembly module: the client
// library (package client, the same MLS code the CLI runs) compiled for
// the browser, with its profile in IndexedDB. It installs one global
// object, parley, whose methods the page's script (web/static/app.js)
// calls; each returns a Promise, and data crosses as JSON text.
//
// The module never touches the page: no DOM, no HTML. It holds the keys;
// the script only sees what the user sees (conversations, messages).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"syscall/js"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
)

// profileName is the IndexedDB database the web client's profile lives in
// (the browser keeps one per origin, so one per server).
const profileName = "parley"

type app struct {
	c      *client.Client
	cancel context.CancelFunc // stops Watch
	unread unread             // manage.go
}

func main() {
	a := &app{}
	api := js.Global().Get("Object").New()
	export := func(name string, fn func(args []js.Value) (any, error)) {
		api.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return promise(func() (any, error) { return fn(args) }) }))
	}
	export("hasProfile", func([]js.Value) (any, error) { return profile.Exists(profileName), nil })
	// The page calls it when its Content-Security-Policy lets the module
	// reach the server's object store (web.Options.ObjectStore).
	export("allowDirectTransfers", func([]js.Value) (any, error) { transport.AllowDirectTransfers(); return nil, nil })
	export("link", a.link)
	export("open", a.open)
	export("self", func([]js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		return jsonText(a.c.Self())
	})
	export("conversations", func([]js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		return a.conversations(context.Background(), a.c) // with the unread counts
	})
	export("history", func(args []js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		msgs, err := a.c.History(context.Background(), argString(args, 0), argInt(args, 1))
		if err != nil {
			return nil, err
		}
		return jsonText(msgs)
	})
	export("send", func(args []js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		sent, err := a.c.SendText(context.Background(), argString(args, 0), argString(args, 1))
		if err != nil {
			return nil, err
		}
		return jsonText(sent)
	})
	export("devices", func([]js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		ds, err := a.c.Devices(context.Background())
		if err != nil {
			return nil, err
		}
		return jsonText(ds)
	})
	export("watch", a.watch)
	a.exportChat(export)   // chat.go
	a.exportManage(export) // manage.go
	a.exportBackup(export) // backup.go
	exportSafety(a, export)
	exportStats(export)
	export("close", func([]js.Value) (any, error) {
		if a.cancel != nil {
			a.cancel()
		}
		if a.c != nil {
			a.c.Close()
			a.c = nil
		}
		return nil, nil
	})
	js.Global().Set("parley", api)
	if ready := js.Global().Get("parleyReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // serve calls until the page goes away
}

var errNotOpen = errors.New("the profile is not open")

func (a *app) options(passphrase string) client.Options {
	return client.Options{Dir: profileName, Passphrase: []byte(passphrase)}
}

// link makes this browser a new device of an account: link(server, user,
// passphrase, onCode) calls onCode(code, expires) with the link code to
// approve on an existing device, and resolves once approved.
func (a *app) link(args []js.Value) (any, error) {
	if a.c != nil {
		return nil, errors.New("a profile is already open")
	}
	server, user, pass, onCode := argString(args, 0), argString(args, 1), argString(args, 2), args[3]
	if pass == "" {
		return nil, errors.New("choose a passphrase: it protects this browser's copy of your keys and messages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := client.LinkDevice(ctx, a.options(pass), server, user, func(code string, expires time.Time) {
		onCode.Invoke(code, expires.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return nil, err
	}
	a.c = c
	a.unread.load(ctx, c)
	return jsonText(c.Self())
}

// open opens the profile with the passphrase.
func (a *app) open(args []js.Value) (any, error) {
	if a.c != nil {
		return nil, errors.New("a profile is already open")
	}
	c, err := client.Open(context.Background(), a.options(argString(args, 0)))
	if err != nil {
		return nil, err
	}
	a.c = c
	a.unread.load(context.Background(), c)
	return jsonText(c.Self())
}

// watch(onEvent) stays connected and calls onEvent(json) for every event
// (client.Watch) until close.
func (a *app) watch(args []js.Value) (any, error) {
	if a.c == nil {
		return nil, errNotOpen
	}
	onEvent := args[0]
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	c := a.c
	go a.pollRequests(ctx, c, onEvent)
	go func() {
		err := c.Watch(ctx, client.WatchOptions{Warnings: true}, func(e client.Event) {
			a.unread.count(ctx, c, e) // before the page redraws its list
			if b, err := json.Marshal(e); err == nil {
				onEvent.Invoke(string(b))
			}
		})
		if err != nil && ctx.Err() == nil {
			b, _ := json.Marshal(map[string]string{"type": "stopped", "error": err.Error()})
			onEvent.Invoke(string(b))
		}
	}()
	return nil, nil
}

// promise runs fn on its own goroutine (the client blocks on the network
// and on IndexedDB, which a JS callback must not) and settles a Promise
// with its result.
func promise(fn func() (any, error)) js.Value {
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := fn()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	defer executor.Release()
	return js.Global().Get("Promise").New(executor)
}

func jsonText(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func argString(args []js.Value, i int) string {
	if i < len(args) && args[i].Type() == js.TypeString {
		return args[i].String()
	}
	return ""
}

func argInt(args []js.Value, i int) int {
	if i < len(args) && args[i].Type() == js.TypeNumber {
		return args[i].Int()
	}
	return 0
}
