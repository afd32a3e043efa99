package moderation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/hashing/hashlist"
)

// The hash exchange lets servers share the hashes their moderators
// confirmed. A server publishes a bank (Publish gives its bearer token);
// ExchangeHandler serves the bank's change log as pages shaped like Tech
// Against Terrorism's hash list API (TCAP "hash-list/v2"), and Sync reads
// them from a checkpoint, so additions and deletions both propagate:
//
//	GET /v1/exchange/{bank}?checkpoint=<seq>&limit=<n>
//	Authorization: Bearer <token>
//
//	{"count": 2, "next": "...?checkpoint=17" | null, "previous": null,
//	 "checkpoint": "17",
//	 "results": [{"id": 16, "hash_digest": "<hex>", "algorithm": "PDQ",
//	              "deleted": false, "ideology": "far-right"}, ...]}
//
// Record tags "ideology:x" and "file_type:x" travel as the TCAP fields of
// those names; other tags do not travel.

// PathExchange is the prefix the exchange handler serves under.
const PathExchange = "/v1/exchange/"

// ErrUnauthorized is returned by Sync when the publisher refuses the token.
var ErrUnauthorized = errors.New("moderation: exchange refused the token")

const (
	defaultPageSize = 1000
	maxPageSize     = 10000
	maxPageBytes    = 64 << 20
	maxCheckpoint   = 256
)

// servePageBytes bounds the hashes of one served page, well under what a
// reader accepts (maxPageBytes): a TMK record is 350 KB, so a page of video
// hashes ends before it reaches its limit of records. A variable so that a
// test can page a few records.
var servePageBytes = 16 << 20

// Publish makes bank available on the exchange and returns a new random
// bearer token for it; only its SHA-256 is stored. A previous token stops
// working.
func Publish(ctx context.Context, st Store, bank string) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(tok))
	if err := st.SetPublishToken(ctx, bank, sum[:]); err != nil {
		return "", err
	}
	return tok, nil
}

// exchangeRecord is one element of a page's results.
type exchangeRecord struct {
	ID         int64   `json:"id"`
	HashDigest string  `json:"hash_digest"`
	Algorithm  string  `json:"algorithm"`
	Deleted    bool    `json:"deleted"`
	Ideology   *string `json:"ideology,omitempty"`
	FileType   *string `json:"file_type,omitempty"`
	UpdatedOn  string  `json:"updated_on"`
}

type exchangePage struct {
	Count      int              `json:"count"`
	Next       *string          `json:"next"`
	Previous   *string          `json:"previous"`
	Checkpoint string           `json:"checkpoint"`
	Results    []exchangeRecord `json:"results"`
}

// ExchangeHandler serves GET PathExchange+"{bank}" for published banks.
// Requests without the bank's token get 401, whether or not the bank
// exists or is published, so the feed reveals nothing without a token.
func ExchangeHandler(st Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		bank, ok := strings.CutPrefix(r.URL.Path, PathExchange)
		if !ok || bank == "" || strings.Contains(bank, "/") {
			http.NotFound(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		want, err := st.PublishToken(r.Context(), bank)
		got := sha256.Sum256([]byte(tok))
		// Compare even when the bank is unknown, so timing does not say
		// which banks exist.
		if len(want) != sha256.Size {
			want = make([]byte, sha256.Size)
			ok = false
		}
		if subtle.ConstantTimeCompare(got[:], want) != 1 || !ok || err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley exchange"`)
			http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
			return
		}
		q := r.URL.Query()
		var since int64
		if c := q.Get("checkpoint"); c != "" {
			since, err = strconv.ParseInt(c, 10, 64)
			if err != nil || since < 0 {
				http.Error(w, "checkpoint must be a non-negative integer", http.StatusBadRequest)
				return
			}
		}
		limit := defaultPageSize
		if l := q.Get("limit"); l != "" {
			limit, err = strconv.Atoi(l)
			if err != nil || limit < 1 || limit > maxPageSize {
				http.Error(w, fmt.Sprintf("limit must be 1 to %d", maxPageSize), http.StatusBadRequest)
				return
			}
		}
		changes, err := st.Changes(r.Context(), bank, since, limit)
		if err != nil {
			http.Error(w, "cannot read the bank", http.StatusInternalServerError)
			return
		}
		page := exchangePage{Checkpoint: strconv.FormatInt(since, 10), Results: []exchangeRecord{}}
		more := len(changes) == limit
		size := 0
		for i, c := range changes {
			if size += len(c.Entry.Value) + 256; i > 0 && size > servePageBytes {
				more = true
				break
			}
			rec := exchangeRecord{ID: c.Seq, HashDigest: c.Entry.Value, Algorithm: strings.ToUpper(string(c.Entry.Type)),
				Deleted: c.Op == OpDelete, UpdatedOn: c.Time.UTC().Format(time.RFC3339Nano)}
			for _, t := range c.Entry.Tags {
				if v, ok := strings.CutPrefix(t, "ideology:"); ok {
					rec.Ideology = &v
				} else if v, ok := strings.CutPrefix(t, "file_type:"); ok {
					rec.FileType = &v
				}
			}
			page.Results = append(page.Results, rec)
			page.Checkpoint = strconv.FormatInt(c.Seq, 10)
		}
		page.Count = len(page.Results)
		if more {
			u := *r.URL
			v := u.Query()
			v.Set("checkpoint", page.Checkpoint)
			u.RawQuery = v.Encode()
			next := u.RequestURI()
			page.Next = &next
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(page)
	})
}

