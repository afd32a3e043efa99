package main

import (
	"context"

	"github.com/parleychat/parley/client"
)

func (e *env) daemonSend(ctx context.Context, to, text string) (sendJSON, bool, error) {
	return sendJSON{}, false, nil
}

func (e *env) daemonSync(ctx context.Context) (bool, error) { return false, nil }

var _ = client.Explain
