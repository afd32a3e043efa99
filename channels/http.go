package channels

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/channels/channelapi"
	"github.com/parleychat/parley/wire"
)

// The channel API's JSON shapes and paths live in package channelapi, so
// that clients use them without linking the server's moderation code.
const (
	PathPrefix    = channelapi.PathPrefix
	PrivacyHeader = channelapi.PrivacyHeader
)

type (
	ErrorBody       = channelapi.ErrorBody
	MediaView       = channelapi.MediaView
	PostView        = channelapi.PostView
	PostResponse    = channelapi.PostResponse
	EventView       = channelapi.EventView
	EventsResponse  = channelapi.EventsResponse
	ChannelResponse = channelapi.ChannelResponse
	ListResponse    = channelapi.ListResponse
	CreateRequest   = channelapi.CreateRequest
)

// Handler returns the channel API, to be mounted at PathPrefix and below
// (see docs/channels.md).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	p := PathPrefix
	mux.HandleFunc("POST "+p, s.authed(writeReq, s.createChannel))
	mux.HandleFunc("GET "+p, s.authed(readReq, s.listFollowing))
	mux.HandleFunc("GET "+p+"/{id}", s.authed(readReq, s.getChannel))
	mux.HandleFunc("DELETE "+p+"/{id}", s.authed(writeReq, s.deleteChannel))
	mux.HandleFunc("PUT "+p+"/{id}/admins/{user}", s.authed(writeReq, s.setAdmin(true)))
	mux.HandleFunc("DELETE "+p+"/{id}/admins/{user}", s.authed(writeReq, s.setAdmin(false)))
	mux.HandleFunc("PUT "+p+"/{id}/follow", s.authed(writeReq, s.follow(true)))
	mux.HandleFunc("DELETE "+p+"/{id}/follow", s.authed(writeReq, s.follow(false)))
	mux.HandleFunc("POST "+p+"/{id}/posts", s.authed(postReq, s.createPost))
	mux.HandleFunc("GET "+p+"/{id}/posts/{post}", s.authed(readReq, s.getPost))
	mux.HandleFunc("DELETE "+p+"/{id}/posts/{post}", s.authed(writeReq, s.deletePost))
	mux.HandleFunc("GET "+p+"/{id}/posts/{post}/media/{n}", s.authed(readReq, s.getMedia))
	mux.HandleFunc("GET "+p+"/{id}/events", s.authed(readReq, s.events))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(PrivacyHeader, "public; not end-to-end encrypted")
		mux.ServeHTTP(w, r)
	})
}

type authedHandler func(w http.ResponseWriter, r *http.Request, user string)

// requestClass picks the rate limit a route counts against.
type requestClass int

const (
	readReq requestClass = iota
	writeReq
	postReq
)

// authed authenticates the caller and counts the request against the
// caller's limit for its class.
func (s *Service) authed(class requestClass, h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, err := s.cfg.Auth.Authenticate(r)
		if err != nil || user == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
			// Channels are public to the server's users, not to the web:
			// say how to read them.
			writeError(w, http.StatusUnauthorized, ErrorBody{Error: "authentication required: public channels are served to accounts of this server; use parley channel read, or parley channel get-media CHANNEL POST N for media", Code: "unauthenticated"})
			return
		}
		limit, name := s.cfg.ReadLimit, "reads"
		switch class {
		case writeReq:
			limit, name = s.cfg.WriteLimit, "changes"
		case postReq:
			limit, name = s.cfg.PostLimit, "posts"
		}
		// The keys are apart from the delivery server's in the shared
		// counter (Config.Shared).
		if ok, after := s.allow("chan-"+name+":"+user, limit); !ok {
			secs := int((after + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
			writeError(w, http.StatusTooManyRequests, ErrorBody{
				Error: fmt.Sprintf("too many %s (at most %d per %v); retry in %ds", name, limit.N, limit.Per, max(1, secs)),
				Code:  "rate_limited"})
			return
		}
		h(w, r, user)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, b ErrorBody) { writeJSON(w, status, b) }

// storeError maps a store error to a response.
func (s *Service) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, ErrorBody{Error: "not found", Code: "not_found"})
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, ErrorBody{Error: "this channel id is taken (by a channel, or by one that was deleted): choose another", Code: "exists"})
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Code: "invalid"})
	case errors.Is(err, ErrMediaStorage):
		s.log.Warn("channels: the media object store failed; the client is told to retry", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, ErrorBody{Error: "the server cannot store files now; nothing was posted: retry in a minute", Code: "unavailable"})
	default:
		if r.Context().Err() == nil {
			s.log.Error("channels: request failed", "path", r.URL.Path, "err", err)
		}
		writeError(w, http.StatusInternalServerError, ErrorBody{Error: "internal error", Code: "internal"})
	}
}

