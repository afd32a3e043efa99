package client

import (
	"context"
	"net/http"
)

// HTTPAuth connects (if needed) and returns the server URL and a function
// that authorizes HTTP requests to it with this device's session token.
// Public channels, which are not end to end encrypted, are served over
// plain HTTP beside the delivery service and use it.
func (c *Client) HTTPAuth(ctx context.Context) (serverURL string, auth func(*http.Request) error, err error) {
	var token string
	err = c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		token = conn.Session().BlobToken
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return c.acct.Server, func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}, nil
}
