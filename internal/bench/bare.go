package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// The bare side's task queues: handoff's names with this prefix, polled
// by a worker of their own with the same options.
const barePrefix = "bare-"

// BareTaskQueue is the bare workflow's task queue.
const BareTaskQueue = barePrefix + workflows.TaskQueue

// BareInput is the bare workflow's input.
type BareInput struct {
	Order         action.Order
	CorrelationID string
	// AwaitingOrder marks a workflow started by a payment event for an
	// order not placed yet: it only takes events.
	AwaitingOrder bool
}

// BareOrder is the order as a developer would write it on Temporal alone:
// the same four activities, on the same systems' queues with the same
// timeouts and retry policy, and a wait for the payment webhook's signal
// between the charge and the invoice. It has none of handoff's machinery:
// no state for reads, no search attributes, no parking, no fallback when the
// webhook does not come, no versioning.
func BareOrder(ctx workflow.Context, in BareInput) (string, error) {
	events := workflow.GetSignalChannel(ctx, workflows.SignalPaymentEvent)
	if in.AwaitingOrder {
		for {
			var e action.PaymentEvent
			events.Receive(ctx, &e)
		}
	}
	o := in.Order
	key := action.OrderKey(o.OrderID)
	call := func(step string) providers.Call {
		return providers.Call{IdempotencyKey: key.Step(step).String(), CorrelationID: in.CorrelationID}
	}
	on := func(step string) workflow.Context {
		return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           barePrefix + workflows.OrderSteps.Spec(step).System.TaskQueue(),
			StartToCloseTimeout: system.StepTimeout,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
				MaximumInterval: 30 * time.Second, MaximumAttempts: workflows.MaxStepAttempts},
		})
	}
	var a *activities.Activities
	var contact activities.UpsertCustomerResult
	err := workflow.ExecuteActivity(on(workflows.StepCustomer), a.UpsertCustomer, activities.UpsertCustomerInput{
		Call: call(workflows.StepCustomer), Email: o.Customer.Email, Name: o.Customer.Name}).Get(ctx, &contact)
	if err != nil {
		return "", err
	}
	var charge activities.CreateChargeResult
	err = workflow.ExecuteActivity(on(workflows.StepCharge), a.CreateCharge, activities.CreateChargeInput{
		Call: call(workflows.StepCharge), Amount: o.Amount, Currency: o.Currency, Customer: contact.ContactID,
		Email: o.Customer.Email, Description: "Order " + o.OrderID}).Get(ctx, &charge)
	if err != nil {
		return "", err
	}
	for {
		var e action.PaymentEvent
		events.Receive(ctx, &e)
		if e.ChargeID != charge.ChargeID {
			continue
		}
		if e.Status == action.PaymentSucceeded {
			break
		}
		if e.Status == action.PaymentFailed {
			return "rejected", nil
		}
	}
	lines := make([]providers.InvoiceLine, 0, len(o.Items))
	for _, it := range o.Items {
		lines = append(lines, providers.InvoiceLine{SKU: it.SKU, Quantity: it.Quantity, UnitAmount: it.UnitAmount})
	}
	var invoice activities.CreateInvoiceResult
	err = workflow.ExecuteActivity(on(workflows.StepInvoice), a.CreateInvoice, activities.CreateInvoiceInput{
		Call: call(workflows.StepInvoice), Customer: contact.ContactID, Amount: o.Amount, Currency: o.Currency,
		ChargeID: charge.ChargeID, Lines: lines}).Get(ctx, &invoice)
	if err != nil {
		return "", err
	}
	var sent activities.SendEmailResult
	err = workflow.ExecuteActivity(on(workflows.StepConfirmation), a.SendEmail, activities.SendEmailInput{
		Call: call(workflows.StepConfirmation), To: o.Customer.Email,
		Confirmation: &activities.Confirmation{OrderID: o.OrderID, Name: o.Customer.Name, Amount: o.Amount,
			Currency: o.Currency, InvoiceID: invoice.InvoiceID}}).Get(ctx, &sent)
	if err != nil {
		return "", err
	}
	return "completed", nil
}

