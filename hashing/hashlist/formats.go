package hashlist

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxLine bounds one line of an HMA file or one CSV field: a vPDQ entry
// of MaxVPDQEntryFrames frames or a TMK file in base64 fits.
const maxLine = 2 << 20

// ParseHMA parses an HMA local file: "<signal_type> <signal>" per line,
// split at the first space, as python-threatexchange's file exchange does.
// If defaultType is not empty, lines may also be a bare hash of that type.
// Blank lines and lines starting with '#' are skipped (upstream skips
// blank lines; comments are a Parley extension).
func ParseHMA(r io.Reader, defaultType SignalType) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var c collector
	line := 0
	for sc.Scan() {
		line++
		fail := func(err error) ([]Entry, error) {
			return nil, &ParseError{Format: "hma", Unit: "line", N: line, Err: err}
		}
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if !utf8.ValidString(s) {
			return fail(fmt.Errorf("%w: not UTF-8", ErrSyntax))
		}
		typ, value, found := strings.Cut(s, " ")
		var (
			t   SignalType
			err error
		)
		if !found {
			if defaultType == "" {
				return fail(fmt.Errorf("%w: want \"<signal_type> <hash>\"", ErrSyntax))
			}
			t, value = defaultType, typ
		} else if t, err = ParseSignalType(typ); err != nil {
			return fail(err)
		}
		e, err := NewEntry(t, value, nil)
		if err != nil {
			return fail(err)
		}
		if err := c.add(e); err != nil {
			return fail(err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: line longer than %d bytes", ErrSyntax, maxLine)
		}
		return nil, &ParseError{Format: "hma", Unit: "line", N: line + 1, Err: err}
	}
	return c.entries, nil
}

// ParseCSV parses a CSV list whose header names the columns signal_type
// and signal (in any order, case-insensitive) and optionally tags; other
// columns are ignored. Line numbers in errors count the header as line 1.
func ParseCSV(r io.Reader) ([]Entry, error) {
	cr := csv.NewReader(bufio.NewReader(io.LimitReader(r, 1<<40)))
	cr.FieldsPerRecord = 0 // every record as long as the header
	cr.ReuseRecord = true
	fail := func(n int, err error) ([]Entry, error) {
		return nil, &ParseError{Format: "csv", Unit: "line", N: n, Err: err}
	}
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return fail(1, fmt.Errorf("%w: missing header", ErrSyntax))
		}
		return fail(1, fmt.Errorf("%w: %v", ErrSyntax, err))
	}
	col := map[string]int{"signal_type": -1, "signal": -1, "tags": -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if j, ok := col[h]; ok {
			if j >= 0 {
				return fail(1, fmt.Errorf("%w: column %q twice", ErrSyntax, h))
			}
			col[h] = i
		}
	}
	if col["signal_type"] < 0 || col["signal"] < 0 {
		return fail(1, fmt.Errorf("%w: header needs signal_type and signal columns", ErrSyntax))
	}
	var c collector
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			return fail(line, fmt.Errorf("%w: %v", ErrSyntax, err))
		}
		line, _ := cr.FieldPos(0)
		for _, f := range rec {
			if len(f) > maxLine || !utf8.ValidString(f) {
				return fail(line, fmt.Errorf("%w: field too long or not UTF-8", ErrSyntax))
			}
		}
		t, err := ParseSignalType(rec[col["signal_type"]])
		if err != nil {
			return fail(line, err)
		}
		var tags []string
		if i := col["tags"]; i >= 0 {
			tags = splitTags(rec[i])
		}
		e, err := NewEntry(t, rec[col["signal"]], tags)
		if err != nil {
			return fail(line, err)
		}
		if err := c.add(e); err != nil {
			return fail(line, err)
		}
	}
	return c.entries, nil
}

// TCAPPage is one page of the Tech Against Terrorism hash list API.
type TCAPPage struct {
	Count      int     // total records the query matches, as the API reports
	Next       string  // URL of the next page; empty on the last page
	Checkpoint string  // resume point for the next incremental fetch
	Upserts    []Entry // live records
	Deletions  []Entry // records upstream has withdrawn (deleted: true)
	Skipped    int     // records of algorithms Parley does not match
}

