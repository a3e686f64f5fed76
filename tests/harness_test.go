// Package tests holds handoff's integration tests: they run the real
// Temporal dev server (the pinned ./bin/temporal, never a download), the
// real workers, the real API and the sandbox over loopback HTTP, and check
// end to end what DESIGN.md promises. They also record and replay
// workflow histories.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/openapi"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/providers/stripe/stripetest"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "test-token-0123456789abcdef"

// testOperatorToken authenticates operator endpoints in the tests.
const testOperatorToken = "test-operator-0123456789abcdef"

// testWebhookSecret signs the sandbox's payment webhooks in the tests.
const testWebhookSecret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIz"

// testWebhookWait is how long a test order waits for its payment webhook
// before it asks the provider.
const testWebhookWait = time.Second

// testOrphanWindow is how long events for an order not placed yet wait.
const testOrphanWindow = 5 * time.Second

// env is the running system every integration test talks to.
var env struct {
	server   *testsuite.DevServer
	client   client.Client
	sandbox  *sandbox.Server
	provider *httptest.Server
	api      *httptest.Server
	// calls counts the provider calls of the shared workers; drifts
	// keeps what they log of contract drift.
	calls  *prometheus.Registry
	drifts *driftLines
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	validator, err := openapi.NewValidator()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	apiCheck.Validator = validator
	http.DefaultClient.Transport = apiCheck
	if err := start(); err != nil {
		fmt.Fprintln(os.Stderr, "integration environment:", err)
		return 1
	}
	defer stop()
	code := m.Run()
	if handoffBinary.dir != "" {
		os.RemoveAll(handoffBinary.dir)
	}
	if err := apiCheck.Violations(); err != nil {
		fmt.Fprintf(os.Stderr, "exchanges with the API that openapi.yaml does not describe:\n%v\n", err)
		return 1
	}
	return code
}

// apiCheck checks every exchange of http.DefaultClient with an API the
// tests started (checkOpenAPI) against openapi.yaml: an undocumented
// field, status or header fails the request, and the run.
var apiCheck = &openapi.Transport{Checks: func(r *http.Request) bool {
	_, ok := apiHosts.Load(r.URL.Host)
	// The operations page is HTML for people, not part of the API.
	return ok && r.URL.Path != "/ops" && !strings.HasPrefix(r.URL.Path, "/ops/")
}}

var apiHosts sync.Map

// checkOpenAPI has the exchanges with the API at base checked.
func checkOpenAPI(base string) {
	if u, err := url.Parse(base); err == nil {
		apiHosts.Store(u.Host, true)
	}
}

// repoRoot is the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// temporalBinary is the pinned CLI the Makefile builds.
func temporalBinary() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s is missing: run the tests with `make test`, which builds it: %w", path, err)
	}
	return path, nil
}