// RunBareWorker runs the bare side's worker until SIGINT or SIGTERM, with
// its webhook endpoint at the address args name, if any: the
// bare workflow, and handoff's activities on the bare queues, each queue
// with the options handoff's worker gives its own (rate limit and
// concurrency of its provider, the pollers and cache of its settings). Its
// configuration is handoff's, from the environment, so that it calls the
// same providers with the same credentials and reads the payment signals
// handoff's API sends (encrypted with the same keys).
func RunBareWorker(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := worker.Dial(ctx, cfg.Temporal, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		return err
	}
	var running []sdkworker.Worker
	defer func() {
		for _, w := range running {
			w.Stop()
		}
	}()
	start := func(w sdkworker.Worker) error {
		if err := w.Start(); err != nil {
			return err
		}
		running = append(running, w)
		return nil
	}
	if cfg.Worker.CacheSize > 0 {
		sdkworker.SetStickyWorkflowCacheSize(cfg.Worker.CacheSize)
	}
	wf := sdkworker.New(c, BareTaskQueue, sdkworker.Options{MaxConcurrentWorkflowTaskPollers: cfg.Worker.WorkflowPollers,
		MaxConcurrentActivityTaskPollers: cfg.Worker.ActivityPollers})
	wf.RegisterWorkflow(BareOrder)
	if err := start(wf); err != nil {
		return fmt.Errorf("start the bare workflow worker: %w", err)
	}
	byQueue := map[string][]any{
		system.CRM.Name:        {acts.UpsertCustomer},
		system.Payments.Name:   {acts.CreateCharge},
		system.Accounting.Name: {acts.CreateInvoice},
		system.Mail.Name:       {acts.SendEmail},
	}
	for _, s := range []system.System{system.CRM, system.Payments, system.Accounting, system.Mail} {
		p, _ := cfg.Provider(s.Name)
		w := sdkworker.New(c, barePrefix+s.TaskQueue(), sdkworker.Options{
			DisableWorkflowWorker:              true,
			MaxConcurrentActivityTaskPollers:   cfg.Worker.ActivityPollers,
			TaskQueueActivitiesPerSecond:       p.RateLimit,
			MaxConcurrentActivityExecutionSize: p.Concurrency,
		})
		for _, fn := range byQueue[s.Name] {
			w.RegisterActivity(fn)
		}
		if err := start(w); err != nil {
			return fmt.Errorf("start the bare %s worker: %w", s.Name, err)
		}
	}
	// The bare side's webhook endpoint, when the benchmark asks for one.
	if len(args) > 0 {
		addr := args[0]
		p, _ := cfg.Provider(system.Payments.Name)
		srv := &http.Server{Addr: addr, Handler: bareWebhooks(c, p.WebhookSecrets), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("bare webhook endpoint", "error", err)
				stop()
			}
		}()
		defer srv.Close()
	}
	fmt.Println("bare worker running")
	<-ctx.Done()
	return nil
}

// bareWebhooks is the payment webhook endpoint a developer would write
// beside the bare workflow: verify the signature, decode the event, signal
// with start, answer. Unlike handoff's API it has no request log, metrics,
// correlation ids, problem answers or late-payment handling.
func bareWebhooks(c client.Client, secrets []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		id, err := webhooks.VerifyStandard(secrets, r.Header, body, time.Now())
		if err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		e, err := webhooks.DecodeStandard(id, body)
		if err != nil {
			http.Error(w, "malformed event", http.StatusBadRequest)
			return
		}
		if err := bareSignalWithStart(r.Context(), c, e); err != nil {
			http.Error(w, "not recorded; deliver it again", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// bareSignalWithStart hands a payment event to its bare order, starting a
// workflow that keeps it when the order has none yet.
func bareSignalWithStart(ctx context.Context, c client.Client, e action.PaymentEvent) error {
	_, err := c.SignalWithStartWorkflow(ctx, action.OrderKey(e.OrderID).String(), workflows.SignalPaymentEvent, e,
		client.StartWorkflowOptions{TaskQueue: BareTaskQueue}, BareOrder, BareInput{AwaitingOrder: true})
	return err
}

// startBare starts one bare order and returns its run.
func startBare(ctx context.Context, c client.Client, o action.Order) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: action.OrderKey(o.OrderID).String(), TaskQueue: BareTaskQueue,
	}, BareOrder, BareInput{Order: o, CorrelationID: "bench-" + o.OrderID})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start bare order %s", o.OrderID), err)
	}
	return run, nil
}
