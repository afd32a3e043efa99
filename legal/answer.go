package legal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parleychat/parley/store"
)

// Sources are where an answer's facts come from: the delivery store, and
// the public channel posts an account wrote (nil: no channels).
type Sources struct {
	Store store.Store
	Posts func(ctx context.Context, username string) ([]Post, error)
}

// Post is a public channel post an account wrote (public by design: it
// was published to anyone who reads the channel).
type Post struct {
	ID      int64     `json:"id"`
	Channel string    `json:"channel"`
	Created time.Time `json:"created"`
	Status  string    `json:"status"`
	Text    string    `json:"text,omitempty"`
	Media   []string  `json:"media_sha256,omitempty"`
}

// Answer is the answer package for a request, generated from the store.
type Answer struct {
	Request   string          `json:"request"`
	Generated time.Time       `json:"generated"`
	Refused   string          `json:"refused,omitempty"`
	Accounts  []AccountFacts  `json:"accounts,omitempty"`
	Preserved *PreservedFacts `json:"preserved,omitempty"`
	// CannotProduce says what Parley does not have, and why.
	CannotProduce []string `json:"cannot_produce"`
}

// AccountFacts is everything the server holds about one account that an
// answer can contain.
type AccountFacts struct {
	Username string `json:"username"`
	Exists   bool   `json:"exists"`
	// Deleted: the account was deleted; only its name and creation time
	// are kept (so that no one can take the name).
	Deleted      bool          `json:"deleted,omitempty"`
	Created      time.Time     `json:"created,omitzero"`
	LastSeen     time.Time     `json:"last_seen_day,omitzero"`
	Devices      []DeviceFacts `json:"devices,omitempty"`
	ChannelPosts []Post        `json:"channel_posts,omitempty"`
}

// DeviceFacts is one device of an account.
type DeviceFacts struct {
	ID       string    `json:"id"`
	Added    time.Time `json:"added"`
	LastSeen time.Time `json:"last_seen_day,omitzero"`
}

// PreservedFacts refers to data preserved for the request.
type PreservedFacts struct {
	On    time.Time `json:"on"`
	Until time.Time `json:"until"`
}

// Preservation is data held for a request: the facts as they were when
// it was ordered, kept until Until and then deleted.
type Preservation struct {
	On       time.Time      `json:"on"`
	Until    time.Time      `json:"until"`
	Accounts []AccountFacts `json:"accounts,omitempty"`
	Released time.Time      `json:"released,omitzero"`
}

// CannotProduce is what every answer says Parley does not hold.
var CannotProduce = []string{
	"Message content, attachments and call content: every private conversation is end-to-end encrypted with MLS (RFC 9420); the server stores only ciphertext it has no key for, for at most 30 days, and has no means to decrypt it. Parley has no exceptional access of any kind.",
	"Contacts, address books, who talks to whom, and group membership history: the server keeps conversations' current member devices only for delivery (random device ids), and no history of them.",
	"IP addresses and connection logs: the server does not store them.",
	"Profile names, pictures, phone numbers or e-mail addresses: Parley accounts have none on the server.",
}

