package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/handoff-hq/handoff/control"
)

// fakeHealth answers the state as scripted.
type fakeHealth struct{ h control.Health }

func (f *fakeHealth) Health(context.Context, int) (control.Health, error) { return f.h, nil }

func newOpsServer(t *testing.T, ops *fakeOperators, reg *prometheus.Registry) *Server {
	t.Helper()
	since := time.Now().Add(-2 * time.Hour)
	health := &fakeHealth{control.Health{
		Providers: []control.ProviderStatus{{System: "payments", Backlog: 4, BacklogAgeSeconds: 90}, {System: "mail", Paused: true, PausedSince: &since, Reason: "incident 42"}},
		Attention: []control.AttentionCount{{Kind: "order", Step: "invoice", Provider: "accounting", Count: 1}},
		Parked: []control.Action{{WorkflowID: "order/A-1", Step: "invoice", Provider: "accounting", ErrorCategory: "permanent",
			Reason: "accounting create_invoice: 422 <script>alert(1)</script>", StartedAt: since}},
		ParkedTotal: 1, OldestParkedAt: since,
	}}
	s, err := New(Options{Orders: &fakeOrders{}, Events: &fakeEvents{}, Operators: ops, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, OperatorTokens: []string{operatorToken}, WebUIURL: "http://ui", Namespace: "default",
		Ready: func(context.Context) error { return nil }, Health: health, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serve(s *Server, method, path string, form url.Values, cookies []*http.Cookie, header http.Header) *httptest.ResponseRecorder {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// The page is for operators only: without the cookie it sends to sign-in;
// a wrong token gets no cookie; the right one an HttpOnly, SameSite=Strict
// cookie; every form needs the session's CSRF token and the same origin.
func TestOperationsPageSignInAndForms(t *testing.T) {
	ops := &fakeOperators{}
	s := newOpsServer(t, ops, prometheus.NewRegistry())

	rec := serve(s, "GET", "/ops", nil, nil, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ops/sign-in" {
		t.Fatalf("without a cookie: %d %q, want 303 to /ops/sign-in", rec.Code, rec.Header().Get("Location"))
	}
	rec = serve(s, "POST", "/ops/sign-in", url.Values{"token": {token}}, nil, nil)
	if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("an API token signs in: %d %v", rec.Code, rec.Result().Cookies())
	}
	rec = serve(s, "POST", "/ops/sign-in", url.Values{"token": {operatorToken}}, nil, http.Header{"Origin": {"http://evil.example"}})
	if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("a cross-origin sign-in: %d", rec.Code)
	}
	rec = serve(s, "POST", "/ops/sign-in", url.Values{"token": {operatorToken}}, nil, nil)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("sign-in: %d %v", rec.Code, cookies)
	}
	ck := cookies[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || strings.Contains(ck.Value, operatorToken) {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, path /, without the token", ck)
	}

	rec = serve(s, "GET", "/ops", nil, cookies, nil)
	page := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("page: %d %s", rec.Code, page)
	}
	for _, want := range []string{"order/A-1", "http://ui/namespaces/default/workflows/order%2FA-1", "incident 42", "paused", "4 · 1 min",
		"&lt;script&gt;", "reconcile-latest", `data-kind="unknown_field"`, "<code>full_name</code>", "string of 3 characters"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("a provider's message reached the page unescaped")
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", rec.Header())
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	csrf := m[1]

	for name, tc := range map[string]struct {
		form    url.Values
		cookies []*http.Cookie
		header  http.Header
		want    int
	}{
		"no cookie":      {url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"retry"}}, nil, nil, 401},
		"forged cookie":  {url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"retry"}}, []*http.Cookie{{Name: opsCookie, Value: "9999999999.00"}}, nil, 401},
		"no CSRF token":  {url.Values{"workflow_id": {"order/A-1"}, "answer": {"retry"}}, cookies, nil, 403},
		"wrong CSRF":     {url.Values{"csrf": {strings.Repeat("0", 64)}, "workflow_id": {"order/A-1"}, "answer": {"retry"}}, cookies, nil, 403},
		"another origin": {url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"retry"}}, cookies, http.Header{"Origin": {"http://evil.example"}}, 403},
		"cross-site":     {url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"retry"}}, cookies, http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		"unknown answer": {url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"pause"}}, cookies, nil, 400},
	} {
		if rec := serve(s, "POST", "/ops/actions", tc.form, tc.cookies, tc.header); rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", name, rec.Code, tc.want)
		}
	}
	if len(ops.resolved) != 0 {
		t.Fatalf("refused forms reached the operators: %v", ops.resolved)
	}

	rec = serve(s, "POST", "/ops/actions", url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"retry"}, "reason": {"fixed the VAT id"}}, cookies,
		http.Header{"Origin": {"http://example.com"}, "Sec-Fetch-Site": {"same-origin"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ops?done=retry" {
		t.Fatalf("retry: %d %s", rec.Code, rec.Body)
	}
	rec = serve(s, "POST", "/ops/providers", url.Values{"csrf": {csrf}, "system": {"mail"}, "op": {"resume"}}, cookies, nil)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("resume: %d %s", rec.Code, rec.Body)
	}
	want := []string{"order/A-1 retry", "resume mail resumed from the operations page"}
	if strings.Join(ops.resolved, "|") != strings.Join(want, "|") || ops.requests[0].Reason != "fixed the VAT id" {
		t.Errorf("operators got %v %+v, want %v", ops.resolved, ops.requests, want)
	}
	if rec := serve(s, "GET", "/ops?done=retry", nil, cookies, nil); !strings.Contains(rec.Body.String(), "Retry sent") {
		t.Error("no banner after the retry")
	}
	// A refused operation shows the page with the problem's reason.
	ops.err = &control.NotApplicableError{Reason: "the action is not waiting for an operator"}
	rec = serve(s, "POST", "/ops/actions", url.Values{"csrf": {csrf}, "workflow_id": {"order/A-1"}, "answer": {"skip"}}, cookies, nil)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not waiting for an operator") {
		t.Errorf("refused skip: %d", rec.Code)
	}

	rec = serve(s, "POST", "/ops/sign-out", url.Values{"csrf": {csrf}}, cookies, nil)
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign-out: %d %v", rec.Code, rec.Result().Cookies())
	}
}

