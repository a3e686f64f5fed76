package tests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/worker"
)

// testPayloadKey encrypts the test environment's payloads and the
// committed replay histories. It is committed on purpose and protects
// nothing: never use it anywhere else.
const testPayloadKey = "replay-test:EjZXEH6JBEds4ZfH30i4JSw+14lbjPGu/9P9I/MJnUs="

// testEncryption is the codec of testPayloadKey.
func testEncryption() *codec.Encryption { return mustEncryption(testPayloadKey) }

func mustEncryption(keys ...string) *codec.Encryption {
	parsed, err := codec.ParseKeys(keys)
	if err != nil {
		panic(err)
	}
	e, err := codec.New(parsed)
	if err != nil {
		panic(err)
	}
	return e
}

func randomPayloadKey(t *testing.T, id string) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(raw)
}

// encryptedClient is a client of namespace whose payloads enc encrypts.
func encryptedClient(t *testing.T, namespace string, enc *codec.Encryption) client.Client {
	t.Helper()
	namespaceClient(t, namespace) // registers the namespace and its search attributes
	c, err := client.Dial(client.Options{HostPort: env.server.FrontendHostPort(), Namespace: namespace,
		Logger:        sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter: codec.DataConverter(enc), FailureConverter: codec.FailureConverter(enc)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestPayloadKeysRotateWithoutDowntime starts an order under key A, adds
// key B first (B encrypts, A still decrypts) and lets the order finish: its
// history holds payloads of both keys and replays with both. Without A, the
// same history fails naming A, and a worker without A refuses A-era
// payloads loudly (a counted, logged failure) instead of reading or writing
// anything.
func TestPayloadKeysRotateWithoutDowntime(t *testing.T) {
	const ns = "key-rotation"
	keyA, keyB := randomPayloadKey(t, "key-a"), randomPayloadKey(t, "key-b")
	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	cfgWith := func(keys ...string) config.Config {
		cfg := providerConfig(srv.URL)
		if err := cfg.SetPayloadKeys(keys); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	controlOf := func(c client.Client, cfg config.Config) *control.Client {
		st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(cfg.Temporal.Encryption), PaymentPollInterval: time.Second,
			PaymentTimeout: time.Hour, PaymentWebhookWait: 200 * time.Millisecond, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx := context.Background()
	e := &isolatedEnv{url: srv.URL}

	// Era A: the order's confirmation keeps failing, so it is still
	// running when the keys change.
	cfgA := cfgWith(keyA)
	cA := encryptedClient(t, ns, cfgA.Temporal.Encryption)
	wsA := startWorkers(t, cA, cfgA)
	t.Cleanup(wsA.Stop)
	e.send(t, "POST", "/_sandbox/faults", `{"system":"mail","operation":"send_message","mode":"status","status":503}`)
	if _, err := controlOf(cA, cfgA).PlaceOrder(ctx, order("rot-1"), "rotation"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rot-1 to reach its confirmation", func() bool {
		r, err := controlOf(cA, cfgA).Order(ctx, "rot-1")
		return err == nil && len(r.State.Steps) == 5 && r.State.Steps[3].Status == action.StepSucceeded
	})
	wsA.Stop()

	// A worker that lacks key A meets A-era payloads (the provider control
	// workflow's memo, the order's input): it does not start, and says why
	// in its log and its metric, until a worker with the key comes.
	cfgB := cfgWith(keyB)
	reg := prometheus.NewRegistry()
	worker.CountPayloadFailures(reg, cfgB.Temporal.Encryption)
	cB := encryptedClient(t, ns, cfgB.Temporal.Encryption)
	if _, err := controlOf(cA, cfgA).PlaceOrder(ctx, order("rot-2"), "rotation"); err != nil {
		t.Fatal(err)
	}
	acts, err := worker.NewActivities(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	wsB, err := worker.New(cB, acts, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	ctxB, cancelB := context.WithCancel(ctx)
	started := make(chan error, 1)
	go func() { started <- wsB.Start(ctxB) }()
	waitFor(t, "the worker without key A to refuse A-era payloads", func() bool {
		return failures(t, reg, "unknown_key") > 0
	})
	cancelB()
	if err := <-started; err == nil {
		t.Error("a worker without key A started")
	}
	wsB.Stop()
	if r, err := controlOf(cA, cfgA).Order(ctx, "rot-2"); err == nil && len(r.State.Steps) > 0 && r.State.Steps[0].Status == action.StepSucceeded {
		t.Errorf("rot-2 progressed without a worker that has its key: %+v", r.State)
	}
	// Its failed workflow task is retried with Temporal's backoff; the test
	// does not wait for that.
	_ = cA.TerminateWorkflow(ctx, action.OrderKey("rot-2").String(), "", "key rotation test")

	// Era B: B encrypts, A still decrypts; both orders finish.
	e.send(t, "DELETE", "/_sandbox/faults", "")
	cfgBA := cfgWith(keyB, keyA)
	cBA := encryptedClient(t, ns, cfgBA.Temporal.Encryption)
	wsBA := startWorkers(t, cBA, cfgBA)
	t.Cleanup(wsBA.Stop)
	waitFor(t, "rot-1 to complete after the rotation", func() bool {
		r, err := controlOf(cBA, cfgBA).Order(ctx, "rot-1")
		return err == nil && r.State.Status == action.StatusCompleted
	})
	path := filepath.Join(t.TempDir(), "rot-1.json")
	writeHistoryFrom(t, cBA, action.OrderKey("rot-1").String(), path)
	raw, _ := os.ReadFile(path)
	for _, id := range []string{"key-a", "key-b"} {
		if !strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte(id))) {
			t.Errorf("the history holds no payload of %s", id)
		}
	}
	if strings.Contains(string(raw), "ada+rot-1") {
		t.Error("the history holds the customer's e-mail in plain text")
	}
	if err := worker.ReplayFilesWith(slog.New(slog.DiscardHandler), cfgBA.Temporal.Encryption, path); err != nil {
		t.Errorf("replay with keys B and A: %v", err)
	}
	err = worker.ReplayFilesWith(slog.New(slog.DiscardHandler), cfgB.Temporal.Encryption, path)
	if err == nil || !strings.Contains(err.Error(), `"key-a"`) || !strings.Contains(err.Error(), "HANDOFF_PAYLOAD_KEYS") {
		t.Errorf("replay without key A: %v, want a failure naming key-a", err)
	}
}

// failures is the count of payloads reg's process could not read for reason.
func failures(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	return counterValue(t, reg, "handoff_payload_decode_failures_total", map[string]string{"reason": reason})
}

// counterValue sums the counter's series whose labels hold every one of
// labels.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want == l.GetValue() {
					matched++
				}
			}
			if matched == len(labels) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
