package workflows

import (
	"fmt"
	"math"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
)

// ReconcileScheduleID names the schedule that runs reconciliation.
const ReconcileScheduleID = "handoff-reconcile"

// maxReportItems bounds the repaired and flagged items a report lists;
// the counts stay exact.
const maxReportItems = 1000

// phaseDone marks a finished reconciliation.
const phaseDone = "done"

// ReconcileInput configures a reconciliation run.
type ReconcileInput struct {
	// PageSize is how many records one page compares; memory is bounded by it.
	PageSize int `json:"page_size"`
	// Grace leaves orders younger than it alone: they may be in flight.
	Grace time.Duration `json:"grace"`
	// PagesPerRun, when set, makes the workflow continue as new after this
	// many pages (tests use it); it always does when its history grows past
	// reconcileEventsPerRun events or Temporal suggests it.
	PagesPerRun int `json:"pages_per_run"`
	// Since is the look-back window: records created before it are not
	// compared. Zero means three days.
	Since time.Duration `json:"since"`
	// MaxRepairs caps the repairs of one reconciliation; beyond it, safe
	// differences are flagged instead. Zero means 100; a negative number
	// repairs nothing.
	MaxRepairs int `json:"max_repairs"`
	// Phases names the phases to run, in order; empty means the order's
	// (charges, then invoices). Those added to the activities
	// (activities.Activities.Phases) are run only when named here.
	Phases []string `json:"phases,omitempty"`
	// Resume carries the progress of the runs before.
	Resume *ReconcileProgress `json:"resume"`
}

// reconcileEventsPerRun bounds a reconciliation run's history; it continues
// as new past it, between pages.
var reconcileEventsPerRun = 10_000

// versionReconcileBounds marks the look-back window, the repair cap and
// continuing as new by history length.
const versionReconcileBounds = "reconcile-bounds"

// versionReconcileProgress marks the progress kept in the memo after every
// page (MemoProgress).
const versionReconcileProgress = "reconcile-progress"

// MemoProgress is the memo key of a running reconciliation's progress
// (ReconcileStanding), set after every page so that it can be read with
// no worker running.
const MemoProgress = "progress"

// ReconcileStanding is where a running reconciliation stands: the phase it
// compares, the pages and records compared so far (over every run), and
// what it did about the differences found.
type ReconcileStanding struct {
	Phase    string `json:"phase"`
	Pages    int    `json:"pages"`
	Records  int    `json:"records"`
	Repaired int    `json:"repaired"`
	Flagged  int    `json:"flagged"`
	InFlight int    `json:"in_flight"`
}

// Defaults of a reconciliation whose input does not say.
const (
	defaultReconcileSince      = 72 * time.Hour
	defaultReconcileMaxRepairs = 100
)

// ReconcileProgress is where a reconciliation stands.
type ReconcileProgress struct {
	Phase  string    `json:"phase"`
	Cursor string    `json:"cursor"`
	Before time.Time `json:"before"`
	// After is the start of the look-back window.
	After  time.Time       `json:"after"`
	Report ReconcileReport `json:"report"`
}

// ReconcileReport is the result of one reconciliation.
type ReconcileReport struct {
	ID              string         `json:"id"`
	StartedAt       time.Time      `json:"started_at"`
	FinishedAt      time.Time      `json:"finished_at"`
	DurationSeconds float64        `json:"duration_seconds"`
	Compared        ComparedCounts `json:"compared"`
	Differences     map[string]int `json:"differences"`
	Repaired        int            `json:"repaired"`
	Flagged         int            `json:"flagged"`
	RepairedItems   []ReportItem   `json:"repaired_items"`
	FlaggedItems    []ReportItem   `json:"flagged_items"`
	// RepairedByKind and FlaggedByKind count every repaired and flagged
	// difference by its kind (the rule it broke), truncated or not.
	RepairedByKind map[string]int `json:"repaired_by_kind,omitempty"`
	FlaggedByKind  map[string]int `json:"flagged_by_kind,omitempty"`
	// Truncated is set when more items were found than the report lists.
	Truncated bool `json:"truncated,omitempty"`
	Pages     int  `json:"pages"`
	Runs      int  `json:"runs"`
	// InFlight counts differences left alone because their order runs.
	InFlight int `json:"in_flight"`
	// Since is the start of the look-back window: older records were not
	// compared.
	Since time.Time `json:"since"`
	// RepairCap is the most repairs the run makes; NotRepaired counts the
	// safe differences flagged instead because the cap was reached.
	RepairCap   int `json:"repair_cap"`
	NotRepaired int `json:"not_repaired_over_cap"`
	// NotCompared names what the configured providers cannot be asked
	// about, and so was not compared (confirmations sent over SMTP).
	NotCompared []string `json:"not_compared,omitempty"`
}

