package providers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/redact"
)

// MaxResponseBytes bounds how much of a provider's answer is read.
const MaxResponseBytes = 1 << 20

// Header names sent on every provider call.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderCorrelationID  = "X-Correlation-ID"
)

// HTTPClient is the one HTTP client every provider adapter uses: JSON in and
// out, the idempotency key and correlation id on every request, bounded
// response bodies, timeouts, each request checked against the provider's
// contract before it is sent, and every failure classified into an *Error.
type HTTPClient struct {
	system   string
	baseURL  string
	http     *http.Client
	timeout  time.Duration
	timeouts map[string]time.Duration
	// auth adds credentials to a request; nil sends none.
	auth Authenticator
	// contract, when not nil, checks requests and classifies answers.
	contract *contracts.Contract
	// log gets one line per call; nil logs nothing.
	log *slog.Logger
	// metrics counts every call; nil counts nothing.
	metrics *Metrics
	// drift gathers what differed from the contract.
	drift *DriftLog
}

// HTTPOptions configures an HTTPClient.
type HTTPOptions struct {
	// ConnectTimeout bounds dialing; default 5 s.
	ConnectTimeout time.Duration
	// Timeout bounds the whole call including reading the answer; default 15 s.
	Timeout time.Duration
	// OperationTimeouts overrides Timeout for the named operations.
	OperationTimeouts map[string]time.Duration
	// Auth adds credentials to each request; a 401 makes it refresh them
	// and the call is tried once more.
	Auth Authenticator
	// Contract is the provider's contract (package contracts). Every
	// request is checked against its operation's required fields and
	// formats before it is sent, a request that breaks them fails as
	// permanent (InvalidInput) without a network call, and the answers it
	// declares are classified as it declares them. Nil checks nothing and
	// classifies by the common table (Classify).
	Contract *contracts.Contract
	// Logger receives one line per call (see logCall); nil logs nothing.
	Logger *slog.Logger
	// Metrics counts every call and the credentials' state; nil counts
	// nothing.
	Metrics *Metrics
	// Drift gathers the answers that differ from the contract; every
	// client of a process shares one. Nil keeps a log of the client's own.
	Drift *DriftLog
}

// NewHTTPClient returns a client for the system at baseURL.
func NewHTTPClient(system, baseURL string, opts HTTPOptions) *HTTPClient {
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Second
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &HTTPClient{
		system:   system,
		baseURL:  strings.TrimRight(baseURL, "/"),
		http:     &http.Client{Transport: transport},
		timeout:  opts.Timeout,
		timeouts: opts.OperationTimeouts,
		auth:     opts.Auth,
		log:      opts.Logger,
		metrics:  opts.Metrics,
		contract: opts.Contract,
		drift:    cmp.Or(opts.Drift, NewDriftLog()),
	}
}

// Lookup is how the contract says a record is found: the query parameter
// of its list, "search", or "none"; fallback when no contract says.
func (c *HTTPClient) Lookup(record, fallback string) string {
	if c.contract == nil {
		return fallback
	}
	if r, ok := c.contract.Record(record); ok && r.Lookup != "" {
		return r.Lookup
	}
	return fallback
}

// Transport is the client's HTTP client, for token endpoints that should
// share its connection limits and dial timeout.
func (c *HTTPClient) Transport() *http.Client { return c.http }

// SetAuth sets the Authenticator; it must be called before the first call.
// Client credentials report their token's state to the client's metrics.
func (c *HTTPClient) SetAuth(a Authenticator) {
	c.auth = a
	if cc, ok := a.(*ClientCredentials); ok && c.metrics != nil {
		cc.metrics = c.metrics
		c.metrics.trackToken(c.system, cc.expiry)
	}
}

// Request describes one call.
type Request struct {
	// Operation names the call in errors and metrics, e.g. "create_charge".
	Operation string
	Method    string
	// Path is appended to the base URL; it may carry a query.
	Path string
	Call Call
	// Body is sent as JSON when not nil.
	Body any
	// Form is sent form-encoded instead, for APIs such as Stripe's.
	Form url.Values
	// Header holds extra headers, such as an API version.
	Header http.Header
}

