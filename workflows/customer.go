package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
)

// What reaches a customer's workflow from outside.
const (
	// SignalCustomerChange carries a system's news about the customer
	// (action.CustomerChange), from its webhooks or reconciliation.
	SignalCustomerChange = "customer_change"
	// UpdatePutCustomer carries the application's change
	// (PutCustomerRequest); its validator refuses an older version.
	UpdatePutCustomer = "put_customer"
	// QueryCustomer answers the customer's CustomerView.
	QueryCustomer = "customer"
	// MemoCustomer holds the CustomerView as of the customer's last quiet
	// moment, for reads while no worker runs.
	MemoCustomer = "customer"
)

// CustomerInput is what CustomerWorkflow needs: the customer, the rules of
// its fields and the systems that keep customers, from the contracts.
type CustomerInput struct {
	CustomerID    string               `json:"customer_id"`
	CorrelationID string               `json:"correlation_id"`
	Rules         map[string]FieldRule `json:"rules"`
	Systems       []CustomerSystem     `json:"systems"`
	// HistoryLimit is how long the customer's history grows before it
	// continues as new, at a quiet moment; zero means 2000 events.
	HistoryLimit int `json:"history_limit"`
	// Resume carries the customer into a run that continued as new.
	Resume *CustomerCheckpoint `json:"resume"`
}

// CustomerCheckpoint is what a continued customer keeps from its earlier
// runs: what it knows, its steps, and the changes not yet applied.
type CustomerCheckpoint struct {
	Book    CustomerBook            `json:"book"`
	State   OrderState              `json:"state"`
	Pending []action.CustomerChange `json:"pending"`
}

// PutCustomerRequest is the application's change, with the field rules
// the contracts declare now: a customer started before an owner was
// changed in the contracts follows the change from its next PUT.
type PutCustomerRequest struct {
	Change action.CustomerChange `json:"change"`
	Rules  map[string]FieldRule  `json:"rules,omitempty"`
}

// PutCustomerResult answers it: Replayed when the same request had been
// applied before.
type PutCustomerResult struct {
	Replayed bool  `json:"replayed"`
	Version  int64 `json:"version"`
}

// CustomerResult is a customer's state when its workflow ends (an
// operator aborted it).
type CustomerResult struct {
	View CustomerView `json:"view"`
}

// customerHistoryLimit bounds a customer's history by default: past it,
// at a quiet moment, the customer continues as new.
const customerHistoryLimit = 2000

// CustomerSteps is keeping a customer: in every system that keeps customer
// records, finding its record (match_<system>) and writing its fields
// (write_<system>). Both repeat; an operator may skip either, which stops
// keeping the customer in that system.
func CustomerSteps(systems []CustomerSystem) Steps {
	var out Steps
	for _, cs := range systems {
		sys, _ := system.Lookup(cs.Name)
		out = append(out,
			StepSpec{Name: "match_" + cs.Name, System: sys, Activities: []string{"MatchCustomer"}, Skip: SkipAnytime, Repeats: true},
			StepSpec{Name: "write_" + cs.Name, System: sys, Activities: []string{"WriteCustomer"}, Skip: SkipAnytime, Repeats: true},
		)
	}
	return out
}

// customerRun is one execution of CustomerWorkflow.
type customerRun struct {
	*Run
	in   CustomerInput
	book *CustomerBook
	// news counts changes applied; seen is news as of the last sync.
	news, seen int
	// picks are operators' choices of record, by system; candidates the
	// records a match step parked on, by step.
	picks      map[string]string
	candidates map[string][]string
	// lastWrite is, by system, the write last made and the version it
	// made, so that a provider keeping another value than the one written
	// is not written again and again.
	lastWrite map[string]string
	pending   []action.CustomerChange
}

// CustomerWorkflow keeps one customer the same in every system that keeps
// customer records: each field at its owner's value. Its workflow ID is
// "customer/<customer_id>"; it runs as long as the customer exists,
// continuing as new, and applies every change the systems' webhooks and
// the application send it.
func CustomerWorkflow(ctx workflow.Context, in CustomerInput) (CustomerResult, error) {
	c := newCustomerRun(ctx, in)
	if err := c.register(ctx); err != nil {
		return CustomerResult{}, err
	}
	signals := workflow.GetSignalChannel(ctx, SignalCustomerChange)
	for {
		c.apply(ctx, signals)
		err := c.sync(ctx)
		if errors.Is(err, errQuiet) {
			err = c.rest(ctx, signals)
		}
		var can *workflow.ContinueAsNewError
		switch {
		case err == nil:
			continue
		case errors.As(err, &can):
			return CustomerResult{View: c.view()}, err
		case errors.Is(err, ErrCancelled), temporal.IsCanceledError(err):
			disconnected, _ := workflow.NewDisconnectedContext(ctx)
			if err := c.SetStatus(disconnected, action.StatusCancelled); err != nil {
				return CustomerResult{}, err
			}
			err = workflow.Await(disconnected, func() bool { return workflow.AllHandlersFinished(disconnected) })
			return CustomerResult{View: c.view()}, err
		default:
			return CustomerResult{View: c.view()}, err
		}
	}
}

