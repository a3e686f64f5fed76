package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
)

// TestReconciliationMemoryIsBoundedByThePage reconciles 10 000 and then
// 100 000 orders held by a sandbox in a process of its own, and measures
// the reconciling worker's peak heap and throughput for each. Memory is
// bounded by the page, not by the records: the peak at 100 000 stays
// within 1.5× of the peak at 10 000. `make bench-reconcile` prints the
// numbers.
func TestReconciliationMemoryIsBoundedByThePage(t *testing.T) {
	bin := buildHandoff(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sb := exec.Command(bin, "sandbox")
	sb.Env = append(os.Environ(), "HANDOFF_SANDBOX_ADDR="+addr)
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sb.Process.Kill(); _ = sb.Wait() }()
	url := "http://" + addr
	waitFor(t, "the sandbox", func() bool {
		resp, err := http.Get(url + "/_sandbox/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	e := newIsolatedEnv(t, "reconcile-scale")
	// The environment's own workers read its in-process sandbox; this test
	// replaces them with workers that read the sandbox process.
	e.stopWorkers(t)
	c := e.client
	defer startWorkers(t, c, providerConfig(url)).Stop()
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: "reconcile-scale",
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
	measure := func(records int) (peak uint64, perSecond float64) {
		runtime.GC()
		var top atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > top.Load() {
					top.Store(m.HeapInuse)
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
		total := report.Compared.Charges + report.Compared.Invoices + report.Compared.Messages + report.Compared.Contacts
		return top.Load(), float64(total) / elapsed.Seconds()
	}

	seed("s10k", 10_000)
	peak10k, rate10k := measure(10_000)
	seed("s90k", 90_000)
	peak100k, rate100k := measure(100_000)
	t.Logf("reconciliation, worker heap in use at peak and records compared per second: 10 000 orders %.1f MiB, %.0f/s; 100 000 orders %.1f MiB, %.0f/s; peak ratio %.2f",
		float64(peak10k)/(1<<20), rate10k, float64(peak100k)/(1<<20), rate100k, float64(peak100k)/float64(peak10k))
	if float64(peak100k) > 1.5*float64(peak10k) {
		t.Errorf("peak heap at 100 000 orders is %.2f× that at 10 000, want at most 1.5×", float64(peak100k)/float64(peak10k))
	}
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