// orderStandings asks where the orders of the safe differences stand: only
// those may be repaired, and only when their order is not running.
func orderStandings(ctx, actx workflow.Context, diffs []activities.Difference) (map[string]activities.OrderStanding, error) {
	var keys []string
	for _, d := range diffs {
		if d.Safe {
			keys = append(keys, d.OrderKey)
		}
	}
	if len(keys) == 0 {
		return map[string]activities.OrderStanding{}, nil
	}
	var res activities.OrderStandingsResult
	if err := workflow.ExecuteActivity(actx, a.OrderStandings, activities.OrderStandingsInput{Keys: keys}).Get(ctx, &res); err != nil {
		return nil, err
	}
	if res.Standings == nil {
		res.Standings = map[string]activities.OrderStanding{}
	}
	return res.Standings, nil
}

// ComparedCounts counts the records compared, per kind.
type ComparedCounts struct {
	Charges  int `json:"charges"`
	Invoices int `json:"invoices"`
	Messages int `json:"messages"`
	Contacts int `json:"contacts"`
	// Records counts the records of added phases, by kind.
	Records map[string]int `json:"records,omitempty"`
}

// ReportItem is one repaired or flagged difference.
type ReportItem struct {
	Kind     string   `json:"kind"`
	OrderKey string   `json:"order_key,omitempty"`
	Refs     []string `json:"refs"`
	Reason   string   `json:"reason"`
}

// ReconcileWorkflow compares the providers page by page: every succeeded
// charge against its invoice, confirmation e-mail and CRM contact, then
// every invoice against its charge. Safe differences (a missing invoice or
// e-mail for a paid order) are repaired with the order's own idempotent
// activities and keys, so repairing twice creates nothing twice; the rest
// are flagged, never changed.
func ReconcileWorkflow(ctx workflow.Context, in ReconcileInput) (ReconcileReport, error) {
	// Runs begun before the look-back window, the repair cap and
	// continuing as new by history length keep to what they did.
	bounded := workflow.GetVersion(ctx, versionReconcileBounds, workflow.DefaultVersion, 1) == 1
	// Runs begun before progress was kept in the memo go on without it.
	progressMemo := workflow.GetVersion(ctx, versionReconcileProgress, workflow.DefaultVersion, 1) == 1
	if in.PageSize <= 0 {
		in.PageSize = 500
	}
	if in.Since <= 0 {
		in.Since = defaultReconcileSince
	}
	repairCap := math.MaxInt
	switch {
	case !bounded:
		if in.PagesPerRun <= 0 {
			in.PagesPerRun = 50
		}
	case in.MaxRepairs == 0:
		repairCap = defaultReconcileMaxRepairs
	case in.MaxRepairs < 0:
		repairCap = 0
	default:
		repairCap = in.MaxRepairs
	}
	p := in.Resume
	if p == nil {
		now := workflow.Now(ctx)
		p = &ReconcileProgress{Phase: phasesOf(in)[0], Before: now.Add(-in.Grace), Report: ReconcileReport{
			ID: workflow.GetInfo(ctx).WorkflowExecution.ID, StartedAt: now, Differences: map[string]int{},
			RepairedItems: []ReportItem{}, FlaggedItems: []ReportItem{},
		}}
		if bounded {
			p.After, p.Report.Since = now.Add(-in.Since), now.Add(-in.Since)
		}
	}
	if bounded {
		p.Report.RepairCap = repairCap
	}
	p.Report.Runs++
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	for pages := 0; p.Phase != phaseDone; pages++ {
		info := workflow.GetInfo(ctx)
		long := bounded && (info.GetCurrentHistoryLength() > reconcileEventsPerRun || info.GetContinueAsNewSuggested())
		// Every run compares at least one page, so that it always advances.
		if pages > 0 && (pages == in.PagesPerRun || long) {
			next := in
			next.Resume = p
			return ReconcileReport{}, workflow.NewContinueAsNewError(ctx, ReconcileWorkflow, next)
		}
		var page activities.ComparePageResult
		err := workflow.ExecuteActivity(actx, a.ComparePage, activities.ComparePageInput{
			Phase: p.Phase, Cursor: p.Cursor, Limit: in.PageSize, Before: p.Before, After: p.After,
		}).Get(ctx, &page)
		if err != nil {
			return p.Report, fmt.Errorf("reconcile %s page: %w", p.Phase, err)
		}
		p.Report.Pages++
		p.Report.count(p.Phase, page)
		standings, err := orderStandings(ctx, actx, page.Differences)
		if err != nil {
			return p.Report, fmt.Errorf("reconcile %s page: %w", p.Phase, err)
		}
		for _, d := range page.Differences {
			if d.Safe && standings[d.OrderKey].Running {
				// Still in flight: the order itself will get there.
				p.Report.InFlight++
				continue
			}
			p.Report.Differences[d.Kind]++
			p.settle(ctx, d, standings[d.OrderKey], repairCap)
		}
		p.Cursor = page.NextCursor
		if p.Cursor == "" {
			p.Phase = nextPhase(phasesOf(in), p.Phase)
		}
		if progressMemo && p.Phase != phaseDone {
			if err := workflow.UpsertMemo(ctx, map[string]any{MemoProgress: p.standing()}); err != nil {
				return p.Report, fmt.Errorf("reconcile: keep progress: %w", err)
			}
		}
	}
	r := p.Report
	r.FinishedAt = workflow.Now(ctx)
	r.DurationSeconds = r.FinishedAt.Sub(r.StartedAt).Seconds()
	workflow.GetLogger(ctx).Info("reconciliation finished", "id", r.ID, "charges", r.Compared.Charges,
		"invoices", r.Compared.Invoices, "repaired", r.Repaired, "flagged", r.Flagged, "not_repaired_over_cap", r.NotRepaired,
		"since", r.Since, "seconds", r.DurationSeconds)
	return r, nil
}

