package conformance

import (
	"encoding/json"
	"errors"
)

var errNeedsGroupAPI = errors.New("not implemented yet: needs the mls Group API")

func runMessageProtection(entry json.RawMessage) (uint16, error) { return 0, errNeedsGroupAPI }
func runPassiveClient(entry json.RawMessage) (uint16, error)     { return 0, errNeedsGroupAPI }