// Do sends the request and decodes a 2xx JSON answer into out (when not nil).
// Any failure is returned as an *Error. A 401 answer makes the
// Authenticator refresh its credentials, and the call is sent once more.
func (c *HTTPClient) Do(ctx context.Context, r Request, out any) error {
	err := c.logged(ctx, r, out)
	var pe *Error
	if c.auth != nil && errors.As(err, &pe) && pe.Status == http.StatusUnauthorized && pe.Operation == r.Operation && c.auth.Refresh() {
		return c.logged(ctx, r, out)
	}
	return err
}

// logged is one call, with its log line.
func (c *HTTPClient) logged(ctx context.Context, r Request, out any) error {
	start := time.Now()
	var tr callTrace
	err := c.do(ctx, r, out, &tr)
	c.logCall(ctx, r, start, tr, err)
	return err
}

func (c *HTTPClient) timeoutFor(operation string) time.Duration {
	if d, ok := c.timeouts[operation]; ok {
		return d
	}
	return c.timeout
}

func (c *HTTPClient) do(ctx context.Context, r Request, out any, tr *callTrace) error {
	if err := c.conform(r); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeoutFor(r.Operation))
	defer cancel()
	if err := c.pass(ctx, r); err != nil {
		return err
	}
	req, err := c.newRequest(ctx, r)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return pe
		}
		return c.fail(r, action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	// Asked again: fetching credentials may have taken a while.
	if err := c.pass(ctx, r); err != nil {
		return err
	}
	// The transport reports from its own goroutine that the request was
	// written; after that, a missing answer leaves the outcome unknown.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}))
	tr.sent = true
	resp, err := c.http.Do(req)
	if err != nil {
		if wrote.Load() && parent.Err() == nil {
			return c.fail(r, action.CategoryAmbiguous, action.TypeAmbiguous, 0, err)
		}
		return c.fail(r, action.CategoryTemporary, action.TypeTemporary, 0, err)
	}
	defer resp.Body.Close()
	tr.status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return c.fail(r, action.CategoryAmbiguous, action.TypeAmbiguous, resp.StatusCode, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(r, resp, body)
	}
	// A 2xx answer that cannot be read may still mean the work was done:
	// ambiguous, so that a retry looks the record up instead of redoing it.
	if len(body) > MaxResponseBytes {
		return c.fail(r, action.CategoryAmbiguous, action.TypeAmbiguous, resp.StatusCode, fmt.Errorf("answer larger than %d bytes", MaxResponseBytes))
	}
	// An answer without a field handoff relies on may still mean the work
	// was done: ambiguous, so that a create is looked up and adopted.
	if lacking := c.readDrift(r, resp.Header, body); len(lacking) > 0 {
		return c.fail(r, action.CategoryAmbiguous, action.TypeAmbiguous, resp.StatusCode,
			fmt.Errorf("the answer lacks %s, which the contract requires", strings.Join(lacking, ", ")))
	}
	// The remote record's reference, for the call's log line.
	var ref struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &ref) == nil && len(ref.ID) <= 128 {
		tr.remoteRef = ref.ID
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		// A field the contract does not require, of another type than it
		// declares, is drift (counted above), not a failed call.
		if tolerant, ok := c.contract.WithoutOptionalDrift(r.Operation, body); ok && json.Unmarshal(tolerant, out) == nil {
			return nil
		}
		return c.fail(r, action.CategoryAmbiguous, action.TypeAmbiguous, resp.StatusCode, fmt.Errorf("decode answer: %w", err))
	}
	return nil
}

