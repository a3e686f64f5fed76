package providers

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
)

// recorder is an httptest handler that remembers the requests it was sent.
type recorder struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, r)
	rec.bodies = append(rec.bodies, string(body))
	rec.mu.Unlock()
	rec.answer(w, r)
}

func TestDoSendsIdempotencyKeyAndCorrelationID(t *testing.T) {
	rec := &recorder{answer: func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"id":"ch_1","status":"pending"}`)
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := NewHTTPClient("payments", srv.URL+"/payments/", HTTPOptions{})
	var out Charge
	call := Call{IdempotencyKey: "order/A-1/charge", CorrelationID: "corr-1"}
	err := c.Do(context.Background(), Request{Operation: "create_charge", Method: http.MethodPost, Path: "/charges", Call: call, Body: ChargeRequest{Amount: 100, Currency: "eur"}}, &out)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if out.ID != "ch_1" {
		t.Errorf("decoded id = %q, want ch_1", out.ID)
	}
	if len(rec.requests) != 1 {
		t.Fatalf("requests = %d, want 1", len(rec.requests))
	}
	r := rec.requests[0]
	if got := r.URL.Path; got != "/payments/charges" {
		t.Errorf("path = %q, want /payments/charges", got)
	}
	if got := r.Header.Get(HeaderIdempotencyKey); got != call.IdempotencyKey {
		t.Errorf("Idempotency-Key = %q, want %q", got, call.IdempotencyKey)
	}
	if got := r.Header.Get(HeaderCorrelationID); got != "corr-1" {
		t.Errorf("X-Correlation-ID = %q, want corr-1", got)
	}
	if !strings.Contains(rec.bodies[0], `"amount":100`) {
		t.Errorf("body = %s, want the JSON request", rec.bodies[0])
	}
}

func TestDoClassifiesStatusAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"type":"rate_limit_error","code":"rate_limited","message":"slow down"}}`)
	}))
	defer srv.Close()
	c := NewHTTPClient("crm", srv.URL, HTTPOptions{})
	err := c.Do(context.Background(), Request{Operation: "upsert_contact", Method: http.MethodPost, Path: "/contacts"}, nil)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *providers.Error", err)
	}
	if pe.Category != action.CategoryTemporary || pe.Status != 429 || pe.RetryAfter != 7 || pe.Code != "rate_limited" || pe.Message != "slow down" {
		t.Errorf("error = %+v, want temporary 429 retry after 7 s with the provider's code and message", pe)
	}
}

func TestDoNoAnswerAfterSendingIsAmbiguous(t *testing.T) {
	// The server reads the request, then drops the connection: the provider
	// may have done the work.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf)
			conn.Close()
		}
	}()
	c := NewHTTPClient("payments", "http://"+ln.Addr().String(), HTTPOptions{})
	err = c.Do(context.Background(), Request{Operation: "create_charge", Method: http.MethodPost, Path: "/charges", Body: map[string]int{"amount": 1}}, nil)
	if got := CategoryOf(err); got != action.CategoryAmbiguous {
		t.Errorf("category = %s (%v), want ambiguous", got, err)
	}
}

func TestDoConnectionRefusedIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := NewHTTPClient("mail", "http://"+addr, HTTPOptions{ConnectTimeout: time.Second})
	err = c.Do(context.Background(), Request{Operation: "send_message", Method: http.MethodPost, Path: "/messages", Body: map[string]string{}}, nil)
	if got := CategoryOf(err); got != action.CategoryTemporary {
		t.Errorf("category = %s (%v), want temporary", got, err)
	}
}

func TestDoRefusesOversizedAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"id":"`+strings.Repeat("x", MaxResponseBytes)+`"}`)
	}))
	defer srv.Close()
	c := NewHTTPClient("crm", srv.URL, HTTPOptions{})
	var out Contact
	err := c.Do(context.Background(), Request{Operation: "get_contact", Method: http.MethodGet, Path: "/contacts/1"}, &out)
	var pe *Error
	if !errors.As(err, &pe) || pe.Category != action.CategoryAmbiguous {
		t.Errorf("error = %v, want an ambiguous *providers.Error: the work may have been done", err)
	}
}

func TestAGateThatRefusesKeepsTheCallFromBeingSent(t *testing.T) {
	rec := &recorder{answer: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{}`) }}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := NewHTTPClient("payments", srv.URL, HTTPOptions{})
	var asked []string
	paused := errors.New("paused by an operator")
	ctx := WithGate(context.Background(), func(_ context.Context, system string) error {
		asked = append(asked, system)
		return paused
	})
	err := c.Do(ctx, Request{Operation: "create_charge", Method: http.MethodPost, Path: "/charges", Call: Call{IdempotencyKey: "k"}, Body: map[string]int{"amount": 1}}, nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Type != action.TypePaused || pe.Category != action.CategoryTemporary || !errors.Is(err, paused) {
		t.Errorf("error = %v, want a temporary ProviderPaused error", err)
	}
	if len(rec.requests) != 0 {
		t.Errorf("the provider received %d requests, want none", len(rec.requests))
	}
	if len(asked) != 1 || asked[0] != "payments" {
		t.Errorf("gate asked for %v, want payments once", asked)
	}

	// An open gate is asked again right before sending, after credentials.
	asked = nil
	ctx = WithGate(context.Background(), func(_ context.Context, system string) error {
		asked = append(asked, system)
		return nil
	})
	if err := c.Do(ctx, Request{Operation: "get_charge", Method: http.MethodGet, Path: "/charges/ch_1"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || len(rec.requests) != 1 {
		t.Errorf("gate asked %d times, %d requests sent; want 2 and 1", len(asked), len(rec.requests))
	}
}
