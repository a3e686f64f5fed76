package api

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/webhooks"
)

// Customers is what the API needs to keep customers: the application's
// changes, reads, and the systems' news about their records.
type Customers interface {
	PutCustomer(ctx context.Context, put control.CustomerPut, correlationID string) (control.PutResult, error)
	Customer(ctx context.Context, customerID string) (control.CustomerRead, error)
	DeliverCustomerEvent(ctx context.Context, customerID string, ch action.CustomerChange) error
}

// problemStaleVersion answers a customer change older than what the
// customer has.
var problemStaleVersion = problemKind{http.StatusConflict, "stale-version", "The customer already has this version with other values, or a later one"}

// putDeadline bounds how long a customer change waits for the customer's
// workflow to take it.
const putDeadline = 10 * time.Second

// PutAnswer is the answer to PUT /v1/customers/{customer_id}.
type PutAnswer struct {
	CustomerID string            `json:"customer_id"`
	WorkflowID string            `json:"workflow_id"`
	Version    int64             `json:"version"`
	Links      map[string]string `json:"links"`
}

// putCustomer serves PUT /v1/customers/{customer_id}: the fields the
// application sends as top-level members beside an integer version.
func (s *Server) putCustomer(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("customer_id"))
	if err != nil {
		return problemInvalid.with("customer_id is not a valid path segment")
	}
	c.Set(businessKey, id)
	var body map[string]json.RawMessage
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	put := control.CustomerPut{CustomerID: id, Fields: map[string]string{}}
	var fields []action.FieldError
	for _, k := range slices.Sorted(maps.Keys(body)) {
		raw := body[k]
		switch {
		case k == "version":
			if err := json.Unmarshal(raw, &put.Version); err != nil {
				fields = append(fields, action.FieldError{Field: k, Detail: "must be an integer"})
			}
		case slices.Contains(action.CustomerFields, k):
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				fields = append(fields, action.FieldError{Field: k, Detail: "must be a string"})
			}
			put.Fields[k] = v
		default:
			fields = append(fields, action.FieldError{Field: k, Detail: "is not a customer field; send version and any of " + strings.Join(action.CustomerFields, ", ")})
		}
	}
	if _, ok := body["version"]; !ok {
		fields = append(fields, action.FieldError{Field: "version", Detail: "is required"})
	}
	if len(fields) > 0 {
		p := problemInvalid.with("one or more fields are invalid")
		p.Errors = fields
		return p
	}
	// The change is answered once the customer's workflow took it, which
	// needs a worker: without one, the client is told to send it again
	// (the same body is a replay) instead of waiting for ever.
	ctx, cancel := context.WithTimeout(c.Request().Context(), putDeadline)
	defer cancel()
	res, err := s.customers.PutCustomer(ctx, put, correlationID(c))
	if errors.Is(err, context.DeadlineExceeded) && c.Request().Context().Err() == nil {
		return problemUnavailable.with("the customer's workflow did not take the change in time; send it again (the same body is a replay)")
	}
	if err != nil {
		var conflict *control.VersionConflictError
		if errors.As(err, &conflict) {
			return problemStaleVersion.with(conflict.Reason)
		}
		return err
	}
	if res.Replayed {
		c.Response().Header().Set(HeaderIdempotentReplayed, "true")
	}
	return c.JSON(http.StatusOK, PutAnswer{CustomerID: id, WorkflowID: res.WorkflowID, Version: put.Version, Links: s.links(res.WorkflowID)})
}

func (s *Server) getCustomer(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("customer_id"))
	if err != nil {
		return problemInvalid.with("customer_id is not a valid path segment")
	}
	read, err := s.customers.Customer(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(HeaderStateSource, read.Source)
	return c.JSON(http.StatusOK, read.View)
}

// customerWebhook verifies, decodes and durably hands on one system's
// event about a customer record, as webhook does for payments.
func (s *Server) customerWebhook(c echo.Context, name string, src WebhookSource, body []byte) error {
	id, err := webhooks.VerifyStandard(src.Secrets, c.Request().Header, body, time.Now())
	if p := s.signatureProblem(name, err); p != nil {
		return p
	}
	customerID, change, err := webhooks.DecodeCustomer(name, id, body)
	switch {
	case errors.Is(err, webhooks.ErrUnhandled):
		s.metrics.webhook(name, "unhandled")
		return c.JSON(http.StatusAccepted, webhookAnswer{Status: "ignored", Reason: "event type not handled"})
	case errors.Is(err, webhooks.ErrUnlinked):
		s.metrics.webhook(name, "unlinked")
		return c.JSON(http.StatusAccepted, webhookAnswer{Status: "ignored", Reason: "the record holds no customer's reference yet"})
	case err != nil:
		s.metrics.webhook(name, "malformed")
		return problemInvalid.with("the event is malformed")
	}
	change.ReceivedAt, change.RequestID = time.Now(), correlationID(c)
	s.metrics.received(name, change.OccurredAt, change.ReceivedAt)
	c.Set(businessKey, customerID)
	ctx, cancel := context.WithTimeout(c.Request().Context(), webhookDeadline)
	defer cancel()
	if err := s.customers.DeliverCustomerEvent(ctx, customerID, change); err != nil {
		s.metrics.webhook(name, "unavailable")
		s.log.Warn("webhook not accepted", "system", name, "event_id", change.EventID, "customer_id", customerID, "error", err)
		return problemUnavailable.with("the event could not be recorded; deliver it again later")
	}
	s.metrics.webhook(name, "accepted")
	return c.JSON(http.StatusOK, webhookAnswer{Status: "accepted"})
}
