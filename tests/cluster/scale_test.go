package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/devserver"
	"github.com/handoff-hq/handoff/internal/cluster"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/workflows"
)

const (
	measuredOrders = 150 // per engine, no faults: the side-by-side figures
	chaosOrders    = 300 // on the cluster, with faults and kills
	parkedOrders   = 10  // of the chaos orders, refused by accounting for good
	concurrency    = 16
	// chaosRate paces the chaos orders (a second), so that the kills
	// fall while orders are placed and run.
	chaosRate = 12
)

// fleetEnv are the settings every fleet of these tests runs with:
// reconciliation compares records of any age (it is asked, not scheduled).
var fleetEnv = []string{"HANDOFF_RECONCILE_GRACE=0s", "HANDOFF_RECONCILE_INTERVAL=8760h"}

// TestAFleetOnATemporalClusterSurvivesKills places orders through two API
// instances onto two workers on a Temporal cluster on PostgreSQL, with
// provider faults and duplicated webhooks, while a worker is SIGKILLed and
// restarted, an API instance is SIGKILLed (its clients fail over to the
// other) and Temporal's history service is killed and restarted. Every
// order ends completed or parked with a reason; no charge, invoice or
// e-mail is made twice; reconciliation finds nothing to repair. Before
// that, the same fleet runs the same clean load on the dev server and on
// the cluster, and the figures are reported side by side.
func TestAFleetOnATemporalClusterSurvivesKills(t *testing.T) {
	devFigures := measureOnTheDevServer(t)

	tc := startCluster(t, false)
	f := startFleet(t, tc.Target(), cluster.FleetOptions{APIs: 2, Workers: 2, Env: fleetEnv})
	c := dial(t, tc.Frontend)
	token := envValue(f.Env, "HANDOFF_API_TOKENS")

	clusterFigures := figures{"Temporal cluster on PostgreSQL (4 services)", measure(t, c, &placer{urls: f.APIURLs, token: token}, "clean-")}
	report(t, devFigures, clusterFigures)

	// Faults on every step, for good on ten orders' invoices, and every
	// payment event delivered twice.
	for _, fault := range []sandbox.Fault{
		{System: "payments", Operation: "create_charge", Mode: sandbox.FaultStatus, Status: 503, Rate: 0.1, Seed: 1},
		{System: "crm", Operation: "upsert_contact", Mode: sandbox.FaultRateLimit, RetryAfter: 1, Rate: 0.05, Seed: 2},
		{System: "mail", Operation: "send_message", Mode: sandbox.FaultTimeoutAfterCommit, LatencyMS: 50, Rate: 0.05, Seed: 3},
		{System: "accounting", Operation: "create_invoice", Mode: sandbox.FaultStatus, Status: 503, Rate: 0.05, Seed: 4},
		{System: "accounting", Operation: "create_invoice", KeyPrefix: "order/chaos-park-", Mode: sandbox.FaultStatus, Status: 422},
		{System: "payments", KeyPrefix: "order/chaos-", Mode: sandbox.FaultDuplicateWebhooks},
	} {
		addFault(t, f.Sandbox, fault)
	}
	orders := make([]action.Order, chaosOrders)
	for i := range orders {
		id := fmt.Sprintf("chaos-%03d", i)
		if i%(chaosOrders/parkedOrders) == 7 {
			id = fmt.Sprintf("chaos-park-%03d", i)
		}
		orders[i] = order(id)
	}
	p := &placer{urls: f.APIURLs, token: token}
	kills := make(chan string, 8)
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		for what := range kills {
			switch what {
			case "worker":
				f.Worker(0).Kill()
				time.Sleep(2 * time.Second)
				if err := f.Worker(0).Start(); err != nil {
					t.Error(err)
				}
			case "api":
				f.API(0).Kill()
			case "history":
				if err := tc.RestartService("history"); err != nil {
					t.Error(err)
				}
			}
			t.Logf("%s killed (%s)", what, time.Now().Format("15:04:05.000"))
		}
	}()
	started := time.Now()
	placeAll(t, p, orders, concurrency, chaosRate, func(n int) {
		switch n {
		case chaosOrders / 5:
			kills <- "worker"
		case 2 * chaosOrders / 5:
			kills <- "api"
		case 3 * chaosOrders / 5:
			kills <- "history"
		}
	})
	close(kills)
	<-chaosDone
	t.Logf("%d orders placed in %s through 2 API instances, %d requests sent again to the other instance (%d of them after finding theirs gone)",
		chaosOrders, time.Since(started).Round(time.Millisecond), p.failovers.Load(), p.unreachable.Load())
	if p.unreachable.Load() == 0 {
		t.Error("no request found its instance gone: the API instance was not killed under load")
	}
	// The killed API instance comes back and serves again.
	if err := f.API(0).Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitAPI(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitWorker(context.Background(), 0); err != nil {
		t.Fatal(err)
	}

	done := awaitOrders(t, c, "chaos-", chaosOrders, 5*time.Minute)
	completed, parked := 0, 0
	for id, status := range done.status {
		switch status {
		case "completed":
			completed++
		case "needs_attention":
			parked++
			var st workflows.OrderState
			if code := getJSON(t, f.URL+"/v1/orders/"+id, token, &st); code != http.StatusOK {
				t.Errorf("read parked %s: %d", id, code)
			}
			if reason := parkReason(st); reason == "" {
				t.Errorf("order %s parked without a reason: %+v", id, st)
			}
		default:
			t.Errorf("order %s ended %s", id, status)
		}
	}
	t.Logf("chaos: %d orders: %d completed, %d parked with a reason; %.1f orders/s, p50 %s, p99 %s",
		chaosOrders, completed, parked, done.rate(), done.percentile(0.5).Round(time.Millisecond), done.percentile(0.99).Round(time.Millisecond))
	if parked < parkedOrders {
		t.Errorf("%d parked, want at least the %d refused for good", parked, parkedOrders)
	}

	// Exactly once, whatever was killed: one contact, charge, invoice and
	// e-mail per completed order; no invoice or e-mail for a parked one.
	recs := sandboxRecords(t, f.Sandbox)
	duplicates := 0
	for id, status := range done.status {
		for _, r := range []struct{ system, collection, step string }{
			{"crm", "contacts", "customer"}, {"payments", "charges", "charge"},
			{"accounting", "invoices", "invoice"}, {"mail", "messages", "confirmation"},
		} {
			got := recs[r.system][r.collection].ByExternalRef[action.OrderKey(id).Step(r.step).String()]
			want := 1
			if status != "completed" && (r.step == "invoice" || r.step == "confirmation") {
				want = 0
			}
			if got > 1 {
				duplicates++
			}
			if got != want {
				t.Errorf("order %s (%s): %d %s, want %d", id, status, got, r.collection, want)
			}
		}
	}
	t.Logf("duplicates: %d charges, invoices, e-mails or contacts made twice", duplicates)

	checkReconciliation(t, f, token)
}