func (s *Service) createChannel(w http.ResponseWriter, r *http.Request, user string) {
	var req CreateRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: "body must be a JSON object {id, title, description}", Code: "invalid"})
		return
	}
	if !ValidID(req.ID) {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: "id must be 2-64 characters of a-z 0-9 _ -, starting with a letter or digit", Code: "invalid"})
		return
	}
	if len(req.Title) > 200 || len(req.Description) > 2000 || !utf8.ValidString(req.Title+req.Description) {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: "title (200 bytes) or description (2000 bytes) too long or not UTF-8", Code: "invalid"})
		return
	}
	c := Channel{ID: req.ID, Title: req.Title, Description: req.Description, Owner: user, Created: time.Now()}
	if err := s.store.CreateChannel(r.Context(), c); err != nil {
		s.storeError(w, r, err)
		return
	}
	c, err := s.store.Channel(r.Context(), req.ID)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ChannelResponse{Channel: c, Public: true, Notice: PublicNotice})
}

func (s *Service) listFollowing(w http.ResponseWriter, r *http.Request, user string) {
	ids, err := s.store.Following(r.Context(), user)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	owned, err := s.store.Owned(r.Context(), user)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if owned == nil {
		owned = []string{}
	}
	writeJSON(w, http.StatusOK, ListResponse{Following: ids, Owned: owned, Public: true, Notice: PublicNotice})
}

func (s *Service) getChannel(w http.ResponseWriter, r *http.Request, user string) {
	c, err := s.store.Channel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	following := false
	if ids, err := s.store.Following(r.Context(), user); err == nil {
		for _, id := range ids {
			following = following || id == c.ID
		}
	}
	writeJSON(w, http.StatusOK, ChannelResponse{Channel: c, Public: true, Notice: PublicNotice, Following: following})
}

// ownChannel returns the channel the request names if user owns it;
// otherwise it answers 404 or 403 ("only the channel owner " + may).
func (s *Service) ownChannel(w http.ResponseWriter, r *http.Request, user, may string) (Channel, bool) {
	c, err := s.store.Channel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return c, false
	}
	if c.Owner != user {
		writeError(w, http.StatusForbidden, ErrorBody{Error: "only the channel owner " + may, Code: "forbidden"})
		return c, false
	}
	return c, true
}