// DecodeExchangePage decodes one page of an exchange feed (Parley's or
// TCAP's, which share a shape) from untrusted bytes, reading at most
// maxPageBytes, and checks its checkpoint.
func DecodeExchangePage(r io.Reader) (*hashlist.TCAPPage, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("exchange page: read: %w", err)
	}
	if len(data) > maxPageBytes {
		return nil, fmt.Errorf("exchange page: larger than %d bytes", maxPageBytes)
	}
	p, err := hashlist.ParseTCAPPage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("exchange page: %w", err)
	}
	if len(p.Checkpoint) > maxCheckpoint || strings.ContainsFunc(p.Checkpoint, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return nil, fmt.Errorf("exchange page: checkpoint must be at most %d printable ASCII characters", maxCheckpoint)
	}
	return p, nil
}

// SyncOptions says what to sync from where.
type SyncOptions struct {
	URL   string // the feed, e.g. https://a.example/v1/exchange/confirmed
	Token string
	// Bank is the local bank to sync into; Name is required. Its Action
	// defaults to block, its Source to URL.
	Bank   Bank
	Client *http.Client // default: a client with a one-minute timeout
	// MaxPages bounds one Sync (default 1000).
	MaxPages int
}

// SyncResult says what a Sync changed.
type SyncResult struct {
	Pages, Added, Removed int
	Checkpoint            string
	Bank                  Bank
}

// Sync fetches the feed from the bank's stored checkpoint and applies each
// page atomically together with the page's checkpoint, so an interrupted
// sync resumes where it stopped and a repeated one changes nothing.
func Sync(ctx context.Context, st Store, o SyncOptions) (SyncResult, error) {
	var res SyncResult
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return res, fmt.Errorf("exchange sync: URL %q must be http(s)://host/PATH", o.URL)
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 1000
	}
	meta := o.Bank
	if meta.Action == "" {
		meta.Action = hashlist.Block
	}
	if meta.Source == "" {
		meta.Source = o.URL
	}
	checkpoint := ""
	if b, err := st.Bank(ctx, meta.Name); err == nil {
		checkpoint = b.Checkpoint
	} else if !errors.Is(err, ErrNotFound) {
		return res, err
	}
	for res.Pages < o.MaxPages {
		pu := *u
		q := pu.Query()
		if checkpoint != "" {
			q.Set("checkpoint", checkpoint)
		}
		pu.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, pu.String(), nil)
		if err != nil {
			return res, fmt.Errorf("exchange sync: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+o.Token)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("exchange sync: %w", err)
		}
		page, err := func() (*hashlist.TCAPPage, error) {
			defer resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
				return nil, fmt.Errorf("%w (HTTP %d)", ErrUnauthorized, resp.StatusCode)
			case resp.StatusCode != http.StatusOK:
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				return nil, fmt.Errorf("exchange sync: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
			}
			return DecodeExchangePage(resp.Body)
		}()
		if err != nil {
			return res, err
		}
		res.Pages++
		current, err := st.Entries(ctx, meta.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return res, err
		}
		d := hashlist.DiffTCAP(current, page)
		b, err := st.ApplyDelta(ctx, meta, d, page.Checkpoint)
		if err != nil {
			return res, fmt.Errorf("exchange sync: apply page %d: %w", res.Pages, err)
		}
		res.Added += len(d.Added)
		res.Removed += len(d.Removed)
		res.Bank = b
		done := page.Next == "" || page.Checkpoint == checkpoint
		checkpoint = page.Checkpoint
		res.Checkpoint = checkpoint
		if done {
			break
		}
	}
	return res, nil
}

// Confirm adds entries that a moderator confirmed to bank (created as a
// block bank if it does not exist), logging a decision for each.
func Confirm(ctx context.Context, st Store, bank string, entries []hashlist.Entry, actor, subject string) (Bank, error) {
	meta, err := st.Bank(ctx, bank)
	if errors.Is(err, ErrNotFound) {
		meta = Bank{Name: bank, Source: "local", Label: "confirmed by this server's moderators", Action: hashlist.Block}
	} else if err != nil {
		return Bank{}, err
	}
	b, err := st.ApplyDelta(ctx, meta, hashlist.Delta{Added: entries}, meta.Checkpoint)
	if err != nil {
		return Bank{}, err
	}
	for _, e := range entries {
		if _, err := st.RecordDecision(ctx, Decision{Kind: DecisionConfirm, Bank: bank, Type: e.Type, Hash: e.Value, Subject: subject, Actor: actor}); err != nil {
			return b, err
		}
	}
	return b, nil
}
