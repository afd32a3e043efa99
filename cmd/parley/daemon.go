package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/buildinfo"
)

// The daemon ("parley daemon") unlocks the profile once, stays connected
// and serves JSON-RPC 2.0 on a Unix socket in the profile directory:
// one JSON object per line each way. Results have the shapes the CLI
// prints with --json. A connection that calls "subscribe" then receives
// every event as a notification {"jsonrpc":"2.0","method":"event",
// "params":{...}}.

const socketName = "daemon.sock"

// maxDaemonBacklog bounds what the daemon keeps for "sync" callers.
const maxDaemonBacklog = 10000

func (e *env) socketPath() string {
	if e.flags.socket != "" {
		return e.flags.socket
	}
	return filepath.Join(e.flags.profile, socketName)
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	// Data is the full internal detail (what --verbose prints).
	Data string `json:"data,omitempty"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  any             `json:"params,omitempty"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// JSON-RPC 2.0 error codes, and ours.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcFailed         = 1 // the operation failed: message says why
	rpcSecurityAlert  = 3 // refused because something looks like an attack
)

// eventJSON is an event notification's params.
type eventJSON struct {
	client.Event
	Error   string `json:"error,omitempty"`
	RetryIn string `json:"retry_in,omitempty"`
}

// syncJSON is the result of "sync": what arrived since the last sync
// call (messages, followed channels' posts, queued messages delivered).
type syncJSON struct {
	Messages     []client.Message     `json:"messages"`
	ChannelPosts []client.ChannelPost `json:"channel_posts"`
	Sent         []client.Sent        `json:"sent"`
}

type daemon struct {
	c   *client.Client
	log *slog.Logger

	mu      sync.Mutex
	subs    map[*rpcConn]bool
	backlog syncJSON
}

type rpcConn struct {
	mu  sync.Mutex // serializes writes
	enc *json.Encoder
}

func (rc *rpcConn) write(v rpcResponse) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	v.JSONRPC = "2.0"
	return rc.enc.Encode(v)
}

func cmdDaemon(ctx context.Context, e *env, args []string) error {
	if e.flags.json {
		return usageErr("the daemon logs to stderr; it has no --json output")
	}
	path := e.socketPath()
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("a daemon already serves this profile at %s", path)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	log := slog.New(slog.NewTextHandler(e.stderr, nil))

	os.Remove(path) // a stale socket (nothing answered)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	d := &daemon{c: c, log: log, subs: map[*rpcConn]bool{}}
	log.Info("daemon ready", "socket", path, "user", c.Self().User, "device", c.Self().DeviceID, "version", buildinfo.String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := c.Watch(ctx, client.WatchOptions{Warnings: true, Channels: true, ChannelPoll: e.flags.channelPoll}, d.event)
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("stopped receiving", "err", explain(err))
			cancel()
		}
	}()
	conns := map[net.Conn]bool{}
	var connsMu sync.Mutex
	go func() {
		<-ctx.Done()
		ln.Close()
		connsMu.Lock()
		for conn := range conns {
			// Requests under way finish (their answers are written);
			// the read side ends the connection.
			if uc, ok := conn.(*net.UnixConn); ok {
				uc.CloseRead()
			}
		}
		connsMu.Unlock()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Error("accept", "err", err)
			cancel()
			break
		}
		connsMu.Lock()
		conns[conn] = true
		connsMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.serve(ctx, conn)
			connsMu.Lock()
			delete(conns, conn)
			connsMu.Unlock()
			conn.Close()
		}()
	}
	log.Info("shutting down")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.Warn("requests still running after 10s; exiting")
	}
	return nil
}

