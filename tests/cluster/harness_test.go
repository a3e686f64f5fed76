// Package cluster_test runs handoff on a real Temporal cluster on
// PostgreSQL (package internal/cluster): several API and worker processes,
// killed and restarted under load, and the same fleet on the dev server
// for comparison.
package cluster_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/internal/cluster"
	"github.com/handoff-hq/handoff/providers/sandbox"
)

// bin holds a handoff built from this tree and the pinned Temporal
// programs (built by `make test`).
var bin string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if _, err := os.Stat(cluster.PostgresBin + "/postgres"); err != nil {
		fmt.Println("SKIPPED: the cluster tests need PostgreSQL 15 (Debian package postgresql-15; make test installs it as root)")
		return 0, nil
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return 0, err
	}
	if bin, err = os.MkdirTemp("", "handoff-cluster-bin"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(bin)
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "handoff"), "./cmd/handoff")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build handoff: %w\n%s", err, out)
	}
	for _, name := range []string{"temporal", "temporal-server", "temporal-sql-tool", "temporal-ui-server"} {
		path := filepath.Join(root, "bin", name)
		if _, err := os.Stat(path); err != nil {
			return 0, fmt.Errorf("%s is missing: run the tests with `make test`, which builds it", path)
		}
		if err := os.Symlink(path, filepath.Join(bin, name)); err != nil {
			return 0, err
		}
	}
	return m.Run(), nil
}

// startCluster starts a throw-away cluster, stopped when the test ends.
func startCluster(t *testing.T, tls bool) *cluster.Temporal {
	t.Helper()
	// Not t.TempDir(): PostgreSQL's own user must be able to enter it.
	dir, err := os.MkdirTemp("", "handoff-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started := time.Now()
	c, err := cluster.StartTemporal(ctx, cluster.Options{Dir: dir, Bin: bin, Fast: true, TLS: tls})
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			dumpLogs(t, dir)
		}
	})
	t.Logf("Temporal cluster on PostgreSQL up in %s", time.Since(started).Round(100*time.Millisecond))
	return c
}

// startFleet starts handoff's processes against target, stopped when the
// test ends.
func startFleet(t *testing.T, target cluster.Target, opts cluster.FleetOptions) *cluster.Fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := cluster.StartFleet(ctx, target, opts)
	if err != nil {
		dumpLogs(t, target.Dir)
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// dumpLogs shows the end of every log of a failed test.
func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, path := range logs {
		raw, _ := os.ReadFile(path)
		if len(raw) > 3000 {
			raw = raw[len(raw)-3000:]
		}
		t.Logf("--- %s (end)\n%s", filepath.Base(path), raw)
	}
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func order(id string) action.Order {
	return action.Order{OrderID: id, Customer: action.Customer{Email: id + "@example.com", Name: "Ada Lovelace"},
		Currency: "eur", Amount: 4500, Items: []action.Item{{SKU: "book", Quantity: 3, UnitAmount: 1500}}}
}

// placer places orders through several API instances: a request that
// finds its instance gone (or unable to reach Temporal) goes to the next
// one, with the same body, which handoff answers as a replay.
type placer struct {
	urls  []string
	token string
	// failovers counts requests sent again to another instance;
	// unreachable those that found the first instance gone.
	failovers, unreachable atomic.Int64
}

func (p *placer) place(ctx context.Context, i int, o action.Order) error {
	body, _ := json.Marshal(o)
	var last error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		url := p.urls[(i+attempt)%len(p.urls)]
		status, answer, err := post(ctx, url+"/v1/orders", p.token, body)
		switch {
		case err == nil && (status == http.StatusAccepted || status == http.StatusOK):
			return nil
		case err == nil && status != http.StatusServiceUnavailable && status != http.StatusBadGateway:
			return fmt.Errorf("place %s: %d %s", o.OrderID, status, answer)
		}
		last = fmt.Errorf("place %s at %s: %d %s %v", o.OrderID, url, status, answer, err)
		p.failovers.Add(1)
		if err != nil {
			p.unreachable.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		}
	}
	return cmp.Or(last, ctx.Err())
}