// Facts gathers what the server holds about one account.
func Facts(ctx context.Context, src Sources, username string) (AccountFacts, error) {
	f := AccountFacts{Username: username}
	created, err := src.Store.AccountCreated(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	f.Exists, f.Created = true, created
	devs, err := src.Store.Devices(ctx, username)
	if err != nil {
		return f, err
	}
	f.Deleted = len(devs) == 0
	for _, d := range devs {
		f.Devices = append(f.Devices, DeviceFacts{ID: d.ID, Added: d.Created, LastSeen: d.LastSeen})
		if d.LastSeen.After(f.LastSeen) {
			f.LastSeen = d.LastSeen
		}
	}
	if src.Posts != nil {
		if f.ChannelPosts, err = src.Posts(ctx, username); err != nil {
			return f, fmt.Errorf("public channel posts of %s: %w", username, err)
		}
	}
	return f, nil
}

// publicAnswer is the published form of an answer.
type publicAnswer struct {
	Request          string    `json:"request"`
	Generated        time.Time `json:"generated"`
	Refused          string    `json:"refused,omitempty"`
	AccountsFound    int       `json:"accounts_found"`
	DataProduced     bool      `json:"data_produced"`
	PreservationHeld bool      `json:"preservation_held,omitempty"`
}

// Produced reports whether the answer gave any data.
func (a *Answer) Produced() bool {
	return a.Refused == "" && slices.ContainsFunc(a.Accounts, func(f AccountFacts) bool { return f.Exists })
}

// Respond generates the answer to r at now (refusing it with a reason if
// refused is not empty), and returns the log record to append with it.
// A request is answered once.
func Respond(ctx context.Context, src Sources, r *Request, now time.Time, refused string) ([]byte, error) {
	if r.Answer != nil {
		return nil, fmt.Errorf("%w: %s was answered on %s", ErrClosed, r.ID, r.Answer.Generated.Format(time.DateOnly))
	}
	a := &Answer{Request: r.ID, Generated: now.UTC().Truncate(time.Second), Refused: refused, CannotProduce: CannotProduce}
	if refused == "" {
		for _, name := range r.Accounts {
			f, err := Facts(ctx, src, name)
			if err != nil {
				return nil, err
			}
			a.Accounts = append(a.Accounts, f)
		}
	}
	if p := r.Preservation; p != nil {
		a.Preserved = &PreservedFacts{On: p.On, Until: p.Until}
	}
	found := 0
	for _, f := range a.Accounts {
		if f.Exists {
			found++
		}
	}
	e, rec, err := r.event(KindAnswer, a.Generated, publicAnswer{Request: r.ID, Generated: a.Generated, Refused: refused,
		AccountsFound: found, DataProduced: a.Produced(), PreservationHeld: a.Preserved != nil}, a)
	if err != nil {
		return nil, err
	}
	r.Answer = a
	r.Entries = append(r.Entries, e)
	return rec, nil
}

type publicPreservation struct {
	Request  string    `json:"request"`
	On       time.Time `json:"on"`
	Until    time.Time `json:"until"`
	Accounts int       `json:"accounts"`
	Released time.Time `json:"released,omitzero"`
}

// Preserve holds the current facts of the request's accounts until until
// (and no longer), and returns the log record to append.
func Preserve(ctx context.Context, src Sources, r *Request, now, until time.Time) ([]byte, error) {
	if r.Preservation != nil {
		return nil, fmt.Errorf("%w: %s already holds data until %s", ErrInvalid, r.ID, r.Preservation.Until.Format(time.DateOnly))
	}
	if !until.After(now) {
		return nil, fmt.Errorf("%w: --until %s is not in the future", ErrInvalid, until.Format(time.DateOnly))
	}
	if until.After(now.AddDate(1, 0, 0)) {
		return nil, fmt.Errorf("%w: preservation is for at most a year at a time (orders are renewed, not open-ended)", ErrInvalid)
	}
	p := &Preservation{On: now.UTC().Truncate(time.Second), Until: until.UTC()}
	for _, name := range r.Accounts {
		f, err := Facts(ctx, src, name)
		if err != nil {
			return nil, err
		}
		p.Accounts = append(p.Accounts, f)
	}
	e, rec, err := r.event(KindPreservation, p.On, publicPreservation{Request: r.ID, On: p.On, Until: p.Until, Accounts: len(p.Accounts)}, p.Accounts)
	if err != nil {
		return nil, err
	}
	r.Preservation = p
	r.Entries = append(r.Entries, e)
	return rec, nil
}

// Release deletes preserved data whose period is over, and returns the
// log record to append (nil if there is nothing to release).
func Release(r *Request, now time.Time) ([]byte, error) {
	p := r.Preservation
	if p == nil || !p.Released.IsZero() || now.Before(p.Until) {
		return nil, nil
	}
	p.Accounts = nil
	p.Released = now.UTC().Truncate(time.Second)
	e, rec, err := r.event(KindRelease, p.Released, publicPreservation{Request: r.ID, On: p.On, Until: p.Until, Released: p.Released}, nil)
	if err != nil {
		return nil, err
	}
	r.Entries = append(r.Entries, e)
	return rec, nil
}
