package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
)

func addFault(t *testing.T, url, body string) {
	t.Helper()
	status, _, answer := post(t, url+"/_sandbox/faults", "", body)
	if status != http.StatusCreated {
		t.Fatalf("add fault %s: %d %s", body, status, answer)
	}
}

func TestFaultModes(t *testing.T) {
	const charge = `{"amount":100,"currency":"eur","email":"a@example.com"}`
	tests := []struct {
		name       string
		fault      string
		wantStatus int // 0: the connection is dropped
		wantHeader string
		wantCount  int // charges that exist afterwards
	}{
		{"status", `{"system":"payments","operation":"create_charge","mode":"status","status":502,"count":1}`, 502, "", 0},
		{"status defaults to 503", `{"system":"payments","mode":"status","count":1}`, 503, "", 0},
		{"rate limit", `{"system":"payments","mode":"rate_limit","retry_after":3,"count":1}`, 429, "3", 0},
		{"timeout before commit", `{"system":"payments","mode":"timeout_before_commit","count":1}`, 0, "", 0},
		{"timeout after commit", `{"system":"payments","mode":"timeout_after_commit","count":1}`, 0, "", 1},
		{"latency", `{"system":"payments","mode":"latency","latency_ms":50,"count":1}`, 200, "", 1},
		{"other operation untouched", `{"system":"payments","operation":"get_charge","mode":"status","count":1}`, 200, "", 1},
		{"other system untouched", `{"system":"mail","mode":"status","count":1}`, 200, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := newTestSandbox(t)
			addFault(t, srv.URL, tt.fault)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments/charges", strings.NewReader(charge))
			req.Header.Set("Idempotency-Key", "order/1/charge")
			start := time.Now()
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			switch {
			case tt.wantStatus == 0 && err == nil:
				resp.Body.Close()
				t.Fatalf("got %d, want the connection dropped", resp.StatusCode)
			case tt.wantStatus != 0 && err != nil:
				t.Fatalf("call: %v", err)
			case tt.wantStatus != 0:
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.wantHeader {
					t.Errorf("answer %d Retry-After %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.wantStatus, tt.wantHeader)
				}
			}
			if tt.name == "latency" && time.Since(start) < 50*time.Millisecond {
				t.Errorf("answered after %s, want at least 50ms", time.Since(start))
			}
			if got := s.State()["payments"]["charges"].Count; got != tt.wantCount {
				t.Errorf("charges = %d, want %d", got, tt.wantCount)
			}
			// Count 1: the next call is served normally.
			if status, _, body := post(t, srv.URL+"/payments/charges", "order/2/charge", charge); status != 200 {
				t.Errorf("call after the fault: %d %s, want 200", status, body)
			}
		})
	}
}

func TestFaultRateIsSeededAndRepeatable(t *testing.T) {
	run := func() []int {
		_, srv := newTestSandbox(t)
		addFault(t, srv.URL, `{"system":"mail","mode":"status","rate":0.3,"seed":42}`)
		var statuses []int
		for range 40 {
			status, _, _ := post(t, srv.URL+"/mail/messages", "", `{"to":"a@example.com"}`)
			statuses = append(statuses, status)
		}
		return statuses
	}
	first, second := run(), run()
	failed := 0
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("run 1 %v\nrun 2 %v\nwant the same sequence for the same seed", first, second)
		}
		if first[i] == 503 {
			failed++
		}
	}
	if failed < 4 || failed > 20 {
		t.Errorf("%d of 40 calls failed at rate 0.3", failed)
	}
}

func TestFaultsAreValidatedListedAndCleared(t *testing.T) {
	_, srv := newTestSandbox(t)
	for _, bad := range []string{`{"mode":"status"}`, `{"system":"crm","mode":"explode"}`, `{"system":"crm","mode":"status","rate":2}`, `{"system":"crm","mode":"status","colour":1}`} {
		if status, _, body := post(t, srv.URL+"/_sandbox/faults", "", bad); status != 400 {
			t.Errorf("fault %s: %d %s, want 400", bad, status, body)
		}
	}
	addFault(t, srv.URL, `{"system":"crm","mode":"status"}`)
	if status, _, _ := post(t, srv.URL+"/crm/contacts", "", `{"email":"a@example.com"}`); status != 503 {
		t.Errorf("with a lasting fault: %d, want 503", status)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/_sandbox/faults", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _, _ := post(t, srv.URL+"/crm/contacts", "", `{"email":"a@example.com"}`); status != 200 {
		t.Errorf("after DELETE /_sandbox/faults: %d, want 200", status)
	}
}

