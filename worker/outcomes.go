package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// Outcomes are the business outcomes the workflows reach, as Prometheus
// series: orders by terminal status, paid orders left without an invoice,
// confirmations not sent, reconciliation differences by rule, and how long
// a webhook's news waited between its receipt and the workflow applying it.
// They are counted when a workflow finishes or takes a signal, never while
// one is replayed.
type Outcomes struct {
	ordersFinished      *prometheus.CounterVec
	paidWithoutInvoice  prometheus.Counter
	confirmationNotSent prometheus.Counter
	reconcileDiffs      *prometheus.CounterVec
	reconcileRuns       prometheus.Counter
	reconcileFinished   prometheus.Gauge
	processingDelay     *prometheus.HistogramVec
}

// NewOutcomes registers the outcome metrics with reg.
func NewOutcomes(reg prometheus.Registerer) *Outcomes {
	o := &Outcomes{
		ordersFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_orders_finished_total", Help: "Orders that reached a final status: completed, cancelled or rejected.",
		}, []string{"status"}),
		paidWithoutInvoice: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "handoff_orders_paid_without_invoice_total", Help: "Orders that finished with their charge paid and their invoice step skipped by an operator.",
		}),
		confirmationNotSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "handoff_orders_confirmation_not_sent_total", Help: "Orders that completed with their confirmation e-mail skipped by an operator.",
		}),
		reconcileDiffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_reconciliation_differences_total", Help: "Differences reconciliation found, by kind (the rule broken) and result: repaired or flagged for a person.",
		}, []string{"kind", "result"}),
		reconcileRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "handoff_reconciliation_runs_total", Help: "Reconciliation runs that finished with a report.",
		}),
		reconcileFinished: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "handoff_reconciliation_last_finished_timestamp_seconds", Help: "When the last reconciliation run this process saw finished, as a Unix time.",
		}),
		processingDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "handoff_webhook_processing_delay_seconds",
			Help:    "Time from a webhook's receipt by the API to its news being applied by the workflow, by system. An event that came before its order is applied when the order comes (or another event, or the end of the orphan window).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"system"}),
	}
	reg.MustRegister(o.ordersFinished, o.paidWithoutInvoice, o.confirmationNotSent, o.reconcileDiffs,
		o.reconcileRuns, o.reconcileFinished, o.processingDelay)
	return o
}

type outcomeCounter struct {
	interceptor.WorkerInterceptorBase
	outcomes *Outcomes
	// payloads reads signals; nil reads them with Temporal's default.
	payloads converter.DataConverter
}

func (c *outcomeCounter) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &outcomeInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, outcomes: c.outcomes, payloads: orDefault(c.payloads)}
}

type outcomeInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	outcomes *Outcomes
	payloads converter.DataConverter
}

func (i *outcomeInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	result, err := i.Next.ExecuteWorkflow(ctx, in)
	if err == nil && i.outcomes != nil && !workflow.IsReplaying(ctx) {
		// Counting only reads the result; the order it counts in
		// does not reach the workflow.
		i.outcomes.finished(result) //workflowcheck:ignore
	}
	return result, err
}

// finished counts a workflow's result.
func (o *Outcomes) finished(result any) {
	switch r := result.(type) {
	case workflows.OrderResult:
		o.orderFinished(r.State)
	case workflows.ReconcileReport:
		for kind, n := range r.RepairedByKind {
			o.reconcileDiffs.WithLabelValues(kind, "repaired").Add(float64(n))
		}
		for kind, n := range r.FlaggedByKind {
			o.reconcileDiffs.WithLabelValues(kind, "flagged").Add(float64(n))
		}
		o.reconcileRuns.Inc()
		o.reconcileFinished.Set(float64(r.FinishedAt.Unix()))
	}
}

func (o *Outcomes) orderFinished(s workflows.OrderState) {
	if !s.Status.Final() {
		return // continued as new, or answered an early event only
	}
	o.ordersFinished.WithLabelValues(string(s.Status)).Inc()
	steps := map[string]action.StepStatus{}
	for _, st := range s.Steps {
		steps[st.Name] = st.Status
	}
	if steps[workflows.StepCharge] == action.StepSucceeded && steps[workflows.StepInvoice] == action.StepSkipped &&
		s.Status != action.StatusCancelled {
		o.paidWithoutInvoice.Inc()
	}
	if s.Status == action.StatusCompleted && steps[workflows.StepConfirmation] == action.StepSkipped {
		o.confirmationNotSent.Inc()
	}
}

// HandleSignal logs a webhook's news as the workflow takes it, with the
// correlation id of the request that brought it (the workflow's logger adds
// the action's), and measures how long it waited since its receipt.
func (i *outcomeInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	if len(in.Arg.GetPayloads()) > 0 {
		var source, eventID, requestID string
		var received time.Time
		payload := in.Arg.GetPayloads()[0]
		switch in.SignalName {
		case workflows.SignalPaymentEvent:
			var ev action.PaymentEvent
			if i.payloads.FromPayload(payload, &ev) == nil {
				source, eventID, requestID, received = system.Payments.Name, ev.EventID, ev.RequestID, ev.ReceivedAt
			}
		case workflows.SignalCustomerChange:
			var ch action.CustomerChange
			if i.payloads.FromPayload(payload, &ch) == nil {
				source, eventID, requestID, received = ch.Source, ch.EventID, ch.RequestID, ch.ReceivedAt
			}
		}
		if !received.IsZero() && !workflow.IsReplaying(ctx) {
			// The worker's clock, not workflow.Now: the workflow's time is
			// the task's start, which may precede the signal. Only the
			// metric and the log line read it, never the workflow.
			delay := time.Since(received) //workflowcheck:ignore
			workflow.GetLogger(ctx).Info("webhook applied", "system", source, "event_id", eventID,
				"webhook_correlation_id", requestID, "delay_ms", delay.Milliseconds())
			if i.outcomes != nil {
				i.outcomes.processingDelay.WithLabelValues(source).Observe(delay.Seconds())
			}
		}
	}
	return i.Next.HandleSignal(ctx, in)
}
