//go:build js

package transport

import (
	"net/http"

	"github.com/coder/websocket"
)

// dialOptions: in the browser the WebSocket is the browser's own, which
// takes no HTTP client (it sends the page's origin and cookies itself);
// blob transfers still use client, whose transport there is fetch.
func dialOptions(*http.Client) *websocket.DialOptions { return nil }