func newCustomerRun(ctx workflow.Context, in CustomerInput) *customerRun {
	c := &customerRun{in: in, picks: map[string]string{}, candidates: map[string][]string{}, lastWrite: map[string]string{}}
	steps := CustomerSteps(in.Systems)
	var initial []Step
	for _, s := range steps {
		initial = append(initial, Step{Name: s.Name, Status: action.StepPending})
	}
	c.Run = NewRun(ctx, RunOptions{ID: in.CustomerID, CorrelationID: in.CorrelationID, Steps: steps, Initial: initial,
		Hooks: RunHooks{
			ValidateRetry: func(req OperatorRequest) error {
				if req.Record == "" {
					return nil
				}
				if !slices.Contains(c.candidates[c.parkedStep], req.Record) {
					return notApplicable("record %s is not one of the candidates of the %s step (%s)", req.Record, c.parkedStep, strings.Join(c.candidates[c.parkedStep], ", "))
				}
				return nil
			},
			Retry: func(_ workflow.Context, req OperatorRequest) {
				if req.Record != "" {
					c.picks[strings.TrimPrefix(c.parkedStep, "match_")] = req.Record
				}
			},
		},
	})
	c.book = NewCustomerBook(in.CustomerID, in.Rules)
	if cp := in.Resume; cp != nil {
		book := cp.Book
		c.book = &book
		c.book.Rules = in.Rules
		c.state = cp.State
		c.pending = cp.Pending
		c.news++
	}
	return c
}

func (c *customerRun) register(ctx workflow.Context) error {
	if err := c.RegisterUpdates(ctx); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryCustomer, func() (CustomerView, error) { return c.view(), nil }); err != nil {
		return fmt.Errorf("register customer query: %w", err)
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdatePutCustomer,
		func(ctx workflow.Context, req PutCustomerRequest) (PutCustomerResult, error) {
			if req.Change.Version == c.book.Application.Version {
				return PutCustomerResult{Replayed: true, Version: req.Change.Version}, nil
			}
			if req.Rules != nil {
				c.in.Rules, c.book.Rules = req.Rules, req.Rules
			}
			c.observe(ctx, req.Change)
			return PutCustomerResult{Version: req.Change.Version}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, req PutCustomerRequest) error {
			have := c.book.Application
			switch {
			case c.state.Status.Final():
				return notApplicable("the customer's workflow has ended (%s)", c.state.Status)
			case req.Change.Version < have.Version:
				return conflict("version %d is older than version %d, which the customer already has", req.Change.Version, have.Version)
			case req.Change.Version == have.Version && req.Change.RequestHash != have.RequestHash:
				return conflict("version %d was already applied with other values; send a higher version", have.Version)
			}
			return nil
		}},
	)
}

// conflict refuses an application's change as stale (the API's 409).
func conflict(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), action.TypeConflict)
}

// observe applies one change to the book, now.
func (c *customerRun) observe(ctx workflow.Context, ch action.CustomerChange) {
	if c.book.Observe(ch, workflow.Now(ctx)) {
		c.news++
	}
}

// apply takes every change waiting in the signal channel (and those carried
// from the run before).
func (c *customerRun) apply(ctx workflow.Context, signals workflow.ReceiveChannel) {
	for _, ch := range c.pending {
		c.observe(ctx, ch)
	}
	c.pending = nil
	for {
		var ch action.CustomerChange
		if !signals.ReceiveAsync(&ch) {
			return
		}
		c.observe(ctx, ch)
	}
}

// errQuiet says there is nothing to do until the next change.
var errQuiet = errors.New("nothing to do")

// sync takes the one next step the customer needs: a record to find in a
// system that holds none yet, or a record to write. It returns errQuiet
// when every system is as it should be.
func (c *customerRun) sync(ctx workflow.Context) error {
	if c.stopping() {
		return ErrCancelled
	}
	for _, sys := range c.in.Systems {
		if c.book.NeedsMatch(sys.Name) {
			if err := c.SetStatus(ctx, action.StatusProcessing); err != nil {
				return err
			}
			return c.match(ctx, sys)
		}
	}
	for _, sys := range c.in.Systems {
		fields, ref, ok := c.book.Plan(sys.Name)
		if !ok || c.lastWrite[sys.Name] == writeID(c.book.Systems[sys.Name], fields, ref) {
			continue
		}
		if err := c.SetStatus(ctx, action.StatusProcessing); err != nil {
			return err
		}
		return c.write(ctx, sys, fields, ref)
	}
	return errQuiet
}

