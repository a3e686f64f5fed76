package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
)

// Problem is an RFC 9457 problem details answer; every error the API gives
// has this shape and the media type application/problem+json.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists the failing fields of an invalid request.
	Errors []action.FieldError `json:"errors,omitempty"`
}

// problemTypePrefix starts every problem type URI: each is the README
// section that explains the problem (README.md, "Problems").
const problemTypePrefix = "https://github.com/handoff-hq/handoff#problem-"

// problemInstancePrefix starts a problem's instance, the URI of the
// request it answers: its correlation id.
const problemInstancePrefix = "urn:handoff:request:"

// Problem kinds: the small set of categories every error is mapped to.
var (
	problemInvalid      = problemKind{http.StatusBadRequest, "invalid-request", "The request is invalid"}
	problemUnauthorized = problemKind{http.StatusUnauthorized, "unauthorized", "A valid bearer token is required"}
	problemNotFound     = problemKind{http.StatusNotFound, "not-found", "Not found"}
	problemConflict     = problemKind{http.StatusConflict, "conflict", "The business key is already used by a different request"}
	problemTooLarge     = problemKind{http.StatusRequestEntityTooLarge, "too-large", "The request body is too large"}
	problemUnavailable  = problemKind{http.StatusServiceUnavailable, "unavailable", "The workflow engine is unavailable; try again"}
	problemInternal     = problemKind{http.StatusInternalServerError, "internal", "Internal error"}
	// problemClientClosed is what a request whose client went away is
	// counted as (nginx's 499): not a failure of the server.
	problemClientClosed = problemKind{StatusClientClosedRequest, "client-closed", "The client closed the request"}
)

// StatusClientClosedRequest is the status a request is counted and logged
// with when its client went away before the answer.
const StatusClientClosedRequest = 499

type problemKind struct {
	status int
	name   string
	title  string
}

func (k problemKind) with(detail string) *Problem {
	return &Problem{Type: problemTypePrefix + k.name, Title: k.title, Status: k.status, Detail: detail}
}

// problemFor maps an error from the layers below to its problem kind.
func problemFor(err error) *Problem {
	var invalid *control.ValidationError
	var notApplicable *control.NotApplicableError
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var exhausted *serviceerror.ResourceExhausted
	switch {
	case errors.As(err, &invalid):
		p := problemInvalid.with("one or more fields are invalid")
		p.Errors = invalid.Fields
		return p
	case errors.As(err, &notApplicable):
		return problemNotApplicable.with(notApplicable.Reason)
	case errors.Is(err, control.ErrActionFinished):
		return problemFinished.with("")
	case errors.Is(err, control.ErrConflict):
		return problemConflict.with("this order_id was already used for an order with other contents")
	case errors.Is(err, control.ErrNotFound):
		return problemNotFound.with("nothing with this id")
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.As(err, &exhausted),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return problemUnavailable.with("")
	default:
		return problemInternal.with("")
	}
}

func writeProblem(c echo.Context, p *Problem) error {
	if p.Instance == "" {
		// The occurrence is the request: its correlation id finds it in
		// handoff's logs and at the providers.
		p.Instance = c.Request().URL.Path
		if id := correlationID(c); id != "" {
			p.Instance = problemInstancePrefix + id
		}
	}
	if p.Status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "5")
	}
	if p.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="handoff"`)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode problem: %w", err)
	}
	return c.Blob(p.Status, "application/problem+json", body)
}

// errorHandler renders every error that reaches echo — the handlers' own and
// echo's (unknown route, wrong method) — as problem details.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var p *Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he):
		p = &Problem{Type: problemTypePrefix + "http", Title: http.StatusText(he.Code), Status: he.Code}
		if he.Code == http.StatusRequestEntityTooLarge {
			p = problemTooLarge.with("")
		}
	case c.Request().Context().Err() != nil:
		p = problemClientClosed.with("")
	default:
		p = problemFor(err)
	}
	if p.Status >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "route", routeOf(c),
			"correlation_id", correlationID(c), "error", err)
	}
	_ = writeProblem(c, p)
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }
