package console_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// keyFormat is the documented key format (docs/design.md, section 3).
var keyFormat = regexp.MustCompile(`^cvk_[0-9A-Za-z]{46}$`)

// item, created and listed mirror the console API's JSON.
type item struct {
	Name        string     `json:"name"`
	Namespace   string     `json:"namespace"`
	DisplayName string     `json:"displayName"`
	Prefix      string     `json:"prefix"`
	Status      string     `json:"status"`
	LastUsedAt  *time.Time `json:"lastUsedAt"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	Owner       string     `json:"owner"`

	AwaitingReveal bool `json:"awaitingReveal"`

	Models []string                `json:"models"`
	Limits *gatewayv1alpha1.Limits `json:"limits"`
	Budget *budgetJSON             `json:"budget"`
	Usage  *usageJSON              `json:"usage"`
}

type budgetJSON struct {
	Summary  string  `json:"summary"`
	Tokens   *int64  `json:"tokens"`
	USD      string  `json:"usd"`
	Period   string  `json:"period"`
	Spent    float64 `json:"spent"`
	Exceeded bool    `json:"exceeded"`
}

type usageJSON struct {
	PeriodStart  time.Time  `json:"periodStart"`
	PeriodEnd    *time.Time `json:"periodEnd"`
	Requests     int64      `json:"requests"`
	InputTokens  int64      `json:"inputTokens"`
	OutputTokens int64      `json:"outputTokens"`
	USD          string     `json:"usd"`
	Summary      string     `json:"summary"`
}

type created struct {
	APIKey item   `json:"apiKey"`
	Key    string `json:"key"`
}

type listed struct {
	Items  []item   `json:"items"`
	Owners []string `json:"owners"`
}

type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// user calls the console as a person behind the sign-in proxy would: the
// proxy's headers on every request, and the CSRF token from the page. A
// user with a client (OIDC mode) sends no identity headers: the client's
// cookie jar holds the session, and it follows redirects.
type user struct {
	s      *stack
	email  string
	groups string
	token  string
	client *http.Client
}

func (s *stack) as(email string, groups ...string) *user {
	return &user{s: s, email: email, groups: strings.Join(groups, ",")}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string { return string(r.Body) }

// errorCode is the error.code of a JSON error body.
func (r response) errorCode() string {
	var e apiError
	if json.Unmarshal(r.Body, &e) != nil || e.Error.Code == nil {
		return ""
	}
	return *e.Error.Code
}

func (r response) errorMessage() string {
	var e apiError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Message
}

// do sends a request with the user's identity headers; a non-nil body is
// sent as JSON with the user's CSRF token (fetch the page first). mutate
// may change anything before it goes.
func (u *user) do(t *testing.T, method, path string, body any, mutate ...func(*http.Request)) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u.s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if u.email != "" && u.client == nil {
		req.Header.Set("X-Forwarded-Email", u.email)
		req.Header.Set("X-Forwarded-User", strings.SplitN(u.email, "@", 2)[0])
	}
	if u.groups != "" && u.client == nil {
		req.Header.Set("X-Forwarded-Groups", u.groups)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", u.token)
		req.Header.Set("Origin", u.s.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for _, m := range mutate {
		m(req)
	}
	c := u.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// page fetches /api-keys (query may be "" or "?owner=...") and keeps the
// CSRF token it carries.
func (u *user) page(t *testing.T, query string) response {
	t.Helper()
	r := u.do(t, http.MethodGet, "/api-keys"+query, nil)
	if r.Status == http.StatusOK {
		m := csrfMeta.FindSubmatch(r.Body)
		if m == nil {
			t.Fatalf("the page has no CSRF token:\n%s", r.Body)
		}
		u.token = string(m[1])
	}
	return r
}

// create creates a key and insists on success.
func (u *user) create(t *testing.T, body map[string]any) (created, response) {
	t.Helper()
	if u.token == "" {
		u.page(t, "")
	}
	r := u.do(t, http.MethodPost, "/api/v1/apikeys", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("%s creating %v: %d %s", u.email, body, r.Status, r.Body)
	}
	var c created
	if err := json.Unmarshal(r.Body, &c); err != nil {
		t.Fatal(err)
	}
	if !keyFormat.MatchString(c.Key) {
		t.Fatalf("created key %q... does not have the documented format", c.Key[:min(len(c.Key), 12)])
	}
	handedOut.Store(c.Key, true)
	return c, r
}

func (u *user) list(t *testing.T, query string) (listed, response) {
	t.Helper()
	r := u.do(t, http.MethodGet, "/api/v1/apikeys"+query, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("%s listing: %d %s", u.email, r.Status, r.Body)
	}
	var l listed
	if err := json.Unmarshal(r.Body, &l); err != nil {
		t.Fatal(err)
	}
	return l, r
}

// setPolicy posts a key's whole policy, as the Edit limits dialog does.
func (u *user) setPolicy(t *testing.T, name string, body any, mutate ...func(*http.Request)) response {
	t.Helper()
	if u.token == "" {
		u.page(t, "")
	}
	return u.do(t, http.MethodPost, "/api/v1/apikeys/"+name+"/policy", body, mutate...)
}

func (u *user) revoke(t *testing.T, name string) response {
	t.Helper()
	if u.token == "" {
		u.page(t, "")
	}
	return u.do(t, http.MethodPost, "/api/v1/apikeys/"+name+"/revoke", map[string]any{})
}

// assertNoKey fails if body holds any of keys, or any key's secret part.
func assertNoKey(t *testing.T, where string, body []byte, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if bytes.Contains(body, []byte(k)) || bytes.Contains(body, []byte(k[12:44])) {
			t.Errorf("%s contains the key with prefix %s", where, k[:12])
		}
	}
	if m := regexp.MustCompile(`cvk_[0-9A-Za-z]{46}`).Find(body); m != nil {
		t.Errorf("%s contains a full key (prefix %s)", where, m[:12])
	}
}

func names(items []item) []string {
	var out []string
	for _, i := range items {
		out = append(out, i.Name)
	}
	return out
}
