package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
)

const operatorToken = "operator-token-0123456789"

// fakeOperators records the operator calls and answers as scripted.
type fakeOperators struct {
	resolved []string
	requests []workflows.OperatorRequest
	filters  []control.ActionFilter
	err      error
}

func (f *fakeOperators) Resolve(_ context.Context, workflowID, answer string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	f.resolved = append(f.resolved, workflowID+" "+answer)
	f.requests = append(f.requests, req)
	return workflows.OperatorResult{Status: action.StatusNeedsAttention, Step: "invoice"}, f.err
}

func (f *fakeOperators) ListActions(_ context.Context, filter control.ActionFilter) (control.ActionPage, error) {
	f.filters = append(f.filters, filter)
	return control.ActionPage{Actions: []control.Action{{WorkflowID: "order/A-1", Status: "needs_attention", Reason: "422"}}}, f.err
}

func (f *fakeOperators) CancelOrder(_ context.Context, orderID, reason string) (workflows.OperatorResult, error) {
	f.resolved = append(f.resolved, "cancel "+orderID+" "+reason)
	return workflows.OperatorResult{Status: action.StatusProcessing}, f.err
}

func (f *fakeOperators) PauseProvider(_ context.Context, system, reason string) (control.ProviderStatus, error) {
	f.resolved = append(f.resolved, "pause "+system+" "+reason)
	return control.ProviderStatus{System: system, Paused: true}, f.err
}

func (f *fakeOperators) ResumeProvider(_ context.Context, system, reason string) (control.ProviderStatus, error) {
	f.resolved = append(f.resolved, "resume "+system+" "+reason)
	return control.ProviderStatus{System: system}, f.err
}

func (f *fakeOperators) Provider(_ context.Context, system string) (control.ProviderStatus, error) {
	f.resolved = append(f.resolved, "get "+system)
	return control.ProviderStatus{System: system, Backlog: 3}, f.err
}

func (f *fakeOperators) ContractDrift(context.Context) ([]workflows.DriftSighting, error) {
	return []workflows.DriftSighting{{System: "crm", Operation: "upsert_contact", Kind: "unknown_field", Field: "full_name", Example: "string of 3 characters", Count: 2,
		FirstSeen: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC), LastSeen: time.Date(2026, 1, 15, 10, 5, 0, 0, time.UTC)}}, f.err
}

func (f *fakeOperators) ClearContractDrift(_ context.Context, system, reason string) ([]workflows.DriftSighting, error) {
	f.resolved = append(f.resolved, "clear drift "+system+" "+reason)
	return []workflows.DriftSighting{}, f.err
}

func newOperatorServer(t *testing.T, ops *fakeOperators) *Server {
	t.Helper()
	s, err := New(Options{Orders: &fakeOrders{}, Events: &fakeEvents{}, Operators: ops, Reconciliations: &fakeReconciliations{}, APITokens: []string{token},
		OperatorTokens: []string{operatorToken}, WebUIURL: "http://ui", Namespace: "default",
		Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOperatorEndpoints(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		body, auth   string
		err          error
		wantStatus   int
		wantResolved string
	}{
		{"retry", "POST", "/v1/actions/order/A-1/retry", `{"reason":"fixed","customer":{"email":"a@example.com","name":"A"}}`, operatorToken, nil, 200, "order/A-1 retry"},
		{"escaped workflow id", "POST", "/v1/actions/order%2FA-1/skip", ``, operatorToken, nil, 200, "order/A-1 skip"},
		{"abort", "POST", "/v1/actions/order/A-1/abort", `{}`, operatorToken, nil, 200, "order/A-1 abort"},
		{"API token is not enough", "POST", "/v1/actions/order/A-1/retry", ``, token, nil, 401, ""},
		{"no token", "POST", "/v1/actions/order/A-1/retry", ``, "", nil, 401, ""},
		{"not applicable", "POST", "/v1/actions/order/A-1/retry", ``, operatorToken, &control.NotApplicableError{Reason: "the order is processing"}, 409, "order/A-1 retry"},
		{"finished", "POST", "/v1/actions/order/A-1/retry", ``, operatorToken, control.ErrActionFinished, 409, "order/A-1 retry"},
		{"unknown action", "POST", "/v1/actions/order/none/retry", ``, operatorToken, control.ErrNotFound, 404, "order/none retry"},
		{"no action in path", "POST", "/v1/actions/retry", ``, operatorToken, nil, 404, ""},
		{"cancel order", "POST", "/v1/orders/A-1/cancel", `{"reason":"not wanted"}`, token, nil, 202, "cancel A-1 not wanted"},
		{"operators cancel too", "POST", "/v1/orders/A-1/cancel", ``, operatorToken, nil, 202, "cancel A-1 "},
		{"cancel needs a token", "POST", "/v1/orders/A-1/cancel", ``, "not-a-token", nil, 401, ""},
		{"pause", "POST", "/v1/providers/payments/pause", `{"reason":"outage"}`, operatorToken, nil, 200, "pause payments outage"},
		{"resume", "POST", "/v1/providers/payments/resume", ``, operatorToken, nil, 200, "resume payments "},
		{"provider status", "GET", "/v1/providers/mail", ``, operatorToken, nil, 200, "get mail"},
		{"unknown system", "POST", "/v1/providers/fax/pause", ``, operatorToken, nil, 404, ""},
		{"unknown provider operation", "POST", "/v1/providers/mail/explode", ``, operatorToken, nil, 404, ""},
		{"pause needs the operator token", "POST", "/v1/providers/payments/pause", ``, token, nil, 401, ""},
		{"contract drift", "GET", "/v1/contracts/drift", ``, operatorToken, nil, 200, ""},
		{"contract drift needs the operator token", "GET", "/v1/contracts/drift", ``, token, nil, 401, ""},
		{"clear one system's drift", "POST", "/v1/contracts/drift/clear", `{"system":"crm","reason":"contract updated"}`, operatorToken, nil, 200, "clear drift crm contract updated"},
		{"clear every system's drift", "POST", "/v1/contracts/drift/clear", ``, operatorToken, nil, 200, "clear drift  "},
		{"clear an unknown system's drift", "POST", "/v1/contracts/drift/clear", `{"system":"fax"}`, operatorToken, nil, 404, ""},
		{"clear with an unknown member", "POST", "/v1/contracts/drift/clear", `{"systems":["crm"]}`, operatorToken, nil, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := &fakeOperators{err: tt.err}
			auth := ""
			if tt.auth != "" {
				auth = "Bearer " + tt.auth
			}
			rec := do(newOperatorServer(t, ops), tt.method, tt.path, tt.body, auth)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			got := strings.Join(ops.resolved, ",")
			if got != tt.wantResolved {
				t.Errorf("operator calls = %q, want %q", got, tt.wantResolved)
			}
			if tt.wantStatus == 409 && !strings.Contains(rec.Body.String(), "https://github.com/handoff-hq/handoff#problem-") {
				t.Errorf("409 without a problem: %s", rec.Body)
			}
		})
	}
}

func TestRetryCarriesTheCorrection(t *testing.T) {
	ops := &fakeOperators{}
	req := httptest.NewRequest("POST", "/v1/actions/order/A-1/retry", strings.NewReader(`{"reason":"r","customer":{"email":"b@example.com","name":"B"}}`))
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	rec := httptest.NewRecorder()
	newOperatorServer(t, ops).ServeHTTP(rec, req)
	if len(ops.requests) != 1 || ops.requests[0].Customer == nil || ops.requests[0].Customer.Email != "b@example.com" || ops.requests[0].Reason != "r" {
		t.Errorf("requests = %+v, want the correction and reason", ops.requests)
	}
}

func TestListActions(t *testing.T) {
	ops := &fakeOperators{}
	req := httptest.NewRequest("GET", "/v1/actions?status=needs_attention&provider=accounting&page_size=5", nil)
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	rec := httptest.NewRecorder()
	newOperatorServer(t, ops).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	if len(ops.filters) != 1 || ops.filters[0] != (control.ActionFilter{Status: "needs_attention", Provider: "accounting", PageSize: 5}) {
		t.Errorf("filters = %+v", ops.filters)
	}
	var list ActionList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Actions) != 1 ||
		list.Actions[0].Links["web_ui"] != "http://ui/namespaces/default/workflows/order%2FA-1" || list.Actions[0].Reason != "422" {
		t.Errorf("list = %s", rec.Body)
	}
	req = httptest.NewRequest("GET", "/v1/actions?page_size=1000", nil)
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	rec = httptest.NewRecorder()
	newOperatorServer(t, ops).ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Errorf("page_size=1000: %d, want 400", rec.Code)
	}
}

