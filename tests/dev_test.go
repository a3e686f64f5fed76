package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// devProcess is a running `handoff dev`, as `make run` starts it.
type devProcess struct {
	cmd     *exec.Cmd
	stopped bool
	mu      sync.Mutex
	output  bytes.Buffer
	ready   chan struct{}
	exited  chan error
}

func (p *devProcess) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// freePort returns a free loopback port below the kernel's ephemeral
// range, and below 20000, where the cluster tests pick theirs
// (internal/cluster.FreePort). Servers here are stopped and started again on their port while
// clients keep dialing it; a port from the ephemeral range could meanwhile
// be taken by one of those very dials (a TCP connection to itself, when the
// kernel picks the target port as the source), and the server could not
// listen again.
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 200 {
		port := 10000 + rand.IntN(min(low, 20000)-10000)
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// handoffBinary is the handoff command, built once for every test that
// runs it.
var handoffBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func buildHandoff(t *testing.T) string {
	t.Helper()
	b := &handoffBinary
	b.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			b.err = err
			return
		}
		if b.dir, err = os.MkdirTemp("", "handoff-test-bin-"); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(b.dir, "handoff")
		build := exec.Command("go", "build", "-o", b.path, "./cmd/handoff")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build handoff: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func startDev(t *testing.T, bin, dataDir string, env []string) *devProcess {
	t.Helper()
	temporal, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--data", dataDir, "--temporal", temporal, "--ui-port", fmt.Sprint(freePort(t)))
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, ready: make(chan struct{}), exited: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{p: p}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		readyOnce := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "Press Ctrl-C to stop") {
				readyOnce.Do(func() { close(p.ready) })
			}
		}
		p.exited <- cmd.Wait()
	}()
	// A test that fails half-way still stops what it started.
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
	})
	select {
	case <-p.ready:
	case err := <-p.exited:
		p.stopped = true
		t.Fatalf("handoff dev exited before it was ready: %v\n%s", err, p.Output())
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("handoff dev not ready within 90 s:\n%s", p.Output())
	}
	return p
}

type lockedWriter struct{ p *devProcess }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.output.Write(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("handoff dev exited with %v after SIGTERM:\n%s", err, p.Output())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("handoff dev still running 30 s after SIGTERM:\n%s", p.Output())
	}
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, s) {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if fields := strings.Fields(string(stat)); len(fields) > 2 && fields[2] == "Z" {
				continue // a zombie is already dead
			}
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

func devToken(t *testing.T, dataDir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "dev-credentials.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "HANDOFF_API_TOKENS="); ok {
			return v
		}
	}
	t.Fatalf("no API token in %s", dataDir)
	return ""
}

func devRequest(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func awaitDevOrder(t *testing.T, apiURL, token, id string, want action.Status) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		status, body := devRequest(t, http.MethodGet, apiURL+"/v1/orders/"+id, token, nil)
		last = fmt.Sprintf("%d %s", status, body)
		var state workflows.OrderState
		if status == http.StatusOK && json.Unmarshal(body, &state) == nil && state.Status == want {
			return
		}
	}
	t.Fatalf("order %s never reached %s; last answer %s", id, want, last)
}

