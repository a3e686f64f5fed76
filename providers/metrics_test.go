package providers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/handoff-hq/handoff/providers"
)

// Every call is counted by its outcome and category, its time observed,
// a 429 counted as a rate limit, a failure as a retry or a final failure;
// the token's expiry and failed token fetches are exported.
func TestProviderCallsAndCredentialsAreCounted(t *testing.T) {
	var answers atomic.Int32
	var refuse atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth/token" {
			if refuse.Load() {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"bearer","expires_in":3600}`))
			return
		}
		switch answers.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{}`))
		case 2:
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{}`))
		default:
			_, _ = w.Write([]byte(`{"id":"ch_1"}`))
		}
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	m := providers.NewMetrics(reg)
	c := providers.NewHTTPClient("payments", srv.URL, providers.HTTPOptions{Metrics: m})
	c.SetAuth(providers.NewClientCredentials("payments", srv.URL+"/oauth/token", "client", "secret-0123456789", c.Transport(), 0))
	ctx := providers.WithCallContext(context.Background(), providers.CallContext{Attempt: 1, MaxAttempts: 5})
	for range 3 {
		_ = c.Do(ctx, providers.Request{Operation: "create_charge", Method: http.MethodPost, Path: "/charges", Body: map[string]any{}}, nil)
	}
	refuse.Store(true)
	c2 := providers.NewHTTPClient("accounting", srv.URL, providers.HTTPOptions{Metrics: m})
	c2.SetAuth(providers.NewClientCredentials("accounting", srv.URL+"/oauth/token", "client", "secret-0123456789", c2.Transport(), 0))
	_ = c2.Do(ctx, providers.Request{Operation: "create_invoice", Method: http.MethodPost, Path: "/invoices", Body: map[string]any{}}, nil)

	want := `
# HELP handoff_provider_requests_total Provider calls by system, operation, outcome (ok, failed, not_sent, no_answer) and error category (none when it succeeded).
# TYPE handoff_provider_requests_total counter
handoff_provider_requests_total{category="none",operation="create_charge",outcome="ok",system="payments"} 1
handoff_provider_requests_total{category="permanent",operation="create_charge",outcome="failed",system="payments"} 1
handoff_provider_requests_total{category="permanent",operation="create_invoice",outcome="not_sent",system="accounting"} 1
handoff_provider_requests_total{category="temporary",operation="create_charge",outcome="failed",system="payments"} 1
# HELP handoff_provider_rate_limited_total Provider answers 429 Too Many Requests, by system and operation.
# TYPE handoff_provider_rate_limited_total counter
handoff_provider_rate_limited_total{operation="create_charge",system="payments"} 1
# HELP handoff_provider_retries_total Failed provider calls that will be tried again, by system, operation and error category.
# TYPE handoff_provider_retries_total counter
handoff_provider_retries_total{category="temporary",operation="create_charge",system="payments"} 1
# HELP handoff_provider_permanent_failures_total Failed provider calls that will not be tried again (permanent, declined or out of attempts), by system, operation and error category.
# TYPE handoff_provider_permanent_failures_total counter
handoff_provider_permanent_failures_total{category="permanent",operation="create_charge",system="payments"} 1
handoff_provider_permanent_failures_total{category="permanent",operation="create_invoice",system="accounting"} 1
# HELP handoff_credential_refresh_failures_total Access token fetches that failed, by system and error category (permanent: the client was refused).
# TYPE handoff_credential_refresh_failures_total counter
handoff_credential_refresh_failures_total{category="permanent",system="accounting"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"handoff_provider_requests_total", "handoff_provider_rate_limited_total", "handoff_provider_retries_total",
		"handoff_provider_permanent_failures_total", "handoff_credential_refresh_failures_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "handoff_provider_request_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (payments create_charge; the call not sent is not timed)", n)
	}
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() != "handoff_credential_expires_in_seconds" {
			continue
		}
		if len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() < 3500 || f.Metric[0].GetGauge().GetValue() > 3600 {
			t.Errorf("token expiry: %v, want payments only, about 3600 s", f.Metric)
		}
		return
	}
	t.Error("no handoff_credential_expires_in_seconds")
}
