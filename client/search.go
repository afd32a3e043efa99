package client

import (
	"context"
	"errors"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parleychat/parley/client/profile"
)

// MaxSearchQuery bounds a search query.
const MaxSearchQuery = 256

// Search finds the messages of this device's history, in every
// conversation (past groups included), whose text or file name contains
// query, ignoring case; newest first, at most limit (0: 100). History is
// sealed value by value in the profile, so the search decrypts and scans
// it here, on the device: nothing is indexed in the clear and nothing
// leaves the device. Deleted messages are not found, and an edited one is
// found by its current text.
func (c *Client) Search(ctx context.Context, query string, limit int) ([]Message, error) {
	query = strings.TrimSpace(query)
	switch {
	case query == "":
		return nil, errors.New("client: search for some text")
	case len(query) > MaxSearchQuery || !utf8.ValidString(query):
		return nil, errors.New("client: a search query is UTF-8 text of at most 256 bytes")
	}
	if limit <= 0 {
		limit = 100
	}
	q := strings.ToLower(query)
	var out []Message
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			convs, err := listConvs(tx)
			if err != nil {
				return err
			}
			for _, r := range convs {
				items, err := tx.List(historyPfx + hexID(r.ID))
				if err != nil {
					return err
				}
				for _, it := range items {
					var m Message
					if err := jsonUnmarshal(it.Value, &m); err != nil {
						return err
					}
					if m.Deleted || c.expired(m.ExpiresAt) || !matches(&m, q) {
						continue
					}
					m.Conversation = r.label()
					out = append(out, m)
				}
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].SentAt.Equal(out[j].SentAt) {
			return out[i].SentAt.After(out[j].SentAt)
		}
		return out[i].Seq > out[j].Seq
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

func matches(m *Message, q string) bool {
	if strings.Contains(strings.ToLower(m.Text), q) {
		return true
	}
	return m.File != nil && strings.Contains(strings.ToLower(m.File.Name), q)
}
