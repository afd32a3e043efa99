package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/mls"
)

// GroupMember is a member of a group with its role.
type GroupMember struct {
	User    string   `json:"user"`
	Role    string   `json:"role"` // RoleAdmin or RoleMember
	Devices []string `json:"devices"`
}

// PictureInfo describes a group's picture (fetch it with GroupPicture).
type PictureInfo struct {
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// GroupInfo is a group's agreed state, as `parley group info --json`
// prints it.
type GroupInfo struct {
	Conversation string        `json:"conversation"` // "#handle"
	ID           string        `json:"id"`
	Name         string        `json:"name,omitempty"`
	Topic        string        `json:"topic,omitempty"`
	Picture      *PictureInfo  `json:"picture,omitempty"`
	Members      []GroupMember `json:"members"`
	// Roles is false for a group made before roles existed: every member
	// may do everything there.
	Roles  bool   `json:"roles"`
	MyRole string `json:"my_role"`
	Epoch  uint64 `json:"epoch"`
}

// groupInfoOf builds the GroupInfo of the stored group r.
func groupInfoOf(r *convRecord, g *mls.Group, self string) (GroupInfo, error) {
	info := GroupInfo{Conversation: r.label(), ID: hexID(r.ID), Epoch: g.Epoch(), MyRole: RoleMember}
	st, _, err := groupStateOf(g.GroupContext().Extensions)
	if err != nil {
		return info, err
	}
	users := memberUserSet(g)
	byUser := map[string]*GroupMember{}
	for s := range groupDevices(g) {
		m := byUser[s.User]
		if m == nil {
			m = &GroupMember{User: s.User, Role: RoleMember}
			if st == nil || st.mayAdminister(s.User, users) {
				m.Role = RoleAdmin
			}
			byUser[s.User] = m
		}
		m.Devices = append(m.Devices, s.Device)
	}
	for _, m := range byUser {
		sort.Strings(m.Devices)
		info.Members = append(info.Members, *m)
	}
	sort.Slice(info.Members, func(i, j int) bool { return info.Members[i].User < info.Members[j].User })
	if m := byUser[self]; m != nil {
		info.MyRole = m.Role
	}
	if st != nil {
		info.Roles = true
		info.Name, info.Topic = st.Name, st.Topic
		if p := st.Picture; p != nil {
			info.Picture = &PictureInfo{Type: p.Type, Size: p.Size, SHA256: hex.EncodeToString(p.SHA256)}
		}
	}
	return info, nil
}

// GroupInfo returns a group's name, topic, picture and members with their
// roles, as every member agrees on them (the group's MLS GroupContext),
// after syncing the group.
func (c *Client) GroupInfo(ctx context.Context, group string) (GroupInfo, error) {
	var info GroupInfo
	err := c.withLock(ctx, func() error {
		r, g, err := c.syncedGroup(ctx, group)
		if err != nil {
			return err
		}
		info, err = groupInfoOf(r, g, c.acct.User)
		return err
	})
	return info, err
}

// LocalGroupInfo is GroupInfo from the profile alone, without the
// network (for the TUI).
func (c *Client) LocalGroupInfo(group string) (GroupInfo, error) {
	var info GroupInfo
	err := c.store.Update(func(tx *profile.Tx) error {
		r, err := findGroup(tx, strings.TrimPrefix(group, "#"))
		if err != nil {
			return err
		}
		g, err := loadGroup(tx, r.ID)
		if err != nil {
			return err
		}
		info, err = groupInfoOf(r, g, c.acct.User)
		return err
	})
	return info, err
}

// syncedGroup resolves a group and brings it up to date. Call with the
// lock held.
func (c *Client) syncedGroup(ctx context.Context, group string) (*convRecord, *mls.Group, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	target := "#" + strings.TrimPrefix(group, "#")
	// Welcomes first: perhaps added since the last sync, or removed and
	// added back (the new Welcome replaces the state the log's removal
	// would otherwise end).
	if _, err := c.processInbox(ctx, conn); err != nil {
		return nil, nil, err
	}
	r, err := c.resolve(ctx, target, false)
	if err != nil {
		return nil, nil, err
	}
	if r.Kind != ConvGroup {
		return nil, nil, fmt.Errorf("%w: %s is not a group", ErrBadTarget, group)
	}
	if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
		return nil, nil, err
	}
	var g *mls.Group
	err = c.store.Update(func(tx *profile.Tx) error {
		if r, err = getConv(tx, r.ID); err != nil {
			return err
		}
		g, err = loadGroup(tx, r.ID)
		return err
	})
	return r, g, err
}

