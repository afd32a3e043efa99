//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/historyfile"
)

// maxHistoryFile bounds a history file the page holds in memory, made or
// read (the browser has no files to stream to).
const maxHistoryFile = 256 << 20

// errHistoryTooLarge is what an export past maxHistoryFile stops with.
var errHistoryTooLarge = fmt.Errorf("the history is over %d MiB: export it with the CLI (parley export)", maxHistoryFile>>20)

// cappedBuffer is a bytes.Buffer that refuses to grow past maxHistoryFile.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxHistoryFile {
		return 0, errHistoryTooLarge
	}
	return b.Buffer.Write(p)
}

// exportBackup adds the page's export and import of history, as `parley
// export` and `parley import` (client.Export, client.Import: the file is
// encrypted under a passphrase the user chooses, with Argon2id; it holds
// no key of this device):
//
//   - exportHistory(passphrase, onProgress) → {data: Uint8Array,
//     conversations, messages}, which the page saves as a download.
//   - importHistory(Uint8Array, passphrase, onProgress) → {conversations,
//     messages, skipped}.
func (a *app) exportBackup(export func(name string, fn func(args []js.Value) (any, error))) {
	export("exportHistory", a.opened(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		pass := argString(args, 0)
		if pass == "" {
			return nil, errors.New("choose a passphrase for the history file: whoever has the file and it can read your history")
		}
		var buf cappedBuffer
		res, err := c.Export(ctx, &buf, []byte(pass), historyfile.DefaultKDF, progressTo(args, 1))
		if err != nil {
			return nil, err
		}
		arr := js.Global().Get("Uint8Array").New(buf.Len())
		js.CopyBytesToJS(arr, buf.Bytes())
		out := js.Global().Get("Object").New()
		out.Set("data", arr)
		out.Set("conversations", res.Conversations)
		out.Set("messages", res.Messages)
		return out, nil
	}))
	export("importHistory", a.opened(func(ctx context.Context, c *client.Client, args []js.Value) (any, error) {
		if len(args) < 2 || args[0].Type() != js.TypeObject {
			return nil, errors.New("importHistory: no file")
		}
		n := args[0].Get("length").Int()
		if n > maxHistoryFile {
			return nil, fmt.Errorf("the file is over %d MiB: import it with the CLI (parley import)", maxHistoryFile>>20)
		}
		data := make([]byte, n)
		js.CopyBytesToGo(data, args[0])
		return jsonResult(c.Import(ctx, bytes.NewReader(data), []byte(argString(args, 1)), progressTo(args, 2)))
	}))
}
