package console

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/codevector/codevector/gateway/web"
	"github.com/codevector/codevector/humantime"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageData is what templates/api_keys.html renders.
type pageData struct {
	web.Page
	Keys        []keyItem
	Now         time.Time
	IsAdmin     bool
	Owners      []string
	OwnerFilter string
	Namespace   string
}

// servePage: GET /api-keys. The page is complete without JavaScript for
// reading; its script re-fetches this same page after every change and
// swaps the table in, so rows are rendered in exactly one place (here).
func (c *Console) servePage(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	owner := ""
	if id.Admin {
		owner = r.URL.Query().Get("owner")
	}
	data := pageData{
		Page: web.Page{
			Title:     "API keys",
			Section:   "console",
			User:      id.User,
			Admin:     id.Admin,
			DevMode:   c.opts.Auth == AuthDev,
			CSRFToken: c.csrf.Token(id.User),
			Scripts:   []string{"console.js"},
		},
		Now:         c.now(),
		IsAdmin:     id.Admin,
		OwnerFilter: owner,
		Namespace:   c.opts.Namespace,
	}
	if c.oidc != nil {
		data.SignOutURL = SignOutPath
	}
	data.Keys, data.Owners = c.listKeys(id, owner)
	if err := web.Render(w, c.page, http.StatusOK, data); err != nil {
		c.log.Error("Failed to render the API keys page", "error", err)
	}
}

// viewFuncs format times for people (the page's script re-renders dates in
// the reader's time zone; these are the server's UTC fallback), and hand
// the dialogs' shared parts their ids and words (limitField, submitActions,
// confirmActions).
var viewFuncs = template.FuncMap{
	"limitField":     func(id, label, name string) limitField { return limitField{ID: id, Label: label, Name: name} },
	"submitActions":  func(id, label string) dialogActions { return dialogActions{ID: id, Label: label} },
	"confirmActions": func(id, label string) dialogActions { return dialogActions{ID: id, Label: label, Danger: true} },
	"ago":            relativeTime,
	"until":          humantime.Until,
	"when":           when,
	"date":           dateText,
	"exact":          exactText,
	"rfc3339":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"statusClass": func(status string) string {
		switch status {
		case StatusActive:
			return "status-active"
		case StatusPending:
			return "status-pending"
		case StatusFailed:
			return "status-failed"
		default:
			return "status-inactive"
		}
	},
}

// limitField is one number field of the create and Edit limits dialogs
// (the "limit-field" template): its element id, its label, and the name
// the dialog's script sends it under.
type limitField struct{ ID, Label, Name string }

// dialogActions end a dialog (the "dialog-actions" template): its error,
// Cancel, and its own button, which submits its form or, Danger, confirms
// what cannot be undone.
type dialogActions struct {
	ID, Label string
	Danger    bool
}

func dateText(t time.Time) string  { return t.UTC().Format("Jan 2, 2006") }
func exactText(t time.Time) string { return t.UTC().Format("Jan 2, 2006, 15:04 UTC") }

// when is how the page shows every time: the date, then how long ago or
// until in the words of the CLI (humantime), and the exact time in the
// tooltip: "Dec 9, 2026 (in 2 days)". kubectl apikey prints the same two
// parts ("2026-12-09 10:15 UTC (in 2 days)"). Only times go in, never
// text a user wrote.
func when(now, t time.Time) template.HTML {
	return template.HTML(fmt.Sprintf(`<time datetime="%s" data-format="date" title="%s">%s</time> <span class="when-rel">(%s)</span>`,
		t.UTC().Format(time.RFC3339), exactText(t), dateText(t), humantime.Relative(now, t)))
}

// relativeTime says how long ago t was, in the words the CLI uses too.
func relativeTime(now, t time.Time) string { return humantime.Ago(now, t) }
