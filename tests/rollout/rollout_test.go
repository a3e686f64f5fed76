// Package rollout proves a release of handoff's workers beside the one
// before it, under Temporal's Worker Deployment Versioning. It runs on a
// dev server of its own, in a package of its own, so that it runs beside
// the system tests rather than after them.
package rollout

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// TestRollout is the release of a new worker version beside the old one.
// Orders are held in flight by pausing payments while the new version
// starts and becomes current:
//
//   - pinned orders: an order in flight when v2 becomes current finishes on
//     v1, every later order runs on v2, and v1 drains, after which its
//     workers stop;
//   - auto-upgrading orders: an order in flight when v4 becomes current
//     moves to v4 at its next step and finishes there;
//   - a version that was current once does not take traffic back when its
//     workers restart, and HANDOFF_WORKER_PROMOTE=manual leaves the current
//     version as it is.
func TestRollout(t *testing.T) {
	bin := temporalBinary(t)
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(workflows.SearchAttributes))
	for _, key := range workflows.SearchAttributes {
		attrs = append(attrs, key.ValueSet(""))
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", Stdout: io.Discard, Stderr: io.Discard,
		ClientOptions:    &client.Options{Namespace: "default", Logger: quiet},
		SearchAttributes: temporal.NewSearchAttributes(attrs...),
		// Temporal checks whether a version still has pinned workflows
		// every few minutes by default; here every second.
		ExtraArgs: []string{"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
			"--dynamic-config-value", `matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"`,
			"--dynamic-config-value", `matching.wv.VersionDrainageStatusRefreshInterval="1s"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	// Each version's workers have a client of their own, whose identity
	// the history records for every task they take.
	dial := func(identity string) client.Client {
		c, err := client.NewClientFromExisting(srv.Client(), client.Options{Namespace: "default", Identity: identity, Logger: quiet,
			DataConverter: codec.DataConverter(nil), FailureConverter: codec.FailureConverter(nil)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial("rollout-test")
	defer c.Close()

	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond})
	providerServer := httptest.NewServer(sb)
	defer providerServer.Close()
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(nil), PaymentPollInterval: 100 * time.Millisecond, PaymentTimeout: time.Minute, PaymentWebhookWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deployment := c.WorkerDeploymentClient().GetHandle("handoff")

	began := time.Now()
	phase := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }
	running := map[string]*worker.Workers{}
	defer func() {
		for _, ws := range running {
			ws.Stop()
		}
	}()
	// startVersion starts the workers of one version, as a release's
	// binary would with these settings.
	startVersion := func(build, orders, promote string) {
		t.Helper()
		cfg := config.Config{}
		for _, name := range system.Names() {
			cfg.SetProvider(name, config.Provider{Provider: "sandbox", URL: providerServer.URL + "/" + name, ConnectTimeout: 2 * time.Second, Timeout: 5 * time.Second, RateLimit: 1000, Concurrency: 50})
		}
		cfg.Worker = config.Worker{Versioning: "on", Deployment: "handoff", BuildID: build, Promote: promote, OrderVersioning: orders}
		acts, err := worker.NewActivities(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cl := dial("worker-" + build)
		ws, err := worker.New(cl, acts, cfg)
		if err != nil {
			t.Fatal(err)
		}
		startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := ws.Start(startCtx); err != nil {
			t.Fatalf("start %s: %v", build, err)
		}
		running[build] = ws
	}
	stopVersion := func(build string) {
		running[build].Stop()
		delete(running, build)
	}
	wantCurrent := func(build, after string) {
		t.Helper()
		d, err := deployment.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if v := d.Info.RoutingConfig.CurrentVersion; v != nil {
			got = v.BuildID
		}
		if got != build {
			t.Fatalf("current version after %s = %q, want %s", after, got, build)
		}
	}
	// Orders wait for their charge while payments are paused.
	pause := func(pause bool) {
		t.Helper()
		var err error
		if pause {
			_, err = st.PauseProvider(ctx, "payments", "rollout")
		} else {
			_, err = st.ResumeProvider(ctx, "payments", "rollout")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	place := func(id string) {
		t.Helper()
		if _, err := st.PlaceOrder(ctx, order(id), id); err != nil {
			t.Fatal(err)
		}
	}
	waitCharge := func(id string) {
		t.Helper()
		waitFor(t, id+" to wait for its charge", func() bool {
			return chargeStarted(t, c, id)
		})
	}
	completed := func(id string) {
		t.Helper()
		waitFor(t, id+" to complete", func() bool {
			s, err := st.Order(ctx, id)
			return err == nil && s.State.Status == action.StatusCompleted
		})
		state := sb.State()
		for _, c := range []struct{ system, collection, step string }{{"payments", "charges", "charge"}, {"accounting", "invoices", "invoice"}} {
			if got := countFor(state, c.system, c.collection, id, c.step); got != 1 {
				t.Errorf("%s: %s %s = %d, want 1", id, c.system, c.collection, got)
			}
		}
	}

	// Pinned: v1, then v2 beside it.
	startVersion("v1", "pinned", "auto")
	wantCurrent("v1", "v1 started")
	phase("v1 current")
	pause(true)
	place("pin-old")
	waitCharge("pin-old")
	startVersion("v2", "pinned", "auto")
	wantCurrent("v2", "v2 started")
	phase("v2 current")
	place("pin-new")
	waitCharge("pin-new")
	pause(false)
	completed("pin-new")
	phase("pin-new completed")
	completed("pin-old")
	assertRanOn(t, c, "pin-old", "worker-v1")
	assertRanOn(t, c, "pin-new", "worker-v2")
	waitFor(t, "v1 to drain", func() bool {
		v, err := deployment.DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: "v1"})
		return err == nil && v.Info.DrainageInfo != nil && v.Info.DrainageInfo.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDrained
	})
	phase("v1 drained")
	stopVersion("v1")
	place("pin-after")
	completed("pin-after")
	assertRanOn(t, c, "pin-after", "worker-v2")
	phase("pin-after completed")

	// A version that was current once restarts without taking traffic;
	// a manual one waits for an operator.
	startVersion("v1", "pinned", "auto")
	phase("v1 restarted")
	startVersion("v3", "auto-upgrade", "manual")
	phase("v3 started")
	wantCurrent("v2", "v1 restarted and a manual v3 started")
	stopVersion("v1")
	stopVersion("v2")
	phase("v1 and v2 stopped")
	// As an operator would, once Temporal knows every queue v3 polls.
	waitFor(t, "v3 to become current", func() bool {
		_, err := deployment.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: "v3"})
		return err == nil
	})
	phase("v3 current")

	// Auto-upgrade: an order in flight on v3 moves to v4.
	pause(true)
	place("up-1")
	waitCharge("up-1")
	startVersion("v4", "auto-upgrade", "auto")
	wantCurrent("v4", "v4 started")
	phase("v4 current")
	pause(false)
	completed("up-1")
	tasks := workflowTaskWorkers(t, c, "up-1")
	if tasks[0] != "worker-v3" || tasks[len(tasks)-1] != "worker-v4" {
		t.Errorf("up-1's workflow tasks ran on %v, want the first on worker-v3 and the last on worker-v4", tasks)
	}
}

// chargeStarted reports whether the order's charge activity has started.
func chargeStarted(t *testing.T, c client.Client, orderID string) bool {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), action.OrderKey(orderID).String(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return false
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetTaskQueue().GetName() == "handoff-payments" {
			return true
		}
	}
	return false
}

// historyWorkers names the worker identity of every task the order's
// history records, workflow tasks and activities alike.
func historyWorkers(t *testing.T, c client.Client, orderID string) (workflowTasks, activityTasks []string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), action.OrderKey(orderID).String(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetWorkflowTaskStartedEventAttributes(); a != nil {
			workflowTasks = append(workflowTasks, a.GetIdentity())
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
			activityTasks = append(activityTasks, a.GetIdentity())
		}
	}
	return workflowTasks, activityTasks
}

func workflowTaskWorkers(t *testing.T, c client.Client, orderID string) []string {
	tasks, _ := historyWorkers(t, c, orderID)
	return tasks
}

// assertRanOn checks that every task of the order, its provider calls
// included, ran on the workers of one version.
func assertRanOn(t *testing.T, c client.Client, orderID, identity string) {
	t.Helper()
	wft, acts := historyWorkers(t, c, orderID)
	for i, who := range append(wft, acts...) {
		if who != identity {
			t.Errorf("%s: task %d of %d ran on %q, want %q (workflow tasks %v, activities %v)", orderID, i+1, len(wft)+len(acts), who, identity, wft, acts)
			return
		}
	}
	if len(acts) < 3 {
		t.Errorf("%s: %d activities in its history, want the order's provider calls", orderID, len(acts))
	}
	t.Logf("%s ran %d workflow tasks and %d activities on %s", orderID, len(wft), len(acts), identity)
}

// temporalBinary is the pinned CLI the Makefile builds.
func temporalBinary(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "bin", "temporal"))
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		t.Fatalf("the pinned Temporal CLI is missing: run the tests with `make test`, which builds it: %v", err)
	}
	return path
}

// order is a valid order with the given id.
func order(id string) action.Order {
	return action.Order{OrderID: id, Customer: action.Customer{Email: "ada+" + id + "@example.com", Name: "Ada Lovelace"}, Currency: "eur", Amount: 3000,
		Items: []action.Item{{SKU: "book", Quantity: 2, UnitAmount: 1500}}}
}

// countFor counts what the sandbox keeps of one step of the order.
func countFor(state sandbox.State, system, collection, orderID, step string) int {
	return state[system][collection].ByExternalRef[action.OrderKey(orderID).String()+"/"+step]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
