package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
)

// Run is one execution of a business action's workflow and the machinery
// every action shares: its state as the API reports it; running a step's
// activity on its system's queue with a bounded retry policy; parking a
// step that failed for good until an operator retries, skips or aborts it;
// the operators' updates and cancellation; the HandoffStatus search
// attribute and the state kept in the memo; and continuing as new.
// OrderWorkflow is built on it, and so is any action a deployment adds: its
// workflow makes a Run, registers its updates, and runs its steps with
// Step, each declared in its table of steps (StepSpec).
type Run struct {
	key           action.Key
	workflowID    string
	correlationID string
	steps         Steps
	hooks         RunHooks
	state         OrderState

	// parkedStep is the step waiting for an operator, empty when none.
	parkedStep string
	// resolution is the operator's answer to the parked step.
	resolution      string
	cancelRequested bool
	compensating    bool
	// activitiesThisRun counts activity executions since the run began.
	activitiesThisRun int
	// hardened runs wait for a call in flight when cancelled and keep their
	// state in the memo; orders begun before versionHardening do not.
	hardened bool
}

// RunHooks are what an action adds to the shared machinery; each may be nil.
type RunHooks struct {
	// ValidateRetry checks an operator's retry request before it is
	// accepted (a correction, for example); Retry applies it.
	ValidateRetry func(OperatorRequest) error
	Retry         func(workflow.Context, OperatorRequest)
	// StatusAfterAnswer is the action's status once an operator answered
	// its parked step (not while it compensates); default processing.
	StatusAfterAnswer func(step string) action.Status
	// Placed reports whether the action has its business input yet; a
	// workflow that provider events started before its action arrived has
	// none, and reports no status. Default: always.
	Placed func() bool
	// ContinueAsNew returns the error that continues the action as new,
	// carrying its progress; nil hook: the action never continues as new.
	ContinueAsNew func(workflow.Context) error
}

// RunOptions describe a new Run.
type RunOptions struct {
	// ID is the action's id (the order id for orders); the state reports it.
	ID            string
	CorrelationID string
	Steps         Steps
	// Steps to report from the start, in order; default the table's steps
	// that are not undoing ones.
	Initial []Step
	Hooks   RunHooks
	// Legacy runs keep to the behaviour of orders begun before
	// versionHardening (see Run.hardened).
	Legacy bool
}

// NewRun starts the run of the workflow ctx belongs to; its workflow ID is
// the action's key ("<kind>/<id>").
func NewRun(ctx workflow.Context, opts RunOptions) *Run {
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	key, err := action.ParseKey(id)
	if err != nil {
		// Started under an id of another form: its keys keep to it.
		key = action.Key{Kind: action.KindOrder, ID: strings.TrimPrefix(id, string(action.KindOrder)+"/")}
	}
	steps := opts.Initial
	if steps == nil {
		for _, s := range opts.Steps {
			if s.Skip != SkipWithReason {
				steps = append(steps, Step{Name: s.Name, Status: action.StepPending})
			}
		}
	}
	return &Run{
		key: key, workflowID: id, correlationID: opts.CorrelationID, steps: opts.Steps, hooks: opts.Hooks,
		hardened: !opts.Legacy,
		state: OrderState{
			OrderID: opts.ID, Status: action.StatusProcessing, Steps: steps,
			CorrelationID: opts.CorrelationID, UpdatedAt: workflow.Now(ctx),
		},
	}
}

// State is the action's state as the API reports it.
func (r *Run) State() OrderState { return r.state }

// Key is the action's key.
func (r *Run) Key() action.Key { return r.key }

// Call is the provider call metadata of a step: its idempotency key is the
// step key, "<kind>/<id>/<step>".
func (r *Run) Call(step string) providers.Call {
	return providers.Call{IdempotencyKey: r.key.Step(step).String(), CorrelationID: r.correlationID}
}

// StepResult is implemented by every activity result, through
// activities.Outcome: the attempt that succeeded and the remote reference.
type StepResult interface {
	StepOutcome() activities.Outcome
}