// The state in Temporal is exported as gauges.
func TestStateInTemporalIsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	newOpsServer(t, &fakeOperators{}, reg)
	want := `
# HELP handoff_actions_needing_attention Actions waiting for an operator, by kind, the step they wait at and its system.
# TYPE handoff_actions_needing_attention gauge
handoff_actions_needing_attention{kind="order",step="invoice",system="accounting"} 1
# HELP handoff_task_queue_backlog Calls waiting in a provider's task queue (Temporal's approximate backlog count).
# TYPE handoff_task_queue_backlog gauge
handoff_task_queue_backlog{system="mail"} 0
handoff_task_queue_backlog{system="payments"} 4
# HELP handoff_provider_paused 1 while an operator keeps the provider paused, else 0.
# TYPE handoff_provider_paused gauge
handoff_provider_paused{system="mail"} 1
handoff_provider_paused{system="payments"} 0
# HELP handoff_temporal_state_up 1 when the last read of handoff's state in Temporal succeeded (the gauges below are from it), else 0.
# TYPE handoff_temporal_state_up gauge
handoff_temporal_state_up 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "handoff_actions_needing_attention", "handoff_task_queue_backlog",
		"handoff_provider_paused", "handoff_temporal_state_up"); err != nil {
		t.Error(err)
	}
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == "handoff_actions_needing_attention_oldest_age_seconds" {
			if v := f.Metric[0].GetGauge().GetValue(); v < 7190 || v > 7300 {
				t.Errorf("oldest parked: %v s, want about 7200", v)
			}
		}
	}
}

// The page's figures come from the local registry and the workers'
// /metrics, and are the increase since the oldest kept sample.
func TestOperationsFiguresMergeWorkerMetrics(t *testing.T) {
	worker := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "handoff_provider_requests_total"}, []string{"system", "outcome"})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "handoff_provider_request_duration_seconds", Buckets: []float64{.1, .5, 1}}, []string{"system"})
	worker.MustRegister(calls, took)
	srv := httptest.NewServer(promhttp.HandlerFor(worker, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	local := prometheus.NewRegistry()
	webhooks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "handoff_webhooks_total"}, []string{"system", "result"})
	local.MustRegister(webhooks)

	src := &statsSource{gatherer: local, urls: []string{srv.URL}, client: srv.Client()}
	calls.WithLabelValues("payments", "ok").Add(100)
	_, _, errs := src.read(context.Background()) // the base sample
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	calls.WithLabelValues("payments", "ok").Add(9)
	calls.WithLabelValues("payments", "failed").Add(1)
	for _, v := range []float64{.05, .05, .05, .05, .05, .05, .05, .05, .3, .8} {
		took.WithLabelValues("payments").Observe(v)
	}
	webhooks.WithLabelValues("payments", "accepted").Add(3)
	now, base, errs := src.read(context.Background())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	p := providerLine("payments", control.ProviderStatus{}, now.set, base.set)
	if p.Calls != 10 || p.SuccessRate != 0.9 {
		t.Errorf("calls %v, success %v: want 10 and 0.9 (the increase, not the total)", p.Calls, p.SuccessRate)
	}
	if p.P95 != "750 ms" {
		t.Errorf("p95 %s, want 750 ms (interpolated in the 0.5–1 s bucket)", p.P95)
	}
	if w := webhookLine("payments", now.set, base.set); w.Accepted != 3 {
		t.Errorf("webhooks accepted %v, want 3", w.Accepted)
	}
	missing := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(missing.Close)
	src.urls = []string{missing.URL + "/metrics", "http://127.0.0.1:1/metrics"}
	if _, _, errs := src.read(context.Background()); len(errs) != 2 {
		t.Errorf("unreadable workers: %v, want both named", errs)
	}
}
