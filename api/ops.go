package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// The operations page (/ops) is for operators: they sign in with an operator
// token, which the page turns into a session cookie (HttpOnly,
// SameSite=Strict, signed with the token, so every API instance that knows
// the token accepts it, and removing the token ends its sessions). The
// cookie also lets the operator's browser use the codec endpoint. Every
// form that changes state carries a CSRF token derived from the session,
// and a request from another origin is refused.
const (
	opsCookie      = "handoff_ops"
	opsSessionFor  = 12 * time.Hour
	maxOpsFormSize = 64 << 10
)

// problemForbidden answers a form that is not from the operations page.
var problemForbidden = problemKind{http.StatusForbidden, "forbidden", "The request was refused"}

//go:embed ops.html
var opsHTML string

var opsPage = template.Must(template.New("ops").Funcs(template.FuncMap{
	"pct": func(f float64) string {
		if f != f { // NaN: nothing to rate
			return "—"
		}
		return strconv.FormatFloat(100*f, 'f', 1, 64) + " %"
	},
}).Parse(opsHTML))

// opsSession is a signed-in operator's session: its cookie value and the
// digest of the token it was signed with.
type opsSession struct {
	value  string
	digest [sha256.Size]byte
}

// csrf is the token every state-changing form of the session carries.
func (o opsSession) csrf() string { return sign(o.digest, "csrf|"+o.value) }

func sign(key [sha256.Size]byte, msg string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// session returns the request's valid session, if it has one.
func (s *Server) session(c echo.Context) (opsSession, bool) {
	ck, err := c.Cookie(opsCookie)
	if err != nil {
		return opsSession{}, false
	}
	expiry, mac, ok := strings.Cut(ck.Value, ".")
	unix, err := strconv.ParseInt(expiry, 10, 64)
	if !ok || err != nil || time.Now().Unix() > unix {
		return opsSession{}, false
	}
	for _, d := range s.opTokens {
		if hmac.Equal([]byte(sign(d, "session|"+expiry)), []byte(mac)) {
			return opsSession{value: ck.Value, digest: d}, true
		}
	}
	return opsSession{}, false
}

// sameOrigin refuses requests a browser says come from another site: by
// Sec-Fetch-Site where the browser sends it, else by Origin.
func sameOrigin(c echo.Context) bool {
	r := c.Request()
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		return err == nil && u.Host == r.Host
	}
	return true
}

// opsHeaders keep the page out of frames, caches and other sites' reach.
func opsHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set(echo.HeaderCacheControl, "no-store")
}

// opsForm checks a state-changing form: a valid session, the session's
// CSRF token, and the same origin. It returns the session.
func (s *Server) opsForm(c echo.Context) (opsSession, *Problem) {
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxOpsFormSize)
	sess, ok := s.session(c)
	if !ok {
		return sess, problemUnauthorized.with("sign in to the operations page first")
	}
	if !sameOrigin(c) || subtle.ConstantTimeCompare([]byte(c.FormValue("csrf")), []byte(sess.csrf())) != 1 {
		return sess, problemForbidden.with("the form is not from this operations page; reload it and try again")
	}
	return sess, nil
}

func (s *Server) opsSignInForm(c echo.Context) error {
	opsHeaders(c)
	if _, ok := s.session(c); ok {
		return c.Redirect(http.StatusSeeOther, "/ops")
	}
	return s.renderOps(c, http.StatusOK, opsView{SignIn: true})
}

func (s *Server) opsSignIn(c echo.Context) error {
	opsHeaders(c)
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxOpsFormSize)
	if !sameOrigin(c) {
		return s.renderOps(c, http.StatusForbidden, opsView{SignIn: true, Error: "the sign-in form is not from this page"})
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(c.FormValue("token"))))
	for _, d := range s.opTokens {
		if subtle.ConstantTimeCompare(got[:], d[:]) == 1 {
			expiry := strconv.FormatInt(time.Now().Add(opsSessionFor).Unix(), 10)
			c.SetCookie(&http.Cookie{
				Name: opsCookie, Value: expiry + "." + sign(d, "session|"+expiry), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.IsTLS() || c.Scheme() == "https",
				MaxAge: int(opsSessionFor.Seconds()),
			})
			s.log.Info("operator signed in to the operations page", "correlation_id", correlationID(c))
			return c.Redirect(http.StatusSeeOther, "/ops")
		}
	}
	s.log.Warn("operations page sign-in refused", "correlation_id", correlationID(c))
	return s.renderOps(c, http.StatusUnauthorized, opsView{SignIn: true, Error: "that is not an operator token"})
}

