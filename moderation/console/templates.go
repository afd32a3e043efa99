package console

import (
	"encoding/hex"
	"html/template"
	"time"
)

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"t": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"hex": func(b []byte) string { return hex.EncodeToString(b) },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"dur": func(d time.Duration) string { return d.Round(time.Second).String() },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · Parley moderation</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#243b53;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#fff}header form{margin-left:auto}
main{padding:1em 1.2em;max-width:70em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.err{background:#fde8e8;border:1px solid #b42318;padding:.5em}
.msg{white-space:pre-wrap}label{display:block;margin:.4em 0}
</style></head><body>
<header><strong>Parley moderation</strong>{{with .Who}}
<a href="/">Dashboard</a><a href="/cases">Queue</a><a href="/audit">Audit log</a>{{if .Lead}}<a href="/moderators">Moderators</a>{{end}}
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{$.CSRF}}">{{.Name}}{{if .Lead}} (lead){{end}} <button>Sign out</button></form>{{end}}
</header><main><h1>{{.Title}}</h1>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "error"}}{{template "head" .}}<p class="err" id="error">{{.Message}}</p>{{template "foot"}}{{end}}

{{define "login"}}{{template "head" (dict "Title" "Sign in")}}
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="post" action="/login" id="login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Name <input name="name" id="name" autocomplete="username" required></label>
<label>Password <input type="password" name="password" id="password" autocomplete="current-password" required></label>
<label>Code from your authenticator app <input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" required></label>
<button id="signin">Sign in</button>
</form>{{template "foot"}}{{end}}

{{define "dashboard"}}{{template "head" .}}
<table id="metrics">
<tr><th>Open cases</th><td id="open">{{.M.Open}}</td></tr>
<tr><th>Held channel posts among them</th><td id="holds">{{.M.OpenHolds}}</td></tr>
<tr><th>Appeals waiting</th><td id="appealed">{{.M.Appealed}}</td></tr>
{{range .Actions}}<tr><th>Decisions: {{.}}</th><td>{{index $.M.Decisions .}}</td></tr>{{end}}
<tr><th>Report to first decision, median</th><td>{{if .M.Decided}}{{dur .M.P50}}{{else}}none decided yet{{end}}</td></tr>
<tr><th>Report to first decision, 95th percentile</th><td>{{if .M.Decided}}{{dur .M.P95}}{{else}}none decided yet{{end}}</td></tr>
</table>
<p><a href="/cases">Work the queue</a></p>{{template "foot"}}{{end}}