// event records what Watch reports and pushes it to subscribers.
func (d *daemon) event(ev client.Event) {
	d.mu.Lock()
	b := &d.backlog
	switch ev.Type {
	case client.EventMessage:
		b.Messages = append(b.Messages, *ev.Message)
	case client.EventChannelPost:
		b.ChannelPosts = append(b.ChannelPosts, *ev.ChannelPost)
	case client.EventSent:
		b.Sent = append(b.Sent, *ev.Sent)
	case client.EventAlert:
		d.log.Warn("SECURITY ALERT", "conversation", ev.Warning.Conversation, "alert", ev.Warning.Err)
	case client.EventDisconnected:
		d.log.Warn("cannot reach the server", "err", explain(ev.Err), "retry_in", ev.RetryIn)
	case client.EventConnected:
		d.log.Info("connected")
	case client.EventHistory:
		d.log.Info("imported history from another device", "device", ev.History.From, "messages", ev.History.Messages)
	}
	if n := len(b.Messages); n > maxDaemonBacklog {
		b.Messages = b.Messages[n-maxDaemonBacklog:]
	}
	if n := len(b.ChannelPosts); n > maxDaemonBacklog {
		b.ChannelPosts = b.ChannelPosts[n-maxDaemonBacklog:]
	}
	if n := len(b.Sent); n > maxDaemonBacklog {
		b.Sent = b.Sent[n-maxDaemonBacklog:]
	}
	subs := make([]*rpcConn, 0, len(d.subs))
	for s := range d.subs {
		subs = append(subs, s)
	}
	d.mu.Unlock()
	p := eventJSON{Event: ev}
	if ev.Err != nil {
		p.Error = explain(ev.Err)
	}
	if ev.RetryIn > 0 {
		p.RetryIn = ev.RetryIn.String()
	}
	for _, s := range subs {
		s.write(rpcResponse{Method: "event", Params: p})
	}
}

// serve answers one connection's requests in order.
func (d *daemon) serve(ctx context.Context, conn net.Conn) {
	rc := &rpcConn{enc: json.NewEncoder(conn)}
	defer func() {
		d.mu.Lock()
		delete(d.subs, rc)
		d.mu.Unlock()
	}()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req rpcRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			rc.write(rpcResponse{Error: &rpcError{Code: rpcParseError, Message: "not JSON: " + err.Error()}})
			continue
		}
		if req.JSONRPC != "2.0" || req.Method == "" {
			rc.write(rpcResponse{ID: req.ID, Error: &rpcError{Code: rpcInvalidRequest, Message: `a request is {"jsonrpc":"2.0","id":...,"method":...,"params":{...}}`}})
			continue
		}
		if req.Method == "subscribe" {
			d.mu.Lock()
			d.subs[rc] = true
			d.mu.Unlock()
			rc.write(rpcResponse{ID: req.ID, Result: map[string]bool{"subscribed": true}})
			continue
		}
		start := time.Now()
		res, err := d.call(ctx, req.Method, req.Params)
		d.log.Debug("request", "method", req.Method, "duration", time.Since(start), "ok", err == nil)
		if req.ID == nil {
			continue // a notification: no answer
		}
		if err != nil {
			var re *rpcError
			if !errors.As(err, &re) {
				re = &rpcError{Code: rpcFailed, Message: explain(err), Data: err.Error()}
				if client.IsSecurityAlert(err) {
					re.Code, re.Message = rpcSecurityAlert, "SECURITY ALERT: "+re.Message
				}
			}
			rc.write(rpcResponse{ID: req.ID, Error: re})
			continue
		}
		rc.write(rpcResponse{ID: req.ID, Result: res})
	}
}

func (e *rpcError) Error() string { return e.Message }

func params[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, &rpcError{Code: rpcInvalidParams, Message: "params: " + err.Error()}
	}
	return v, nil
}

func missing(name string) error {
	return &rpcError{Code: rpcInvalidParams, Message: "params: " + name + " is required"}
}

