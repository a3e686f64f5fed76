package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
)

func TestPlaceOrderCompletesEndToEnd(t *testing.T) {
	id := "e2e-1"
	status, header, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken)
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/orders: status %d, want 202: %s", status, body)
	}
	var placed api.PlacedOrder
	if err := json.Unmarshal(body, &placed); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	if placed.OrderID != id || placed.WorkflowID != "order/"+id || placed.Status != action.StatusProcessing {
		t.Errorf("answer = %+v, want order %s, workflow order/%s, status processing", placed, id, id)
	}
	if placed.Links["self"] != "/v1/orders/"+id || !strings.Contains(placed.Links["web_ui"], "order%2F"+id) {
		t.Errorf("links = %v, want self and a Web UI link", placed.Links)
	}
	if got := header.Get(api.HeaderIdempotentReplayed); got != "" {
		t.Errorf("first answer has Idempotent-Replayed %q, want none", got)
	}

	state := awaitOrder(t, id, action.StatusCompleted)
	wantSteps := []string{"customer", "charge", "payment", "invoice", "confirmation"}
	if len(state.Steps) != len(wantSteps) {
		t.Fatalf("steps = %+v, want %v", state.Steps, wantSteps)
	}
	for i, s := range state.Steps {
		if s.Name != wantSteps[i] || s.Status != action.StepSucceeded || s.RemoteRef == "" || s.LastError != nil {
			t.Errorf("step %d = %+v, want %s succeeded with a remote ref", i, s, wantSteps[i])
		}
	}
	// The payment outcome arrived by webhook: the order never had to ask.
	if payment := state.Steps[2]; payment.Attempts != 0 || chargeReads(payment.RemoteRef) != 0 {
		t.Errorf("payment step made %d attempts and the charge was read %d times; want the webhook to decide it",
			payment.Attempts, chargeReads(payment.RemoteRef))
	}
	if state.CorrelationID == "" || state.CorrelationID != header.Get(api.HeaderCorrelationID) {
		t.Errorf("correlation id = %q, want the request's %q", state.CorrelationID, header.Get(api.HeaderCorrelationID))
	}

	st := env.sandbox.State()
	for _, c := range []struct{ system, collection, step string }{
		{"crm", "contacts", "customer"}, {"payments", "charges", "charge"},
		{"accounting", "invoices", "invoice"}, {"mail", "messages", "confirmation"},
	} {
		if got := countFor(st, c.system, c.collection, id, c.step); got != 1 {
			t.Errorf("%s %s for %s = %d, want 1", c.system, c.collection, id, got)
		}
	}
}

func TestSameOrderTwentyTimesConcurrentlyStartsOneWorkflow(t *testing.T) {
	id := "concurrent-1"
	const n = 20
	type answer struct {
		status   int
		replayed bool
		body     string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, header, body, err := send(http.MethodPost, "/v1/orders", order(id), testToken)
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = answer{status, header.Get(api.HeaderIdempotentReplayed) == "true", string(body)}
		}()
	}
	wg.Wait()
	fresh := 0
	for i, a := range answers {
		if a.status != http.StatusAccepted {
			t.Errorf("request %d: status %d, want 202: %s", i, a.status, a.body)
		}
		if a.body != answers[0].body {
			t.Errorf("request %d: body %s, want the same answer %s", i, a.body, answers[0].body)
		}
		if !a.replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d answers without Idempotent-Replayed, want exactly 1", fresh)
	}

	awaitOrder(t, id, action.StatusCompleted)
	assertOneRun(t, action.OrderKey(id).String())

	// After completion the same order is still the same order.
	status, header, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken)
	if status != http.StatusAccepted || header.Get(api.HeaderIdempotentReplayed) != "true" || string(body) != answers[0].body {
		t.Errorf("after completion: %d replayed=%q %s, want 202, replayed, the same answer", status, header.Get(api.HeaderIdempotentReplayed), body)
	}
	// A different order under the same id is a conflict.
	changed := order(id)
	changed.Customer.Name = "Someone Else"
	if status, _, body := call(t, http.MethodPost, "/v1/orders", changed, testToken); status != http.StatusConflict {
		t.Errorf("different body, same order_id: status %d, want 409: %s", status, body)
	}

	st := env.sandbox.State()
	for _, c := range []struct{ system, collection, step string }{
		{"payments", "charges", "charge"}, {"accounting", "invoices", "invoice"}, {"mail", "messages", "confirmation"},
	} {
		if got := countFor(st, c.system, c.collection, id, c.step); got != 1 {
			t.Errorf("%s %s for %s = %d, want exactly 1", c.system, c.collection, id, got)
		}
	}
}

