package client

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"syscall"
)

// transportPrefix is how the wire client wraps a server's answer
// ("transport: register: parley: ALREADY_EXISTS: ..."): internals a user
// does not need, since the server's message says what happened.
var transportPrefix = regexp.MustCompile(`transport: ([a-z ]+: parley: [A-Z_]+|HTTP [0-9]+): `)

// Explain turns an error into what a user should read: the server's own
// words instead of the layers that carried them, and a plain sentence for
// a server that cannot be reached. (The full error is the detail.)
func Explain(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED) {
		where := "connection refused"
		if op != nil && op.Addr != nil {
			where = "nothing answers at " + op.Addr.String()
		}
		return "cannot reach the server: is it running, and is the server URL right? (" + where + ")"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Sprintf("cannot reach the server: no such host %q", dns.Name)
	}
	if isConnectionError(err) {
		return "lost the connection to the server (" + transportPrefix.ReplaceAllString(err.Error(), "") + ")"
	}
	return strings.TrimPrefix(transportPrefix.ReplaceAllString(err.Error(), ""), "client: ")
}