{{define "queue"}}{{template "head" .}}
<form method="get" action="/cases">
<label>State <select name="state"><option value=""{{if eq .State ""}} selected{{end}}>any</option>{{range .States}}<option{{if eq . $.State}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>Kind <select name="kind" id="kind"><option value="">any</option><option value="report"{{if eq .Kind "report"}} selected{{end}}>abuse reports</option><option value="hold"{{if eq .Kind "hold"}} selected{{end}}>held channel posts</option></select></label>
<label>Reason <select name="reason"><option value="">any</option>{{range .Reasons}}<option{{if eq . $.Reason}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>Waiting at least <select name="older" id="older">{{range .Ages}}<option value="{{.Value}}"{{if eq .Value $.Older}} selected{{end}}>{{.Label}}</option>{{end}}</select></label>
<button>Filter</button></form>
<table id="queue"><tr><th>Case</th><th>Kind</th><th>Opened</th><th>Waiting</th><th>Account</th><th>Reports</th><th>Why</th><th>State</th></tr>
{{range .Rows}}<tr><td><a href="/cases/{{.ID}}">#{{.ID}}</a></td><td>{{if .Hold}}held post {{.Hold.Post}} in {{.Hold.Channel}}{{else}}report{{end}}</td><td>{{t .Opened}}</td><td>{{.Age}}</td><td>{{.Reported}}</td><td>{{len .Reports}}</td><td>{{range $i, $r := .Reasons}}{{if $i}}, {{end}}{{$r}}{{end}}</td><td>{{.State}}</td></tr>
{{else}}<tr><td colspan="8">No cases here.</td></tr>{{end}}</table>{{template "foot"}}{{end}}

{{define "case"}}{{template "head" .}}{{if .Case.Hold}}{{template "hold" .}}{{else}}{{with .Case}}
<p id="summary">Reports against <strong>{{.Reported}}</strong>, opened {{t .Opened}}; this case is <strong id="state">{{.State}}</strong>.</p>
<h2>Reports</h2><table><tr><th>Reporter</th><th>Received</th><th>Reason</th><th>Note</th></tr>
{{range .Reports}}<tr><td>{{.Reporter}}</td><td>{{t .Received}}</td><td>{{.Reason}}</td><td class="msg">{{.Note}}</td></tr>{{end}}</table>{{end}}
<h2>Messages</h2>
<p>Each message carries the server's proof (its frank) of who sent it, to which conversation and when; it is checked again now.</p>
<table id="messages"><tr><th>Sent</th><th>Sender</th><th>Text</th><th>Proof</th></tr>
{{range .Messages}}<tr><td>{{t .Accepted}}</td><td>{{.SenderUser}} (device {{.SenderDevice}})</td><td class="msg">{{.Text}}</td>
<td>{{if .Verified}}<span class="ok">proof verified</span>{{else}}<span class="bad">PROOF FAILS: {{.Problem}}</span>{{end}}<br><small>conversation {{hex .Conversation}}</small></td></tr>{{end}}</table>{{end}}
<h2>History</h2><table id="events"><tr><th>When</th><th>Action</th><th>By</th><th>Reason</th><th>Until</th></tr>
{{range .Case.Events}}<tr><td>{{t .Time}}</td><td>{{.Action}}</td><td>{{if .Moderator}}{{.Moderator}}{{else}}{{$.Case.Reported}} (the reported account){{end}}</td><td class="msg">{{.Reason}}</td><td>{{t .Until}}</td></tr>
{{else}}<tr><td colspan="5">Nothing done yet.</td></tr>{{end}}</table>
{{if .Earlier}}<h2>The account's other cases</h2><ul>{{range .Earlier}}<li><a href="/cases/{{.ID}}">#{{.ID}}</a> opened {{t .Opened}}: {{.State}}</li>{{end}}</ul>{{end}}
{{if .Decidable}}<h2>{{if eq .Case.State "appealed"}}Decide the appeal{{else}}Decide{{end}}</h2>
{{if .Refusal}}<p class="err">{{.Refusal}}</p>{{else}}
<form method="post" action="/cases/{{.Case.ID}}/decide" id="decide">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Action <select name="action" id="action">{{range .Actions}}<option>{{.}}</option>{{end}}</select></label>
{{if not .Case.Hold}}<label>Until (suspensions) <input type="date" name="until" id="until" min="{{.MinUntil}}"></label>{{end}}
<label>Reason ({{if .Case.Hold}}recorded in the audit log{{else}}the reported user is told it{{end}}) <textarea name="reason" id="reason" rows="3" cols="60" maxlength="2000" required></textarea></label>
<button id="submit">Record the decision</button>
</form>{{end}}{{end}}
<p><a href="/audit?subject=case:{{.Case.ID}}">This case in the audit log</a></p>{{template "foot"}}{{end}}

{{define "hold"}}{{with .Case.Hold}}
<p id="summary">Post {{.Post}} by <strong>{{.Author}}</strong> in the public channel <strong>{{.Channel}}</strong> was held for review when it matched a review list; this case is <strong id="state">{{$.Case.State}}</strong>. Release publishes it; remove_post removes it; remove_channel deletes the whole channel.</p>
{{if .Text}}<h2>Text</h2><p class="msg" id="posttext">{{.Text}}</p>{{end}}
<h2>What it matched</h2>
<table id="matches"><tr><th>File</th><th>List</th><th>Label</th><th>Hash type</th><th>Hash</th><th>Distance</th><th>Detail</th></tr>
{{range .Matches}}<tr><td>{{.Media}}</td><td>{{.List}}</td><td>{{.Label}}</td><td>{{.Type}}</td><td><code>{{.Hash}}</code></td><td>{{.Distance}}</td><td>{{.Detail}}</td></tr>
{{else}}<tr><td colspan="7">The lists it matched are not known (it was held before holds went into this queue).</td></tr>{{end}}</table>{{end}}{{end}}

{{define "moderators"}}{{template "head" .}}
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if .Added}}<div id="added"><p>Added <strong>{{.Added}}</strong>. Give them this TOTP secret for their authenticator app; it is not shown again:</p>
<p><code id="secret">{{.Secret}}</code></p><p><code>{{.URL}}</code></p></div>{{end}}
{{if .Removed}}<p id="removed">Removed <strong>{{.Removed}}</strong>: the account cannot sign in, and its sessions have ended.</p>{{end}}
<table id="moderators"><tr><th>Name</th><th>Role</th><th>Since</th><th></th></tr>
{{range .Moderators}}<tr><td>{{.Name}}</td><td>{{if .Lead}}lead{{else}}moderator{{end}}</td><td>{{t .Created}}</td>
<td>{{if .Active}}<form method="post" action="/moderators/{{.Name}}/remove"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button id="remove-{{.Name}}">Remove</button></form>{{else}}removed {{t .Removed}}{{end}}</td></tr>{{end}}</table>
<h2>Add a moderator</h2>
<form method="post" action="/moderators" id="add">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Name <input name="name" required maxlength="64"></label>
<label>Password (at least 12 characters; tell it them in person) <input type="password" name="password" autocomplete="new-password" required minlength="12"></label>
<label><input type="checkbox" name="lead"> Lead (decides appeals, adds moderators)</label>
<button>Add</button>
</form>{{template "foot"}}{{end}}

{{define "audit"}}{{template "head" .}}
<p>Every decision, newest first. The log is append-only: nothing here can be edited.{{if .Subject}} Showing {{.Subject}} only (<a href="/audit">all</a>).{{end}}</p>
<table id="audit"><tr><th>#</th><th>When</th><th>Kind</th><th>Subject</th><th>By</th><th>Note</th><th>List, hash, distance</th></tr>
{{range .Decisions}}<tr><td>{{.ID}}</td><td>{{t .Time}}</td><td>{{.Kind}}</td><td>{{.Subject}}</td><td>{{.Actor}}</td><td class="msg">{{.Note}}</td><td>{{if .Bank}}{{.Bank}} {{.Type}} {{.Hash}} d={{.Distance}}{{end}}</td></tr>
{{else}}<tr><td colspan="7">Nothing recorded.</td></tr>{{end}}</table>{{template "foot"}}{{end}}
`))
