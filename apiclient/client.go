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
// &Problem{Type: ProblemConflict}) asks for a kind.
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
		return &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Type: ProblemHttp}
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
	placed, err = result(resp.HTTPResponse, resp.Body, resp.JSON202)
	return placed, err == nil && resp.HTTPResponse.Header.Get("Idempotent-Replayed") == "true", err
}

// Order reads an order (with an API or an operator token).
func (c *Handoff) Order(ctx context.Context, orderID string) (OrderState, error) {
	resp, err := c.GetOrderWithResponse(ctx, orderID, nil)
	if err != nil {
		return OrderState{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// CancelOrder asks an order to stop and undo what it did, with the reason
// recorded (an API or an operator token).
func (c *Handoff) CancelOrder(ctx context.Context, orderID, reason string) (ActionAnswer, error) {
	resp, err := c.CancelOrderWithResponse(ctx, orderID, nil, OperatorRequest{Reason: optional(reason)})
	if err != nil {
		return ActionAnswer{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON202)
}

// Actions lists one page of actions (operators).
func (c *Handoff) Actions(ctx context.Context, params ListActionsParams) (ActionList, error) {
	resp, err := c.ListActionsWithResponse(ctx, &params)
	if err != nil {
		return ActionList{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// Resolve answers a parked action (operators): retry, skip or abort the
// step the workflow (order/A-1001) waits at.
func (c *Handoff) Resolve(ctx context.Context, workflowID string, answer ResolveActionParamsAnswer, req OperatorRequest) (ActionAnswer, error) {
	kind, id, ok := strings.Cut(workflowID, "/")
	if !ok || kind == "" || id == "" {
		return ActionAnswer{}, fmt.Errorf("%q is not a workflow id: want <kind>/<id>, such as order/A-1001", workflowID)
	}
	resp, err := c.ResolveActionWithResponse(ctx, kind, id, answer, nil, req)
	if err != nil {
		return ActionAnswer{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// Provider reads a provider's pause state and backlog (operators).
func (c *Handoff) Provider(ctx context.Context, system string) (ProviderStatus, error) {
	resp, err := c.GetProviderWithResponse(ctx, system, nil)
	if err != nil {
		return ProviderStatus{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// ControlProvider pauses or resumes the calls to a provider (operators).
func (c *Handoff) ControlProvider(ctx context.Context, system string, op ControlProviderParamsOp, reason string) (ProviderStatus, error) {
	resp, err := c.ControlProviderWithResponse(ctx, system, op, nil, OperatorRequest{Reason: optional(reason)})
	if err != nil {
		return ProviderStatus{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// ContractDrift lists how providers' answers differed from their
// contracts (operators).
func (c *Handoff) ContractDrift(ctx context.Context) (ContractDrift, error) {
	resp, err := c.GetContractDriftWithResponse(ctx, nil)
	if err != nil {
		return ContractDrift{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// ClearContractDrift forgets the drift of one system, or of every system
// when system is empty, and answers what remains (operators).
func (c *Handoff) ClearContractDrift(ctx context.Context, system, reason string) (ContractDrift, error) {
	resp, err := c.ClearContractDriftWithResponse(ctx, nil, ClearDriftRequest{System: optional(system), Reason: optional(reason)})
	if err != nil {
		return ContractDrift{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON200)
}

// StartReconciliation starts a reconciliation now (operators).
func (c *Handoff) StartReconciliation(ctx context.Context) (ReconciliationAnswer, error) {
	resp, err := c.StartReconciliationWithResponse(ctx, nil)
	if err != nil {
		return ReconciliationAnswer{}, err
	}
	return result(resp.HTTPResponse, resp.Body, resp.JSON202)
}

// Reconciliation reads a reconciliation ("latest" is the one that finished
// last): its report once it has finished, or where it stands while it runs.
// Exactly one of the two is set when err is nil.
func (c *Handoff) Reconciliation(ctx context.Context, id string) (*ReconcileReport, *ReconciliationAnswer, error) {
	resp, err := c.GetReconciliationWithResponse(ctx, id, nil)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode() == http.StatusAccepted {
		running, err := result(resp.HTTPResponse, resp.Body, resp.JSON202)
		return nil, &running, err
	}
	report, err := result(resp.HTTPResponse, resp.Body, resp.JSON200)
	if err != nil {
		return nil, nil, err
	}
	return &report, nil, nil
}

// result is the body of a 2xx answer decoded as v, or the answer's problem.
func result[T any](resp *http.Response, body []byte, v *T) (T, error) {
	var zero T
	if err := problemOf(resp, body); err != nil {
		return zero, err
	}
	if v == nil {
		return zero, fmt.Errorf("%s %s: answer %d without the body openapi.yaml describes", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
	}
	return *v, nil
}

// optional is nil for "", so that an empty reason is left out.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
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
