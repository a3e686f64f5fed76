package control

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// NotApplicableError is an operator action the action's state refuses.
type NotApplicableError struct {
	Reason string
}

func (e *NotApplicableError) Error() string { return "not applicable: " + e.Reason }

// Resolve sends an operator's retry, skip or abort to a parked action. Only
// business actions (workflow IDs "order/…") have these; any other workflow
// id, such as the provider control or a reconciliation, is not found.
func (s *Client) Resolve(ctx context.Context, workflowID, answer string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	if !isAction(workflowID) {
		return workflows.OperatorResult{}, fmt.Errorf("%s %s: not a business action: %w", answer, workflowID, ErrNotFound)
	}
	switch answer {
	case workflows.UpdateRetry, workflows.UpdateSkip, workflows.UpdateAbort:
	default:
		return workflows.OperatorResult{}, &ValidationError{Fields: []action.FieldError{{Field: "action", Detail: "must be retry, skip or abort"}}}
	}
	if req.Record != "" && answer != workflows.UpdateRetry {
		return workflows.OperatorResult{}, &ValidationError{Fields: []action.FieldError{{Field: "record", Detail: "a record is chosen with retry only"}}}
	}
	if req.Customer != nil {
		if answer != workflows.UpdateRetry {
			return workflows.OperatorResult{}, &ValidationError{Fields: []action.FieldError{{Field: "customer", Detail: "corrections go with retry only"}}}
		}
		c := action.Order{Customer: *req.Customer}.Normalize().Customer
		if fields := c.Validate(); len(fields) > 0 {
			return workflows.OperatorResult{}, &ValidationError{Fields: fields}
		}
		req.Customer = &c
	}
	return s.update(ctx, workflowID, answer, req)
}

// isAction reports whether a workflow id names a business action of a
// registered kind.
func isAction(workflowID string) bool {
	k, err := action.ParseKey(workflowID)
	return err == nil && k.Kind.Known()
}

// CancelOrder asks an order to stop and undo what it did.
func (s *Client) CancelOrder(ctx context.Context, orderID, reason string) (workflows.OperatorResult, error) {
	if !action.ValidID(orderID) {
		return workflows.OperatorResult{}, fmt.Errorf("cancel order: %w", errNoSuchID)
	}
	return s.update(ctx, action.OrderKey(orderID).String(), workflows.UpdateCancel, workflows.OperatorRequest{Reason: reason})
}

func (s *Client) update(ctx context.Context, workflowID, name string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	handle, err := s.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: name, Args: []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var result workflows.OperatorResult
	if err == nil {
		err = handle.Get(ctx, &result)
	}
	var appErr *temporal.ApplicationError
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return result, nil
	case errors.As(err, &appErr) && appErr.Type() == action.TypeNotApplicable:
		return result, fmt.Errorf("%s %s: %w", name, workflowID, &NotApplicableError{Reason: appErr.Message()})
	case errors.As(err, &notFound):
		if info, derr := s.describe(ctx, workflowID); derr == nil && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return result, fmt.Errorf("%s %s: %w", name, workflowID, ErrActionFinished)
		}
		return result, fmt.Errorf("%s %s: %w", name, workflowID, ErrNotFound)
	default:
		return result, fmt.Errorf("%s %s: %w", name, workflowID, err)
	}
}

// ActionFilter selects actions by their search attributes.
type ActionFilter struct {
	Status   string
	Provider string
	Step     string
	PageSize int
	// PageToken continues an earlier page.
	PageToken string
}

// Action is one action as lists show it.
type Action struct {
	WorkflowID    string        `json:"workflow_id"`
	BusinessKey   string        `json:"business_key"`
	Status        action.Status `json:"status"`
	Step          string        `json:"step,omitempty"`
	ErrorCategory string        `json:"error_category,omitempty"`
	Provider      string        `json:"provider,omitempty"`
	Reason        string        `json:"reason,omitempty"`
	StartedAt     time.Time     `json:"started_at"`
}

// ActionPage is one page of actions.
type ActionPage struct {
	Actions       []Action `json:"actions"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

// ListActions pages through actions with a visibility query built from the
// filter. Visibility is eventually consistent: an action parked a moment
// ago may appear a moment later.
func (s *Client) ListActions(ctx context.Context, f ActionFilter) (ActionPage, error) {
	query, err := f.query()
	if err != nil {
		return ActionPage{}, err
	}
	token, err := base64.RawURLEncoding.DecodeString(f.PageToken)
	if err != nil {
		return ActionPage{}, &ValidationError{Fields: []action.FieldError{{Field: "page_token", Detail: "is not a token from an earlier page"}}}
	}
	size := f.PageSize
	if size <= 0 || size > 100 {
		size = 20
	}
	resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(size), NextPageToken: token})
	if err != nil {
		return ActionPage{}, fmt.Errorf("list actions: %w", err)
	}
	page := ActionPage{Actions: []Action{}, NextPageToken: base64.RawURLEncoding.EncodeToString(resp.GetNextPageToken())}
	for _, e := range resp.GetExecutions() {
		page.Actions = append(page.Actions, Action{
			WorkflowID: e.GetExecution().GetWorkflowId(), BusinessKey: keyword(e, workflows.SearchBusinessKey.GetName()),
			Status: statusOf(e), Step: keyword(e, workflows.SearchStep.GetName()),
			ErrorCategory: keyword(e, workflows.SearchErrorCategory.GetName()), Provider: keyword(e, workflows.SearchProvider.GetName()),
			Reason: memoOf(s.dc, e)[workflows.MemoReason], StartedAt: e.GetStartTime().AsTime(),
		})
	}
	return page, nil
}

// query builds the visibility query from validated values only.
func (f ActionFilter) query() (string, error) {
	var fields []action.FieldError
	var types []string
	for _, k := range action.Kinds() {
		if q := strconv.Quote(k.WorkflowType); !slices.Contains(types, q) {
			types = append(types, q)
		}
	}
	clauses := []string{"WorkflowType IN (" + strings.Join(types, ", ") + ")"}
	if f.Status != "" {
		if !slices.Contains(action.Statuses, action.Status(f.Status)) {
			fields = append(fields, action.FieldError{Field: "status", Detail: "is not an action status"})
		}
		clauses = append(clauses, fmt.Sprintf("%s = %q", workflows.SearchStatus.GetName(), f.Status))
		if action.Status(f.Status) == action.StatusNeedsAttention {
			clauses = append(clauses, `ExecutionStatus = "Running"`)
		}
	}
	if f.Provider != "" {
		if _, known := system.Lookup(f.Provider); !known {
			fields = append(fields, action.FieldError{Field: "provider", Detail: "must be one of " + strings.Join(system.Names(), ", ")})
		}
		clauses = append(clauses, fmt.Sprintf("%s = %q", workflows.SearchProvider.GetName(), f.Provider))
	}
	if f.Step != "" {
		clauses = append(clauses, fmt.Sprintf("%s = %q", workflows.SearchStep.GetName(), f.Step))
		if strings.ContainsAny(f.Step, `"\`) {
			fields = append(fields, action.FieldError{Field: "step", Detail: "is not a step name"})
		}
	}
	if len(fields) > 0 {
		return "", &ValidationError{Fields: fields}
	}
	return strings.Join(clauses, " AND "), nil
}