// TestDevRunsTheWholeSystemAndStopsCleanly is `make run` as a user meets it:
// it starts everything, places an order, stops on SIGTERM leaving no
// process behind, and after a restart still knows the order.
func TestDevRunsTheWholeSystemAndStopsCleanly(t *testing.T) {
	selfContained(t)
	bin := buildHandoff(t)
	dataDir := t.TempDir()
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	sandboxAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := []string{
		"HANDOFF_TEMPORAL_ADDRESS=" + temporalAddr,
		"HANDOFF_API_ADDR=" + strings.TrimPrefix(apiURL, "http://"),
		"HANDOFF_SANDBOX_ADDR=" + sandboxAddr,
		"HANDOFF_PAYMENT_POLL_INTERVAL=100ms",
	}

	p := startDev(t, bin, dataDir, env)
	out := p.Output()
	token := devToken(t, dataDir)
	for _, want := range []string{apiURL, "Web UI", "http://" + sandboxAddr, "started here", token, "development only"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if status, body := devRequest(t, http.MethodPost, apiURL+"/v1/orders", token, order("dev-1")); status != http.StatusAccepted {
		t.Fatalf("place order: %d %s", status, body)
	}
	awaitDevOrder(t, apiURL, token, "dev-1", action.StatusCompleted)
	// /metrics carries handoff's series and the Temporal SDK's (reported
	// every second).
	var metrics string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, body := devRequest(t, http.MethodGet, apiURL+"/metrics", "", nil)
		if metrics = string(body); strings.Contains(metrics, "handoff_orders_placed_total") && strings.Contains(metrics, "temporal_activity_execution_latency") {
			break
		}
	}
	if !strings.Contains(metrics, "handoff_orders_placed_total") || !strings.Contains(metrics, "temporal_activity_execution_latency") {
		t.Errorf("/metrics lacks handoff's or the SDK's series; it starts:\n%.600s", metrics)
	}
	p.stop(t)
	if left := processesMentioning(t, dataDir); len(left) > 0 {
		t.Fatalf("processes left after SIGTERM:\n%s", strings.Join(left, "\n"))
	}

	// Again, on the same data: the earlier order is still there and the
	// generated token is the same.
	p = startDev(t, bin, dataDir, env)
	if got := devToken(t, dataDir); got != token {
		t.Errorf("token changed across restarts")
	}
	awaitDevOrder(t, apiURL, token, "dev-1", action.StatusCompleted)
	p.stop(t)
	if left := processesMentioning(t, dataDir); len(left) > 0 {
		t.Fatalf("processes left after the second SIGTERM:\n%s", strings.Join(left, "\n"))
	}
}

// TestDevUsesARunningTemporal checks that `handoff dev` uses a Temporal
// server that already answers instead of starting its own, and registers
// its search attributes there. It works in a namespace of its own, so that
// its workers do not take the other tests' tasks.
func TestDevUsesARunningTemporal(t *testing.T) {
	selfContained(t)
	bin := buildHandoff(t)
	dataDir := t.TempDir()
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	_, err := env.client.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
		Namespace: "devtest", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	if err != nil {
		t.Fatalf("register namespace: %v", err)
	}
	p := startDev(t, bin, dataDir, []string{
		"HANDOFF_TEMPORAL_NAMESPACE=devtest",
		"HANDOFF_TEMPORAL_ADDRESS=" + env.server.FrontendHostPort(),
		"HANDOFF_API_ADDR=" + strings.TrimPrefix(apiURL, "http://"),
		"HANDOFF_SANDBOX_ADDR=" + fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"HANDOFF_API_TOKENS=explicit-token-0123456789",
	})
	defer p.stop(t)
	if !strings.Contains(p.Output(), "already running") {
		t.Errorf("banner does not say it reused the server:\n%s", p.Output())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "temporal.db")); err == nil {
		t.Errorf("a dev server database was created although Temporal was running")
	}
	// A token set in the environment wins over the generated one.
	if status, _ := devRequest(t, http.MethodGet, apiURL+"/v1/orders/none", "explicit-token-0123456789", nil); status != http.StatusNotFound {
		t.Errorf("GET with the environment's token = %d, want 404", status)
	}
	// The search attributes it registered work: an order completes there.
	if status, body := devRequest(t, http.MethodPost, apiURL+"/v1/orders", "explicit-token-0123456789", order("dev-existing-1")); status != http.StatusAccepted {
		t.Fatalf("place order: %d %s", status, body)
	}
	awaitDevOrder(t, apiURL, "explicit-token-0123456789", "dev-existing-1", action.StatusCompleted)
}