// RunStep runs one activity as the named step of the run, recording its
// progress. When the activity fails for good the action is parked until an
// operator retries (input is built again, so corrections apply), skips
// (the step is marked skipped and result stays empty) or aborts it. Step
// returns nil once the step succeeded or was skipped, ErrCancelled when the
// action is to be cancelled, or the workflow's cancellation.
func RunStep[I any, O StepResult](ctx workflow.Context, r *Run, name string, activity func(context.Context, I) (O, error), input func() I, result *O) error {
	for {
		if r.hardened && ctx.Err() != nil {
			return ctx.Err() // cancelled through Temporal while the step before ran
		}
		if r.stopping() {
			return ErrCancelled
		}
		if r.stepDone(name) {
			return nil // done in an earlier run; its result came with the checkpoint
		}
		if err := r.maybeContinueAsNew(ctx); err != nil {
			return err
		}
		r.markStep(ctx, name, func(s *Step) { s.Status = action.StepRunning })
		r.activitiesThisRun++
		err := workflow.ExecuteActivity(r.activityContext(ctx, name), activity, input()).Get(ctx, result)
		if err == nil {
			out := (*result).StepOutcome()
			r.markStep(ctx, name, func(s *Step) {
				s.Status, s.Attempts, s.RemoteRef, s.LastError = action.StepSucceeded, s.Attempts+int(out.Attempt), out.RemoteRef, nil
			})
			// The step's final outcome, beside the provider calls' lines.
			workflow.GetLogger(ctx).Info("step finished", "action", r.key.String(), "step", name,
				"outcome", action.StepSucceeded, "attempts", out.Attempt, "remote_ref", out.RemoteRef)
			return nil
		}
		if temporal.IsCanceledError(err) {
			return err
		}
		err = r.park(ctx, name, err)
		if errors.Is(err, errSkipped) {
			r.markStep(ctx, name, func(s *Step) { s.Status = action.StepSkipped })
			workflow.GetLogger(ctx).Info("step finished", "action", r.key.String(), "step", name,
				"outcome", action.StepSkipped)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// stepHeartbeatTimeout is how soon Temporal notices that a worker died in
// the middle of a provider call and tries the step again elsewhere; the
// provider workers heartbeat while a call runs.
const stepHeartbeatTimeout = 10 * time.Second

// activityContext sends a step's activity to its system's task queue with a
// timeout and a bounded retry policy.
func (r *Run) activityContext(ctx workflow.Context, step string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: r.steps.Spec(step).System.TaskQueue(),
		// Room for a lookup and a create, each bounded by the provider's
		// call timeout (at most system.MaxCallTimeout).
		StartToCloseTimeout: system.StepTimeout,
		HeartbeatTimeout:    stepHeartbeatTimeout,
		// An action cancelled through Temporal while a call is in flight
		// waits for the call to end: the call runs on to the provider
		// anyway, and compensation must know what it did.
		WaitForCancellation: r.hardened,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    MaxStepAttempts,
		},
	})
}

// park records a step's final failure, marks the action needs_attention
// with search attributes an operator can filter on, and waits until an
// operator resolves it. It returns nil for retry, errSkipped, ErrCancelled,
// or an error when the workflow is cancelled.
func (r *Run) park(ctx workflow.Context, step string, err error) error {
	return r.parkFailure(ctx, step, describeFailure(err))
}

func (r *Run) parkFailure(ctx workflow.Context, step string, failure failure) error {
	r.markStep(ctx, step, func(s *Step) {
		s.Status, s.LastError = action.StepFailed, &StepError{Category: failure.category, Message: failure.message}
		s.Attempts += int(failure.attempts)
	})
	r.state.Status = action.StatusNeedsAttention
	r.state.UpdatedAt = workflow.Now(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchStatus.ValueSet(string(action.StatusNeedsAttention)),
		SearchStep.ValueSet(step),
		SearchErrorCategory.ValueSet(string(failure.category)),
		SearchProvider.ValueSet(r.steps.Spec(step).System.Name),
	); err != nil {
		return fmt.Errorf("mark action needing attention: %w", err)
	}
	// The reason travels in the memo, so that lists of parked actions show
	// it without asking each workflow; so does the state, for reads while
	// no worker runs.
	if r.hardened {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoReason: failure.message, MemoState: r.state}); err != nil {
			return fmt.Errorf("record why the action needs attention: %w", err)
		}
	} else if workflow.GetVersion(ctx, versionParkReasonMemo, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoReason: failure.message}); err != nil {
			return fmt.Errorf("record why the action needs attention: %w", err)
		}
	}
	workflow.GetLogger(ctx).Warn("action needs attention", "action", r.key.String(),
		"step", step, "category", failure.category, "error", failure.message)
	// Operators resolve parked actions with the workflow's retry, skip and
	// abort updates; until then the action waits here, in plain sight.
	return r.waitForOperator(ctx, step)
}

