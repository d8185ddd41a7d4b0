// Package console is the operators' web console: server-rendered pages
// (html/template, embedded in the binary, no JavaScript) over the same
// event center, tokens and roles as the HTTP API, which mounts it at /.
//
//	GET  /login, POST /login, POST /logout   sign in by pasting a bearer token
//	GET  /jobs                               the catalog, live status (outputs, consumer lag, dead letters) and the backfills (Temporal visibility)
//	GET  /params[?job=]                      declarations, current values, pending changes, audit
//	POST /params/submit                      submit a change (operator)
//	POST /params/decide                      approve or reject a change (approver, not the submitter)
//	GET  /features?job=&entity=&at=&known_at=&where=&limit=  a lookup and a selection, as the API answers them
//	GET  /sources                            watermarks per partition and how far behind they are, ingest lag, the ingest's dead letters
//	GET  /drift[?run=]                       correction runs, drifted rows over time, a run's keys and re-backfills
//
// Sign-in keeps the token in a cookie (HttpOnly, SameSite=Strict, Secure
// when served over TLS). Cross-site request forgery is prevented by
// SameSite=Strict together with writes being POST only, and every POST
// whose Origin header names another host is refused (403). A POST's error
// reaches the page it redirects to in a one-time cookie, never in the URL.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/source"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CookieName is the cookie that holds the signed-in token.
const CookieName = "tidemark_token"

// Config configures a Console. Store, Auth and API are required.
type Config struct {
	// Store is the event center: catalog, watermarks, drift ledger.
	Store eventcenter.Store
	// Auth checks the pasted tokens.
	Auth auth.Authenticator
	// API is the HTTP API server's handler: the features page sends it the
	// request a client would and shows its answer.
	API http.Handler
	// Changes runs parameter changes; nil: the parameters page shows the
	// declarations only (no Temporal configured).
	Changes *changes.Service
	// Temporal, if set, lists the backfills (visibility); TemporalUI is
	// the Web UI's base URL for links to them ("" for no links) and
	// Namespace their namespace (default "default").
	Temporal   client.Client
	TemporalUI string
	Namespace  string
	// ArchiveURL, if set, links the drift page's archive objects: the
	// object's key is appended to it (e.g. an S3 console's or a bucket's
	// URL ending in "/"). Default: keys without links.
	ArchiveURL string
	// Sources are the registered sources the sources page lists, besides
	// the ones the catalog's jobs trigger on or read.
	Sources []string
	// Registry, if set, is the source registry: it gives the topics of a
	// job's trigger sources (for its consumer lag) and the source of an
	// ingest dead letter's topic. Default: a source's topic is
	// source.TopicName of its name.
	Registry *source.Config
	// Brokers, if set, are the Kafka brokers of the live workers and the
	// ingest (KafkaOptions are added to the client's options): the jobs
	// page shows each job's consumer lag (of its live worker's group,
	// live.DefaultGroup) and its dead letters by outcome, the sources page
	// the ingest's latest dead letters with their reasons. Default none:
	// those show as unknown.
	Brokers      []string
	KafkaOptions []kgo.Opt
	// IngestGroup is the ingest's consumer group, whose lag on each
	// source's topic the sources page shows. Default ingest.DefaultGroup.
	IngestGroup string
	// DeadLetterTopic is the ingest's dead-letter topic and the prefix of
	// the live workers' (live.DeadLetterTopic). Default
	// "tidemark.deadletter".
	DeadLetterTopic string
	// KafkaTimeout bounds a page's Kafka reads, which run beside its event
	// center reads: what they have not read by then shows as unknown, so a
	// slow broker does not make a page slow. Default 150ms.
	KafkaTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Console serves the pages.
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	kafka *kafkaReader // nil without Config.Brokers
}

// New returns a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Auth == nil || cfg.API == nil {
		return nil, errors.New("console: Config.Store, Auth and API are required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = "tidemark.deadletter"
	}
	if cfg.IngestGroup == "" {
		cfg.IngestGroup = ingest.DefaultGroup
	}
	if cfg.KafkaTimeout <= 0 {
		cfg.KafkaTimeout = 150 * time.Millisecond
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}}
	if len(cfg.Brokers) > 0 {
		k, err := newKafkaReader(cfg.Brokers, cfg.KafkaOptions)
		if err != nil {
			return nil, err
		}
		c.kafka = k
	}
	for _, name := range []string{"login", "jobs", "params", "features", "sources", "drift"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return c, nil
}

// Close closes the Kafka client, if any.
func (c *Console) Close() {
	if c.kafka != nil {
		c.kafka.close()
	}
}