// call is the provider call of the customer's next write to a system: its
// idempotency key is "customer/<id>/<system>-v<n>", one per write.
func (c *customerRun) call(sys string) providers.Call {
	c.book.Writes++
	return providers.Call{IdempotencyKey: fmt.Sprintf("%s/%s-v%d", c.book.Ref(), sys, c.book.Writes), CorrelationID: c.correlationID}
}

func (c *customerRun) match(ctx workflow.Context, sys CustomerSystem) error {
	step := "match_" + sys.Name
	call := c.call(sys.Name)
	email := c.book.Value(action.FieldEmail)
	var res activities.MatchCustomerResult
	err := RunStep(ctx, c.Run, step, a.MatchCustomer, func() activities.MatchCustomerInput {
		in := activities.MatchCustomerInput{Call: call, System: sys.Name, ExternalRef: c.book.Ref(), Pick: c.picks[sys.Name],
			Create: sys.Create && validValues(c.book.Values(sys.Fields)), Fields: c.book.Values(sys.Fields)}
		if sys.MatchEmail {
			in.Email = email
		}
		return in
	}, &res)
	if err != nil {
		return err
	}
	rec := c.book.system(sys.Name)
	delete(c.picks, sys.Name)
	switch {
	case c.stepStatus(step) == action.StepSkipped:
		rec.Skipped = true
	case res.Record != nil:
		c.observe(ctx, recordChange(sys.Name, *res.Record))
		rec.MatchedBy = res.MatchedBy
	case len(res.Candidates) > 1:
		c.candidates[step] = res.Candidates
		err := c.parkFailure(ctx, step, failure{category: action.CategoryAmbiguousMatch,
			message: fmt.Sprintf("%d records in %s match customer %s by e-mail address: %s; retry naming one as \"record\", or skip %s",
				len(res.Candidates), sys.Name, c.book.CustomerID, strings.Join(res.Candidates, ", "), sys.Name)})
		if errors.Is(err, errSkipped) {
			c.markStep(ctx, step, func(s *Step) { s.Status = action.StepSkipped })
			rec.Skipped = true
			return nil
		}
		return err
	default:
		rec.Looked, rec.MatchedEmail = true, email
	}
	return nil
}

func (c *customerRun) write(ctx workflow.Context, sys CustomerSystem, fields map[string]string, ref string) error {
	step := "write_" + sys.Name
	rec := c.book.Systems[sys.Name]
	in := activities.WriteCustomerInput{Call: c.call(sys.Name), System: sys.Name, RecordID: rec.RecordID, Fields: fields, ExternalRef: ref, IfVersion: rec.Version}
	id := writeID(rec, fields, ref)
	var res activities.WriteCustomerResult
	if err := RunStep(ctx, c.Run, step, a.WriteCustomer, func() activities.WriteCustomerInput { return in }, &res); err != nil {
		return err
	}
	if c.stepStatus(step) == action.StepSkipped {
		rec.Skipped = true
		return nil
	}
	c.observe(ctx, recordChange(sys.Name, res.Record))
	if !res.Stale {
		c.lastWrite[sys.Name] = id
	}
	return nil
}

// writeID names a write: the record's version it makes (one on from the
// version it applies to) and what it sets.
func writeID(rec *SystemRecord, fields map[string]string, ref string) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(rec.Version+1, 10) + "|" + ref)
	for _, f := range sortedKeys(fields) {
		b.WriteString("|" + f + "=" + strconv.Quote(fields[f]))
	}
	return b.String()
}

// validValues reports whether every value can be sent.
func validValues(values map[string]string) bool {
	for _, f := range sortedKeys(values) {
		if v := values[f]; action.CheckCustomerField(f, v) != "" && (v != "" || f == action.FieldEmail) {
			return false
		}
	}
	return values[action.FieldEmail] != ""
}

// recordChange is a system's record as a change of the customer.
func recordChange(sys string, r providers.CustomerRecord) action.CustomerChange {
	return action.CustomerChange{Source: sys, RecordID: r.ID, ExternalRef: r.ExternalRef, Version: r.Version, Fields: r.Fields}
}