type failure struct {
	category action.Category
	message  string
	attempts int32
}

// describeFailure reads the category and attempt count that activities attach
// to their errors (see activities.FailureDetails).
func describeFailure(err error) failure {
	f := failure{category: action.CategoryTemporary, message: err.Error(), attempts: 1}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		f.message = appErr.Message()
		var cause *temporal.ApplicationError
		if errors.As(errors.Unwrap(appErr), &cause) {
			f.message += ": " + cause.Message()
		}
		var d activities.FailureDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			f.category, f.attempts = d.Category, d.Attempt
		} else if appErr.NonRetryable() {
			f.category = action.CategoryPermanent
		}
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		f.category = action.CategoryAmbiguous
	}
	return f
}

func (r *Run) markStep(ctx workflow.Context, name string, change func(*Step)) {
	for i := range r.state.Steps {
		if r.state.Steps[i].Name == name {
			change(&r.state.Steps[i])
		}
	}
	r.state.UpdatedAt = workflow.Now(ctx)
}

// SetStatus changes the action's status and the HandoffStatus search
// attribute. A hardened run also keeps its state in the memo whenever it
// enters a status it may stay in for a while, so that reads can answer from
// it while no worker runs; the final state is the result.
func (r *Run) SetStatus(ctx workflow.Context, status action.Status) error {
	if r.state.Status == status {
		return nil
	}
	r.state.Status = status
	r.state.UpdatedAt = workflow.Now(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchStatus.ValueSet(string(status))); err != nil {
		return fmt.Errorf("set action status %s: %w", status, err)
	}
	if status.Final() {
		return nil
	}
	if r.hardened {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoState: r.state}); err != nil {
			return fmt.Errorf("record action state: %w", err)
		}
	}
	return nil
}

// An action's history is bounded: past this many events, or this many
// activity executions in one run, or when Temporal suggests it, the action
// continues as new with its checkpoint at the next safe point.
var (
	continueAsNewAfterEvents     = 5000
	continueAsNewAfterActivities = 500
)

// stepDone reports whether a step succeeded or was skipped, also in an
// earlier run; steps that repeat are never done already.
func (r *Run) stepDone(name string) bool {
	if r.steps.Spec(name).Repeats {
		return false
	}
	for _, s := range r.state.Steps {
		if s.Name == name {
			return s.Status.Done()
		}
	}
	return false
}