// setAdmin adds or removes a channel admin; only the owner may. An admin
// must be a valid username of an account that can sign in: names are
// taken exactly as registration takes them (wire.CheckUsername: lower-case
// ASCII, no folding), so "ALICE" is refused with a hint rather than
// quietly stored as a name no one can ever sign in as.
func (s *Service) setAdmin(on bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, user string) {
		c, ok := s.ownChannel(w, r, user, "manages admins")
		if !ok {
			return
		}
		name := r.PathValue("user")
		// Removing a name that is an admin always works, so that names
		// stored before they were checked can be cleaned up.
		if on || !slices.Contains(c.Admins, name) {
			if err := wire.CheckUsername(name); err != nil {
				msg := fmt.Sprintf("%q is not a username: %v", name, err)
				if lower := strings.ToLower(name); lower != name && wire.CheckUsername(lower) == nil {
					msg += fmt.Sprintf("; usernames are lower case: did you mean %q?", lower)
				}
				writeError(w, http.StatusBadRequest, ErrorBody{Error: msg, Code: "invalid"})
				return
			}
		}
		if on {
			exists, err := s.cfg.AccountExists(r.Context(), name)
			if err != nil {
				s.storeError(w, r, fmt.Errorf("channels: look up account %q: %w", name, err))
				return
			}
			if !exists {
				writeError(w, http.StatusNotFound, ErrorBody{
					Error: fmt.Sprintf("there is no account %q on this server (or it was deleted): an admin must be a registered user; check the name with them", name),
					Code:  "unknown_user"})
				return
			}
		}
		if err := s.store.SetAdmin(r.Context(), c.ID, name, on); err != nil {
			s.storeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// deleteChannel deletes a channel with everything in it; only its owner
// may. The id stays taken.
func (s *Service) deleteChannel(w http.ResponseWriter, r *http.Request, user string) {
	c, ok := s.ownChannel(w, r, user, "can delete a channel")
	if !ok {
		return
	}
	if err := s.store.DeleteChannel(r.Context(), c.ID); err != nil {
		s.storeError(w, r, err)
		return
	}
	s.erased(r.Context())
	s.notify.notify(c.ID)
	s.log.Info("channel deleted", "channel", c.ID, "by", user)
	w.WriteHeader(http.StatusNoContent)
}

// deletePost erases a post (text and media); its author, the channel's
// owner and its admins may. Followers get a takedown event.
func (s *Service) deletePost(w http.ResponseWriter, r *http.Request, user string) {
	id, err := strconv.ParseInt(r.PathValue("post"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, ErrorBody{Error: "not found", Code: "not_found"})
		return
	}
	p, err := s.store.Post(r.Context(), id)
	if err == nil && (p.Channel != r.PathValue("id") || p.Status == Deleted) {
		err = ErrNotFound
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	c, err := s.store.Channel(r.Context(), p.Channel)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if p.Author != user && !c.CanPost(user) {
		writeError(w, http.StatusForbidden, ErrorBody{Error: "only the post's author and the channel's owner and admins can delete a post", Code: "forbidden"})
		return
	}
	if _, err := s.store.DeletePost(r.Context(), id, "deleted by "+user); err != nil {
		s.storeError(w, r, err)
		return
	}
	s.erased(r.Context())
	s.notify.notify(p.Channel)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) follow(on bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, user string) {
		if err := s.store.SetFollow(r.Context(), r.PathValue("id"), user, on); err != nil {
			s.storeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// createPost accepts multipart/form-data with a "text" field and up to
// MaxMediaFiles "media" file parts.
func (s *Service) createPost(w http.ResponseWriter, r *http.Request, user string) {
	received := time.Now()
	c, err := s.store.Channel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if !c.CanPost(user) {
		writeError(w, http.StatusForbidden, ErrorBody{Error: "only the channel's owner and admins can post", Code: "forbidden"})
		return
	}
	// One user may not hold more than a few of the upload slots below,
	// or a slow uploader could keep everyone else from posting.
	if !s.userUps.acquire(user, s.cfg.MaxUploadsPerUser) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, ErrorBody{
			Error: fmt.Sprintf("at most %d post uploads at once per account; wait for one to finish", s.cfg.MaxUploadsPerUser),
			Code:  "rate_limited"})
		return
	}
	defer s.userUps.release(user)
	// The same cap across the nodes sharing the store.
	if s.slots != nil {
		key := "chan-uploads:" + user
		ok, counted := s.slots.Acquire(r.Context(), key, s.cfg.MaxUploadsPerUser)
		if !ok {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, ErrorBody{
				Error: fmt.Sprintf("at most %d post uploads at once per account (on all of the server's nodes); wait for one to finish", s.cfg.MaxUploadsPerUser),
				Code:  "rate_limited"})
			return
		}
		if counted {
			defer s.slots.Release(key)
		}
	}
	// Bound the memory held by uploads in flight.
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	case <-r.Context().Done():
		return
	}
	fileLimit := max(s.cfg.MaxMediaBytes, s.cfg.MaxVideoBytes)
	limit := int64(s.cfg.MaxMediaFiles)*fileLimit + int64(s.cfg.MaxTextBytes) + 64<<10
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: "body must be multipart/form-data with a text field and media files", Code: "invalid"})
		return
	}
	var text string
	var data [][]byte
	var declared []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.bodyError(w, err)
			return
		}
		switch part.FormName() {
		case "text":
			b, err := io.ReadAll(io.LimitReader(part, int64(s.cfg.MaxTextBytes)+1))
			if err != nil {
				s.bodyError(w, err)
				return
			}
			if len(b) > s.cfg.MaxTextBytes || !utf8.Valid(b) {
				writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("text must be UTF-8 of at most %d bytes", s.cfg.MaxTextBytes), Code: "invalid"})
				return
			}
			text = string(b)
		case "media":
			if len(data) == s.cfg.MaxMediaFiles {
				writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("at most %d media files per post", s.cfg.MaxMediaFiles), Code: "invalid"})
				return
			}
			b, err := io.ReadAll(io.LimitReader(part, fileLimit+1))
			if err != nil {
				s.bodyError(w, err)
				return
			}
			isVideo := sniffVideo(b) != ""
			if !isVideo && int64(len(b)) > s.cfg.MaxMediaBytes {
				writeError(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("media file larger than %d bytes", s.cfg.MaxMediaBytes), Code: "too_large"})
				return
			}
			if isVideo && int64(len(b)) > s.cfg.MaxVideoBytes {
				writeError(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("video larger than %d bytes", s.cfg.MaxVideoBytes), Code: "too_large"})
				return
			}
			if len(b) == 0 {
				writeError(w, http.StatusBadRequest, ErrorBody{Error: "empty media file", Code: "invalid"})
				return
			}
			data = append(data, b)
			declared = append(declared, part.Header.Get("Content-Type"))
		default:
			writeError(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("unknown form field %q (want text and media)", part.FormName()), Code: "invalid"})
			return
		}
	}
	if strings.TrimSpace(text) == "" && len(data) == 0 {
		writeError(w, http.StatusBadRequest, ErrorBody{Error: "a post needs text or media", Code: "invalid"})
		return
	}
	post := Post{Channel: c.ID, Author: user, Text: text}
	for i, b := range data {
		m, err := s.Analyse(b, declared[i])
		if errors.Is(err, ErrVideoUnavailable) {
			i := i
			writeError(w, http.StatusUnsupportedMediaType, ErrorBody{Error: err.Error(), Code: "video_unavailable", Media: &i})
			return
		}
		if err != nil {
			i := i
			writeError(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error(), Code: "media_refused", Media: &i})
			return
		}
		post.Media = append(post.Media, m)
	}
	post, err = s.Publish(r.Context(), post, data, received)
	var be *BlockedError
	if errors.As(err, &be) {
		i := be.Media
		writeError(w, http.StatusUnavailableForLegalReasons, ErrorBody{
			Error: fmt.Sprintf("post refused: media %d matches the hash list %q (%s)", i, be.Match.Bank, be.Match.Label),
			Code:  "blocked", List: be.Match.Bank, Label: be.Match.Label, Media: &i})
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if post.Status == Held {
		status = http.StatusAccepted
	}
	writeJSON(w, status, PostResponse{Post: view(post), Notice: PublicNotice})
}