func (s *Server) opsSignOut(c echo.Context) error {
	opsHeaders(c)
	if _, p := s.opsForm(c); p != nil {
		return p
	}
	c.SetCookie(&http.Cookie{Name: opsCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return c.Redirect(http.StatusSeeOther, "/ops/sign-in")
}

// opsDone names what a form did, for the banner after its redirect; the
// banner shows only these texts, never anything from the request.
var opsDone = map[string]string{
	"retry": "Retry sent: the step runs again.", "skip": "Step skipped: the action goes on without it.",
	"abort": "Action aborted: what it did is being undone.", "pause": "Provider paused: no call reaches it until resumed.",
	"resume": "Provider resumed: its waiting calls go out.",
}

func (s *Server) opsAction(c echo.Context) error {
	opsHeaders(c)
	if _, p := s.opsForm(c); p != nil {
		return p
	}
	wid, answer := c.FormValue("workflow_id"), c.FormValue("answer")
	if _, ok := opsDone[answer]; !ok || answer == "pause" || answer == "resume" {
		return problemInvalid.with("answer must be retry, skip or abort")
	}
	reason := strings.TrimSpace(c.FormValue("reason"))
	if reason == "" {
		reason = answer + " from the operations page"
	}
	if _, err := s.operators.Resolve(c.Request().Context(), wid, answer, workflows.OperatorRequest{Reason: reason}); err != nil {
		return s.opsFailed(c, err)
	}
	s.log.Info("operator action from the operations page", "workflow_id", wid, "answer", answer, "correlation_id", correlationID(c))
	return c.Redirect(http.StatusSeeOther, "/ops?done="+answer)
}

func (s *Server) opsProvider(c echo.Context) error {
	opsHeaders(c)
	if _, p := s.opsForm(c); p != nil {
		return p
	}
	name, op := c.FormValue("system"), c.FormValue("op")
	if _, ok := system.Lookup(name); !ok {
		return problemInvalid.with("system must be one of " + strings.Join(system.Names(), ", "))
	}
	reason := strings.TrimSpace(c.FormValue("reason"))
	if reason == "" {
		reason = op + "d from the operations page"
	}
	var err error
	switch op {
	case "pause":
		_, err = s.operators.PauseProvider(c.Request().Context(), name, reason)
	case "resume":
		_, err = s.operators.ResumeProvider(c.Request().Context(), name, reason)
	default:
		return problemInvalid.with("op must be pause or resume")
	}
	if err != nil {
		return s.opsFailed(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/ops?done="+op)
}

// opsFailed shows the page again with the problem's title and detail.
func (s *Server) opsFailed(c echo.Context, err error) error {
	p := problemFor(err)
	view := s.opsView(c)
	view.Error = p.Title
	if p.Detail != "" {
		view.Error += ": " + p.Detail
	}
	return s.renderOps(c, p.Status, view)
}

func (s *Server) opsHome(c echo.Context) error {
	opsHeaders(c)
	if _, ok := s.session(c); !ok {
		return c.Redirect(http.StatusSeeOther, "/ops/sign-in")
	}
	view := s.opsView(c)
	if done, ok := opsDone[c.QueryParam("done")]; ok {
		view.Done, view.DoneKey = done, c.QueryParam("done")
	}
	return s.renderOps(c, http.StatusOK, view)
}

func (s *Server) renderOps(c echo.Context, status int, view opsView) error {
	var b strings.Builder
	if err := opsPage.Execute(&b, view); err != nil {
		return err
	}
	return c.HTML(status, b.String())
}