// standing is the progress a reconciliation keeps in its memo.
func (p *ReconcileProgress) standing() ReconcileStanding {
	r := p.Report
	records := r.Compared.Charges + r.Compared.Invoices
	// A sum does not depend on the order the map is read in.
	//workflowcheck:ignore
	for _, n := range r.Compared.Records {
		records += n
	}
	return ReconcileStanding{Phase: p.Phase, Pages: r.Pages, Records: records, Repaired: r.Repaired, Flagged: r.Flagged, InFlight: r.InFlight}
}

// phasesOf is the phases a reconciliation runs, in order: the order's,
// unless the input names them (with those added to the activities).
func phasesOf(in ReconcileInput) []string {
	if len(in.Phases) == 0 {
		return []string{activities.PhaseCharges, activities.PhaseInvoices}
	}
	return in.Phases
}

func nextPhase(phases []string, phase string) string {
	if i := slices.Index(phases, phase); i >= 0 && i+1 < len(phases) {
		return phases[i+1]
	}
	return phaseDone
}

// count adds a page's compared records: the charges phase counts charges
// and what it looked up; the invoices phase counts only its invoices;
// added phases count their records by kind.
func (r *ReconcileReport) count(phase string, page activities.ComparePageResult) {
	// Sums do not depend on the order the map is read in.
	//workflowcheck:ignore
	for kind, n := range page.Records {
		if r.Compared.Records == nil {
			r.Compared.Records = map[string]int{}
		}
		r.Compared.Records[kind] += n
	}
	for _, what := range page.NotCompared {
		if !slices.Contains(r.NotCompared, what) {
			r.NotCompared = append(r.NotCompared, what)
		}
	}
	if phase == activities.PhaseCharges {
		r.Compared.Charges += page.Charges
		r.Compared.Messages += page.Messages
		r.Compared.Contacts += page.Contacts
		return
	}
	r.Compared.Invoices += page.Invoices
}

