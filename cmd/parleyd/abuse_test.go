package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/syncbuf"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
)

// runServe runs "parleyd serve ARGS" as users do and returns the URLs it
// logs for the main and metrics listeners.
func runServe(t *testing.T, args ...string) (mainURL, metricsURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncbuf.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, args...), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("parleyd serve exited %d: %s", code, logs.String())
		}
	})
	urlRE := regexp.MustCompile(`msg="(parleyd|metrics) listening" url=(\S+)`)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range urlRE.FindAllStringSubmatch(logs.String(), -1) {
			if m[1] == "parleyd" {
				mainURL = m[2]
			} else {
				metricsURL = m[2]
			}
		}
		if mainURL != "" {
			return mainURL, metricsURL
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("parleyd serve exited %d: %s", code, logs.String())
		default:
		}
	}
	t.Fatalf("parleyd serve did not come up: %s", logs.String())
	return
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics are served to operators on a loopback listener of their own,
// and on the main listener only with the token.
func TestServeMetricsForOperatorsOnly(t *testing.T) {
	mainURL, metricsURL := runServe(t, "--metrics-listen", "127.0.0.1:0", "--metrics-token", "op-token")
	if metricsURL == "" {
		t.Fatal("no metrics listener logged")
	}
	if code, body := get(t, metricsURL, ""); code != http.StatusOK || !strings.Contains(body, "parleyd_websocket_connections") ||
		!strings.Contains(body, "parleyd_sqlite_log_index_entries 0") {
		t.Fatalf("metrics listener: %d %.200q", code, body)
	}
	if code, _ := get(t, mainURL+"/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics on the main listener without the token: %d, want 401", code)
	}
	if code, _ := get(t, mainURL+"/metrics", "Bearer op-token"); code != http.StatusOK {
		t.Fatalf("/metrics on the main listener with the token: %d", code)
	}
	mainURL, metricsURL = runServe(t, "--metrics-listen", "off")
	if metricsURL != "" {
		t.Fatalf("--metrics-listen off still served metrics at %s", metricsURL)
	}
	if code, _ := get(t, mainURL+"/metrics", ""); code != http.StatusNotFound {
		t.Fatalf("/metrics on the main listener without a token configured: %d, want 404", code)
	}
}

func TestServeRefusesBadAbuseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--metrics-listen", "0.0.0.0:0"},
		{"--trusted-proxy", "not-an-address"},
		{"--max-group-members", "1"},
	} {
		var errb bytes.Buffer
		code := run(context.Background(), append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, args...), io.Discard, &errb)
		if code != 1 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("%v: exit %d, %q; want 1 naming the flag", args, code, errb.String())
		}
	}
}

// The abuse limits reach the real server: a Welcome over --max-welcome is
// refused, and --trusted-proxy makes per-address limits count the
// address the proxy names.
func TestServeAbuseFlagsWired(t *testing.T) {
	mainURL, _ := runServe(t, "--metrics-listen", "off", "--max-welcome", "1000", "--trusted-proxy", "127.0.0.1")
	ctx := context.Background()
	c, err := transport.Dial(ctx, mainURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, "alice", newKey(t), ""); err != nil {
		t.Fatal(err)
	}
	b, err := transport.Dial(ctx, mainURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bs, err := b.Register(ctx, "bob", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	conv := []byte("group-1")
	if err := c.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	_, err = c.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Payload: []byte("c"),
		Added: []string{bs.DeviceID}, Welcome: make([]byte, 1001)})
	if !strings.Contains(fmt.Sprint(err), "1000") {
		t.Fatalf("1001-byte Welcome with --max-welcome 1000: %v", err)
	}
	// Behind the trusted proxy, each forwarded address has its own link
	// request budget (10 per 10 minutes): 11 from one address are too
	// many, one from another is fine.
	from := func(addr string) *transport.Conn {
		c, err := transport.Dial(ctx, mainURL, &transport.Options{HTTPClient: &http.Client{Transport: forwardedFor(addr)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var lerr error
	for range 11 {
		_, _, lerr = from("203.0.113.5").RequestLink(ctx, "alice", newKey(t))
	}
	if !errors.Is(lerr, wire.ErrRateLimited) {
		t.Fatalf("11th link request from one forwarded address: %v, want RATE_LIMITED", lerr)
	}
	if _, _, err := from("203.0.113.6").RequestLink(ctx, "alice", newKey(t)); err != nil {
		t.Fatalf("link request from another forwarded address: %v", err)
	}
}

// forwardedFor sets X-Forwarded-For on every request, as a reverse proxy
// in front of parleyd would.
type forwardedFor string

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(f))
	return http.DefaultTransport.RoundTrip(r)
}

// --max-group-members reaches the server: it is announced in the
// handshake, and a commit adding a third account to a group is refused
// with GROUP_FULL (naming the limit) and changes nothing.
func TestServeMaxGroupMembers(t *testing.T) {
	mainURL, _ := runServe(t, "--metrics-listen", "off", "--max-group-members", "2")
	ctx := context.Background()
	dial := func(name string) (*transport.Conn, string) {
		c, err := transport.Dial(ctx, mainURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.Register(ctx, name, newKey(t), "")
		if err != nil {
			t.Fatal(err)
		}
		return c, s.DeviceID
	}
	a, _ := dial("alice")
	_, bob := dial("bob")
	_, carol := dial("carol")
	if got := a.MaxGroupMembers(); got != 2 {
		t.Fatalf("announced limit %d, want 2", got)
	}
	conv := []byte("group-1")
	if err := a.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Payload: []byte("c"),
		Added: []string{bob}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	_, err := a.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 1, Payload: []byte("c"),
		Added: []string{carol}, Welcome: []byte("w")})
	if !errors.Is(err, wire.ErrGroupFull) || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("third member with --max-group-members 2: %v", err)
	}
	infos, err := a.ListConversations(ctx)
	if err != nil || len(infos) != 1 || infos[0].Epoch != 1 || len(infos[0].Members) != 2 {
		t.Fatalf("after the refused commit: %+v, %v", infos, err)
	}
}

// A second "parleyd serve" on a data directory a server is using refuses
// to start and says why; an admin command still works beside the server.
func TestServeRefusesSecondServer(t *testing.T) {
	dir := t.TempDir()
	runServe(t, "--data", dir, "--metrics-listen", "off")
	// Were it to start, it would serve until the deadline and exit 0.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errb syncbuf.Buffer
	code := run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--metrics-listen", "off"}, io.Discard, &errb)
	if code == 0 || !strings.Contains(errb.String(), "another parleyd serve is using this database") {
		t.Fatalf("second server: exit %d, %q", code, errb.String())
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"admin", "invite", "--data", dir}, &out, io.Discard); code != 0 || out.Len() == 0 {
		t.Fatalf("admin invite beside the server: exit %d, %q", code, out.String())
	}
}
