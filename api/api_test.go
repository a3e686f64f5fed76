package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
)

const token = "test-token-0123456789abcdef"

// fakeOrders records what the API asked and answers as scripted.
type fakeOrders struct {
	placed       []action.Order
	correlations []string
	placeErr     error
	replayed     bool
	readErr      error
}

func (f *fakeOrders) PlaceOrder(_ context.Context, o action.Order, correlationID string) (control.Placed, error) {
	f.placed = append(f.placed, o)
	f.correlations = append(f.correlations, correlationID)
	if f.placeErr != nil {
		return control.Placed{}, f.placeErr
	}
	return control.Placed{OrderID: o.OrderID, WorkflowID: "order/" + o.OrderID, Replayed: f.replayed}, nil
}

func (f *fakeOrders) Order(_ context.Context, id string) (control.OrderRead, error) {
	if f.readErr != nil {
		return control.OrderRead{}, f.readErr
	}
	return control.OrderRead{State: workflows.OrderState{OrderID: id, Status: action.StatusCompleted, Steps: []workflows.Step{}}, Source: control.SourceWorkflow}, nil
}

func newTestServer(t *testing.T, orders *fakeOrders, ready error) *Server {
	t.Helper()
	s, err := New(Options{Orders: orders, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{}, APITokens: []string{token}, WebUIURL: "http://ui", Namespace: "default",
		Ready: func(context.Context) error { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(s *Server, method, path, body, auth string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	checkExchange(req, body, rec)
	return rec
}

const validOrder = `{"order_id":"A-1","customer":{"email":"a@example.com","name":"A"},"currency":"eur","amount":100,"items":[{"sku":"x","quantity":1,"unit_amount":100}]}`

func TestPlaceOrderAnswers(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		auth         string
		placeErr     error
		replayed     bool
		wantStatus   int
		wantProblem  string
		wantReplayed bool
		wantCalls    int
	}{
		{name: "accepted", body: validOrder, auth: "Bearer " + token, wantStatus: 202, wantCalls: 1},
		{name: "replayed", body: validOrder, auth: "Bearer " + token, replayed: true, wantStatus: 202, wantReplayed: true, wantCalls: 1},
		{name: "no token", body: validOrder, wantStatus: 401, wantProblem: "unauthorized"},
		{name: "wrong token", body: validOrder, auth: "Bearer nope-nope-nope-nope", wantStatus: 401, wantProblem: "unauthorized"},
		{name: "basic auth", body: validOrder, auth: "Basic " + token, wantStatus: 401, wantProblem: "unauthorized"},
		{name: "malformed JSON", body: `{"order_id":`, auth: "Bearer " + token, wantStatus: 400, wantProblem: "invalid-request"},
		{name: "unknown field", body: `{"order_id":"A-1","colour":"red"}`, auth: "Bearer " + token, wantStatus: 400, wantProblem: "invalid-request"},
		{name: "wrong type", body: `{"order_id":"A-1","amount":"ten"}`, auth: "Bearer " + token, wantStatus: 400, wantProblem: "invalid-request"},
		{name: "two objects", body: validOrder + validOrder, auth: "Bearer " + token, wantStatus: 400, wantProblem: "invalid-request"},
		{name: "empty body", body: ``, auth: "Bearer " + token, wantStatus: 400, wantProblem: "invalid-request"},
		{name: "too large", body: `{"order_id":"` + strings.Repeat("a", maxBodyBytes) + `"}`, auth: "Bearer " + token, wantStatus: 413, wantProblem: "too-large"},
		{name: "invalid fields", body: validOrder, auth: "Bearer " + token, placeErr: &control.ValidationError{Fields: []action.FieldError{{Field: "amount", Detail: "bad"}}}, wantStatus: 400, wantProblem: "invalid-request", wantCalls: 1},
		{name: "conflict", body: validOrder, auth: "Bearer " + token, placeErr: control.ErrConflict, wantStatus: 409, wantProblem: "conflict", wantCalls: 1},
		{name: "temporal down", body: validOrder, auth: "Bearer " + token, placeErr: serviceerror.NewUnavailable("down"), wantStatus: 503, wantProblem: "unavailable", wantCalls: 1},
		{name: "unexpected", body: validOrder, auth: "Bearer " + token, placeErr: errors.New("boom"), wantStatus: 500, wantProblem: "internal", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orders := &fakeOrders{placeErr: tt.placeErr, replayed: tt.replayed}
			rec := do(newTestServer(t, orders, nil), http.MethodPost, "/v1/orders", tt.body, tt.auth)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := len(orders.placed); got != tt.wantCalls {
				t.Errorf("PlaceOrder calls = %d, want %d", got, tt.wantCalls)
			}
			if got := rec.Header().Get(HeaderIdempotentReplayed) == "true"; got != tt.wantReplayed {
				t.Errorf("Idempotent-Replayed = %v, want %v", got, tt.wantReplayed)
			}
			if tt.wantProblem == "" {
				var placed PlacedOrder
				if err := json.Unmarshal(rec.Body.Bytes(), &placed); err != nil || placed.WorkflowID != "order/A-1" || placed.Links["web_ui"] != "http://ui/namespaces/default/workflows/order%2FA-1" {
					t.Errorf("answer = %s (%v), want the placed order with links", rec.Body, err)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("decode problem: %v", err)
			}
			if p.Type != problemTypePrefix+tt.wantProblem || p.Status != tt.wantStatus || p.Title == "" {
				t.Errorf("problem = %+v, want type %s and status %d", p, tt.wantProblem, tt.wantStatus)
			}
			if id := rec.Header().Get(HeaderCorrelationID); id == "" || p.Instance != "urn:handoff:request:"+id {
				t.Errorf("problem instance %q, want the request's correlation id %q", p.Instance, id)
			}
			if tt.wantStatus == 503 && rec.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
}

func TestValidationProblemNamesTheFields(t *testing.T) {
	fields := []action.FieldError{{Field: "customer.email", Detail: "must be an e-mail address"}, {Field: "amount", Detail: "x"}}
	rec := do(newTestServer(t, &fakeOrders{placeErr: &control.ValidationError{Fields: fields}}, nil), http.MethodPost, "/v1/orders", validOrder, "Bearer "+token)
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Errors) != 2 || p.Errors[0].Field != "customer.email" {
		t.Errorf("errors = %+v, want both fields", p.Errors)
	}
}

func TestCorrelationIDIsTakenOrMade(t *testing.T) {
	orders := &fakeOrders{}
	s := newTestServer(t, orders, nil)
	rec := do(s, http.MethodPost, "/v1/orders", validOrder, "Bearer "+token, HeaderCorrelationID, "shop-req-42")
	if got := rec.Header().Get(HeaderCorrelationID); got != "shop-req-42" || orders.correlations[0] != "shop-req-42" {
		t.Errorf("correlation id = %q / %q, want the caller's shop-req-42", got, orders.correlations[0])
	}
	rec = do(s, http.MethodPost, "/v1/orders", validOrder, "Bearer "+token, HeaderCorrelationID, "bad id with spaces")
	if got := rec.Header().Get(HeaderCorrelationID); got == "" || strings.Contains(got, " ") || orders.correlations[1] != got {
		t.Errorf("correlation id = %q, want a fresh one in place of a malformed one", got)
	}
}

func TestGetOrder(t *testing.T) {
	tests := []struct {
		name       string
		readErr    error
		auth       string
		wantStatus int
	}{
		{"found", nil, "Bearer " + token, 200},
		{"not found", control.ErrNotFound, "Bearer " + token, 404},
		{"no token", nil, "", 401},
		{"query timed out", serviceerror.NewDeadlineExceeded("slow"), "Bearer " + token, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(newTestServer(t, &fakeOrders{readErr: tt.readErr}, nil), http.MethodGet, "/v1/orders/A-1", "", tt.auth)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
		})
	}
}

func TestProbes(t *testing.T) {
	if rec := do(newTestServer(t, &fakeOrders{}, nil), http.MethodGet, "/healthz", "", ""); rec.Code != 200 {
		t.Errorf("healthz = %d", rec.Code)
	}
	for _, tc := range []struct {
		name     string
		down     error
		query    string
		draining bool
		status   int
		body     string
	}{
		{"temporal reachable", nil, "", false, 200, `"temporal":"reachable"`},
		// A fleet stays in the load balancer while Temporal is away: every
		// instance answers 503 with Retry-After itself.
		{"temporal unreachable", errors.New("down"), "", false, 200, `"temporal":"unreachable"`},
		{"temporal unreachable, required", errors.New("down"), "?temporal=required", false, 503, "temporal is not reachable"},
		{"draining", nil, "", true, 503, "shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, &fakeOrders{}, tc.down)
			if tc.draining {
				s.Drain()
			}
			rec := do(s, http.MethodGet, "/readyz"+tc.query, "", "")
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("readyz = %d %s, want %d with %s", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
	if rec := do(newTestServer(t, &fakeOrders{}, nil), http.MethodGet, "/v1/nothing", "", "Bearer "+token); rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route = %d %s, want a 404 problem", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	if _, err := New(Options{APITokens: []string{token}}); err == nil {
		t.Error("New without orders = nil error")
	}
	if _, err := New(Options{Orders: &fakeOrders{}, Ready: func(context.Context) error { return nil }}); err == nil {
		t.Error("New without tokens = nil error")
	}
}