func start() error {
	ctx := context.Background()
	bin, err := temporalBinary()
	if err != nil {
		return err
	}
	// The SDK logs every failed attempt at error level; the tests inject
	// many on purpose and assert on outcomes instead.
	quiet := slog.New(slog.DiscardHandler)
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(workflows.SearchAttributes))
	for _, key := range workflows.SearchAttributes {
		attrs = append(attrs, key.ValueSet(""))
	}
	env.server, err = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		// The test environment encrypts its payloads, as a deployment with
		// HANDOFF_PAYLOAD_KEYS does: every reader must decode.
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(quiet),
			DataConverter: codec.DataConverter(testEncryption()), FailureConverter: codec.FailureConverter(testEncryption())},
		LogLevel:         "error",
		SearchAttributes: temporal.NewSearchAttributes(attrs...),
		ExtraArgs:        []string{"--dynamic-config-value", "frontend.enableServerVersionCheck=false"},
		Stdout:           io.Discard,
		Stderr:           io.Discard,
	})
	if err != nil {
		return fmt.Errorf("start dev server: %w", err)
	}
	env.client = env.server.Client()

	// The API's address is needed before it starts: the sandbox delivers
	// its webhooks there.
	var apiHandler http.Handler
	env.api = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { apiHandler.ServeHTTP(w, r) }))
	// The sandbox requires OAuth2 tokens, as real providers do, and signs
	// its webhooks.
	env.sandbox = sandbox.NewServer(sandbox.Options{SettleDelay: 50 * time.Millisecond,
		ClientID: "test-client", ClientSecret: "test-secret-0123456789",
		WebhookURL: "http://" + env.api.Listener.Addr().String() + "/webhooks", WebhookSecret: testWebhookSecret,
		WebhookSecrets: map[string]string{"crm": testWebhookSecret, "accounting": testWebhookSecret}})
	env.provider = httptest.NewServer(faulty(env.sandbox))

	cfg := testConfig()
	env.calls, env.drifts = prometheus.NewRegistry(), &driftLines{}
	cfg.CallMetrics, cfg.CallDrift, cfg.CallLog = providers.NewMetrics(env.calls), providers.NewDriftLog(), slog.New(env.drifts)
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		return err
	}
	ws, err := worker.New(env.client, acts, cfg)
	if err != nil {
		return err
	}
	ws.ControlInterval, ws.DriftInterval = 300*time.Millisecond, 200*time.Millisecond
	if err := ws.Start(context.Background()); err != nil {
		return err
	}
	workers = ws

	rules, systems := workflows.CustomerRulesFrom(cfg.Contracts())
	st, err := control.New(env.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: 100 * time.Millisecond, PaymentTimeout: time.Minute, PaymentWebhookWait: testWebhookWait, OrphanWindow: testOrphanWindow,
		CustomerRules: rules, CustomerSystems: systems})
	if err != nil {
		return err
	}
	srv, err := api.New(api.Options{
		Orders: st, Customers: st, Events: st, Operators: st, Reconciliations: st, APITokens: []string{testToken}, OperatorTokens: []string{testOperatorToken},
		Webhooks: map[string]api.WebhookSource{
			"payments":   {Scheme: system.SchemeStandard, Secrets: []string{testWebhookSecret}},
			"crm":        {Scheme: system.SchemeStandard, Secrets: []string{testWebhookSecret}},
			"accounting": {Scheme: system.SchemeStandard, Secrets: []string{testWebhookSecret}},
		},
		Ready: func(ctx context.Context) error {
			_, err := env.client.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		WebUIURL: "http://localhost:8233", Namespace: "default",
	})
	if err != nil {
		return err
	}
	apiHandler = srv
	env.api.Start()
	checkOpenAPI(env.api.URL)
	return nil
}

// selfContained runs a test beside the other tests that call it (or
// besideSelfContained), once every test that calls neither has finished.
// A test calls it when it touches nothing of the shared system: it runs
// its own Temporal (dev server or namespace), sandbox and workers, or none
// at all. Faults, pauses, counts and metrics of the shared system are
// never changed or read while these tests run.
func selfContained(t *testing.T) { t.Parallel() }

// besideSelfContained runs a test of the shared system beside the
// self-contained ones. Such tests are few, and must not change or count
// what another of them does: TestManyCustomersEndAtTheirOwnersValuesWithoutEchoes
// faults and counts every write of the shared sandbox, so the only other
// one writes nothing to it.
func besideSelfContained(t *testing.T) { t.Parallel() }

var workers *worker.Workers

func stop() {
	stripetest.Stop()
	if env.api != nil {
		env.api.Close()
	}
	if workers != nil {
		workers.Stop()
	}
	if env.provider != nil {
		env.provider.Close()
	}
	if env.server != nil {
		_ = env.server.Stop()
	}
}

func setProviderURL(cfg *config.Config, name, url string) {
	// A generous rate limit: the tests measure handoff's own backoff.
	cfg.SetProvider(name, config.Provider{Provider: "sandbox", URL: url, ConnectTimeout: 2 * time.Second, Timeout: 5 * time.Second, RateLimit: 1000, Concurrency: 50})
}

// Orders whose id starts with this prefix get a permanent 422 from the
// accounting provider when their invoice is created.
const rejectInvoicePrefix = "reject-invoice-"

// Orders whose id starts with this prefix get a 503 on the first CRM call
// of each order, and only on the first; firstCRMFailure records when.
const failFirstCRMCallPrefix = "jitter-"

var firstCRMFailure sync.Map // idempotency key → time.Time

// Orders whose id starts with this prefix get a permanent card error on
// their charge whose message names the customer and the card, as Stripe's
// messages can.
const personalDeclinePrefix = "pii-"

// personalDecline is that card error's message.
const personalDecline = "The card 4242 4242 4242 4242 of ada.lovelace@example.com was declined."