// GroupSettings are changes to a group's state; nil fields stay.
type GroupSettings struct {
	Name  *string
	Topic *string
	// PicturePath is a file to encrypt, upload and set as the picture.
	PicturePath string
	// Picture is an image to set as the picture, for callers without a
	// file system (the web client); PicturePath wins if both are set.
	Picture []byte
}

// ErrNoGroupState means the group was made before roles and group state
// existed: it has no place for them.
var ErrNoGroupState = errors.New("client: this group was made by an older Parley and has no name, topic, picture or roles; make a new group to have them")

// SetGroup changes a group's name, topic or picture (admins only): one
// commit with a GroupContextExtensions proposal (RFC 9420 §12.1.7), which
// every member's client checks. The picture is encrypted like a file and
// uploaded; the commit carries its key and digest.
func (c *Client) SetGroup(ctx context.Context, group string, set GroupSettings) (GroupInfo, error) {
	if set.Name != nil {
		if err := checkLabel("name", *set.Name, maxGroupTitleBytes); err != nil {
			return GroupInfo{}, err
		}
	}
	if set.Topic != nil {
		if err := checkLabel("topic", *set.Topic, maxGroupTopicBytes); err != nil {
			return GroupInfo{}, err
		}
	}
	var pic *groupPicture
	var info GroupInfo
	err := c.withLock(ctx, func() error {
		r, g, err := c.syncedGroup(ctx, group)
		if err != nil {
			return err
		}
		if err := c.mayAdminister(g); err != nil {
			return err
		}
		switch {
		case set.PicturePath != "":
			if pic, err = c.uploadPictureFile(ctx, set.PicturePath); err != nil {
				return err
			}
		case set.Picture != nil:
			if pic, err = c.uploadPicture(ctx, bytes.NewReader(set.Picture), int64(len(set.Picture)), ""); err != nil {
				return err
			}
		}
		_, err = c.commit(ctx, r, func(g *mls.Group) (*commitPlan, error) {
			return c.statePlan(g, func(st *groupProfile) {
				if set.Name != nil {
					st.Name = *set.Name
				}
				if set.Topic != nil {
					st.Topic = *set.Topic
				}
				if pic != nil {
					st.Picture = pic
				}
			})
		})
		if err != nil {
			return err
		}
		return c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			info, err = groupInfoOf(r, g, c.acct.User)
			return err
		})
	})
	return info, err
}

// SetAdmin promotes user to admin of group (or, with !admin, demotes
// them). Admins only; the last admin cannot step down.
func (c *Client) SetAdmin(ctx context.Context, group, user string, admin bool) error {
	user = strings.TrimPrefix(user, "@")
	return c.withLock(ctx, func() error {
		r, g, err := c.syncedGroup(ctx, group)
		if err != nil {
			return err
		}
		if !memberUserSet(g)[user] {
			return fmt.Errorf("%w: %s is not in %s", ErrUnknownUser, user, r.label())
		}
		_, err = c.commit(ctx, r, func(g *mls.Group) (*commitPlan, error) {
			st, _, err := groupStateOf(g.GroupContext().Extensions)
			if err != nil {
				return nil, err
			}
			if st == nil {
				return nil, ErrNoGroupState
			}
			if st.isAdmin(user) == admin {
				return nil, errNothingToCommit
			}
			next := st.withAdmin(user, admin)
			if !admin && !slices.ContainsFunc(next.Admins, func(a string) bool { return memberUserSet(g)[a] }) {
				return nil, fmt.Errorf("client: %s is the group's last admin: promote someone else first", user)
			}
			return &commitPlan{opts: mls.CommitOptions{GroupContextExtensions: replaceExtension(g.GroupContext().Extensions, next.extension())}}, nil
		})
		return err
	})
}

// statePlan is a commit replacing the group state with edit's result.
func (c *Client) statePlan(g *mls.Group, edit func(*groupProfile)) (*commitPlan, error) {
	st, _, err := groupStateOf(g.GroupContext().Extensions)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, ErrNoGroupState
	}
	next := *st
	edit(&next)
	return &commitPlan{opts: mls.CommitOptions{GroupContextExtensions: replaceExtension(g.GroupContext().Extensions, next.extension())}}, nil
}

// replaceExtension returns ext with x in place of the extension of its
// type (the other GroupContext extensions stay: a GroupContextExtensions
// proposal replaces the whole list, §12.1.7).
func replaceExtension(ext mls.Extensions, x mls.Extension) mls.Extensions {
	out := mls.Extensions{}
	for _, e := range ext {
		if e.Type != x.Type {
			out = append(out, e)
		}
	}
	return append(out, x)
}