func post(ctx context.Context, url, token string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(raw), nil
}

// getJSON reads url into v; it reports the status.
func getJSON(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// placeAll places the orders with concurrent placers, at most perSecond
// a second when it is set; after each order placed, placed is called with
// the count so far.
func placeAll(t *testing.T, p *placer, orders []action.Order, concurrency int, perSecond int, placed func(n int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var pace <-chan time.Time
	if perSecond > 0 {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		pace = tick.C
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(orders))
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(orders) {
					return
				}
				if pace != nil {
					<-pace
				}
				if err := p.place(ctx, w, orders[i]); err != nil {
					errs <- err
					continue
				}
				if placed != nil {
					placed(int(done.Add(1)))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// finished is what visibility says of the orders of one run.
type finished struct {
	status  map[string]string // order id → HandoffStatus
	latency []time.Duration   // start to close, of the closed ones
	first   time.Time         // earliest start
	last    time.Time         // latest close
}

// awaitOrders waits until every order has completed or parked (or was
// rejected), as Temporal's visibility tells: HandoffStatus, start and close
// times, without asking the workflows.
func awaitOrders(t *testing.T, c client.Client, prefix string, n int, within time.Duration) finished {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		f := finished{status: map[string]string{}}
		query := `WorkflowType = 'OrderWorkflow' AND HandoffStatus IN ('completed', 'needs_attention', 'rejected')`
		var token []byte
		for {
			resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: query, PageSize: 1000, NextPageToken: token})
			if err != nil {
				t.Fatalf("list orders: %v", err)
			}
			for _, e := range resp.GetExecutions() {
				id := strings.TrimPrefix(e.GetExecution().GetWorkflowId(), "order/")
				if !strings.HasPrefix(id, prefix) {
					continue
				}
				var status string
				if p := e.GetSearchAttributes().GetIndexedFields()["HandoffStatus"]; p != nil {
					_ = json.Unmarshal(p.GetData(), &status)
				}
				f.status[id] = status
				start := e.GetStartTime().AsTime()
				if f.first.IsZero() || start.Before(f.first) {
					f.first = start
				}
				if e.GetCloseTime() != nil && status == "completed" {
					end := e.GetCloseTime().AsTime()
					f.latency = append(f.latency, end.Sub(start))
					if end.After(f.last) {
						f.last = end
					}
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		if len(f.status) >= n {
			slices.Sort(f.latency)
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders %s* finished within %s", len(f.status), n, prefix, within)
		}
		time.Sleep(time.Second)
	}
}

// rate is completed orders per second, from the first start to the last
// close.
func (f finished) rate() float64 {
	if len(f.latency) == 0 || !f.last.After(f.first) {
		return 0
	}
	return float64(len(f.latency)) / f.last.Sub(f.first).Seconds()
}

func (f finished) percentile(p float64) time.Duration {
	if len(f.latency) == 0 {
		return 0
	}
	return f.latency[min(len(f.latency)-1, int(float64(len(f.latency))*p))]
}

func dial(t *testing.T, frontend string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: frontend, Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func addFault(t *testing.T, sandboxURL string, f sandbox.Fault) {
	t.Helper()
	raw, _ := json.Marshal(f)
	resp, err := http.Post(sandboxURL+"/_sandbox/faults", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add fault %+v: %d", f, resp.StatusCode)
	}
}

// records counts, by system and collection, the sandbox's records of each
// external reference ("order/<id>/<step>").
type records map[string]map[string]struct {
	ByExternalRef map[string]int `json:"by_external_ref"`
}

func sandboxRecords(t *testing.T, sandboxURL string) records {
	t.Helper()
	var r records
	if status := getJSON(t, sandboxURL+"/_sandbox/state", "", &r); status != http.StatusOK {
		t.Fatalf("sandbox state: %d", status)
	}
	return r
}