func (s *Service) bodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("request larger than %d bytes", mbe.Limit), Code: "too_large"})
		return
	}
	writeError(w, http.StatusBadRequest, ErrorBody{Error: "malformed multipart body", Code: "invalid"})
}

func view(p Post) PostView {
	v := PostView{ID: p.ID, Channel: p.Channel, Author: p.Author, Text: p.Text, Status: p.Status, Reason: p.Reason, Created: p.Created}
	for _, m := range p.Media {
		v.Media = append(v.Media, MediaView{Index: m.Index, ContentType: m.ContentType, Size: m.Size,
			URL:    fmt.Sprintf("%s/%s/posts/%d/media/%d", PathPrefix, p.Channel, p.ID, m.Index),
			SHA256: hex.EncodeToString(m.SHA256[:])})
	}
	return v
}

// listsInForce applies every hash-list change committed before the request,
// and takes down the posts it matches, before channel content is served:
// once "parleyd admin lists import" has returned, a post its list matches
// is never served, not even until the next poll. If that cannot be done it
// answers 500 and returns false, since serving could show listed content.
func (s *Service) listsInForce(w http.ResponseWriter, r *http.Request) bool {
	if err := s.mod.UpToDate(r.Context()); err != nil {
		s.storeError(w, r, fmt.Errorf("channels: apply hash-list changes before serving: %w", err))
		return false
	}
	return true
}

