package tests

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/system"
)

// workerProcess is a running `handoff worker`.
type workerProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output bytes.Buffer
	exited chan struct{}
}

func (p *workerProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

func (p *workerProcess) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// workerProcessEnv configures a `handoff worker` for a namespace of the
// test server, with every provider on the sandbox at providerURL and its
// metrics and probes served at metricsAddr.
func workerProcessEnv(namespace, providerURL, metricsAddr string) []string {
	vars := []string{
		"HANDOFF_TEMPORAL_ADDRESS=" + env.server.FrontendHostPort(), "HANDOFF_TEMPORAL_NAMESPACE=" + namespace,
		"HANDOFF_METRICS_ADDR=" + metricsAddr, "HANDOFF_SANDBOX_CLIENT_ID=", "HANDOFF_SANDBOX_CLIENT_SECRET=", "HANDOFF_PAYLOAD_KEYS=" + testPayloadKey,
	}
	// The core systems: the binary knows no other.
	for _, s := range []system.System{system.Payments, system.Accounting, system.CRM, system.Mail} {
		vars = append(vars, s.EnvPrefix()+"_URL="+providerURL+"/"+s.Name, s.EnvPrefix()+"_PROVIDER=sandbox")
	}
	return vars
}

func startWorkerProcess(t *testing.T, bin string, env []string) *workerProcess {
	t.Helper()
	p := &workerProcess{cmd: exec.Command(bin, "worker"), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill(syscall.SIGTERM) })
	return p
}

// kill signals the process and waits for it to exit.
func (p *workerProcess) kill(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// TestAWorkerKilledDuringAProviderCallCompletesTheStepOnce runs the worker
// as its own process and SIGKILLs it while the charge call is in flight:
// once after the provider committed the charge, once before. A restarted
// worker takes the step over when its heartbeat times out; the step
// completes once, nothing is duplicated, and the history shows the retry.
func TestAWorkerKilledDuringAProviderCallCompletesTheStepOnce(t *testing.T) {
	selfContained(t)
	bin := buildHandoff(t)
	const namespace = "worker-kill"
	c := namespaceClient(t, namespace)
	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond})
	provider := httptest.NewServer(sb)
	defer provider.Close()
	workerEnv := workerProcessEnv(namespace, provider.URL, "127.0.0.1:0")
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: 100 * time.Millisecond, PaymentTimeout: time.Minute, PaymentWebhookWait: 200 * time.Millisecond, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		id, mode  string
		committed bool
	}{
		{"killed-after-commit", sandbox.FaultTimeoutAfterCommit, true},
		{"killed-before-commit", sandbox.FaultTimeoutBeforeCommit, false},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			key := action.OrderKey(tc.id).Step("charge").String()
			// The provider holds the call open for a minute: long enough to
			// kill the worker in the middle of it.
			f := sandbox.Fault{System: "payments", Operation: "create_charge", KeyPrefix: key, Mode: tc.mode, LatencyMS: 60_000, Count: 1}
			if err := sb.AddFault(f); err != nil {
				t.Fatal(err)
			}
			first := startWorkerProcess(t, bin, workerEnv)
			if _, err := st.PlaceOrder(ctx, order(tc.id), "kill-test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the charge call to be in flight", func() bool { return len(sb.Calls("payments", "create_charge", key)) == 1 })
			if tc.committed {
				waitFor(t, "the provider to commit the charge", func() bool { _, exists := sb.ChargeByRef(key); return exists })
			} else if _, exists := sb.ChargeByRef(key); exists {
				t.Fatal("the provider committed a charge it should not have")
			}
			first.kill(syscall.SIGKILL)

			second := startWorkerProcess(t, bin, workerEnv)
			var state control.OrderRead
			waitFor(t, tc.id+" to complete on the restarted worker", func() bool {
				state, err = st.Order(ctx, tc.id)
				return err == nil && state.State.Status == action.StatusCompleted
			})
			second.kill(syscall.SIGTERM)
			if t.Failed() {
				t.Logf("worker output:\n%s\n%s", first.Output(), second.Output())
			}

			counts := sb.State()["payments"]["charges"]
			if n := counts.ByExternalRef[key]; n != 1 {
				t.Errorf("charges = %d, want exactly 1", n)
			}
			if charge := state.State.Steps[1]; charge.Status != action.StepSucceeded || charge.Attempts != 2 {
				t.Errorf("charge step = %+v, want succeeded on the second attempt", charge)
			}
			// The history shows the retry: the step's activity started a
			// second time after the first attempt's heartbeat timed out.
			it := c.GetWorkflowHistory(ctx, action.OrderKey(tc.id).String(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			retried := false
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() == 2 &&
					strings.Contains(a.GetLastFailure().GetMessage(), "activity Heartbeat timeout") {
					retried = true
				}
			}
			if !retried {
				t.Error("the history shows no second attempt after a heartbeat timeout")
			}
		})
	}
}