// call runs one method.
func (d *daemon) call(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	c := d.c
	switch method {
	case "send":
		p, err := params[struct{ To, Text, ReplyTo string }](raw)
		if err != nil {
			return nil, err
		}
		if p.To == "" || p.Text == "" {
			return nil, missing("to and text")
		}
		var res client.SendResult
		if p.ReplyTo != "" {
			res, err = c.Reply(ctx, p.To, p.ReplyTo, p.Text)
		} else {
			res, err = c.Send(ctx, p.To, p.Text)
		}
		if err != nil {
			return nil, err
		}
		return sendOutput(res), nil
	case "sendFile":
		p, err := params[struct{ To, Path string }](raw)
		if err != nil {
			return nil, err
		}
		if p.To == "" || p.Path == "" {
			return nil, missing("to and path")
		}
		s, err := c.SendFile(ctx, p.To, p.Path, nil)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "getFile":
		p, err := params[struct{ ID, Out string }](raw)
		if err != nil {
			return nil, err
		}
		if p.ID == "" {
			return nil, missing("id")
		}
		path, info, err := c.GetFile(ctx, p.ID, p.Out, nil)
		if err != nil {
			return nil, err
		}
		return struct {
			Path string `json:"path"`
			client.FileInfo
		}{path, info}, nil
	case "sync":
		// What the background connection received since the last call.
		d.mu.Lock()
		out := d.backlog
		d.backlog = syncJSON{}
		d.mu.Unlock()
		// A message may have disappeared while it waited here.
		out.Messages = slices.DeleteFunc(out.Messages, func(m client.Message) bool {
			return !m.ExpiresAt.IsZero() && !time.Now().Before(m.ExpiresAt)
		})
		if out.Messages == nil {
			out.Messages = []client.Message{}
		}
		if out.ChannelPosts == nil {
			out.ChannelPosts = []client.ChannelPost{}
		}
		if out.Sent == nil {
			out.Sent = []client.Sent{}
		}
		return out, nil
	case "history":
		p, err := params[struct {
			Conversation string
			Limit        int
		}](raw)
		if err != nil {
			return nil, err
		}
		if p.Conversation == "" {
			return nil, missing("conversation")
		}
		if p.Limit == 0 {
			p.Limit = 50
		}
		return nonNil(c.History(ctx, p.Conversation, p.Limit))
	case "typing":
		p, err := params[struct {
			To   string
			Stop bool
		}](raw)
		if err != nil {
			return nil, err
		}
		if p.To == "" {
			return nil, missing("to")
		}
		sent, err := c.SendTyping(ctx, p.To, !p.Stop)
		if err != nil {
			return nil, err
		}
		return map[string]bool{"sent": sent}, nil
	case "timer":
		p, err := params[struct{ Conversation, Timer string }](raw)
		if err != nil {
			return nil, err
		}
		if p.Conversation == "" || p.Timer == "" {
			return nil, missing("conversation and timer")
		}
		d, err := client.ParseTimer(p.Timer)
		if err != nil {
			return nil, &rpcError{Code: rpcInvalidParams, Message: "params: " + err.Error()}
		}
		return c.SetTimer(ctx, p.Conversation, d)
	case "conversations":
		return nonNil(c.Conversations(ctx))
	case "outbox":
		return nonNil(c.Outbox(ctx))
	case "self":
		return c.Self(), nil
	case "version":
		return map[string]string{"version": buildinfo.String()}, nil
	}
	if res, ok, err := d.callSafety(ctx, method, raw); ok {
		return res, err
	}
	return nil, &rpcError{Code: rpcMethodNotFound, Message: fmt.Sprintf("no method %q (send, sendFile, getFile, sync, history, conversations, outbox, self, version, subscribe, typing, timer, %s)", method, safetyMethods)}
}

func nonNil[T any](v []T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []T{}
	}
	return v, nil
}

// daemonClient talks to a running daemon.
type daemonClient struct {
	conn net.Conn
	sc   *bufio.Scanner
	id   int
}

// dialDaemon connects to the profile's daemon, if one runs.
func (e *env) dialDaemon() *daemonClient {
	conn, err := net.DialTimeout("unix", e.socketPath(), time.Second)
	if err != nil {
		return nil
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	return &daemonClient{conn: conn, sc: sc}
}

// call sends a request and decodes its result into out, skipping event
// notifications.
func (dc *daemonClient) call(method string, params, out any) error {
	dc.id++
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": dc.id, "method": method, "params": params})
	if err != nil {
		return err
	}
	if _, err := dc.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	for dc.sc.Scan() {
		var resp struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Error  *rpcError       `json:"error"`
		}
		if err := json.Unmarshal(dc.sc.Bytes(), &resp); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if resp.Method != "" || resp.ID != dc.id {
			continue
		}
		if resp.Error != nil {
			if resp.Error.Code == rpcSecurityAlert {
				return &exitError{code: 1, err: errors.New(resp.Error.Message)}
			}
			return errors.New(resp.Error.Message)
		}
		return json.Unmarshal(resp.Result, out)
	}
	if err := dc.sc.Err(); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return fmt.Errorf("daemon: %w", io.ErrUnexpectedEOF)
}

