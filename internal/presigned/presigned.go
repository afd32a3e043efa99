// Package presigned is how Parley's clients follow a server's redirect to
// a pre-signed URL of an object store (an attachment or a channel
// post's file): without the credentials they sent the server.
package presigned

import (
	"errors"
	"net/http"
)

// Client is hc following redirects without the Authorization header and
// without the headers named in drop: a pre-signed URL carries its own
// signature, the caller's token is for the server alone (Go would
// forward it to another port of the same host), and S3 refuses a request
// that carries two credentials. hc's own redirect policy still applies,
// else at most 5 redirects.
func Client(hc *http.Client, drop ...string) *http.Client {
	cl := *hc
	check := hc.CheckRedirect
	cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		req.Header.Del("Authorization")
		for _, h := range drop {
			req.Header.Del(h)
		}
		if check != nil {
			return check(req, via)
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}
	return &cl
}