// Mount adds the console's routes to mux: / and the pages above.
func (c *Console) Mount(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static") // a constant, valid path: no error
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/jobs", http.StatusSeeOther) })
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.HandleFunc("GET /jobs", c.page("jobs", c.jobs))
	mux.HandleFunc("GET /params", c.page("params", c.params))
	mux.HandleFunc("POST /params/submit", c.write(c.submit))
	mux.HandleFunc("POST /params/decide", c.write(c.decide))
	mux.HandleFunc("GET /features", c.page("features", c.features))
	mux.HandleFunc("GET /sources", c.page("sources", c.sources))
	mux.HandleFunc("GET /drift", c.page("drift", c.drift))
}

// view is what every page's template gets.
type view struct {
	Title   string
	Nav     string
	Who     *auth.Principal
	Flash   string
	Error   string
	Data    any
	Elapsed time.Duration
}

// principal authenticates the request's cookie.
func (c *Console) principal(r *http.Request) (auth.Principal, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return auth.Principal{}, auth.ErrNoToken
	}
	return c.cfg.Auth.Authenticate(r.Context(), ck.Value)
}

// page serves a signed-in page: load fills its data; an error of load is
// shown on the page (the navigation stays usable).
func (c *Console) page(name string, load func(r *http.Request, p auth.Principal) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, err := c.principal(r)
		if err != nil {
			c.toLogin(w, r, err)
			return
		}
		v := view{Title: pageTitle(name), Nav: name, Who: &p, Flash: r.URL.Query().Get("flash"), Error: takeError(w, r)}
		data, err := load(r, p)
		v.Data = data
		if err != nil {
			v.Error = err.Error()
		}
		v.Elapsed = time.Since(start)
		c.render(w, name, http.StatusOK, v)
	}
}

// write serves a signed-in POST: it refuses a cross-origin request, runs
// do and redirects to the page do names (post/redirect/get), with "done"
// or do's error (in errorCookie).
func (c *Console) write(do func(r *http.Request, p auth.Principal) (back string, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		p, err := c.principal(r)
		if err != nil {
			c.toLogin(w, r, err)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		back, err := do(r, p)
		u, perr := url.Parse(back)
		if perr != nil {
			u = &url.URL{Path: "/"}
		}
		if err != nil {
			setError(w, r, err.Error())
		} else {
			q := u.Query()
			q.Set("flash", "done")
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
	}
}

// sameOrigin reports whether r's Origin header, if any, names r's host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// errorCookie carries a POST's error to the page it redirects to, which
// shows it once. Only the console's POSTs set it: no link can put text
// in a page's alert (a link's "?error=Your session expired: sign in at
// https://evil.example" would read as the console's own).
const errorCookie = "tidemark_error"

// maxError bounds the error errorCookie carries, in bytes (a cookie holds
// about 4 KB, base64 makes 4 of 3).
const maxError = 2048

// setError sets errorCookie to msg, cut to maxError bytes.
func setError(w http.ResponseWriter, r *http.Request, msg string) {
	if len(msg) > maxError {
		msg = strings.ToValidUTF8(msg[:maxError], "") + "…"
	}
	http.SetCookie(w, &http.Cookie{Name: errorCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// takeError returns the error errorCookie carries ("" if none) and
// deletes the cookie.
func takeError(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(errorCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: errorCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	msg, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return ""
	}
	return string(msg)
}

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrBadToken) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	c.cfg.Logger.Error("console: authentication failed", "err", err)
	http.Error(w, "authentication failed", http.StatusInternalServerError)
}

func (c *Console) render(w http.ResponseWriter, name string, status int, v view) {
	var b bytes.Buffer
	if err := c.pages[name].Execute(&b, v); err != nil {
		c.cfg.Logger.Error("console: rendering", "page", name, "err", err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, "login", http.StatusOK, view{Title: "Sign in", Nav: "login", Data: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if _, err := c.cfg.Auth.Authenticate(r.Context(), token); err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, auth.ErrBadToken) && !errors.Is(err, auth.ErrNoToken) {
			status = http.StatusInternalServerError
		}
		c.render(w, "login", status, view{Title: "Sign in", Nav: "login", Error: "That token is not valid.", Data: next})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect target on this site: a path of it, else
// /jobs. A control character refuses the target (url.Parse fails on one):
// browsers drop tabs and newlines from a URL, so "/\t/evil.example" would
// take them to //evil.example, another site.
func safeNext(next string) string {
	if _, err := url.Parse(next); err != nil || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		return "/jobs"
	}
	return next
}

// ctxTimeout bounds a page's reads.
func ctxTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