// mayAdminister returns ErrNotAdmin unless this account acts as an admin
// of g.
func (c *Client) mayAdminister(g *mls.Group) error {
	st, _, err := groupStateOf(g.GroupContext().Extensions)
	if err != nil {
		return err
	}
	if st == nil {
		return ErrNoGroupState
	}
	if !st.mayAdminister(c.acct.User, memberUserSet(g)) {
		return ErrNotAdmin
	}
	return nil
}

// uploadPictureFile encrypts and uploads the image in path for a group
// picture.
func (c *Client) uploadPictureFile(ctx context.Context, path string) (*groupPicture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("client: a group picture must be a file of 1 byte to %d MiB", maxPictureBytes>>20)
	}
	return c.uploadPicture(ctx, f, st.Size(), path)
}

// uploadPicture encrypts and uploads an image of size bytes for a group
// picture; name (a path, or "") only helps tell its type.
func (c *Client) uploadPicture(ctx context.Context, r io.ReadSeeker, size int64, name string) (*groupPicture, error) {
	if size <= 0 || size > maxPictureBytes {
		return nil, fmt.Errorf("client: a group picture must be 1 byte to %d MiB", maxPictureBytes>>20)
	}
	what := name
	if what == "" {
		what = "the picture"
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(r, head)
	typ := http.DetectContentType(head[:n])
	if t := mime.TypeByExtension(filepath.Ext(name)); name != "" && strings.HasPrefix(t, "image/") {
		typ = t
	}
	if !strings.HasPrefix(typ, "image/") {
		return nil, fmt.Errorf("client: %s is not an image (%s)", what, typ)
	}
	typ, _, err := mime.ParseMediaType(typ)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, err
	}
	key := filecrypt.NewKey()
	enc, err := filecrypt.NewEncrypter(r, key)
	if err != nil {
		return nil, err
	}
	blob, err := conn.UploadBlob(ctx, enc, filecrypt.CiphertextSize(size), nil)
	if err != nil {
		return nil, err
	}
	if enc.Size() != size {
		dropBlob(ctx, conn, blob)
		return nil, fmt.Errorf("client: %s changed size while it was being sent", what)
	}
	return &groupPicture{Blob: blob, Key: key, SHA256: enc.Digest(), Size: enc.Size(), Type: typ}, nil
}

// GroupPicture downloads, decrypts and checks a group's picture into out
// (never overwriting a file). It returns the path written.
func (c *Client) GroupPicture(ctx context.Context, group, out string) (string, error) {
	fd, _, err := c.pictureDescriptor(ctx, group)
	if err != nil {
		return "", err
	}
	path, _, err := c.download(ctx, fd, out, nil)
	return path, err
}

// GroupPictureBytes is GroupPicture into memory (the web client): the
// image and its media type, checked against the digest in the group's
// state.
func (c *Client) GroupPictureBytes(ctx context.Context, group string) ([]byte, string, error) {
	fd, typ, err := c.pictureDescriptor(ctx, group)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	buf.Grow(int(min(fd.Size, maxPictureBytes)))
	// limitedWriter: a blob that decrypts to more than the state's size
	// cannot grow memory.
	if err := c.decryptBlob(ctx, fd, &limitedWriter{w: &buf, left: fd.Size}, nil); err != nil {
		return nil, "", fmt.Errorf("group picture: %w", err)
	}
	return buf.Bytes(), typ, nil
}

// pictureDescriptor returns the attachment descriptor of group's picture
// and its media type.
func (c *Client) pictureDescriptor(ctx context.Context, group string) (*fileDescriptor, string, error) {
	var fd *fileDescriptor
	var typ string
	err := c.withLock(ctx, func() error {
		r, g, err := c.syncedGroup(ctx, group)
		if err != nil {
			return err
		}
		st, _, err := groupStateOf(g.GroupContext().Extensions)
		if err != nil {
			return err
		}
		if st == nil || st.Picture == nil {
			return fmt.Errorf("%w: %s has no picture", ErrFileNotFound, r.label())
		}
		p := st.Picture
		name := "picture"
		if exts, _ := mime.ExtensionsByType(p.Type); len(exts) > 0 {
			name += exts[0]
		}
		fd = &fileDescriptor{Blob: p.Blob, Scheme: filecrypt.Scheme, Key: p.Key, SHA256: p.SHA256, Name: name, Size: p.Size}
		typ = p.Type
		return nil
	})
	return fd, typ, err
}