// maybeContinueAsNew continues the action as new, carrying its progress,
// once its history is long (or Temporal suggests it) and no update is being
// handled. It returns the ContinueAsNewError to end this run with.
func (r *Run) maybeContinueAsNew(ctx workflow.Context) error {
	if r.compensating || r.hooks.ContinueAsNew == nil {
		return nil // a cancellation runs to its end in one run
	}
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() < continueAsNewAfterEvents && r.activitiesThisRun < continueAsNewAfterActivities &&
		!info.GetContinueAsNewSuggested() {
		return nil
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return r.hooks.ContinueAsNew(ctx)
}

// addStep adds a step (an undoing one) to the state, once.
func (r *Run) addStep(name string) {
	for _, s := range r.state.Steps {
		if s.Name == name {
			return
		}
	}
	r.state.Steps = append(r.state.Steps, Step{Name: name, Status: action.StepPending})
}

// stepStatus is the status of the named step, empty when the action has none.
func (r *Run) stepStatus(name string) action.StepStatus {
	for _, s := range r.state.Steps {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

// RegisterUpdates installs the operators' retry, skip, abort and cancel
// updates and the state query. Their validators reject, with a reason, what
// does not apply, so a rejected update leaves nothing in the history.
func (r *Run) RegisterUpdates(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryOrderState, func() (OrderState, error) { return r.state, nil }); err != nil {
		return fmt.Errorf("register state query: %w", err)
	}
	parkedOnly := func(what string) func(workflow.Context, OperatorRequest) error {
		return func(_ workflow.Context, req OperatorRequest) error {
			if r.parkedStep == "" {
				return notApplicable("%s applies to an action waiting for an operator; this one is %s", what, r.statusText())
			}
			if r.resolution != "" {
				return notApplicable("the %s step already has an operator's answer (%s)", r.parkedStep, r.resolution)
			}
			spec := r.steps.Spec(r.parkedStep)
			if what == UpdateAbort && r.compensating {
				return notApplicable("the action is being cancelled; retry the %s step, or skip it with a reason, to finish undoing it", r.parkedStep)
			}
			switch {
			case what != UpdateSkip:
			case spec.Skip == SkipWithReason && strings.TrimSpace(req.Reason) == "":
				return notApplicable("skipping the %s step of a cancelled action needs a reason; it is recorded with the action", r.parkedStep)
			case spec.Skip == SkipNever:
				return notApplicable("the %s step cannot be skipped; retry or abort it", r.parkedStep)
			}
			if what == UpdateRetry && r.hooks.ValidateRetry != nil {
				return r.hooks.ValidateRetry(req)
			}
			return nil
		}
	}
	resolve := func(what string) func(workflow.Context, OperatorRequest) (OperatorResult, error) {
		return func(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
			step := r.parkedStep
			if what == UpdateRetry && r.hooks.Retry != nil {
				r.hooks.Retry(ctx, req)
			}
			r.resolution = what
			r.markStep(ctx, step, func(s *Step) { s.Resolution = &Resolution{Action: what, Reason: req.Reason} })
			r.logOperator(ctx, what, step, req.Reason)
			return OperatorResult{Status: r.state.Status, Step: step}, nil
		}
	}
	for _, what := range []string{UpdateRetry, UpdateSkip, UpdateAbort} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, what, resolve(what), workflow.UpdateHandlerOptions{Validator: parkedOnly(what)})
		if err != nil {
			return fmt.Errorf("register %s update: %w", what, err)
		}
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel,
		func(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
			if !r.cancelRequested && !r.compensating {
				r.cancelRequested = true
				r.logOperator(ctx, UpdateCancel, r.parkedStep, req.Reason)
				// A step already running finishes first; the action says at
				// once that it is being cancelled.
				if err := r.SetStatus(ctx, action.StatusCancelling); err != nil {
					return OperatorResult{}, err
				}
			}
			return OperatorResult{Status: r.state.Status}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(workflow.Context, OperatorRequest) error {
			if r.state.Status.Final() {
				return notApplicable("the action is already %s", r.state.Status)
			}
			return nil
		}},
	)
}

// stopping reports whether the action is to stop and compensate; once it
// compensates, nothing stops the compensation.
func (r *Run) stopping() bool {
	return r.cancelRequested && !r.compensating
}

func (r *Run) statusText() string {
	if r.state.Status == "" {
		return "waiting for its business input"
	}
	return string(r.state.Status)
}

func (r *Run) logOperator(ctx workflow.Context, what, step, reason string) {
	workflow.GetLogger(ctx).Info("operator action", "operation", what, "step", step, "reason", reason,
		"action", r.key.String())
}

// waitForOperator holds a parked step until an operator resolves it or the
// action is cancelled. It returns nil for retry, errSkipped for skip and
// ErrCancelled for abort or cancel.
func (r *Run) waitForOperator(ctx workflow.Context, step string) error {
	r.parkedStep = step
	defer func() { r.parkedStep = "" }()
	if err := workflow.Await(ctx, func() bool { return r.resolution != "" || r.stopping() }); err != nil {
		return err
	}
	resolution := r.resolution
	r.resolution = ""
	if r.stopping() || resolution == UpdateAbort {
		return ErrCancelled
	}
	status := action.StatusProcessing
	switch {
	case r.compensating:
		status = action.StatusCancelling
	case r.hooks.StatusAfterAnswer != nil:
		status = r.hooks.StatusAfterAnswer(step)
	}
	if resolution == UpdateSkip {
		// Recorded before the status, so that the state kept in the memo
		// shows the skip.
		r.markStep(ctx, step, func(s *Step) { s.Status = action.StepSkipped })
	}
	r.state.Status = ""
	if r.hooks.Placed == nil || r.hooks.Placed() {
		if err := r.SetStatus(ctx, status); err != nil {
			return err
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchStep.ValueUnset(), SearchErrorCategory.ValueUnset(), SearchProvider.ValueUnset()); err != nil {
		return fmt.Errorf("clear parked search attributes: %w", err)
	}
	if resolution == UpdateSkip {
		return errSkipped
	}
	r.markStep(ctx, step, func(s *Step) { s.Status = action.StepPending })
	return nil
}
