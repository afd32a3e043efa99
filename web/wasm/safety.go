//go:build js && wasm

package main

import (
	"context"
	"strings"
	"syscall/js"

	"github.com/parleychat/parley/client/safety"
	"github.com/parleychat/parley/web/qr"
)

// exportSafety adds the calls of the page's safety and devices views
// (web/static/safety.js):
//
//   - qr(text) → {"view_box": n, "path": "M4 4h7v1h-7z…"}: the QR code of
//     a link code or a safety number as SVG path data (web/qr), which
//     the page sets on a <path> it creates: no HTML crosses.
//   - safetyNumber(user) → the CLI's `parley --json safety-number user`:
//     {"user", "safety_number" (60 digits), "formatted" (groups of five)}.
//
// The device list is the existing devices() call (client.Devices: the
// server's list checked against the account's signed, key transparency
// checked device list, this device marked current).
func exportSafety(a *app, export func(name string, fn func(args []js.Value) (any, error))) {
	export("qr", func(args []js.Value) (any, error) {
		c, err := qr.Encode(argString(args, 0))
		if err != nil {
			return nil, err
		}
		return jsonText(map[string]any{"view_box": c.ViewBox(), "path": c.Path()})
	})
	export("safetyNumber", func(args []js.Value) (any, error) {
		if a.c == nil {
			return nil, errNotOpen
		}
		user := strings.TrimPrefix(argString(args, 0), "@")
		n, err := a.c.SafetyNumber(context.Background(), user)
		if err != nil {
			return nil, err
		}
		return jsonText(map[string]string{"user": user, "safety_number": n, "formatted": safety.Format(n)})
	})
}
