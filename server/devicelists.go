package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Account-signed device lists (docs/transparency.md). The server stores
// and serves each account's latest list; it checks what it can (the
// signature under the key the account's first list bound, a rising
// version, that the listed devices are the account's with the keys they
// authenticate with) so that a broken client cannot publish a list that
// locks its contacts out, but clients never rely on these checks: they
// verify every list themselves.

func (c *conn) handlePublishDeviceList(ctx context.Context, r *parleypb.PublishDeviceListRequest) (parleypb.ServerFrameBody, error) {
	l, err := devicelist.Verify(r.List)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if l.Username != c.dev.Username {
		return nil, badRequest("the list is %s's, not yours", l.Username)
	}
	if l.Version > directory.MaxVersion {
		return nil, badRequest("device list version %d is above the directory's limit of 2^32-1", l.Version)
	}
	if len(l.Devices) > c.s.cfg.MaxDevices {
		return nil, badRequest("the list names %d devices; an account may have %d", len(l.Devices), c.s.cfg.MaxDevices)
	}
	devs, err := c.s.cfg.Store.Devices(ctx, c.dev.Username)
	if err != nil {
		return nil, err
	}
	for _, d := range l.Devices {
		found := false
		for _, sd := range devs {
			if sd.ID == d.ID {
				if !bytes.Equal(sd.PublicKey, d.AuthKey) {
					return nil, badRequest("device %s is listed with another key than it authenticates with", d.ID)
				}
				found = true
			}
		}
		if !found {
			return nil, &wire.Error{Code: parleypb.ErrorCode_UNKNOWN_DEVICE, Message: fmt.Sprintf("device %s is not a device of this account", d.ID)}
		}
	}
	if r.ResetAccountKey && !slices.ContainsFunc(l.Devices, func(d devicelist.Device) bool { return d.ID == c.dev.ID }) {
		return nil, badRequest("a list that resets the account key must name the device that publishes it")
	}
	signed, err := proto.Marshal(r.List)
	if err != nil {
		return nil, err
	}
	err = c.s.cfg.Store.PublishDeviceList(ctx, store.DeviceList{Username: l.Username, AccountKey: l.AccountKey, Version: l.Version, Signed: signed, ResetKey: r.ResetAccountKey})
	switch {
	case errors.Is(err, store.ErrAccountKey):
		return nil, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED,
			Message: "this account's device list is signed by another account key: only the account's primary device can change it"}
	case errors.Is(err, store.ErrStaleVersion):
		return nil, &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS, Message: fmt.Sprintf("device list version %d is not newer than the stored one", l.Version)}
	case err != nil:
		return nil, err
	}
	c.s.log.Info("device list published", "username", l.Username, "version", l.Version, "devices", len(l.Devices))
	c.s.kt.poke()
	return empty(), nil
}

// handleFetchDeviceList answers with the list as the key transparency
// directory serves it, with the proofs clients check: a list published
// since is not given out until it is in the directory (an epoch later).
func (c *conn) handleFetchDeviceList(ctx context.Context, r *parleypb.FetchDeviceListRequest) (parleypb.ServerFrameBody, error) {
	if err := wire.CheckUsername(r.Username); err != nil {
		return nil, badRequest("%v", err)
	}
	a, _, err := c.s.kt.answer(ctx, r.Username, r.KnownSize)
	if err != nil {
		return nil, err
	}
	resp := &parleypb.FetchDeviceListResponse{Kt: a}
	if a.Current != nil {
		var s parleypb.SignedDeviceList
		if err := proto.Unmarshal(a.Current.Value, &s); err != nil {
			return nil, fmt.Errorf("directory's device list of %s: %w", r.Username, err)
		}
		resp.List = &s
	}
	return &parleypb.ServerFrame_FetchDeviceList{FetchDeviceList: resp}, nil
}

// handleInspectLink shows the approving device what the new device sent,
// so that it can check the link MAC before approving.
func (c *conn) handleInspectLink(ctx context.Context, r *parleypb.InspectLinkRequest) (parleypb.ServerFrameBody, error) {
	if len(r.Code) != wire.LinkCodeDigits {
		return nil, badRequest("link code must be %d digits", wire.LinkCodeDigits)
	}
	if err := c.checkLinkCodeGuesses(); err != nil {
		return nil, err
	}
	l, err := c.s.cfg.Store.Link(ctx, c.dev.Username, r.Code, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, c.wrongLinkCode()
	}
	if err != nil {
		return nil, err
	}
	return &parleypb.ServerFrame_InspectLink{InspectLink: &parleypb.InspectLinkResponse{
		PublicKey: l.PublicKey, MlsSignatureKey: l.MLSKey, LinkMac: l.MAC}}, nil
}

// Wrong link codes (to InspectLink or ApproveLink) are counted per
// account, so that the 8 digits cannot be guessed: checkLinkCodeGuesses
// refuses once linkApprovalFails were wrong in the window, wrongLinkCode
// counts one and answers it.
func (c *conn) checkLinkCodeGuesses() error {
	if blocked, after := c.s.shared.Blocked("approve:"+c.dev.Username, Limit{N: linkApprovalFails, Per: linkWindow}); blocked {
		c.s.metrics.rateLimited.WithLabelValues("approve_link").Inc()
		return rateLimited("too many wrong link codes; try again later", after)
	}
	return nil
}

func (c *conn) wrongLinkCode() error {
	c.s.shared.AllowN("approve:"+c.dev.Username, 1, Limit{N: linkApprovalFails, Per: linkWindow})
	return &wire.Error{Code: parleypb.ErrorCode_NOT_FOUND, Message: "no pending link with this code for your account"}
}
