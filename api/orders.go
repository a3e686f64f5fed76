package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/handoff-hq/handoff/action"
	"github.com/labstack/echo/v4"
)

// HeaderIdempotentReplayed marks an answer to a request that had been made
// before: nothing new was started.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// HeaderStateSource says where the state of GET /v1/orders/{order_id} came
// from: "workflow" (the running order's own answer, or its result) or
// "snapshot" (what Temporal keeps without a worker: the state the order kept
// at its last change of status, with its running step).
const HeaderStateSource = "Handoff-State-Source"

// PlacedOrder is the answer to POST /v1/orders.
type PlacedOrder struct {
	OrderID    string            `json:"order_id"`
	WorkflowID string            `json:"workflow_id"`
	Status     action.Status     `json:"status"`
	Links      map[string]string `json:"links"`
}

func (s *Server) placeOrder(c echo.Context) error {
	var order action.Order
	if err := decodeJSON(c, &order); err != nil {
		return err
	}
	c.Set(businessKey, order.OrderID)
	placed, err := s.orders.PlaceOrder(c.Request().Context(), order, correlationID(c))
	s.metrics.countPlaced(err, placed.Replayed)
	if err != nil {
		return err
	}
	if placed.Replayed {
		c.Response().Header().Set(HeaderIdempotentReplayed, "true")
	}
	self := "/v1/orders/" + url.PathEscape(placed.OrderID)
	c.Response().Header().Set(echo.HeaderLocation, self)
	links := map[string]string{"self": self}
	if s.webUI != "" {
		links["web_ui"] = fmt.Sprintf("%s/namespaces/%s/workflows/%s", s.webUI, url.PathEscape(s.ns), url.PathEscape(placed.WorkflowID))
	}
	return c.JSON(http.StatusAccepted, PlacedOrder{
		OrderID: placed.OrderID, WorkflowID: placed.WorkflowID, Status: action.StatusProcessing, Links: links,
	})
}

func (s *Server) getOrder(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("order_id"))
	if err != nil {
		return problemInvalid.with("order_id is not a valid path segment")
	}
	read, err := s.orders.Order(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(HeaderStateSource, read.Source)
	return c.JSON(http.StatusOK, read.State)
}

// decodeJSON reads a bounded JSON body into v, refusing unknown fields and
// trailing data, and answers 400 or 413 problems naming what is wrong.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problemTooLarge.with(fmt.Sprintf("the body must be at most %d bytes", maxBodyBytes))
	}
	if err != nil {
		return problemInvalid.with("the body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return problemInvalid.with("the body must hold exactly one JSON object")
	}
	return nil
}

func decodeProblem(err error) *Problem {
	p := problemInvalid.with("the body is not a valid JSON object")
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		p.Detail = "the body must be a JSON object"
	case errors.As(err, &typeErr):
		p.Errors = []action.FieldError{{Field: typeErr.Field, Detail: "has the wrong type: want " + typeErr.Type.String()}}
	case errors.As(err, &syntaxErr):
		p.Detail = fmt.Sprintf("the body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		p.Detail = "the body is empty"
	default:
		// encoding/json reports unknown fields only as text.
		p.Detail = err.Error()
	}
	return p
}