// tcapRecord mirrors one element of "results". Assumptions, from
// python-threatexchange's client (exchanges/clients/techagainstterrorism)
// and its tests, as TCAP's own documentation needs an account:
//   - the page is {"count", "next", "previous", "checkpoint", "results"};
//     checkpoint is "<unix time>,<id>" of the last record;
//   - hash_digest is hex; algorithm is "PDQ", "MD5" or (assumed, for
//     forward compatibility) "SHA256", in any case; any other algorithm
//     is counted in Skipped rather than failing the page, so a new
//     upstream algorithm does not stop imports;
//   - ideology ("islamist", "far-right") and file_type ("mp4", "gif")
//     become the tags "ideology:<x>" and "file_type:<x>";
//   - deleted: true withdraws the hash; updated_on and created_on are not
//     needed for matching and are not checked.
type tcapRecord struct {
	HashDigest *string `json:"hash_digest"`
	Algorithm  *string `json:"algorithm"`
	Ideology   *string `json:"ideology"`
	FileType   *string `json:"file_type"`
	Deleted    *bool   `json:"deleted"`
	ID         *int64  `json:"id"`
}

type tcapPage struct {
	Count      int               `json:"count"`
	Next       *string           `json:"next"`
	Previous   *string           `json:"previous"`
	Checkpoint *string           `json:"checkpoint"`
	Results    []json.RawMessage `json:"results"`
}

// maxTCAPPage bounds the bytes of one page.
const maxTCAPPage = 256 << 20

// ParseTCAPPage parses one JSON page of the TCAP hash list API. Errors
// name the 1-based record number within results.
func ParseTCAPPage(r io.Reader) (*TCAPPage, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTCAPPage+1))
	if err != nil {
		return nil, fmt.Errorf("hashlist: tcap: read: %w", err)
	}
	if len(data) > maxTCAPPage {
		return nil, fmt.Errorf("hashlist: tcap: %w: page over %d bytes", ErrSyntax, maxTCAPPage)
	}
	var raw tcapPage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("hashlist: tcap: %w: %v", ErrSyntax, err)
	}
	if raw.Checkpoint == nil || raw.Results == nil {
		return nil, fmt.Errorf("hashlist: tcap: %w: page needs checkpoint and results", ErrSyntax)
	}
	p := &TCAPPage{Count: raw.Count, Checkpoint: *raw.Checkpoint}
	if raw.Next != nil {
		p.Next = *raw.Next
	}
	// Records come in update order; for a hash listed more than once the
	// last record wins, so a later withdrawal or re-listing is honoured.
	type state struct {
		e       Entry
		deleted bool
	}
	var states []state
	byKey := make(map[string]int)
	for i, msg := range raw.Results {
		fail := func(err error) (*TCAPPage, error) {
			return nil, &ParseError{Format: "tcap", Unit: "record", N: i + 1, Err: err}
		}
		var rec tcapRecord
		if err := json.Unmarshal(msg, &rec); err != nil {
			return fail(fmt.Errorf("%w: %v", ErrSyntax, err))
		}
		if rec.HashDigest == nil || rec.Algorithm == nil || rec.Deleted == nil {
			return fail(fmt.Errorf("%w: needs hash_digest, algorithm and deleted", ErrSyntax))
		}
		t, err := ParseSignalType(*rec.Algorithm)
		if err != nil {
			p.Skipped++
			continue
		}
		var tags []string
		if rec.Ideology != nil && *rec.Ideology != "" {
			tags = append(tags, "ideology:"+*rec.Ideology)
		}
		if rec.FileType != nil && *rec.FileType != "" {
			tags = append(tags, "file_type:"+*rec.FileType)
		}
		e, err := NewEntry(t, *rec.HashDigest, tags)
		if err != nil {
			return fail(err)
		}
		if k, ok := byKey[e.Key()]; ok {
			states[k] = state{e, *rec.Deleted}
			continue
		}
		if len(states) >= MaxEntries {
			return fail(fmt.Errorf("%w: more than %d", ErrTooMany, MaxEntries))
		}
		byKey[e.Key()] = len(states)
		states = append(states, state{e, *rec.Deleted})
	}
	for _, st := range states {
		if st.deleted {
			p.Deletions = append(p.Deletions, st.e)
		} else {
			p.Upserts = append(p.Upserts, st.e)
		}
	}
	return p, nil
}