func TestCallsAreLogged(t *testing.T) {
	s, srv := newTestSandbox(t)
	addFault(t, srv.URL, `{"system":"mail","mode":"status","count":1}`)
	post(t, srv.URL+"/mail/messages", "order/9/confirmation", `{"to":"a@example.com"}`)
	post(t, srv.URL+"/mail/messages", "order/9/confirmation", `{"to":"a@example.com"}`)
	calls := s.Calls("mail", "send_message", "order/9/confirmation")
	if len(calls) != 2 || calls[0].Fault != FaultStatus || calls[1].Fault != "" || !calls[1].Time.After(calls[0].Time) {
		t.Errorf("calls = %+v, want the faulted call then the served one", calls)
	}
}

func newAuthSandbox(t *testing.T, ttl time.Duration) (*Server, string) {
	t.Helper()
	s := NewServer(Options{SettleDelay: 10 * time.Millisecond, ClientID: "client", ClientSecret: "secret-0123456789", TokenTTL: ttl})
	srv := newHTTPServer(t, s)
	return s, srv
}

func authClient(url string) *Client {
	c := NewClient("payments", url+"/payments", providers.HTTPOptions{})
	c.HTTP().SetAuth(providers.NewClientCredentials("payments", url+"/oauth/token", "client", "secret-0123456789", c.HTTP().Transport(), 0))
	return c
}

