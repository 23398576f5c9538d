package providers

import (
	"fmt"
	"net/http"
	"strings"
)

// The messages of this file answer requests that reach no provider. Each
// says what the gateway has and what the client probably meant, since the
// usual cause is a base URL written slightly wrong: a typo in the
// provider's name, /v1 missing or doubled, the provider's own path
// without /gateway/{provider}.

// providerList is "openai, anthropic": the providers, in the file's order.
func (ps *Providers) providerList() string { return strings.Join(ps.Names(), ", ") }

// NoProviderMessage is the message for a path under /gateway/ that names
// no provider at all.
func (ps *Providers) NoProviderMessage() string {
	return "no provider in path: use /gateway/{provider}/{path}, where {provider} is " + ps.providerList() +
		" (for example /gateway/" + ps.list[0].Name + "/v1/models)"
}

// UnknownProviderMessage is the message for /gateway/{name}{rest} when no
// provider is called name.
func (ps *Providers) UnknownProviderMessage(name, rest string) string {
	msg := fmt.Sprintf("unknown provider %q: this gateway has %s", truncate(name, 64), ps.providerList())
	if best := closest(name, ps.Names()); best != "" {
		return msg + fmt.Sprintf("; did you mean /gateway/%s%s?", best, truncate(rest, 128))
	}
	// /gateway/v1/chat/completions: the provider is missing, not misspelt.
	if first := ps.list[0]; first.Allows(http.MethodPost, "/"+name+rest) || first.Allows(http.MethodGet, "/"+name+rest) {
		return msg + fmt.Sprintf("; the path names no provider: did you mean /gateway/%s/%s%s?", first.Name, truncate(name, 64), truncate(rest, 128))
	}
	return msg + " (providers are configured in the gateway's providers file)"
}

// closest is the name within two edits of s (ignoring case), or "".
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, for short names only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// RouteRefusal is the answer to method on /gateway/{prov}{rest} when the
// provider does not serve it: the route the client probably meant when
// one is close (/v1 missing or doubled, another method), else the routes
// the provider serves and where more are enabled. shown is the path as
// the client escaped it.
func (prov *Provider) RouteRefusal(method, shown, rest string) (status int, code, msg string) {
	at := "/gateway/" + prov.Name
	head := fmt.Sprintf("%s %s is not enabled on this gateway for provider %s", truncate(method, 16), shown, prov.Name)
	for _, alt := range []string{"/v1" + rest, strings.TrimPrefix(rest, "/v1")} {
		if alt == rest || !prov.Allows(method, alt) {
			continue
		}
		why := "the path lacks /v1: an OpenAI SDK's base URL is " + at + "/v1"
		if len(alt) < len(rest) {
			why = "/v1 is in the path twice: an Anthropic SDK's base URL is " + at + ", without /v1"
			if prov.Kind != KindAnthropic {
				why = "/v1 is in the path twice: an OpenAI SDK's base URL is " + at + "/v1, and the SDK adds no other /v1"
			}
		}
		return http.StatusNotFound, "route_not_enabled", fmt.Sprintf("%s: did you mean %s %s%s? (%s)", head, method, at, alt, why)
	}
	var other []string
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m != method && prov.Allows(m, rest) {
			other = append(other, m)
		}
	}
	if len(other) > 0 {
		// 404 all the same: GET /v1/chat/completions lists stored
		// completions, a route of its own that is off on purpose.
		return http.StatusNotFound, "route_not_enabled", fmt.Sprintf("%s: only %s %s%s is. An operator enables others by listing them under providers.%s.routes in the gateway's providers file.",
			head, strings.Join(other, " and "), at, shown, prov.Name)
	}
	var served []string
	for _, rt := range prov.Routes {
		served = append(served, rt.Method+" "+at+"/"+strings.Join(rt.rel, "/"))
	}
	return http.StatusNotFound, "route_not_enabled", fmt.Sprintf(
		"%s: only the routes in its providers file are. It serves %s. An operator enables others by listing them under providers.%s.routes in the gateway's providers file.",
		head, strings.Join(served, ", "), prov.Name)
}

// NotFoundMessage is the message for a request outside /gateway/ that no
// route of the gateway serves: when the path is a provider's API path
// (/v1/chat/completions), the /gateway/{provider} URL that serves it.
func (ps *Providers) NotFoundMessage(method, path string) string {
	msg := fmt.Sprintf("%s %s is not a route of this gateway", truncate(method, 16), truncate(path, 128))
	for _, p := range ps.list {
		if p.Allows(method, path) {
			base := "an OpenAI SDK's base URL is /gateway/" + p.Name + "/v1"
			if p.Kind == KindAnthropic {
				base = "an Anthropic SDK's base URL is /gateway/" + p.Name
			}
			return msg + fmt.Sprintf(": providers are served under /gateway/{provider}; did you mean %s /gateway/%s%s? (%s)",
				method, p.Name, truncate(path, 128), base)
		}
	}
	return msg + fmt.Sprintf(": providers are served under /gateway/{provider}/ (%s), for example /gateway/%s/v1/models; people use the console at /api-keys and the docs at /docs/",
		strings.Join(ps.Names(), ", "), ps.list[0].Name)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