// parkReason is the error of the step an order parked on.
func parkReason(st workflows.OrderState) string {
	for _, s := range st.Steps {
		if s.LastError != nil && s.LastError.Message != "" {
			return s.LastError.Message
		}
	}
	return ""
}

// checkReconciliation runs a reconciliation over every record: it repairs
// nothing, and flags only what the parked orders left (a paid charge
// without its invoice and e-mail, left to the operator).
func checkReconciliation(t *testing.T, f *cluster.Fleet, token string) {
	t.Helper()
	operator := envValue(f.Env, "HANDOFF_OPERATOR_TOKENS")
	status, body, err := post(context.Background(), f.URL+"/v1/reconciliations", operator, nil)
	var started struct {
		ID string `json:"id"`
	}
	if err != nil || status != http.StatusAccepted || json.Unmarshal([]byte(body), &started) != nil || started.ID == "" {
		t.Fatalf("start reconciliation: %d %s %v", status, body, err)
	}
	var report workflows.ReconcileReport
	deadline := time.Now().Add(2 * time.Minute)
	for getJSON(t, f.URL+"/v1/reconciliations/"+url.PathEscape(started.ID), operator, &report) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the reconciliation did not finish in 2 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("reconciliation: compared %+v, repaired %d, flagged %d, left alone as in flight (the parked orders) %d",
		report.Compared, report.Repaired, report.Flagged, report.InFlight)
	if report.Repaired != 0 {
		t.Errorf("reconciliation repaired %d: %+v", report.Repaired, report.RepairedItems)
	}
	for _, item := range report.FlaggedItems {
		if !strings.HasPrefix(item.OrderKey, "order/chaos-park-") {
			t.Errorf("flagged %s of %s: %s", item.Kind, item.OrderKey, item.Reason)
		}
	}
}

// figures are one engine's results for the same clean load.
type figures struct {
	engine string
	done   finished
}

// measureOnTheDevServer runs the clean load on the dev server (its SQLite
// file, as `make run` keeps it) with the same fleet.
func measureOnTheDevServer(t *testing.T) figures {
	t.Helper()
	dir := t.TempDir()
	port, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "devserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	srv, err := devserver.Start(context.Background(), devserver.Options{Binary: filepath.Join(bin, "temporal"),
		Address: fmt.Sprintf("127.0.0.1:%d", port), Namespace: "default", DBFile: filepath.Join(dir, "temporal.db"), Output: out})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(10 * time.Second) }()
	frontend := fmt.Sprintf("127.0.0.1:%d", port)
	f := startFleet(t, cluster.Target{Frontend: frontend, Dir: dir, Bin: bin}, cluster.FleetOptions{APIs: 2, Workers: 2, Env: fleetEnv})
	defer f.Stop()
	return figures{"dev server (SQLite file)", measure(t, dial(t, frontend), &placer{urls: f.APIURLs, token: envValue(f.Env, "HANDOFF_API_TOKENS")}, "dev-")}
}

// measure places the clean load and waits for it.
func measure(t *testing.T, c client.Client, p *placer, prefix string) finished {
	t.Helper()
	orders := make([]action.Order, measuredOrders)
	for i := range orders {
		orders[i] = order(fmt.Sprintf("%s%03d", prefix, i))
	}
	placeAll(t, p, orders, concurrency, 0, nil)
	done := awaitOrders(t, c, prefix, measuredOrders, 3*time.Minute)
	if len(done.latency) != measuredOrders {
		t.Errorf("%d of %d clean orders completed", len(done.latency), measuredOrders)
	}
	return done
}

// report prints the engines' figures side by side.
func report(t *testing.T, engines ...figures) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%d orders, %d at a time, 2 API instances and 2 workers, sandbox answering at once:\n", measuredOrders, concurrency)
	fmt.Fprintf(&b, "  %-38s %10s %10s %10s\n", "engine", "orders/s", "p50", "p99")
	for _, e := range engines {
		fmt.Fprintf(&b, "  %-38s %10.1f %10s %10s\n", e.engine, e.done.rate(),
			e.done.percentile(0.5).Round(time.Millisecond), e.done.percentile(0.99).Round(time.Millisecond))
	}
	if len(engines) == 2 && engines[0].done.rate() > 0 {
		fmt.Fprintf(&b, "  ratio cluster/dev server: throughput %.2f, p99 %.2f\n", engines[1].done.rate()/engines[0].done.rate(),
			float64(engines[1].done.percentile(0.99))/float64(max(engines[0].done.percentile(0.99), 1)))
	}
	t.Log(b.String())
}
