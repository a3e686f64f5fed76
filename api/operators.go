package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// Operators is what operator endpoints need.
type Operators interface {
	Resolve(ctx context.Context, workflowID, answer string, req workflows.OperatorRequest) (workflows.OperatorResult, error)
	ListActions(ctx context.Context, f control.ActionFilter) (control.ActionPage, error)
	CancelOrder(ctx context.Context, orderID, reason string) (workflows.OperatorResult, error)
	PauseProvider(ctx context.Context, system, reason string) (control.ProviderStatus, error)
	ResumeProvider(ctx context.Context, system, reason string) (control.ProviderStatus, error)
	Provider(ctx context.Context, system string) (control.ProviderStatus, error)
	ContractDrift(ctx context.Context) ([]workflows.DriftSighting, error)
	ClearContractDrift(ctx context.Context, system, reason string) ([]workflows.DriftSighting, error)
}

// ContractDrift is the answer of GET /v1/contracts/drift.
type ContractDrift struct {
	Drift []workflows.DriftSighting `json:"drift"`
}

// clearDriftBody is the optional body of POST /v1/contracts/drift/clear.
type clearDriftBody struct {
	System string `json:"system"`
	Reason string `json:"reason"`
}

var (
	problemNotApplicable = problemKind{http.StatusConflict, "not-applicable", "The operation does not apply to the action as it stands"}
	problemFinished      = problemKind{http.StatusConflict, "finished", "The action has already finished"}
)

// operatorBody is the optional body of operator actions.
type operatorBody struct {
	Reason   string           `json:"reason"`
	Customer *action.Customer `json:"customer"`
	// Record names the record that holds a customer parked as
	// ambiguous_match (with retry).
	Record string `json:"record"`
}

// ActionAnswer is the answer to an operator action.
type ActionAnswer struct {
	WorkflowID string            `json:"workflow_id"`
	Action     string            `json:"action"`
	Status     action.Status     `json:"status"`
	Step       string            `json:"step,omitempty"`
	Links      map[string]string `json:"links"`
}

// resolveAction serves POST /v1/actions/{workflow_id}/{retry|skip|abort};
// the workflow id contains a slash (order/A-1), so the path is split here.
func (s *Server) resolveAction(c echo.Context) error {
	rest, err := url.PathUnescape(c.Param("*"))
	if err != nil {
		return problemInvalid.with("the path is not valid")
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return problemNotFound.with("use /v1/actions/{workflow_id}/retry, /skip or /abort")
	}
	workflowID, answer := rest[:i], rest[i+1:]
	var body operatorBody
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
	}
	result, err := s.operators.Resolve(c.Request().Context(), workflowID, answer, workflows.OperatorRequest{Reason: body.Reason, Customer: body.Customer, Record: body.Record})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ActionAnswer{WorkflowID: workflowID, Action: answer, Status: result.Status, Step: result.Step, Links: s.links(workflowID)})
}

func (s *Server) cancelOrder(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("order_id"))
	if err != nil {
		return problemInvalid.with("order_id is not a valid path segment")
	}
	var body operatorBody
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
	}
	result, err := s.operators.CancelOrder(c.Request().Context(), id, body.Reason)
	if err != nil {
		return err
	}
	wid := action.OrderKey(id).String()
	return c.JSON(http.StatusAccepted, ActionAnswer{WorkflowID: wid, Action: workflows.UpdateCancel, Status: result.Status, Links: s.links(wid)})
}

// ActionList is the answer of GET /v1/actions.
type ActionList struct {
	Actions       []ListedAction `json:"actions"`
	NextPageToken string         `json:"next_page_token,omitempty"`
}

// ListedAction is one action with its links.
type ListedAction struct {
	control.Action
	Links map[string]string `json:"links"`
}

func (s *Server) listActions(c echo.Context) error {
	q := c.QueryParams()
	size := 0
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return &Problem{Type: problemTypePrefix + "invalid-request", Title: problemInvalid.title, Status: http.StatusBadRequest,
				Errors: []action.FieldError{{Field: "page_size", Detail: "must be between 1 and 100"}}}
		}
		size = n
	}
	page, err := s.operators.ListActions(c.Request().Context(), control.ActionFilter{
		Status: q.Get("status"), Provider: q.Get("provider"), Step: q.Get("step"), PageSize: size, PageToken: q.Get("page_token"),
	})
	if err != nil {
		return err
	}
	out := ActionList{Actions: make([]ListedAction, 0, len(page.Actions)), NextPageToken: page.NextPageToken}
	for _, a := range page.Actions {
		out.Actions = append(out.Actions, ListedAction{Action: a, Links: s.links(a.WorkflowID)})
	}
	return c.JSON(http.StatusOK, out)
}

// controlProvider serves POST /v1/providers/{system}/pause and /resume.
func (s *Server) controlProvider(c echo.Context) error {
	var body operatorBody
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
	}
	system := c.Param("system")
	var st control.ProviderStatus
	var err error
	switch c.Param("op") {
	case "pause":
		st, err = s.operators.PauseProvider(c.Request().Context(), system, body.Reason)
	case "resume":
		st, err = s.operators.ResumeProvider(c.Request().Context(), system, body.Reason)
	default:
		return problemNotFound.with("use /v1/providers/{system}/pause or /resume")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) getContractDrift(c echo.Context) error {
	drift, err := s.operators.ContractDrift(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ContractDrift{Drift: drift})
}

func (s *Server) clearContractDrift(c echo.Context) error {
	var body clearDriftBody
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
	}
	if _, ok := system.Lookup(body.System); body.System != "" && !ok {
		return noSuchSystem()
	}
	drift, err := s.operators.ClearContractDrift(c.Request().Context(), body.System, body.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ContractDrift{Drift: drift})
}

func (s *Server) getProvider(c echo.Context) error {
	st, err := s.operators.Provider(c.Request().Context(), c.Param("system"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// links points to an action in the API and in the Web UI.
func (s *Server) links(workflowID string) map[string]string {
	links := map[string]string{}
	if k, err := action.ParseKey(workflowID); err == nil {
		switch k.Kind {
		case action.KindOrder:
			links["self"] = "/v1/orders/" + url.PathEscape(k.ID)
		case action.KindCustomer:
			links["self"] = "/v1/customers/" + url.PathEscape(k.ID)
		}
	}
	if s.webUI != "" {
		links["web_ui"] = fmt.Sprintf("%s/namespaces/%s/workflows/%s", s.webUI, url.PathEscape(s.ns), url.PathEscape(workflowID))
	}
	return links
}