// publishedPost returns the post named by the request if it is published
// in the named channel.
func (s *Service) publishedPost(w http.ResponseWriter, r *http.Request) (Post, bool) {
	if !s.listsInForce(w, r) {
		return Post{}, false
	}
	id, err := strconv.ParseInt(r.PathValue("post"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, ErrorBody{Error: "not found", Code: "not_found"})
		return Post{}, false
	}
	p, err := s.store.Post(r.Context(), id)
	if err == nil && (p.Channel != r.PathValue("id") || p.Status != Published) {
		err = ErrNotFound
	}
	if err != nil {
		s.storeError(w, r, err)
		return Post{}, false
	}
	return p, true
}

func (s *Service) getPost(w http.ResponseWriter, r *http.Request, _ string) {
	if p, ok := s.publishedPost(w, r); ok {
		writeJSON(w, http.StatusOK, PostResponse{Post: view(p), Notice: PublicNotice})
	}
}

func (s *Service) getMedia(w http.ResponseWriter, r *http.Request, _ string) {
	p, ok := s.publishedPost(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(p.Media) {
		writeError(w, http.StatusNotFound, ErrorBody{Error: "not found", Code: "not_found"})
		return
	}
	m := p.Media[n]
	ct, inline := m.ContentType, true
	if _, _, err := mime.ParseMediaType(ct); err != nil || !inlineImage(ct) {
		ct, inline = "application/octet-stream", false
	}
	if m.Object != "" && r.Header.Get(channelapi.FollowRedirectHeader) == "1" {
		if urls, ok := s.cfg.MediaObjects.(MediaURLs); ok {
			u, ok, err := urls.MediaURL(r.Context(), m.Object, ct, inline)
			if err != nil {
				s.log.Warn("channels: pre-signing a media download failed; streaming it", "post", p.ID, "err", err)
			} else if ok {
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("Repr-Digest", reprDigest(m))
				http.Redirect(w, r, u, http.StatusTemporaryRedirect)
				return
			}
		}
	}
	var body io.Reader
	var size int64
	if m.Object == "" {
		if s.mediaRead != nil {
			s.mediaRead()
		}
		data, object, err := s.store.MediaData(r.Context(), p.ID, n)
		switch {
		case err != nil:
			s.storeError(w, r, err)
			return
		case object != "":
			// Moved to the object store since the post was read
			// ("parleyd admin channel-media move").
			m.Object = object
		case int64(len(data)) != m.Size:
			s.storeError(w, r, fmt.Errorf("media %d/%d: %d bytes in the store, %d recorded", p.ID, n, len(data), m.Size))
			return
		default:
			body, size = bytes.NewReader(data), m.Size
		}
	}
	if m.Object != "" {
		rc, objectSize, err := s.openObject(r.Context(), m.Object)
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted or taken down since it was read: its objects go
			// with it, and the answer is the one a later request gets.
			if again, perr := s.store.Post(r.Context(), p.ID); errors.Is(perr, ErrNotFound) || (perr == nil && again.Status != Published) {
				writeError(w, http.StatusNotFound, ErrorBody{Error: "not found", Code: "not_found"})
				return
			}
		}
		if err != nil {
			s.log.Error("channels: a post's media object cannot be read", "post", p.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, ErrorBody{Error: "the file cannot be read from storage now; try again later", Code: "unavailable"})
			return
		}
		defer rc.Close()
		body, size = rc, objectSize
	}
	if !inline {
		w.Header().Set("Content-Disposition", "attachment")
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	// RFC 9530: clients check what they received.
	w.Header().Set("Repr-Digest", reprDigest(m))
	if _, err := io.Copy(w, body); err != nil && r.Context().Err() == nil {
		// Not the client hanging up: the object store's stream broke.
		s.log.Warn("channels: a media download was cut short", "post", p.ID, "file", n, "err", err)
	}
}

// reprDigest is m's Repr-Digest field (RFC 9530): the SHA-256 taken when
// the file was uploaded and checked, so that bytes changed in storage
// since fail the client's check.
func reprDigest(m Media) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(m.SHA256[:]) + ":"
}

