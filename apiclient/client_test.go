package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestPlacementsAreSentAgainWithTheSameBody: a 503 with Retry-After and a
// lost connection are tried again, with the same body, and the problem
// that ends it is typed.
func TestPlacementsAreSentAgainWithTheSameBody(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			problem(w, 503, `{"type":"https://github.com/handoff-hq/handoff#problem-unavailable","title":"The workflow engine is unavailable; try again","status":503}`)
		},
		func(w http.ResponseWriter) { panic(http.ErrAbortHandler) }, // the connection drops: no answer
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(202)
			io.WriteString(w, `{"order_id":"A-1","workflow_id":"order/A-1","status":"processing","links":{"self":"/v1/orders/A-1"}}`)
		},
		func(w http.ResponseWriter) {
			problem(w, 409, `{"type":"https://github.com/handoff-hq/handoff#problem-conflict","title":"The business key is already used by a different request","status":409,"detail":"other contents"}`)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("authorization %q", r.Header.Get("Authorization"))
		}
		if r.URL.Path != "/handoff/v1/orders" {
			t.Errorf("path %q", r.URL.Path)
		}
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(raw))
		n := len(bodies)
		mu.Unlock()
		answers[n-1](w)
	}))
	defer srv.Close()
	// Behind a path of its own, as behind a shared gateway.
	c, err := New(srv.URL+"/handoff", "tok", Options{MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	order := Order{OrderId: "A-1", Customer: Customer{Email: "a@example.com", Name: "A"}, Currency: "eur", Amount: 100,
		Items: []Item{{Sku: "x", Quantity: 1, UnitAmount: 100}}}
	placed, replayed, err := c.PlaceOrder(context.Background(), order)
	if err != nil || placed.WorkflowId != "order/A-1" || !replayed {
		t.Fatalf("PlaceOrder = %+v, %v, %v; want order/A-1, replayed", placed, replayed, err)
	}
	if len(bodies) != 3 || bodies[0] != bodies[1] || bodies[1] != bodies[2] || bodies[0] == "" {
		t.Errorf("bodies sent: %q, want the same body three times", bodies)
	}
	_, _, err = c.PlaceOrder(context.Background(), order)
	var p *Problem
	if !errors.As(err, &p) || p.Status != 409 || !errors.Is(err, &Problem{Type: ProblemConflict}) {
		t.Errorf("second placement: %v, want the conflict problem", err)
	}
	if len(bodies) != 4 {
		t.Errorf("a conflict was sent %d times, want once", len(bodies)-3)
	}
}

func problem(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}
