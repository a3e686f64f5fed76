package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// isolatedEnv is a namespace of its own with its own sandbox and workers,
// so that a reconciliation sees exactly the records a test made, and a test
// can stop the workers without stopping anyone else's.
type isolatedEnv struct {
	client  client.Client
	sandbox *sandbox.Server
	url     string
	control *control.Client
	workers *worker.Workers
}

func (e *isolatedEnv) stopWorkers(t *testing.T) {
	t.Helper()
	if e.workers != nil {
		e.workers.Stop()
		e.workers = nil
	}
}

func errorsIsRunning(err error) bool { return errors.Is(err, control.ErrRunning) }

// newIsolatedEnv registers the namespace and runs workers for it against a
// sandbox of its own; configure changes the workers' configuration first.
func newIsolatedEnv(t *testing.T, namespace string, configure ...func(*config.Config)) *isolatedEnv {
	t.Helper()
	c := namespaceClient(t, namespace)
	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	cfg := providerConfig(srv.URL)
	for _, f := range configure {
		f(&cfg)
	}
	e := &isolatedEnv{client: c, sandbox: sb, url: srv.URL, workers: startWorkers(t, c, cfg)}
	t.Cleanup(func() { e.stopWorkers(t) })
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, PaymentWebhookWait: 200 * time.Millisecond, Namespace: namespace,
		Reconcile: workflows.ReconcileInput{PageSize: 20, Grace: 0, PagesPerRun: 3}})
	if err != nil {
		t.Fatal(err)
	}
	e.control = st
	return e
}