func TestCallsNeedATokenWhenAuthIsOn(t *testing.T) {
	s, url := newAuthSandbox(t, time.Hour)
	if status, _, body := post(t, url+"/payments/charges", "k", `{"amount":1,"currency":"eur"}`); status != 401 || !strings.Contains(body, "token_missing") {
		t.Errorf("without a token: %d %s, want 401 token_missing", status, body)
	}
	c := authClient(url)
	for i := range 3 {
		if _, err := c.CreateCharge(context.Background(), providers.Call{IdempotencyKey: "order/" + string(rune('a'+i)) + "/charge"}, providers.ChargeRequest{Amount: 1, Currency: "eur"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := s.TokensIssued(); got != 1 {
		t.Errorf("tokens issued for 3 calls = %d, want 1 (cached)", got)
	}
}

func TestExpiredTokenIsRefreshedOnceAndTheCallSucceeds(t *testing.T) {
	s, url := newAuthSandbox(t, time.Hour)
	c := authClient(url)
	ctx := context.Background()
	if _, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/1/charge"}, providers.ChargeRequest{Amount: 1, Currency: "eur"}); err != nil {
		t.Fatal(err)
	}
	addFault(t, url, `{"system":"payments","mode":"expired_token","count":1}`)
	if _, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/2/charge"}, providers.ChargeRequest{Amount: 1, Currency: "eur"}); err != nil {
		t.Fatalf("call with an expired token: %v, want it refreshed and the call to succeed", err)
	}
	if got := s.TokensIssued(); got != 2 {
		t.Errorf("tokens issued = %d, want 2", got)
	}
	if got := len(s.Calls("payments", "create_charge", "order/2/charge")); got != 2 {
		t.Errorf("calls for order 2 = %d, want 2 (refused, then accepted)", got)
	}
}

func TestTokensExpireAndAreRenewedBeforeUse(t *testing.T) {
	// A token that lives 11 s is renewed by oauth2 ten seconds before it
	// expires, so a call one second later already uses a new one.
	s, url := newAuthSandbox(t, 11*time.Second)
	c := authClient(url)
	for i := range 2 {
		if _, err := c.GetCharge(context.Background(), providers.Call{}, "ch_missing"); providers.CategoryOf(err) != action.CategoryPermanent {
			t.Fatalf("call %d: %v, want 404", i, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if got := s.TokensIssued(); got != 2 {
		t.Errorf("tokens issued = %d, want 2: the second call renews the expiring token", got)
	}
}

func TestRevokedClientEndsInUnauthorizedWithoutLooping(t *testing.T) {
	s, url := newAuthSandbox(t, time.Hour)
	c := authClient(url)
	ctx := context.Background()
	if _, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/1/charge"}, providers.ChargeRequest{Amount: 1, Currency: "eur"}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := post(t, url+"/_sandbox/revoke", "", ""); status != http.StatusNoContent {
		t.Fatalf("revoke: %d", status)
	}
	_, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/2/charge"}, providers.ChargeRequest{Amount: 1, Currency: "eur"})
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Category != action.CategoryPermanent || pe.Type != action.TypeUnauthorized {
		t.Fatalf("error = %v, want a permanent Unauthorized", err)
	}
	if got := len(s.Calls("payments", "create_charge", "order/2/charge")); got != 1 {
		t.Errorf("calls after revocation = %d, want 1: one refusal, one failed refresh, no loop", got)
	}
	if got := s.TokensIssued(); got != 1 {
		t.Errorf("tokens issued = %d, want 1", got)
	}
}

// Each shape change is read as the drift it is, counted once per answer,
// logged once with an example; only a required field missing (or of
// another type) fails the call, as ambiguous.
func TestShapeFaultsAreCountedAsDrift(t *testing.T) {
	srv := httptest.NewServer(NewServer(Options{SettleDelay: time.Hour}))
	defer srv.Close()
	c, _ := contracts.For("payments", "sandbox")
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	cl := NewClient("payments", srv.URL+"/payments", providers.HTTPOptions{Contract: &c, Metrics: providers.NewMetrics(reg),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for i, tc := range []struct{ shape, field, kind string }{
		{"missing_field", "id", contracts.DriftMissingField},
		{"wrong_type", "created", contracts.DriftWrongType},
		{"wrong_format", "currency", contracts.DriftWrongFormat},
		{"unknown_value", "status", contracts.DriftUnknownValue},
		{"unknown_field", "risk_score", contracts.DriftUnknownField},
		{"api_version", "", contracts.DriftAPIVersion},
	} {
		addFault(t, srv.URL, fmt.Sprintf(`{"system":"payments","operation":"create_charge","mode":"shape","shape":%q,"field":%q,"count":2}`, tc.shape, tc.field))
		for n := range 2 {
			key := fmt.Sprintf("order/shape-%d-%d/charge", i, n)
			_, err := cl.CreateCharge(context.Background(), providers.Call{IdempotencyKey: key},
				providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "ada@example.com"})
			var pe *providers.Error
			switch {
			case tc.shape == "missing_field" && (!errors.As(err, &pe) || pe.Category != action.CategoryAmbiguous):
				// The charge's id is what handoff relies on.
				t.Errorf("%s: %v, want an ambiguous failure", tc.shape, err)
			case tc.shape != "missing_field" && err != nil:
				t.Errorf("%s: the call failed: %v", tc.shape, err)
			}
		}
		if got := driftCounts(t, reg)["payments create_charge "+tc.kind]; got != 2 {
			t.Errorf("%s: handoff_contract_drift_total{kind=%q} = %v, want 2", tc.shape, tc.kind, got)
		}
		if got := strings.Count(logs.String(), `"kind":"`+tc.kind+`"`); got != 1 {
			t.Errorf("%s: logged %d times, want once:\n%s", tc.shape, got, logs.String())
		}
	}
	// A required field of another type is what the call needs: it fails,
	// as an answer it cannot read.
	addFault(t, srv.URL, `{"system":"payments","operation":"create_charge","mode":"shape","shape":"wrong_type","field":"amount","count":1}`)
	_, err := cl.CreateCharge(context.Background(), providers.Call{IdempotencyKey: "order/shape-amount/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur"})
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Category != action.CategoryAmbiguous {
		t.Errorf("a charge answered with amount of another type: %v, want an ambiguous failure", err)
	}
	if strings.Contains(logs.String(), "ada@example.com") {
		t.Errorf("a drift log shows personal data:\n%s", logs.String())
	}
	if total := len(driftCounts(t, reg)); total != 6 {
		t.Errorf("drift counted under %d kinds, want 6: %v", total, driftCounts(t, reg))
	}
}