// conform checks the request against its operation in the contract: a
// required field missing or a field of the wrong format fails it as
// permanent (InvalidInput) before anything is sent.
func (c *HTTPClient) conform(r Request) error {
	if c.contract == nil {
		return nil
	}
	fields, err := RequestFields(r)
	if err != nil {
		return c.fail(r, action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	if err := c.contract.Refusal(r.Operation, "request", fields); err != nil {
		return c.fail(r, action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	return nil
}

// RequestFields are the fields a request sends, as a contract checks them:
// the JSON body's top-level fields, or the form's values.
func RequestFields(r Request) (map[string]any, error) {
	fields := map[string]any{}
	switch {
	case r.Form != nil:
		for k, vs := range r.Form {
			if len(vs) == 1 {
				fields[k] = vs[0]
				continue
			}
			l := make([]any, len(vs))
			for i, v := range vs {
				l[i] = v
			}
			fields[k] = l
		}
	case r.Body != nil:
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, fmt.Errorf("request body is not a JSON object: %w", err)
		}
	}
	return fields, nil
}

// Gate decides, just before a request to a provider is sent, whether the
// system may be called now; an operator's pause refuses. A refused call is
// not sent and fails as temporary (TypePaused).
type Gate func(ctx context.Context, system string) error

type gateKey struct{}

// WithGate returns a context whose provider calls pass the gate first.
func WithGate(ctx context.Context, g Gate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// Pass asks the context's gate, if any, whether the system may be called
// now. Every adapter asks it just before it sends anything; a refusal is
// not sent and fails as temporary (TypePaused).
func Pass(ctx context.Context, system, operation string) error {
	g, ok := ctx.Value(gateKey{}).(Gate)
	if !ok {
		return nil
	}
	if err := g(ctx, system); err != nil {
		return &Error{System: system, Operation: operation, Category: action.CategoryTemporary, Type: action.TypePaused, Err: err}
	}
	return nil
}

func (c *HTTPClient) pass(ctx context.Context, r Request) error {
	return Pass(ctx, c.system, r.Operation)
}

func (c *HTTPClient) newRequest(ctx context.Context, r Request) (*http.Request, error) {
	var body io.Reader
	contentType := ""
	switch {
	case r.Form != nil:
		body, contentType = strings.NewReader(r.Form.Encode()), "application/x-www-form-urlencoded"
	case r.Body != nil:
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.baseURL+r.Path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// net/http quietly resends a POST that carries an Idempotency-Key when a
	// reused connection breaks. handoff decides itself: an unanswered create
	// is ambiguous, and the next attempt looks the record up first.
	req.GetBody = nil
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	// The API version the contract pins, on every request.
	if c.contract != nil && c.contract.API.VersionHeader != "" && req.Header.Get(c.contract.API.VersionHeader) == "" {
		req.Header.Set(c.contract.API.VersionHeader, c.contract.API.Version)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.Call.IdempotencyKey != "" && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
		req.Header.Set(HeaderIdempotencyKey, r.Call.IdempotencyKey)
	}
	if r.Call.CorrelationID != "" {
		req.Header.Set(HeaderCorrelationID, r.Call.CorrelationID)
	}
	if c.auth != nil {
		if err := c.auth.Authorize(ctx, req); err != nil {
			return nil, fmt.Errorf("authorize: %w", err)
		}
	}
	return req, nil
}

// providerError is the error body the sandbox and Stripe send.
type providerError struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *HTTPClient) statusError(r Request, resp *http.Response, body []byte) error {
	var pe providerError
	_ = json.Unmarshal(body, &pe) // a body that is not the usual shape still has a status
	category, typ := Classify(resp.StatusCode, pe.Error.Type)
	if c.contract != nil {
		if cat, t, ok := c.contract.Classify(r.Operation, resp.StatusCode, pe.Error.Type, pe.Error.Code); ok {
			category, typ = cat, t
		}
	}
	// The provider's message may name the customer (Stripe's do).
	msg := redact.Text(pe.Error.Message)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{
		System: c.system, Operation: r.Operation, Category: category, Type: typ,
		Status: resp.StatusCode, Code: pe.Error.Code, Message: msg,
		RetryAfter: retryAfterSeconds(resp.Header.Get("Retry-After"), time.Now()),
	}
}

func (c *HTTPClient) fail(r Request, cat action.Category, typ string, status int, err error) error {
	return &Error{System: c.system, Operation: r.Operation, Category: cat, Type: typ, Status: status, Err: err}
}

// retryAfterSeconds reads Retry-After as seconds or as an HTTP date.
func retryAfterSeconds(v string, now time.Time) int {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return n
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return int(t.Sub(now).Round(time.Second) / time.Second)
	}
	return 0
}
