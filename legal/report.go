package legal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"regexp"
	"slices"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/moderation"
)

// Period is a reporting period: [From, To).
type Period struct {
	Name     string
	From, To time.Time
}

var periodRE = regexp.MustCompile(`^(\d{4})(?:(H[12])|(Q[1-4]))?$`)

// ParsePeriod reads 2026, 2026H1, 2026H2 or 2026Q1..2026Q4.
func ParsePeriod(s string) (Period, error) {
	m := periodRE.FindStringSubmatch(s)
	if m == nil {
		return Period{}, fmt.Errorf("%w: --period must be a year (2026), a half (2026H2) or a quarter (2026Q3), not %q", ErrInvalid, s)
	}
	y, _ := strconv.Atoi(m[1])
	from, months := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), 12
	switch {
	case m[2] != "":
		months = 6
		from = from.AddDate(0, 6*int(m[2][1]-'1'), 0)
	case m[3] != "":
		months = 3
		from = from.AddDate(0, 3*int(m[3][1]-'1'), 0)
	}
	return Period{Name: s, From: from, To: from.AddDate(0, months, 0)}, nil
}

// Report is a transparency report for a period. It is built from the
// recorded requests and moderation decisions, never typed by hand, and
// its hash goes into the legal log, so a report cannot later be rewritten
// without it showing.
type Report struct {
	Period    string    `json:"period"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Generated time.Time `json:"generated"`

	Requests      int            `json:"requests"`
	ByInstrument  map[string]int `json:"by_instrument"`
	ByCountry     map[string]int `json:"by_country"`
	AccountsNamed int            `json:"accounts_named"`
	DataProduced  int            `json:"data_produced"`
	NoData        int            `json:"answered_without_data"`
	Refused       map[string]int `json:"refused_by_reason"`
	Unanswered    int            `json:"unanswered"`
	Preservations int            `json:"preservations"`
	// UnderNondisclosure requests are counted in Requests only: they are
	// in no other figure, so that nothing about them can be inferred.
	UnderNondisclosure int      `json:"under_nondisclosure"`
	Published          []string `json:"published_requests"`

	// Public channels: content removed, by how.
	RemovedByListMatch int `json:"channel_posts_removed_by_list_match"`
	RemovedByModerator int `json:"channel_posts_removed_by_moderator"`
	HeldForReview      int `json:"channel_posts_held_for_review"`
	// Reports of abuse received and decided: not yet collected (the
	// moderation queue for user reports is still being built).
	AbuseReports *int `json:"abuse_reports"`
}

// BuildReport counts the period's requests and channel decisions.
func BuildReport(p Period, now time.Time, reqs []*Request, decisions []moderation.Decision) *Report {
	r := &Report{Period: p.Name, From: p.From, To: p.To, Generated: now.UTC().Truncate(time.Second),
		ByInstrument: map[string]int{}, ByCountry: map[string]int{}, Refused: map[string]int{}, Published: []string{}}
	in := func(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }
	for _, q := range reqs {
		if !in(q.Recorded) {
			continue
		}
		r.Requests++
		if q.UnderNondisclosure(now) {
			r.UnderNondisclosure++
			continue
		}
		r.ByInstrument[q.Instrument]++
		r.ByCountry[q.Country]++
		r.AccountsNamed += len(q.Accounts)
		switch {
		case q.Answer == nil:
			r.Unanswered++
		case q.Answer.Refused != "":
			r.Refused[q.Answer.Refused]++
		case q.Answer.Produced():
			r.DataProduced++
		default:
			r.NoData++
		}
		if q.Preservation != nil {
			r.Preservations++
		}
		if !q.Published.IsZero() {
			r.Published = append(r.Published, q.ID)
		}
	}
	for _, d := range decisions {
		if !in(d.Time) {
			continue
		}
		switch d.Kind {
		case moderation.DecisionBlock, moderation.DecisionTakedown:
			r.RemovedByListMatch++
		case moderation.DecisionReject:
			r.RemovedByModerator++
		case moderation.DecisionHold:
			r.HeldForReview++
		}
	}
	slices.Sort(r.Published)
	return r
}

// Signed is a report as published: its JSON, and where the log commits
// to it.
type Signed struct {
	// Report is the report's JSON text, exactly as committed to.
	Report     string   `json:"report"`
	Log        string   `json:"log"`
	LogKey     string   `json:"log_key"`
	Index      int64    `json:"index"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint"`
}

// ReportRecord is the log record that commits to a report's JSON.
func ReportRecord(reportJSON []byte, t time.Time) []byte {
	var zero [32]byte
	return Record(KindReport, t, Commitment(zero[:], KindReport, reportJSON, sha256.Sum256(nil)))
}