// faulty wraps the sandbox with the few deterministic provider failures the
// tests here need, keyed on the order id inside the idempotency key.
func faulty(next http.Handler) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if r.Method == http.MethodPost && r.URL.Path == "/crm/contacts" &&
			strings.HasPrefix(key, action.OrderKey(failFirstCRMCallPrefix).String()) {
			mu.Lock()
			first := !seen[key]
			seen[key] = true
			mu.Unlock()
			if first {
				firstCRMFailure.Store(key, time.Now())
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"unavailable"}}`)
				return
			}
		}
		if r.Method == http.MethodPost && r.URL.Path == "/payments/charges" &&
			strings.HasPrefix(key, action.OrderKey(personalDeclinePrefix).String()) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = io.WriteString(w, `{"error":{"type":"card_error","code":"card_declined","message":"`+personalDecline+`"}}`)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/accounting/invoices" &&
			strings.HasPrefix(key, action.OrderKey(rejectInvoicePrefix).String()) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"tax_id_invalid","message":"customer tax id is invalid"}}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// order returns a valid order with the given id, for a customer of its own.
func order(id string) action.Order {
	return action.Order{
		OrderID:  id,
		Customer: action.Customer{Email: "ada+" + id + "@example.com", Name: "Ada Lovelace"},
		Currency: "eur",
		Amount:   4500,
		Items: []action.Item{
			{SKU: "book", Quantity: 2, UnitAmount: 1500},
			{SKU: "pen", Quantity: 3, UnitAmount: 500},
		},
	}
}

// call sends a request to the API and returns the status, headers and body.
func call(t *testing.T, method, path string, body any, token string) (int, http.Header, []byte) {
	t.Helper()
	status, header, raw, err := send(method, path, body, token)
	if err != nil {
		t.Fatal(err)
	}
	return status, header, raw
}

// send is call for goroutines, which must not stop the test themselves.
func send(method, path string, body any, token string) (int, http.Header, []byte, error) {
	return sendTo(env.api.URL, method, path, body, token)
}

// sendTo is send to another server, such as the sandbox.
func sendTo(base, method, path string, body any, token string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("new request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, resp.Header, raw, nil
}

// awaitOrder polls GET /v1/orders/{id} until the status is one of want.
func awaitOrder(t *testing.T, id string, want ...action.Status) workflows.OrderState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last workflows.OrderState
	// The last answer that was not 200, if the last answer was not.
	var failed string
	for time.Now().Before(deadline) {
		status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken)
		failed = ""
		if status != http.StatusOK {
			failed = fmt.Sprintf("; the last read answered %d %s", status, body)
		}
		if status == http.StatusOK {
			if err := json.Unmarshal(body, &last); err != nil {
				t.Fatalf("decode order: %v: %s", err, body)
			}
			for _, w := range want {
				if last.Status == w {
					return last
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("order %s: status %q after 60 s, want one of %v (state %+v)%s", id, last.Status, want, last, failed)
	return last
}

// awaitPaymentWait waits until an order waits for its payment: its payment
// step waiting, as processing within the grace or as awaiting_payment
// after it.
func awaitPaymentWait(t *testing.T, id string) {
	t.Helper()
	waitFor(t, "order "+id+" to wait for its payment", func() bool {
		status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken)
		var st workflows.OrderState
		return status == http.StatusOK && json.Unmarshal(body, &st) == nil && paymentWaiting(st)
	})
}

// paymentWaiting reports whether an order's payment step waits.
func paymentWaiting(st workflows.OrderState) bool {
	for _, s := range st.Steps {
		if s.Name == workflows.StepPayment {
			return s.Status == action.StepWaiting
		}
	}
	return false
}

// countFor reports how many records of a collection carry the external
// reference "<workflow id>/<step>".
func countFor(state sandbox.State, system, collection, orderID, step string) int {
	return state[system][collection].ByExternalRef[action.OrderKey(orderID).String()+"/"+step]
}

// chargeReads counts the GETs of one charge the sandbox received.
func chargeReads(chargeID string) int {
	n := 0
	for _, c := range env.sandbox.Calls("payments", "get_charge", "") {
		if strings.HasSuffix(c.Path, "/"+chargeID) {
			n++
		}
	}
	return n
}

func decodeJSON(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// testConfig points every provider at the test sandbox, with its client.
func testConfig() config.Config {
	cfg := providerConfig(env.provider.URL)
	cfg.SetSandboxClient("test-client", "test-secret-0123456789")
	return cfg
}

// providerConfig points every provider at the sandbox served at url.
func providerConfig(url string) config.Config {
	cfg := config.Config{}
	if err := cfg.SetPayloadKeys([]string{testPayloadKey}); err != nil {
		panic(err)
	}
	for _, name := range system.Names() {
		setProviderURL(&cfg, name, url+"/"+name)
	}
	return cfg
}

// startWorkers runs handoff's workers on c against cfg's providers; the
// caller stops them.
func startWorkers(t *testing.T, c client.Client, cfg config.Config) *worker.Workers {
	t.Helper()
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := worker.New(c, acts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ws
}

func testActivities(t *testing.T) *activities.Activities {
	t.Helper()
	acts, err := worker.NewActivities(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return acts
}