// namespaceClient registers a namespace of the test server, with handoff's
// search attributes, and returns a client for it.
func namespaceClient(t *testing.T, namespace string) client.Client {
	t.Helper()
	ctx := context.Background()
	_, err := env.client.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		t.Fatalf("register namespace: %v", err)
	}
	c, err := client.Dial(client.Options{HostPort: env.server.FrontendHostPort(), Namespace: namespace,
		Logger:        sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter: codec.DataConverter(testEncryption()), FailureConverter: codec.FailureConverter(testEncryption())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := worker.RegisterSearchAttributes(ctx, c, namespace); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *isolatedEnv) reconcile(t *testing.T) workflows.ReconcileReport {
	t.Helper()
	ctx := context.Background()
	id, err := e.control.StartReconciliation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var report workflows.ReconcileReport
	waitFor(t, "reconciliation "+id, func() bool {
		report, err = e.control.Reconciliation(ctx, id)
		return !errors.Is(err, control.ErrRunning)
	})
	if err != nil {
		t.Fatalf("reconciliation %s: %v", id, err)
	}
	return report
}

func (e *isolatedEnv) invoice(t *testing.T, ref string) providers.Invoice {
	t.Helper()
	c := sandbox.NewClient("accounting", e.url+"/accounting", providers.HTTPOptions{})
	inv, found, err := c.FindInvoice(context.Background(), providers.Call{}, ref)
	if err != nil || !found {
		t.Fatalf("find invoice %s: found=%v %v", ref, found, err)
	}
	return inv
}

func (e *isolatedEnv) send(t *testing.T, method, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader([]byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// TestReconciliationRepairsWhatIsSafeAndFlagsTheRest seeds 60 finished
// orders and drift — 25 invoices deleted, 5 amounts changed, 3 orphan
// invoices — and checks that one run repairs exactly 25 and flags 8, and a
// second run repairs nothing and flags the same 8.
func TestReconciliationRepairsWhatIsSafeAndFlagsTheRest(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reconcile-drift")
	e.send(t, http.MethodPost, "/_sandbox/seed", `{"prefix":"rc","orders":60,"amount":2500}`)
	for i := range 25 {
		inv := e.invoice(t, fmt.Sprintf("order/rc-%d/invoice", i))
		e.send(t, http.MethodDelete, "/_sandbox/records/accounting/invoices/"+inv.ID, "")
	}
	for i := 30; i < 35; i++ {
		inv := e.invoice(t, fmt.Sprintf("order/rc-%d/invoice", i))
		e.send(t, http.MethodPatch, "/_sandbox/records/accounting/invoices/"+inv.ID, `{"amount":9999}`)
	}
	for i := range 3 {
		e.send(t, http.MethodPost, "/accounting/invoices",
			fmt.Sprintf(`{"external_ref":"order/ghost-%d/invoice","amount":100,"currency":"eur","lines":[{"sku":"x","quantity":1,"unit_amount":100}]}`, i))
	}

	first := e.reconcile(t)
	raw, _ := json.Marshal(first)
	t.Logf("first run: %s", raw)
	if first.Repaired != 25 || first.Flagged != 8 {
		t.Errorf("first run repaired %d, flagged %d; want 25 and 8", first.Repaired, first.Flagged)
	}
	want := map[string]int{"invoice_missing": 25, "amount_mismatch": 5, "invoice_without_charge": 3}
	for kind, n := range want {
		if first.Differences[kind] != n {
			t.Errorf("differences[%s] = %d, want %d", kind, first.Differences[kind], n)
		}
	}
	if first.Compared.Charges != 60 || first.Runs < 2 || first.DurationSeconds <= 0 || len(first.FlaggedItems) != 8 {
		t.Errorf("report = compared %+v, %d runs, %.2fs, %d flagged items; want 60 charges over several runs",
			first.Compared, first.Runs, first.DurationSeconds, len(first.FlaggedItems))
	}

	// Its history (the last run after continue-as-new) is a replay case,
	// and so is its first run, which keeps its progress after every page.
	recordHistory(t, e.client, first.ID, "reconcile_drift.json")
	desc, err := e.client.DescribeWorkflow(context.Background(), first.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	recordRunHistory(t, e.client, first.ID, desc.RawResponse.GetWorkflowExecutionInfo().GetFirstRunId(), "reconcile_drift_first_run.json")

	second := e.reconcile(t)
	if second.Repaired != 0 || second.Flagged != 8 {
		t.Errorf("second run repaired %d, flagged %d; want 0 and 8", second.Repaired, second.Flagged)
	}
	st := e.sandbox.State()["accounting"]["invoices"]
	for i := range 60 {
		if n := st.ByExternalRef[fmt.Sprintf("order/rc-%d/invoice", i)]; n != 1 {
			t.Errorf("order rc-%d has %d invoices, want 1", i, n)
		}
	}
	latest, err := e.control.LatestReconciliation(context.Background())
	if err != nil || latest.ID != second.ID {
		t.Errorf("latest = %s (%v), want %s", latest.ID, err, second.ID)
	}
}

// TestReconcileScheduleExistsOnce ensures the schedule as three worker
// starts would, and finds one schedule with the last interval.
func TestReconcileScheduleExistsOnce(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reconcile-schedule")
	ctx := context.Background()
	for _, every := range []time.Duration{time.Hour, time.Hour, 30 * time.Minute} {
		if err := worker.EnsureReconcileSchedule(ctx, e.client, worker.ReconcileScheduleOptions{Every: every}); err != nil {
			t.Fatal(err)
		}
	}
	iter, err := e.client.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for iter.HasNext() {
		s, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if s.ID == workflows.ReconcileScheduleID {
			count++
		}
	}
	desc, err := e.client.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Errorf("schedules = %d, want 1", count)
	}
	if iv := desc.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != 30*time.Minute {
		t.Errorf("intervals = %+v, want one of 30m", iv)
	}
}

// TestReconciliationLeavesRunningAndSkippedOrdersAlone: an order parked on
// its invoice is still in flight, and one whose invoice an operator skipped
// is flagged, not invoiced behind the operator's back.
func TestReconciliationLeavesRunningAndSkippedOrdersAlone(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reconcile-standing")
	ctx := context.Background()
	e.send(t, http.MethodPost, "/_sandbox/faults", `{"system":"accounting","operation":"create_invoice","mode":"status","status":422}`)
	for _, id := range []string{"parked-1", "skipped-1"} {
		if _, err := e.control.PlaceOrder(ctx, order(id), "reconcile-test"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, id+" to park", func() bool {
			s, err := e.control.Order(ctx, id)
			return err == nil && s.State.Status == action.StatusNeedsAttention
		})
	}
	e.send(t, http.MethodDelete, "/_sandbox/faults", "")
	if _, err := e.control.Resolve(ctx, action.OrderKey("skipped-1").String(), workflows.UpdateSkip, workflows.OperatorRequest{Reason: "invoiced by hand"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "skipped-1 to complete", func() bool {
		s, err := e.control.Order(ctx, "skipped-1")
		return err == nil && s.State.Status == action.StatusCompleted
	})

	report := e.reconcile(t)
	// parked-1 lacks its invoice and its e-mail, both in flight.
	if report.Repaired != 0 || report.InFlight != 2 || report.Flagged != 1 {
		t.Fatalf("report: repaired %d, in flight %d, flagged %d (%+v); want 0, 2 and 1", report.Repaired, report.InFlight, report.Flagged, report.FlaggedItems)
	}
	if item := report.FlaggedItems[0]; item.OrderKey != action.OrderKey("skipped-1").String() || !strings.Contains(item.Reason, "skipped") {
		t.Errorf("flagged = %+v, want skipped-1 flagged because its invoice was skipped", item)
	}
	if n := e.sandbox.State()["accounting"]["invoices"].Count; n != 0 {
		t.Errorf("invoices = %d, want none made behind the orders' backs", n)
	}
	_ = e.client.TerminateWorkflow(ctx, action.OrderKey("parked-1").String(), "", "test finished")
}

// TestReconciliationLooksBackOnlySoFarAndRepairsAtMostItsCap: ten orders
// from long ago and ten recent ones all lack their invoices. Only the recent
// ones are compared (the look-back window), and of those only the cap is
// repaired; the rest are flagged for a person.
func TestReconciliationLooksBackOnlySoFarAndRepairsAtMostItsCap(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reconcile-bounds")
	st, err := control.New(e.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: "reconcile-bounds",
		Reconcile: workflows.ReconcileInput{PageSize: 20, Grace: 0, Since: 72 * time.Hour, MaxRepairs: 4}})
	if err != nil {
		t.Fatal(err)
	}
	e.control = st
	e.send(t, http.MethodPost, "/_sandbox/seed", `{"prefix":"old","orders":10,"age_hours":200}`)
	e.send(t, http.MethodPost, "/_sandbox/seed", `{"prefix":"new","orders":10}`)
	for _, prefix := range []string{"old", "new"} {
		for i := range 10 {
			inv := e.invoice(t, fmt.Sprintf("order/%s-%d/invoice", prefix, i))
			e.send(t, http.MethodDelete, "/_sandbox/records/accounting/invoices/"+inv.ID, "")
		}
	}
	report := e.reconcile(t)
	raw, _ := json.Marshal(report)
	t.Logf("report: %s", raw)
	if report.Differences["invoice_missing"] != 10 {
		t.Errorf("missing invoices found = %d, want the 10 recent ones only", report.Differences["invoice_missing"])
	}
	if report.Repaired != 4 || report.NotRepaired != 6 || report.Flagged != 6 || report.RepairCap != 4 {
		t.Errorf("repaired %d, over the cap %d, flagged %d (cap %d); want 4, 6, 6 (4)", report.Repaired, report.NotRepaired, report.Flagged, report.RepairCap)
	}
	if report.Since.IsZero() || time.Since(report.Since) < 71*time.Hour {
		t.Errorf("since = %v, want three days back", report.Since)
	}
	invoices := e.sandbox.State()["accounting"]["invoices"]
	for i := range 10 {
		if n := invoices.ByExternalRef[fmt.Sprintf("order/old-%d/invoice", i)]; n != 0 {
			t.Errorf("order old-%d, outside the window, was invoiced %d times", i, n)
		}
	}
	if invoices.Count != 4 {
		t.Errorf("invoices = %d, want the 4 repairs", invoices.Count)
	}
}