// daemonSend sends through a running daemon; ok is false when there is
// none (or --no-queue asks for the direct path).
func (e *env) daemonSend(ctx context.Context, to, text, replyTo string) (res sendJSON, ok bool, err error) {
	if e.flags.noQueue {
		return res, false, nil
	}
	dc := e.dialDaemon()
	if dc == nil {
		return res, false, nil
	}
	defer dc.conn.Close()
	var out struct {
		client.Sent
		Queued *client.Queued `json:"queued"`
		Error  string         `json:"error"`
		Before []client.Sent  `json:"before"`
	}
	req := map[string]string{"to": to, "text": text}
	if replyTo != "" {
		req["replyTo"] = replyTo
	}
	if err := dc.call("send", req, &out); err != nil {
		return res, true, err
	}
	res = sendJSON{Queued: out.Queued, Error: out.Error, Before: out.Before}
	if out.Queued == nil {
		res.Sent = &out.Sent
	}
	return res, true, nil
}

// daemonSync runs sync (or sync --follow) through a running daemon.
func (e *env) daemonSync(ctx context.Context) (bool, error) {
	dc := e.dialDaemon()
	if dc == nil {
		return false, nil
	}
	defer dc.conn.Close()
	if e.flags.follow {
		var r map[string]bool
		if err := dc.call("subscribe", nil, &r); err != nil {
			return true, err
		}
		go func() { <-ctx.Done(); dc.conn.Close() }()
		n := 0
		for dc.sc.Scan() {
			var note struct {
				Method string    `json:"method"`
				Params eventJSON `json:"params"`
			}
			if json.Unmarshal(dc.sc.Bytes(), &note) != nil || note.Method != "event" {
				continue
			}
			ev := note.Params
			switch ev.Type {
			case client.EventMessage:
				e.show(syncItem{msg: ev.Message})
				e.ring(ev.Message, "")
			case client.EventChannelPost:
				e.show(syncItem{post: ev.ChannelPost})
			case client.EventSent:
				e.show(syncItem{sent: ev.Sent})
				continue
			case client.EventAlert:
				fmt.Fprintf(e.stderr, "parley: SECURITY ALERT: %s: %s\n", ev.Warning.Conversation, ev.Warning.Err)
				if e.flags.json {
					json.NewEncoder(e.stdout).Encode(map[string]any{"kind": "alert", "conversation": ev.Warning.Conversation, "alert": ev.Warning.Err})
				}
				continue
			default:
				continue
			}
			if n++; e.flags.max > 0 && n >= e.flags.max {
				return true, nil
			}
		}
		return true, nil
	}
	var out syncJSON
	if err := dc.call("sync", nil, &out); err != nil {
		return true, err
	}
	var items []syncItem
	for i := range out.Messages {
		items = append(items, syncItem{msg: &out.Messages[i]})
	}
	for i := range out.ChannelPosts {
		items = append(items, syncItem{post: &out.ChannelPosts[i]})
	}
	for _, it := range interleave(items) {
		e.show(it)
	}
	for i := range out.Sent {
		e.show(syncItem{sent: &out.Sent[i]})
	}
	if len(items) == 0 && len(out.Sent) == 0 && !e.flags.json {
		fmt.Fprintln(e.stderr, "Nothing new.")
	}
	return true, nil
}

// daemonHistory runs history through a running daemon.
func (e *env) daemonHistory(conversation string, limit int) ([]client.Message, bool, error) {
	dc := e.dialDaemon()
	if dc == nil {
		return nil, false, nil
	}
	defer dc.conn.Close()
	var out []client.Message
	err := dc.call("history", map[string]any{"conversation": conversation, "limit": limit}, &out)
	return out, true, err
}
