package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// CustomerPut is the application's change of a customer: the fields it
// sends and their version.
type CustomerPut struct {
	CustomerID string
	Version    int64
	Fields     map[string]string
}

// VersionConflictError is a customer change older than what the customer
// has (or the same version with other values); it is an ErrConflict.
type VersionConflictError struct {
	Reason string
}

func (e *VersionConflictError) Error() string { return "version conflict: " + e.Reason }

// Is makes it an ErrConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrConflict }

// PutResult answers a customer change.
type PutResult struct {
	WorkflowID string
	// Replayed is true when the same change had been applied before.
	Replayed bool
}

// PutCustomer hands the application's change of a customer to the
// customer's workflow (starting it for a customer it has not seen), and
// returns once the workflow has applied it: durable, and in order. A
// version lower than the customer's, or the same version with other
// values, is ErrConflict; the same request again is a replay.
func (s *Client) PutCustomer(ctx context.Context, put CustomerPut, correlationID string) (PutResult, error) {
	if fields := put.validate(); len(fields) > 0 {
		return PutResult{}, &ValidationError{Fields: fields}
	}
	for f, v := range put.Fields {
		put.Fields[f] = strings.TrimSpace(v)
	}
	b, err := json.Marshal(struct {
		V int64
		F map[string]string
	}{put.Version, put.Fields})
	if err != nil {
		return PutResult{}, fmt.Errorf("put customer %s: %w", put.CustomerID, err)
	}
	sum := sha256.Sum256(b)
	change := action.CustomerChange{Source: action.SourceApplication, Version: put.Version, Fields: put.Fields,
		RequestHash: "sha256:" + hex.EncodeToString(sum[:])}
	id := action.CustomerKey(put.CustomerID).String()
	start := s.client.NewWithStartWorkflowOperation(s.customerOptions(put.CustomerID, correlationID), workflows.CustomerWorkflow, s.customerInput(put.CustomerID, correlationID))
	handle, err := s.client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdatePutCustomer,
			Args:         []any{workflows.PutCustomerRequest{Change: change, Rules: s.opts.CustomerRules}},
			WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	var result workflows.PutCustomerResult
	if err == nil {
		err = handle.Get(ctx, &result)
	}
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return PutResult{WorkflowID: id, Replayed: result.Replayed}, nil
	case errors.As(err, &appErr) && appErr.Type() == action.TypeConflict:
		return PutResult{}, fmt.Errorf("put customer %s: %w", put.CustomerID, &VersionConflictError{Reason: appErr.Message()})
	case errors.As(err, &appErr) && appErr.Type() == action.TypeNotApplicable:
		return PutResult{}, fmt.Errorf("put customer %s: %w", put.CustomerID, &NotApplicableError{Reason: appErr.Message()})
	default:
		return PutResult{}, fmt.Errorf("put customer %s: %w", put.CustomerID, err)
	}
}

// validate reports every invalid part of a change.
func (p CustomerPut) validate() []action.FieldError {
	var errs []action.FieldError
	if !action.ValidID(p.CustomerID) {
		errs = append(errs, action.FieldError{Field: "customer_id", Detail: "must be 1 to 128 letters, digits or . _ : - and start with a letter or digit"})
	}
	if p.Version < 1 {
		errs = append(errs, action.FieldError{Field: "version", Detail: "must be a positive integer"})
	}
	if len(p.Fields) == 0 {
		errs = append(errs, action.FieldError{Field: "fields", Detail: "send at least one of " + strings.Join(action.CustomerFields, ", ")})
	}
	for _, f := range slices.Sorted(maps.Keys(p.Fields)) {
		v := strings.TrimSpace(p.Fields[f])
		if reason := action.CheckCustomerField(f, v); reason != "" && (v != "" || f == action.FieldEmail) {
			errs = append(errs, action.FieldError{Field: f, Detail: reason})
			continue
		}
		if f == action.FieldEmail {
			if addr, err := mail.ParseAddress(v); err != nil || addr.Address != v {
				errs = append(errs, action.FieldError{Field: f, Detail: "must be an e-mail address"})
			}
		}
	}
	return errs
}