// Sign proves a report's record (already appended at index) in the log's
// current checkpoint.
func (l *Log) Sign(reportJSON []byte, index int64, logKey string) (*Signed, error) {
	cp, err := l.Checkpoint()
	if err != nil {
		return nil, err
	}
	proof, err := tlog.ProveRecord(l.Size(), index, l.mem)
	if err != nil {
		return nil, err
	}
	s := &Signed{Report: string(reportJSON), Log: l.origin, LogKey: logKey, Index: index, Checkpoint: string(cp)}
	for _, h := range proof {
		s.Proof = append(s.Proof, hex.EncodeToString(h[:]))
	}
	return s, nil
}

// VerifyReport checks a published report file: its checkpoint is signed
// by logKey and its log record, recomputed from the report's bytes and
// generation time, is in the checkpoint's tree.
func VerifyReport(file []byte, logKey string) (*Report, error) {
	var s Signed
	if err := json.Unmarshal(file, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerify, err)
	}
	var r Report
	if err := json.Unmarshal([]byte(s.Report), &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerify, err)
	}
	// A report's record is a commitment with a zero salt and an empty
	// private part: everything in it is public.
	empty := sha256.Sum256(nil)
	pub := Publication{Log: s.Log, Checkpoint: s.Checkpoint, Salt: hex.EncodeToString(make([]byte, 32)),
		Entries: []PublishedRec{{Entry: Entry{Kind: KindReport, Time: r.Generated, Index: s.Index, Public: s.Report, Private: hex.EncodeToString(empty[:])}, Proof: s.Proof}}}
	b, err := json.Marshal(pub)
	if err != nil {
		return nil, err
	}
	if _, err := VerifyPublication(b, logKey); err != nil {
		return nil, err
	}
	return &r, nil
}

var reportHTML = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley transparency report {{.R.Period}}</title>
<style>body{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}td,th{text-align:left;padding:.2rem .8rem}pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}</style></head>
<body>
<h1>Transparency report {{.R.Period}}</h1>
<p>From {{.R.From.Format "2006-01-02"}} to {{.R.To.Format "2006-01-02"}} (exclusive), generated {{.R.Generated.Format "2006-01-02 15:04 UTC"}} from the server's records.
Parley cannot read private messages: every private conversation is end-to-end encrypted, and there is no exceptional access of any kind.
What an answer can contain is listed in the server's documentation (lawful requests).</p>
<h2>Requests from authorities</h2>
<table>
<tr><th>Requests received</th><td>{{.R.Requests}}</td></tr>
<tr><th>of which still under non-disclosure (counted here only)</th><td>{{.R.UnderNondisclosure}}</td></tr>
<tr><th>Accounts named</th><td>{{.R.AccountsNamed}}</td></tr>
<tr><th>Some data produced</th><td>{{.R.DataProduced}}</td></tr>
<tr><th>Answered, no data held</th><td>{{.R.NoData}}</td></tr>
<tr><th>Not yet answered</th><td>{{.R.Unanswered}}</td></tr>
<tr><th>Preservations</th><td>{{.R.Preservations}}</td></tr>
</table>
<h3>By instrument</h3><table>{{range $k, $v := .R.ByInstrument}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{else}}<tr><td>none</td></tr>{{end}}</table>
<h3>By country</h3><table>{{range $k, $v := .R.ByCountry}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{else}}<tr><td>none</td></tr>{{end}}</table>
<h3>Refused, and why</h3><table>{{range $k, $v := .R.Refused}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{else}}<tr><td>none</td></tr>{{end}}</table>
<h3>Requests published in full</h3><ul>{{range .R.Published}}<li><a href="requests/{{.}}.json">{{.}}</a></li>{{else}}<li>none</li>{{end}}</ul>
<h2>Public channels</h2>
<table>
<tr><th>Posts refused or taken down by a hash-list match</th><td>{{.R.RemovedByListMatch}}</td></tr>
<tr><th>Posts removed by a moderator</th><td>{{.R.RemovedByModerator}}</td></tr>
<tr><th>Posts held for review</th><td>{{.R.HeldForReview}}</td></tr>
<tr><th>Abuse reports received and decided</th><td>{{if .R.AbuseReports}}{{.R.AbuseReports}}{{else}}not yet collected{{end}}</td></tr>
</table>
<h2>Checking this report</h2>
<p>This report's JSON is record {{.S.Index}} of the legal log <code>{{.S.Log}}</code>. The checkpoint below, signed by the log key
<code>{{.S.LogKey}}</code>, commits to it: <code>parleyd admin legal verify {{.R.Period}}.json --log-key KEY</code> checks it with nothing but the published files.</p>
<pre>{{.S.Checkpoint}}</pre>
</body></html>
`))

// WriteHTML renders a signed report as a web page.
func WriteHTML(w io.Writer, r *Report, s *Signed) error {
	return reportHTML.Execute(w, struct {
		R *Report
		S *Signed
	}{r, s})
}
