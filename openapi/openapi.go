// Package openapi holds the description of handoff's HTTP API
// (openapi.yaml, OpenAPI 3.1), which the API serves at /openapi.yaml, and
// checks requests and answers against it: the API's tests send all their
// traffic through Transport, so that a field, status or header the
// document does not describe fails them.
package openapi

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Document is openapi.yaml.
//
//go:embed openapi.yaml
var Document []byte

// Load parses the document and validates it as OpenAPI 3.1.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(Document)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		return nil, fmt.Errorf("openapi.yaml: version %s, want 3.1", doc.OpenAPI)
	}
	return doc, nil
}

// Validator checks exchanges with the API against the document.
type Validator struct {
	router routers.Router
}

// NewValidator loads the document and routes by its paths alone, whatever
// host and port the API answers on.
func NewValidator() (*Validator, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Validator{router: router}, nil
}

// commonHeaders may come with any answer without the document naming them:
// they belong to HTTP, not to the API.
var commonHeaders = []string{"Content-Type", "Content-Length", "Date", "Vary", "Connection", "Transfer-Encoding",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Credentials", "Access-Control-Max-Age", "Access-Control-Expose-Headers"}

// Check validates one exchange. The answer is always checked: its status,
// its headers and its body must be the ones the document gives the
// operation. The request is checked when the API took it (a 2xx answer):
// a request it refused may be wrong on purpose.
func (v *Validator) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		// No operation has this path or method: the answer must be the
		// API's problem for it.
		if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
			mediaType(resp.Header) == "application/problem+json" {
			return nil
		}
		return fmt.Errorf("%s %s: no operation in openapi.yaml, and the answer is %d %s", req.Method, req.URL.Path, resp.StatusCode, mediaType(resp.Header))
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if resp.StatusCode/100 == 2 {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		in.Request = r
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			return fmt.Errorf("%s %s (answered %d): the request does not match openapi.yaml: %w", req.Method, req.URL.Path, resp.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return fmt.Errorf("%s %s: the %d answer does not match openapi.yaml: %w", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	return undocumentedHeaders(route.Operation, resp)
}

// undocumentedHeaders reports the answer's headers that the operation's
// response does not name.
func undocumentedHeaders(op *openapi3.Operation, resp *http.Response) error {
	ref := op.Responses.Status(resp.StatusCode)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil || ref.Value == nil {
		return nil // ValidateResponse has said so
	}
	var extra []string
	for name := range resp.Header {
		if slices.Contains(commonHeaders, name) {
			continue
		}
		documented := false
		for h := range ref.Value.Headers {
			if textproto.CanonicalMIMEHeaderKey(h) == name {
				documented = true
			}
		}
		if !documented {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("%s %s: the %d answer has headers openapi.yaml does not name: %s",
			resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, strings.Join(extra, ", "))
	}
	return nil
}

func mediaType(h http.Header) string {
	t, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(t)
}

// Transport is an http.RoundTripper that checks every exchange with the
// API's addresses against the document. A mismatch is the round trip's
// error, and is kept for Violations.
type Transport struct {
	Base      http.RoundTripper
	Validator *Validator
	// Checks says which requests go to the API; others pass unchecked.
	Checks func(*http.Request) bool

	mu         sync.Mutex
	violations []error
}

// RoundTrip sends the request and checks the exchange.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.Checks == nil || !t.Checks(req) {
		return base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Request == nil {
		resp.Request = req
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err != nil {
		return resp, nil // the caller meets the same error reading it
	}
	// Check reads the request's body from reqBody.
	if verr := t.Validator.Check(req, reqBody, resp, respBody); verr != nil {
		t.mu.Lock()
		t.violations = append(t.violations, verr)
		t.mu.Unlock()
		return nil, verr
	}
	return resp, nil
}

// Violations are every mismatch seen so far.
func (t *Transport) Violations() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.violations...)
}
