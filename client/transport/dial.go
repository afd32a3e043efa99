//go:build !js

package transport

import (
	"net/http"

	"github.com/coder/websocket"
)

// dialOptions makes the WebSocket handshake go through client (its
// transport: TLS settings, proxies, test servers).
func dialOptions(client *http.Client) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPClient: client}
}
