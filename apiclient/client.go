// Package apiclient is a Go client of handoff's HTTP API, generated from
// its description (openapi/openapi.yaml: api.gen.go) with what a caller
// needs around it: the bearer token on every request, placements and reads
// tried again when handoff asks for it (503 and Retry-After) or the
// connection fails, and every error answer as a *Problem.
//
// A placement is safe to send again: handoff keys it by its order_id and
// answers the same body with the same answer (Idempotent-Replayed), so a
// retry after a lost answer never places a second order.
package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handoff calls one handoff API with one token: the generated
// ClientWithResponses, with a method of its own for the calls an
// application makes most.
type Handoff struct {
	*ClientWithResponses
}

// Options tune a Handoff client; the zero value is sensible.
type Options struct {
	// HTTPClient sends the requests; default one with a 30 s timeout.
	HTTPClient *http.Client
	// Attempts bounds the tries of a request that may be sent again;
	// default 5.
	Attempts int
	// MaxWait bounds one wait between two tries, whatever Retry-After
	// says; default 30 s.
	MaxWait time.Duration
}

// New is a client of the API at baseURL (http://localhost:8080) that
// authenticates with token: an API token for orders and customers, an
// operator token for the operators' endpoints.
func New(baseURL, token string, opts Options) (*Handoff, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 30 * time.Second
	}
	doer := &retrying{client: opts.HTTPClient, attempts: opts.Attempts, maxWait: opts.MaxWait}
	c, err := NewClientWithResponses(strings.TrimRight(baseURL, "/"), WithHTTPClient(doer),
		WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
	return &Handoff{c}, nil
}

// Error makes a problem an error.
func (p *Problem) Error() string {
	msg := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != nil && *p.Detail != "" {
		msg += ": " + *p.Detail
	}
	if p.Errors != nil {
		for _, f := range *p.Errors {
			msg += fmt.Sprintf("; %s %s", f.Field, f.Detail)
		}
	}
	return msg
}

// Is matches problems of the same type, so that errors.Is(err,
// &Problem{Type: UrnHandoffProblemConflict}) asks for a kind.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Type == p.Type
}

// problemOf is the error an answer stands for: nil for 2xx, its problem
// otherwise (or a problem made from its status when its body is none).
func problemOf(resp *http.Response, body []byte) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status == 0 {
		return &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Type: UrnHandoffProblemHttp}
	}
	return &p
}

// PlaceOrder places an order, or answers as it did the first time when
// the same order was placed before (replayed true). Lost answers and 503s
// are tried again with the same body.
func (c *Handoff) PlaceOrder(ctx context.Context, o Order) (placed PlacedOrder, replayed bool, err error) {
	resp, err := c.PlaceOrderWithResponse(ctx, nil, o)
	if err != nil {
		return PlacedOrder{}, false, err
	}
	if err := problemOf(resp.HTTPResponse, resp.Body); err != nil {
		return PlacedOrder{}, false, err
	}
	if resp.JSON202 == nil {
		return PlacedOrder{}, false, fmt.Errorf("place order %s: answer %d without a body", o.OrderId, resp.StatusCode())
	}
	return *resp.JSON202, resp.HTTPResponse.Header.Get("Idempotent-Replayed") == "true", nil
}

// Order reads an order.
func (c *Handoff) Order(ctx context.Context, orderID string) (OrderState, error) {
	resp, err := c.GetOrderWithResponse(ctx, orderID, nil)
	if err != nil {
		return OrderState{}, err
	}
	if err := problemOf(resp.HTTPResponse, resp.Body); err != nil {
		return OrderState{}, err
	}
	return *resp.JSON200, nil
}

// retrying sends requests, and again those that may be sent again (reads,
// placements) when the connection failed or handoff answered 503.
type retrying struct {
	client   *http.Client
	attempts int
	maxWait  time.Duration
}

func (r *retrying) Do(req *http.Request) (*http.Response, error) {
	// The base URL may have a path of its own (https://example.com/handoff).
	again := req.Method == http.MethodGet || (req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/v1/orders"))
	for attempt := 1; ; attempt++ {
		resp, err := r.client.Do(req)
		last := !again || attempt >= r.attempts || req.Context().Err() != nil
		if last || (err == nil && resp.StatusCode != http.StatusServiceUnavailable) {
			return resp, err
		}
		wait := time.Duration(attempt) * 500 * time.Millisecond
		if err == nil {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				wait = time.Duration(s) * time.Second
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		wait = min(wait, r.maxWait)
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
	}
}
