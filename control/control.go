// Package control is how anything outside the workers reaches handoff's
// business actions: it starts them idempotently, reads their state (from a
// running workflow or its snapshot when no worker answers), delivers provider
// events as signals, and carries operator answers and provider pauses as
// updates. The business key names the workflow ("order/<order_id>"), and a
// hash of the request, kept in the workflow's immutable memo, tells the same
// request sent again (a replay) from a different request reusing the key (a
// conflict). The API and the CLI both go through here.
package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/workflows"
)

// Memo keys set on every action's workflow (defined with the workflows,
// which update some of them).
const (
	MemoRequestHash   = workflows.MemoRequestHash
	MemoCorrelationID = workflows.MemoCorrelationID
	MemoAwaitingOrder = workflows.MemoAwaitingOrder
	MemoRevision      = workflows.MemoRevision
)

// revision is the memo value of the orders this release starts.
var revision = strconv.Itoa(workflows.OrderRevision)

// ErrConflict means the business key is already used by a different request.
var ErrConflict = errors.New("business key already used with a different request")

// ErrNotFound means no action exists with that business key.
var ErrNotFound = errors.New("no such action")

// errNoSuchID answers an id that no action can have (an order id placement
// would refuse, bytes that are not text) without asking Temporal, which
// refuses such ids in its request headers.
var errNoSuchID = fmt.Errorf("an id no action can have: %w", ErrNotFound)

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Fields []action.FieldError
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid request: %d field(s) failed validation", len(e.Fields))
}

// Options configures a Client.
type Options struct {
	// PaymentPollInterval and PaymentTimeout are handed to every new order.
	PaymentPollInterval time.Duration
	PaymentTimeout      time.Duration
	// PaymentWebhookWait is how long an order waits for the payment webhook
	// before asking the provider.
	PaymentWebhookWait time.Duration
	// OrphanWindow is how long events wait for an order not placed yet.
	OrphanWindow time.Duration
	// Namespace is the Temporal namespace, for task queue statistics;
	// default "default".
	Namespace string
	// Reconcile configures reconciliations started on demand.
	Reconcile workflows.ReconcileInput
	// CustomerRules and CustomerSystems are every customer's field owners
	// and the systems that keep customer records, from the contracts
	// (workflows.CustomerRulesFrom).
	CustomerRules   map[string]workflows.FieldRule
	CustomerSystems []workflows.CustomerSystem
	// DataConverter reads memos as the workers wrote them (with the
	// payload encryption, package codec); default: Temporal's default.
	DataConverter converter.DataConverter
	// QueryTimeout bounds the query that reads a running order; past it the
	// read answers from what Temporal keeps without a worker. Default 300 ms.
	QueryTimeout time.Duration
}

// Client starts, reads, signals and operates on business actions through
// Temporal: the one place the API, the operator commands and the tests reach
// workflows from outside.
type Client struct {
	client    client.Client
	opts      Options
	namespace string
	dc        converter.DataConverter
}

// New returns a Client that uses the given Temporal client.
func New(c client.Client, opts Options) (*Client, error) {
	if c == nil {
		return nil, errors.New("new control: a Temporal client is required")
	}
	if opts.PaymentPollInterval <= 0 || opts.PaymentTimeout <= 0 {
		return nil, errors.New("new control: payment poll interval and timeout must be positive")
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "default"
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = defaultQueryTimeout
	}
	dc := opts.DataConverter
	if dc == nil {
		dc = codec.Plain
	}
	return &Client{client: c, opts: opts, namespace: ns, dc: dc}, nil
}

// Placed is the answer to placing an order.
type Placed struct {
	OrderID       string
	WorkflowID    string
	CorrelationID string
	// Replayed is true when the same order had been placed before and this
	// call started nothing.
	Replayed bool
}

// PlaceOrder starts the order's workflow unless the same order was placed
// before. It returns a *ValidationError for an invalid order and ErrConflict
// when the order id was used by a different order.
func (s *Client) PlaceOrder(ctx context.Context, order action.Order, correlationID string) (Placed, error) {
	order = order.Normalize()
	if fields := order.Validate(); len(fields) > 0 {
		return Placed{}, &ValidationError{Fields: fields}
	}
	hash, err := RequestHash(order)
	if err != nil {
		return Placed{}, fmt.Errorf("place order %s: %w", order.OrderID, err)
	}
	id := action.OrderKey(order.OrderID).String()
	opts := s.orderOptions(order.OrderID, hash, correlationID)
	in := workflows.OrderInput{
		Order: order, CorrelationID: correlationID,
		PaymentPollInterval: s.opts.PaymentPollInterval, PaymentTimeout: s.opts.PaymentTimeout,
		PaymentWebhookWait: s.opts.PaymentWebhookWait, Revision: workflows.OrderRevision,
	}
	return s.start(ctx, Placed{OrderID: order.OrderID, WorkflowID: id, CorrelationID: correlationID}, opts, hash, in)
}

// start starts the order's workflow, or answers from the one its id
// already has.
func (s *Client) start(ctx context.Context, placed Placed, opts client.StartWorkflowOptions, hash string, in workflows.OrderInput) (Placed, error) {
	_, err := s.client.ExecuteWorkflow(ctx, opts, workflows.OrderWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return placed, nil
	case errors.As(err, &started):
		return s.replay(ctx, placed, hash, in)
	default:
		return Placed{}, fmt.Errorf("place order %s: %w", placed.OrderID, err)
	}
}