// rest marks the customer synced, keeps its view in the memo, continues as
// new when its history is long (or its run made many calls), and waits
// for the next change.
func (c *customerRun) rest(ctx workflow.Context, signals workflow.ReceiveChannel) error {
	if err := c.SetStatus(ctx, action.StatusSynced); err != nil {
		return err
	}
	if c.news != c.seen {
		c.seen = c.news
		c.state.UpdatedAt = workflow.Now(ctx)
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoCustomer: c.view()}); err != nil {
			return fmt.Errorf("record customer view: %w", err)
		}
	}
	limit := c.in.HistoryLimit
	if limit <= 0 {
		limit = customerHistoryLimit
	}
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() >= limit || c.activitiesThisRun >= continueAsNewAfterActivities || info.GetContinueAsNewSuggested() {
		return c.continueAsNew(ctx, signals)
	}
	return workflow.Await(ctx, func() bool { return signals.Len() > 0 || c.news != c.seen || c.stopping() })
}

func (c *customerRun) continueAsNew(ctx workflow.Context, signals workflow.ReceiveChannel) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	var pending []action.CustomerChange
	for {
		var ch action.CustomerChange
		if !signals.ReceiveAsync(&ch) {
			break
		}
		pending = append(pending, ch)
	}
	next := c.in
	next.Resume = &CustomerCheckpoint{Book: *c.book, State: c.state, Pending: pending}
	return workflow.NewContinueAsNewError(ctx, CustomerWorkflow, next)
}

// CustomerView is a customer as GET /v1/customers/{customer_id} shows it:
// every field's value, owner and value in each system, the records that
// hold it, and its latest conflicts.
type CustomerView struct {
	CustomerID    string                `json:"customer_id"`
	Status        action.Status         `json:"status"`
	Version       int64                 `json:"version"`
	Fields        map[string]FieldView  `json:"fields"`
	Systems       map[string]SystemView `json:"systems"`
	Conflicts     []Conflict            `json:"conflicts"`
	Ignored       int64                 `json:"ignored_changes"`
	Steps         []Step                `json:"steps"`
	CorrelationID string                `json:"correlation_id,omitempty"`
	UpdatedAt     time.Time             `json:"updated_at"`
}

// FieldView is one field: its value, owner, version and who set it, and
// what each system holds.
type FieldView struct {
	Value     string               `json:"value"`
	Owner     string               `json:"owner,omitempty"`
	Version   int64                `json:"version"`
	Source    string               `json:"source,omitempty"`
	UpdatedAt time.Time            `json:"updated_at"`
	Systems   map[string]FieldCopy `json:"systems"`
}

// FieldCopy is a field's value in one system, with the version of the
// record that holds it; Flagged marks a value kept there for review.
type FieldCopy struct {
	Value   string `json:"value"`
	Version int64  `json:"version"`
	Flagged bool   `json:"flagged,omitempty"`
}

// SystemView is the record that holds the customer in one system.
type SystemView struct {
	RecordID  string `json:"record_id,omitempty"`
	Version   int64  `json:"version"`
	MatchedBy string `json:"matched_by,omitempty"`
	Skipped   bool   `json:"skipped,omitempty"`
}

func (c *customerRun) view() CustomerView {
	b := c.book
	v := CustomerView{CustomerID: b.CustomerID, Status: c.state.Status, Version: b.Application.Version,
		Fields: map[string]FieldView{}, Systems: map[string]SystemView{}, Conflicts: slices.Clone(b.Conflicts),
		Ignored: b.Ignored, Steps: slices.Clone(c.state.Steps), CorrelationID: c.correlationID, UpdatedAt: c.state.UpdatedAt}
	if v.Conflicts == nil {
		v.Conflicts = []Conflict{}
	}
	for _, name := range sortedKeys(b.Fields) {
		f := b.Fields[name]
		fv := FieldView{Value: f.Value, Owner: f.Owner, Version: f.Version, Source: f.Source, UpdatedAt: f.UpdatedAt, Systems: map[string]FieldCopy{}}
		for _, sys := range sortedKeys(b.Systems) {
			rec := b.Systems[sys]
			if val, ok := rec.Values[name]; ok {
				_, flagged := rec.Flagged[name]
				fv.Systems[sys] = FieldCopy{Value: val, Version: rec.Version, Flagged: flagged}
			}
		}
		v.Fields[name] = fv
	}
	for _, sys := range sortedKeys(b.Systems) {
		rec := b.Systems[sys]
		v.Systems[sys] = SystemView{RecordID: rec.RecordID, Version: rec.Version, MatchedBy: rec.MatchedBy, Skipped: rec.Skipped}
	}
	return v
}
