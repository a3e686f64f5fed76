package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestReconciliationMemoryIsBoundedByThePage reconciles 10 000 and then
// 100 000 orders held by a sandbox in a process of its own, with a worker
// in a process of its own (the handoff binary, as deployed), and measures
// that worker's peak live heap (go_gc_heap_live_bytes on its /metrics)
// and the throughput for each. Memory is bounded by the page, not by the
// records: the peak at 100 000 stays within 1.5× of the peak at 10 000.
// `make bench-reconcile` prints the numbers.
func TestReconciliationMemoryIsBoundedByThePage(t *testing.T) {
	selfContained(t)
	bin := buildHandoff(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sb := exec.Command(bin, "sandbox")
	sb.Env = append(os.Environ(), "HANDOFF_SANDBOX_ADDR="+addr)
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sb.Process.Kill(); _ = sb.Wait() }()
	url := "http://" + addr
	waitFor(t, "the sandbox", func() bool { return httpOK(url + "/_sandbox/healthz") })

	const namespace = "reconcile-scale"
	c := namespaceClient(t, namespace)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := startWorkerProcess(t, bin, workerProcessEnv(namespace, url, metrics))
	waitFor(t, "the worker to poll", func() bool { return httpOK("http://" + metrics + "/readyz") })
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: namespace,
		Reconcile: workflows.ReconcileInput{PageSize: 500, Grace: 0, PagesPerRun: 50}})
	if err != nil {
		t.Fatal(err)
	}

	seed := func(prefix string, n int) {
		resp, err := http.Post(url+"/_sandbox/seed", "application/json", bytes.NewReader([]byte(fmt.Sprintf(`{"prefix":%q,"orders":%d}`, prefix, n))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The worker's live heap (after each collection) at its peak, and its
	// heap in use (what the collector has not given back) at its peak.
	measure := func(records int) (live, inUse float64, perSecond float64) {
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if g, err := gauges("http://"+metrics+"/metrics", "go_gc_heap_live_bytes", "go_memstats_heap_inuse_bytes"); err == nil {
					mu.Lock()
					live, inUse = max(live, g["go_gc_heap_live_bytes"]), max(inUse, g["go_memstats_heap_inuse_bytes"])
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		rs := &isolatedEnv{client: c, control: st}
		start := time.Now()
		report := rs.reconcileLong(t)
		elapsed := time.Since(start)
		close(stop)
		wg.Wait()
		if report.Compared.Charges != records || report.Repaired != 0 || report.Flagged != 0 {
			t.Fatalf("reconciled %d charges, repaired %d, flagged %d; want %d clean", report.Compared.Charges, report.Repaired, report.Flagged, records)
		}
		if live == 0 || inUse == 0 {
			t.Fatalf("the worker's /metrics never gave its heap; its output:\n%s", w.Output())
		}
		total := report.Compared.Charges + report.Compared.Invoices + report.Compared.Messages + report.Compared.Contacts
		return live, inUse, float64(total) / elapsed.Seconds()
	}

	seed("s10k", 10_000)
	live10k, inUse10k, rate10k := measure(10_000)
	seed("s90k", 90_000)
	live100k, inUse100k, rate100k := measure(100_000)
	const mib = 1 << 20
	t.Logf("reconciliation, worker's live heap and heap in use at their peaks, and records compared per second: "+
		"10 000 orders %.1f and %.1f MiB, %.0f/s; 100 000 orders %.1f and %.1f MiB, %.0f/s; live heap ratio %.2f",
		live10k/mib, inUse10k/mib, rate10k, live100k/mib, inUse100k/mib, rate100k, live100k/live10k)
	if live100k > 1.5*live10k {
		t.Errorf("peak live heap at 100 000 orders is %.2f× that at 10 000, want at most 1.5×", live100k/live10k)
	}
}

// httpOK reports whether a GET of url answers 2xx.
func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// gauges reads unlabelled gauges from a Prometheus text exposition.
func gauges(url string, names ...string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	out := map[string]float64{}
	for _, name := range names {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) != 1 {
			return nil, fmt.Errorf("%s has no %s", url, name)
		}
		out[name] = f.GetMetric()[0].GetGauge().GetValue()
	}
	return out, nil
}

// reconcileLong is reconcile with a deadline for large runs.
func (e *isolatedEnv) reconcileLong(t *testing.T) workflows.ReconcileReport {
	t.Helper()
	ctx := context.Background()
	id, err := e.control.StartReconciliation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		report, err := e.control.Reconciliation(ctx, id)
		if err == nil {
			return report
		}
		if !errorsIsRunning(err) {
			t.Fatalf("reconciliation %s: %v", id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("reconciliation %s still running after 10 minutes", id)
	return workflows.ReconcileReport{}
}