// assertOneRun checks through visibility that exactly one run exists.
func assertOneRun(t *testing.T, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	query := fmt.Sprintf("WorkflowId = %q", workflowID)
	var n int64
	for ctx.Err() == nil {
		resp, err := env.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("count workflows: %v", err)
		}
		n = resp.GetCount()
		if n >= 1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n != 1 {
		t.Errorf("runs of %s = %d, want 1", workflowID, n)
	}
}

func TestDeclinedPaymentRejectsTheOrder(t *testing.T) {
	id := "declined-1"
	o := order(id)
	o.Customer.Email = "decline-me@example.com"
	if status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken); status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusRejected, action.StatusCompleted)
	if state.Status != action.StatusRejected {
		t.Fatalf("status = %s, want rejected", state.Status)
	}
	payment := state.Steps[2]
	if payment.Name != "payment" || payment.Status != action.StepFailed || payment.LastError == nil ||
		payment.LastError.Category != action.CategoryDeclined || !strings.Contains(payment.LastError.Message, "card_declined") {
		t.Errorf("payment step = %+v, want failed, declined, card_declined", payment)
	}
	for _, s := range state.Steps[3:] {
		if s.Status != action.StepPending {
			t.Errorf("step %s = %s after a declined payment, want pending", s.Name, s.Status)
		}
	}
	st := env.sandbox.State()
	if got := countFor(st, "accounting", "invoices", id, "invoice"); got != 0 {
		t.Errorf("invoices = %d, want 0", got)
	}
	if got := countFor(st, "mail", "messages", id, "confirmation"); got != 0 {
		t.Errorf("e-mails = %d, want 0", got)
	}
}

func TestPermanentFailureParksTheOrderWhereOperatorsFindIt(t *testing.T) {
	id := rejectInvoicePrefix + "1"
	if status, _, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken); status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusNeedsAttention, action.StatusCompleted)
	if state.Status != action.StatusNeedsAttention {
		t.Fatalf("status = %s, want needs_attention", state.Status)
	}
	invoice := state.Steps[3]
	if invoice.Status != action.StepFailed || invoice.Attempts != 1 || invoice.LastError == nil ||
		invoice.LastError.Category != action.CategoryPermanent || !strings.Contains(invoice.LastError.Message, "tax id") {
		t.Errorf("invoice step = %+v, want failed once, permanent, with the provider's message", invoice)
	}
	if state.Steps[4].Status != action.StepPending {
		t.Errorf("confirmation = %s, want pending", state.Steps[4].Status)
	}

	// Operators find it in the Web UI with a search attribute query.
	query := `HandoffStatus = "needs_attention" AND HandoffProvider = "accounting" AND HandoffBusinessKey = "` + id + `"`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var found int
	for ctx.Err() == nil && found == 0 {
		resp, err := env.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("list workflows: %v", err)
		}
		found = len(resp.GetExecutions())
		time.Sleep(200 * time.Millisecond)
	}
	if found != 1 {
		t.Errorf("workflows matching %s = %d, want 1", query, found)
	}
	_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test finished")
}

func TestUnknownOrderIsNotFound(t *testing.T) {
	status, header, body := call(t, http.MethodGet, "/v1/orders/never-placed", nil, testToken)
	if status != http.StatusNotFound || header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET unknown order: %d %s %s, want 404 problem", status, header.Get("Content-Type"), body)
	}
}

func TestInvalidOrdersAreRefusedBeforeAnythingStarts(t *testing.T) {
	bad := order("invalid-1")
	bad.Amount = 1
	bad.Customer.Email = "not-an-address"
	status, _, body := call(t, http.MethodPost, "/v1/orders", bad, testToken)
	if status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", status, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode problem: %v", err)
	}
	fields := map[string]bool{}
	for _, f := range p.Errors {
		fields[f.Field] = true
	}
	if !fields["customer.email"] {
		t.Errorf("problem fields = %+v, want customer.email named", p.Errors)
	}
	if status, _, _ := call(t, http.MethodGet, "/v1/orders/invalid-1", nil, testToken); status != http.StatusNotFound {
		t.Errorf("after a 400, GET = %d, want 404: nothing may have started", status)
	}
	if status, _, _ := call(t, http.MethodPost, "/v1/orders", order("invalid-2"), "wrong-token-0123456789"); status != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", status)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, _, body := call(t, http.MethodGet, path, nil, ""); status != http.StatusOK {
			t.Errorf("GET %s = %d, want 200: %s", path, status, body)
		}
	}
	status, _, body := call(t, http.MethodGet, "/metrics", nil, "")
	if status != http.StatusOK || !strings.Contains(string(body), "handoff_http_requests_total") {
		t.Errorf("GET /metrics = %d, want 200 with handoff_http_requests_total", status)
	}
}