// orderOptions start an order's workflow: its business key as the workflow
// ID, used once, also after its workflow closed; the request hash in the
// memo.
func (s *Client) orderOptions(orderID, hash, correlationID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       action.OrderKey(orderID).String(),
		TaskQueue:                                workflows.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{MemoRequestHash: hash, MemoCorrelationID: correlationID, MemoRevision: revision},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchStatus.ValueSet(string(action.StatusProcessing)),
			workflows.SearchBusinessKey.ValueSet(orderID),
		),
	}
}

// replay answers a request whose business key already has a workflow.
func (s *Client) replay(ctx context.Context, placed Placed, hash string, in workflows.OrderInput) (Placed, error) {
	info, err := s.describe(ctx, placed.WorkflowID)
	if err != nil {
		return Placed{}, fmt.Errorf("place order %s: read existing order: %w", placed.OrderID, err)
	}
	memo := memoOf(s.dc, info)
	if memo[MemoAwaitingOrder] == "true" && memo[MemoRequestHash] == "" {
		return s.placeInto(ctx, placed, hash, in, info)
	}
	stored, ok := memo[MemoRequestHash]
	if !ok {
		return Placed{}, fmt.Errorf("place order %s: existing workflow %s carries no request hash", placed.OrderID, placed.WorkflowID)
	}
	if stored != hash {
		return Placed{}, fmt.Errorf("place order %s: %w", placed.OrderID, ErrConflict)
	}
	placed.CorrelationID = memo[MemoCorrelationID]
	placed.Replayed = true
	return placed, nil
}

// memoOf reads the string memo fields of a workflow run.
func memoOf(dc converter.DataConverter, info *workflowpb.WorkflowExecutionInfo) map[string]string {
	out := map[string]string{}
	for k, p := range info.GetMemo().GetFields() {
		var v string
		if err := dc.FromPayload(p, &v); err == nil {
			out[k] = v
		}
	}
	return out
}

// describe reads a workflow's latest run; ErrNotFound when there is none.
func (s *Client) describe(ctx context.Context, workflowID string) (*workflowpb.WorkflowExecutionInfo, error) {
	desc, err := s.describeRun(ctx, workflowID)
	if err != nil {
		return nil, err
	}
	return desc.GetWorkflowExecutionInfo(), nil
}

// describeRun is describe with the pending activities and the rest of
// Temporal's answer.
func (s *Client) describeRun(ctx context.Context, workflowID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	desc, err := s.client.DescribeWorkflow(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return desc.RawResponse, nil
}

// startAfterEvents starts an order whose early events' workflow ended
// without it. Of two such requests at once, one starts the run and the
// other is answered from it, as for any order.
func (s *Client) startAfterEvents(ctx context.Context, placed Placed, hash string, in workflows.OrderInput) (Placed, error) {
	opts := s.orderOptions(placed.OrderID, hash, in.CorrelationID)
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	return s.start(ctx, placed, opts, hash, in)
}

// RequestHash identifies a normalized order's content.
func RequestHash(order action.Order) (string, error) {
	b, err := json.Marshal(order)
	if err != nil {
		return "", fmt.Errorf("hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// placeInto places an order into the workflow an early event started: the
// place_order update while it runs. Once that workflow has ended, an order
// placed into it before is answered from its result; when it ended without
// an order (its events were orphaned and aborted, it was cancelled or
// terminated), the order starts a new run under its id: the events' charge
// is adopted by its reference and the provider's record decides its status.
func (s *Client) placeInto(ctx context.Context, placed Placed, hash string, in workflows.OrderInput, info *workflowpb.WorkflowExecutionInfo) (Placed, error) {
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result workflows.OrderResult
		if err := s.client.GetWorkflow(ctx, placed.WorkflowID, "").Get(ctx, &result); err != nil {
			return Placed{}, fmt.Errorf("place order %s: read its events' workflow: %w", placed.OrderID, err)
		}
		switch result.RequestHash {
		case hash:
			placed.Replayed, placed.CorrelationID = true, result.State.CorrelationID
			return placed, nil
		case "":
			return s.startAfterEvents(ctx, placed, hash, in)
		default:
			return Placed{}, fmt.Errorf("place order %s: %w", placed.OrderID, ErrConflict)
		}
	default:
		// Ended without a result. Its memo says when an order was placed
		// into it; so does its status, for workflows from before the memo
		// did: only events waiting for their order, or parked as orphans,
		// leave it empty or needs_attention with the orphan category.
		status := statusOf(info)
		orphan := status == "" || (status == action.StatusNeedsAttention && keyword(info, workflows.SearchErrorCategory.GetName()) == string(action.CategoryOrphan))
		if !orphan {
			return Placed{}, fmt.Errorf("place order %s: %w", placed.OrderID, ErrConflict)
		}
		return s.startAfterEvents(ctx, placed, hash, in)
	}
	handle, err := s.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: placed.WorkflowID, UpdateName: workflows.UpdatePlaceOrder,
		Args:         []any{workflows.PlaceOrderRequest{Input: in, RequestHash: hash}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var result workflows.PlaceOrderResult
	if err == nil {
		err = handle.Get(ctx, &result)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == action.TypeConflict {
		return Placed{}, fmt.Errorf("place order %s: %w", placed.OrderID, ErrConflict)
	}
	if err != nil {
		return Placed{}, fmt.Errorf("place order %s into its waiting workflow: %w", placed.OrderID, err)
	}
	placed.Replayed, placed.CorrelationID = result.Replayed, result.CorrelationID
	return placed, nil
}