// fakeReconciliations answers reconciliation calls as scripted.
type fakeReconciliations struct {
	started int
	err     error
}

func (f *fakeReconciliations) StartReconciliation(context.Context) (string, error) {
	f.started++
	return "reconcile-1", f.err
}

func (f *fakeReconciliations) Reconciliation(_ context.Context, id string) (workflows.ReconcileReport, error) {
	switch id {
	case "reconcile-running":
		return workflows.ReconcileReport{ID: id}, control.ErrRunning
	case "reconcile-halfway":
		return workflows.ReconcileReport{ID: id}, &control.RunningError{ID: id, Progress: &workflows.ReconcileStanding{
			Phase: "invoices", Pages: 3, Records: 1200, Repaired: 2, Flagged: 1}}
	}
	return report(id, 2, 0), f.err
}

// report is a finished reconciliation's report as the workflow makes it.
func report(id string, repaired, flagged int) workflows.ReconcileReport {
	return workflows.ReconcileReport{ID: id, Repaired: repaired, Flagged: flagged, Differences: map[string]int{},
		RepairedItems: []workflows.ReportItem{}, FlaggedItems: []workflows.ReportItem{}}
}

func (f *fakeReconciliations) LatestReconciliation(context.Context) (workflows.ReconcileReport, error) {
	return report("reconcile-latest", 0, 1), f.err
}

func TestReconciliationEndpoints(t *testing.T) {
	rec := &fakeReconciliations{}
	s, err := New(Options{Orders: &fakeOrders{}, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: rec,
		APITokens: []string{token}, OperatorTokens: []string{operatorToken}, Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, auth string
		want               int
		contains           string
	}{
		{"POST", "/v1/reconciliations", operatorToken, 202, `"id":"reconcile-1"`},
		{"GET", "/v1/reconciliations/latest", operatorToken, 200, `"id":"reconcile-latest"`},
		{"GET", "/v1/reconciliations/reconcile-9", operatorToken, 200, `"repaired":2`},
		{"GET", "/v1/reconciliations/reconcile-running", operatorToken, 202, `"status":"running"`},
		{"GET", "/v1/reconciliations/reconcile-halfway", operatorToken, 202,
			`"progress":{"phase":"invoices","pages":3,"records":1200,"repaired":2,"flagged":1,"in_flight":0}`},
		{"POST", "/v1/reconciliations", token, 401, ""},
	}
	for _, tt := range tests {
		w := do(s, tt.method, tt.path, "", "Bearer "+tt.auth)
		if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.contains) {
			t.Errorf("%s %s = %d %s, want %d with %s", tt.method, tt.path, w.Code, w.Body, tt.want, tt.contains)
		}
	}
	if rec.started != 1 {
		t.Errorf("started %d reconciliations, want 1", rec.started)
	}
}