// inlineImage reports whether media of content type ct are served for
// display: images, as before; everything else is an attachment of
// unknown type. (Served by the node, they also get a sandboxing CSP; an
// object store's pre-signed URL cannot set one, but serves from another
// origin.)
func inlineImage(ct string) bool { return strings.HasPrefix(ct, "image/") }

// openObject opens a media file's object.
func (s *Service) openObject(ctx context.Context, object string) (io.ReadCloser, int64, error) {
	if s.cfg.MediaObjects == nil {
		return nil, 0, errors.New("the file is in an object store, and this server was started without one (parleyd --channel-media)")
	}
	return s.cfg.MediaObjects.OpenMedia(ctx, object)
}

// events serves a channel's feed from ?since=<cursor>. With ?wait=<seconds>
// it long-polls: it answers as soon as there is an event, or with no
// events when the wait is over.
func (s *Service) events(w http.ResponseWriter, r *http.Request, _ string) {
	ctx := r.Context()
	c, err := s.store.Channel(ctx, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var since int64
	if v := q.Get("since"); v != "" {
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			writeError(w, http.StatusBadRequest, ErrorBody{Error: "since must be a non-negative integer", Code: "invalid"})
			return
		}
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 0 {
			writeError(w, http.StatusBadRequest, ErrorBody{Error: "wait must be a number of seconds", Code: "invalid"})
			return
		}
		wait = min(time.Duration(secs)*time.Second, s.cfg.MaxWait)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// Changes made by other processes (parleyd admin) are not notified,
	// and a bus may lose a notice: read the store now and then too.
	poll := time.NewTicker(s.cfg.FeedPoll)
	defer poll.Stop()
	for {
		woken := s.notify.wait(c.ID)
		evs, err := s.store.Events(ctx, c.ID, since, 100)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		if len(evs) > 0 || wait == 0 {
			s.writeEvents(w, r, c.ID, since, evs)
			return
		}
		if f := s.longPollWaiting; f != nil {
			f(c.ID)
		}
		select {
		case <-woken:
		case <-poll.C:
		case <-deadline.C:
			s.writeEvents(w, r, c.ID, since, nil)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) writeEvents(w http.ResponseWriter, r *http.Request, channel string, since int64, evs []Event) {
	if !s.listsInForce(w, r) {
		return
	}
	resp := EventsResponse{Channel: channel, Public: true, Notice: PublicNotice, Events: []EventView{}, Cursor: since}
	for _, e := range evs {
		v := EventView{Seq: e.Seq, Kind: e.Kind, PostID: e.PostID, Reason: e.Reason, Time: e.Time}
		if e.Kind == EventPost {
			p, err := s.store.Post(r.Context(), e.PostID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				s.storeError(w, r, err)
				return
			}
			if err == nil && p.Status == Published {
				pv := view(p)
				v.Post = &pv
			}
		}
		resp.Events = append(resp.Events, v)
		resp.Cursor = e.Seq
	}
	writeJSON(w, http.StatusOK, resp)
}