// settle repairs a safe difference or flags it; a repair that fails is
// flagged with its error. A safe difference is repaired only for an order
// that completed without an operator skipping that step, or that handoff
// never ran; any other order's difference is flagged.
func (p *ReconcileProgress) settle(ctx workflow.Context, d activities.Difference, standing activities.OrderStanding, repairCap int) {
	item := ReportItem{Kind: d.Kind, OrderKey: d.OrderKey, Refs: d.Refs, Reason: d.Reason}
	if d.Safe && standing.Exists && standing.Status != action.StatusCompleted {
		d.Safe = false
		item.Reason += "; not repaired: the order is " + string(standing.Status)
	}
	if step := repairStep(d); d.Safe && slices.Contains(standing.Skipped, step) {
		d.Safe = false
		item.Reason += "; not repaired: an operator skipped the " + step + " step"
	}
	if d.Safe && p.Report.Repaired >= repairCap {
		// A run that finds many safe differences at once more likely looks
		// at the wrong account than at many lost records: a person decides.
		d.Safe = false
		p.Report.NotRepaired++
		item.Reason += fmt.Sprintf("; not repaired: this run reached its cap of %d repairs", repairCap)
	}
	if d.Safe {
		err := repair(ctx, d)
		if err == nil {
			p.Report.Repaired++
			p.Report.RepairedByKind = countKind(p.Report.RepairedByKind, d.Kind)
			p.Report.addItem(&p.Report.RepairedItems, item)
			return
		}
		item.Reason += "; repair failed: " + err.Error()
	}
	p.Report.Flagged++
	p.Report.FlaggedByKind = countKind(p.Report.FlaggedByKind, d.Kind)
	p.Report.addItem(&p.Report.FlaggedItems, item)
}

func countKind(counts map[string]int, kind string) map[string]int {
	if counts == nil {
		counts = map[string]int{}
	}
	counts[kind]++
	return counts
}

func (r *ReconcileReport) addItem(list *[]ReportItem, item ReportItem) {
	if len(*list) >= maxReportItems {
		r.Truncated = true
		return
	}
	*list = append(*list, item)
}

// repairStep is the action's step a repair stands in for.
func repairStep(d activities.Difference) string {
	if d.Repair != nil {
		return d.Repair.Step
	}
	spec, _ := OrderSteps.Repairing(d.Kind)
	return spec.Name
}

// repairOptions run a repair on a system's queue with a bounded retry policy.
func repairOptions(ctx workflow.Context, s system.System) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: s.TaskQueue(), StartToCloseTimeout: system.StepTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
	})
}

// repair makes the missing record with the action's own activity and
// idempotency key, as the difference's comparer described the call.
func repair(ctx workflow.Context, d activities.Difference) error {
	if d.Repair == nil {
		return legacyRepair(ctx, d)
	}
	s, ok := system.Lookup(d.Repair.System)
	if !ok {
		return fmt.Errorf("repair %s: no system %q", d.Kind, d.Repair.System)
	}
	var out map[string]any
	return workflow.ExecuteActivity(repairOptions(ctx, s), d.Repair.Activity, d.Repair.Input).Get(ctx, &out)
}

// legacyRepair repairs the differences of reconciliations begun before
// differences carried their repair.
func legacyRepair(ctx workflow.Context, d activities.Difference) error {
	call := func(step string) providers.Call {
		return providers.Call{IdempotencyKey: d.OrderKey + "/" + step, CorrelationID: "reconcile"}
	}
	opts := func(name string) workflow.Context {
		s, _ := system.Lookup(name)
		return repairOptions(ctx, s)
	}
	switch d.Kind {
	case activities.DiffInvoiceMissing:
		var out activities.CreateInvoiceResult
		return workflow.ExecuteActivity(opts("accounting"), a.CreateInvoice, activities.CreateInvoiceInput{
			Call: call(StepInvoice), Customer: d.Customer, Amount: d.Amount, Currency: d.Currency, ChargeID: d.ChargeID,
			Lines: []providers.InvoiceLine{{SKU: "order", Quantity: 1, UnitAmount: d.Amount}},
		}).Get(ctx, &out)
	case activities.DiffEmailMissing:
		var out activities.SendEmailResult
		return workflow.ExecuteActivity(opts("mail"), a.SendEmail, activities.SendEmailInput{
			Call: call(StepConfirmation), To: d.Email,
			Confirmation: &activities.Confirmation{OrderID: d.OrderKey, Amount: d.Amount, Currency: d.Currency},
		}).Get(ctx, &out)
	}
	return fmt.Errorf("no repair for %s", d.Kind)
}