// customerOptions start a customer's workflow: its key as the workflow ID,
// one running at a time (a running one takes the change), started again
// after an operator ended it.
func (s *Client) customerOptions(customerID, correlationID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       action.CustomerKey(customerID).String(),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     map[string]any{MemoCorrelationID: correlationID},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchStatus.ValueSet(string(action.StatusProcessing)),
			workflows.SearchBusinessKey.ValueSet(customerID),
		),
	}
}

func (s *Client) customerInput(customerID, correlationID string) workflows.CustomerInput {
	return workflows.CustomerInput{CustomerID: customerID, CorrelationID: correlationID, Rules: s.opts.CustomerRules, Systems: s.opts.CustomerSystems}
}

// DeliverCustomerEvent hands a system's verified news about a customer's
// record to the customer's workflow as a signal, starting the workflow
// for a customer it has not seen. It returns once Temporal has durably
// accepted it; the workflow ignores duplicates and older versions.
func (s *Client) DeliverCustomerEvent(ctx context.Context, customerID string, ch action.CustomerChange) error {
	if !action.ValidID(customerID) {
		return fmt.Errorf("deliver %s: %w", ch.EventID, errNoSuchID)
	}
	id := action.CustomerKey(customerID).String()
	opts := s.customerOptions(customerID, ch.EventID)
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED
	_, err := s.client.SignalWithStartWorkflow(ctx, id, workflows.SignalCustomerChange, ch, opts, workflows.CustomerWorkflow, s.customerInput(customerID, ch.EventID))
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", ch.EventID, id, err)
	}
	return nil
}

// CustomerRead is a customer and where its state came from (SourceWorkflow
// or SourceSnapshot).
type CustomerRead struct {
	View   workflows.CustomerView
	Source string
}

// Customer returns a customer's fields, records and conflicts: from its
// running workflow, asked for at most the query timeout, else from what
// its workflow kept in its memo at its last quiet moment.
func (s *Client) Customer(ctx context.Context, customerID string) (CustomerRead, error) {
	if !action.ValidID(customerID) {
		return CustomerRead{}, fmt.Errorf("read customer: %w", errNoSuchID)
	}
	id := action.CustomerKey(customerID).String()
	info, err := s.describe(ctx, id)
	if err != nil {
		return CustomerRead{}, fmt.Errorf("read customer %s: %w", customerID, err)
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		qctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
		v, err := s.client.QueryWorkflow(qctx, id, "", workflows.QueryCustomer)
		var view workflows.CustomerView
		if err == nil {
			err = v.Get(&view)
		}
		cancel()
		if err == nil {
			return CustomerRead{View: withCollections(view), Source: SourceWorkflow}, nil
		}
		var notFound *serviceerror.NotFound
		if ctx.Err() != nil || errors.As(err, &notFound) {
			return CustomerRead{}, fmt.Errorf("read customer %s: %w", customerID, ErrNotFound)
		}
	}
	var view workflows.CustomerView
	p, ok := info.GetMemo().GetFields()[workflows.MemoCustomer]
	if !ok || s.dc.FromPayload(p, &view) != nil {
		view = workflows.CustomerView{CustomerID: customerID, Fields: map[string]workflows.FieldView{}, Systems: map[string]workflows.SystemView{},
			Conflicts: []workflows.Conflict{}, Steps: []workflows.Step{}, UpdatedAt: info.GetStartTime().AsTime()}
	}
	if st := statusOf(info); st != "" {
		view.Status = st
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		view.Status = action.StatusCancelled
	}
	return CustomerRead{View: withCollections(view), Source: SourceSnapshot}, nil
}

// withCollections gives a view empty maps and lists where it has none, so
// that readers get {} and [] rather than null (a view kept before its
// first write has none).
func withCollections(v workflows.CustomerView) workflows.CustomerView {
	if v.Fields == nil {
		v.Fields = map[string]workflows.FieldView{}
	}
	for name, f := range v.Fields {
		if f.Systems == nil {
			f.Systems = map[string]workflows.FieldCopy{}
			v.Fields[name] = f
		}
	}
	if v.Systems == nil {
		v.Systems = map[string]workflows.SystemView{}
	}
	if v.Conflicts == nil {
		v.Conflicts = []workflows.Conflict{}
	}
	if v.Steps == nil {
		v.Steps = []workflows.Step{}
	}
	return v
}
