package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// planted are recognisable secrets and personal data, set in every place
// they can enter handoff. None may appear in a log line, an API error, a
// metric label or a workflow's failure messages.
var planted = struct {
	apiToken, operatorToken, clientSecret, paymentsSecret, crmSecret, accountingSecret string
	email, name, card                                                                  string
}{
	apiToken:         "planted-api-token-7f3a9c2e41b8d6",
	operatorToken:    "planted-operator-token-c92d1e7a40",
	clientSecret:     "planted-client-secret-5be81f0c2d",
	paymentsSecret:   "whsec_" + base64.StdEncoding.EncodeToString([]byte("planted-payments-hook-key")),
	crmSecret:        "whsec_" + base64.StdEncoding.EncodeToString([]byte("planted-crm-webhook-keyx")),
	accountingSecret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("planted-accounting-hook-k")),
	email:            "zebulon.planted@example.com",
	name:             "Zebulon Plantedname",
	card:             "4111111111111111",
}

// secrets are what must appear nowhere outside the process's memory;
// personal data is in a workflow's input (it is the order), encrypted, and
// nowhere in logs, errors, labels or failure messages.
func plantedSecrets() map[string]string {
	return map[string]string{
		"API token": planted.apiToken, "operator token": planted.operatorToken, "client secret": planted.clientSecret,
		"payments webhook secret": planted.paymentsSecret, "CRM webhook secret": planted.crmSecret,
		"accounting webhook secret": planted.accountingSecret, "card number": planted.card,
	}
}

func plantedPersonal() map[string]string {
	local, _, _ := strings.Cut(planted.email, "@")
	return map[string]string{"customer e-mail": local, "customer name": planted.name, "customer surname": "Plantedname"}
}

// opsStack is a running `handoff dev` with the planted secrets.
type opsStack struct {
	dev                        *devProcess
	api, sandbox, temporalAddr string
	// errors are the bodies of every API answer that was an error.
	errors []string
}

func (s *opsStack) request(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	status, raw := devRequest(t, method, s.api+path, token, body)
	if status >= 400 {
		s.errors = append(s.errors, string(raw))
	}
	return status, raw
}

func (s *opsStack) fault(t *testing.T, f map[string]any) {
	t.Helper()
	if status, body := devRequest(t, http.MethodPost, s.sandbox+"/_sandbox/faults", "", f); status >= 300 {
		t.Fatalf("fault %v: %d %s", f, status, body)
	}
}

func (s *opsStack) placeOrder(t *testing.T, id, correlation string) {
	t.Helper()
	o := order(id)
	o.Customer = action.Customer{Email: strings.Replace(planted.email, "@", "+"+strings.ToLower(id)+"@", 1), Name: planted.name}
	raw, _ := json.Marshal(o)
	req, _ := http.NewRequest(http.MethodPost, s.api+"/v1/orders", strings.NewReader(string(raw)))
	req.Header.Set("Authorization", "Bearer "+planted.apiToken)
	req.Header.Set("X-Correlation-ID", correlation)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("place %s: %d", id, resp.StatusCode)
	}
}

func (s *opsStack) awaitStatus(t *testing.T, id string, want action.Status) {
	t.Helper()
	awaitDevOrder(t, s.api, planted.apiToken, id, want)
}

// logLines are the JSON log lines the process wrote.
func (s *opsStack) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(s.dev.Output(), "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("a log line is not JSON: %.200s", l)
			continue
		}
		out = append(out, m)
	}
	return out
}

func startOpsStack(t *testing.T) *opsStack {
	t.Helper()
	s := &opsStack{
		temporalAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		api:          fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		sandbox:      fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
	}
	s.dev = startDev(t, buildHandoff(t), t.TempDir(), []string{
		"HANDOFF_LOG_FORMAT=json",
		"HANDOFF_TEMPORAL_ADDRESS=" + s.temporalAddr,
		"HANDOFF_API_ADDR=" + strings.TrimPrefix(s.api, "http://"),
		"HANDOFF_SANDBOX_ADDR=" + strings.TrimPrefix(s.sandbox, "http://"),
		"HANDOFF_PAYMENT_POLL_INTERVAL=200ms",
		"HANDOFF_API_TOKENS=" + planted.apiToken,
		"HANDOFF_OPERATOR_TOKENS=" + planted.operatorToken,
		"HANDOFF_SANDBOX_CLIENT_SECRET=" + planted.clientSecret,
		"HANDOFF_PAYMENTS_WEBHOOK_SECRETS=" + planted.paymentsSecret,
		"HANDOFF_CRM_WEBHOOK_SECRETS=" + planted.crmSecret,
		"HANDOFF_ACCOUNTING_WEBHOOK_SECRETS=" + planted.accountingSecret,
	})
	return s
}

// TestOperationsOfTheWholeSystem runs `make run`'s stack with planted
// secrets and personal data: orders with faults, duplicated webhooks, a
// revoked credential, operators' answers (through the API and through the
// operations page in Chromium), reconciliation and malformed requests.
// Then one order's whole story is found by its correlation id, the metrics
// show the outcomes, and nothing planted is found in any log line, API
// error, metric label or workflow failure message.
func TestOperationsOfTheWholeSystem(t *testing.T) {
	selfContained(t)
	s := startOpsStack(t)
	const story = "story-ops-park"
	s.fault(t, map[string]any{"system": "payments", "mode": "duplicate_webhooks"})
	s.fault(t, map[string]any{"system": "crm", "operation": "upsert_contact", "mode": "status", "status": 503, "count": 1})
	s.fault(t, map[string]any{"system": "payments", "operation": "create_charge", "mode": "rate_limit", "count": 1, "key_prefix": "order/OPS-PARK/"})
	s.fault(t, map[string]any{"system": "accounting", "operation": "create_invoice", "mode": "status", "status": 422, "key_prefix": "order/OPS-PARK/"})
	for i := 1; i <= 4; i++ {
		s.placeOrder(t, fmt.Sprintf("OPS-%d", i), fmt.Sprintf("corr-ops-%d", i))
	}
	s.placeOrder(t, "OPS-PARK", story)
	for i := 1; i <= 4; i++ {
		s.awaitStatus(t, fmt.Sprintf("OPS-%d", i), action.StatusCompleted)
	}
	s.awaitStatus(t, "OPS-PARK", action.StatusNeedsAttention)

	// A revoked credential parks an order; restored, an operator retries
	// it through the API.
	if status, _ := devRequest(t, http.MethodPost, s.sandbox+"/_sandbox/revoke", "", nil); status >= 300 {
		t.Fatalf("revoke: %d", status)
	}
	s.placeOrder(t, "OPS-REV", "corr-ops-rev")
	s.awaitStatus(t, "OPS-REV", action.StatusNeedsAttention)
	devRequest(t, http.MethodDelete, s.sandbox+"/_sandbox/revoke", "", nil)
	if status, body := s.request(t, http.MethodPost, "/v1/actions/order/OPS-REV/retry", planted.operatorToken, map[string]string{"reason": "client restored"}); status != http.StatusOK {
		t.Fatalf("retry OPS-REV: %d %s", status, body)
	}
	s.awaitStatus(t, "OPS-REV", action.StatusCompleted)

	// Requests that fail, carrying planted values where a client could.
	s.request(t, http.MethodPost, "/v1/orders", planted.apiToken+"x", order("OPS-X"))
	s.request(t, http.MethodPost, "/v1/orders", planted.apiToken, map[string]any{"order_id": "OPS-BAD", "card": planted.card,
		"customer": map[string]string{"email": "not an address " + planted.email + planted.card, "name": planted.name}})
	s.request(t, http.MethodGet, "/v1/actions", planted.apiToken, nil)
	s.request(t, http.MethodPost, "/webhooks/payments", "", map[string]string{"card": planted.card, "email": planted.email})
	s.request(t, http.MethodPost, "/v1/actions/order/OPS-1/retry", planted.operatorToken, map[string]string{"reason": "not parked"})

	// The operations page, in a real browser: the parked order is retried
	// from it and completes; a provider is paused and resumed.
	devRequest(t, http.MethodDelete, s.sandbox+"/_sandbox/faults", "", nil)
	if !browseOperationsPage(t, s) {
		if status, body := s.request(t, http.MethodPost, "/v1/actions/order/OPS-PARK/retry", planted.operatorToken, map[string]string{"reason": "fixed"}); status != http.StatusOK {
			t.Fatalf("retry OPS-PARK: %d %s", status, body)
		}
	}
	s.awaitStatus(t, "OPS-PARK", action.StatusCompleted)

	if status, body := s.request(t, http.MethodPost, "/v1/reconciliations", planted.operatorToken, nil); status != http.StatusAccepted && status != http.StatusOK {
		t.Fatalf("reconcile: %d %s", status, body)
	}
	awaitReconciliation(t, s)

	checkStory(t, s.logLines(t), story)
	metrics := checkOutcomeMetrics(t, s)
	scanForPlanted(t, s, metrics)
}

// awaitReconciliation waits until the latest reconciliation has a report.
func awaitReconciliation(t *testing.T, s *opsStack) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		status, body := devRequest(t, http.MethodGet, s.api+"/v1/reconciliations/latest", planted.operatorToken, nil)
		if status == http.StatusOK && strings.Contains(string(body), `"finished_at"`) {
			return
		}
	}
	t.Fatal("no reconciliation report within 60 s")
}

// checkStory finds one order's whole story by its correlation id: the API
// request, each provider call with its retry, the webhook, the parking,
// the operator's retry and every step's outcome.
func checkStory(t *testing.T, lines []map[string]any, id string) {
	t.Helper()
	if len(lines) < 100 {
		t.Fatalf("only %d JSON log lines", len(lines))
	}
	var story []string
	seen := map[string]bool{}
	for _, l := range lines {
		if l["correlation_id"] != id {
			continue
		}
		msg, _ := l["msg"].(string)
		story = append(story, fmt.Sprintf("%v %v %v %v %v", msg, l["operation"], l["attempt"], l["will_retry"], l["step"]))
		switch {
		case msg == "request" && l["route"] == "/v1/orders":
			seen["API request"] = true
		case msg == "provider call" && l["operation"] == "create_charge" && l["will_retry"] == true && l["status"] == float64(429):
			seen["rate-limited charge, to be retried"] = true
		case msg == "provider call" && l["operation"] == "create_charge" && l["outcome"] == "ok" && l["attempt"] == float64(2):
			seen["charge on its second attempt"] = true
		case msg == "provider call" && l["operation"] == "create_invoice" && l["will_retry"] == false && l["category"] == "permanent":
			seen["refused invoice, not retried"] = true
		case msg == "webhook applied" && l["system"] == "payments" && l["webhook_correlation_id"] != "":
			seen["payment webhook"] = true
		case msg == "action needs attention":
			seen["parked"] = true
		case msg == "operator action" && l["operation"] == "retry":
			seen["operator's retry"] = true
		case msg == "step finished" && l["step"] == "confirmation" && l["outcome"] == "succeeded":
			seen["confirmation sent"] = true
		}
	}
	for _, want := range []string{"API request", "rate-limited charge, to be retried", "charge on its second attempt", "refused invoice, not retried",
		"payment webhook", "parked", "operator's retry", "confirmation sent"} {
		if !seen[want] {
			t.Errorf("grepping %s does not find: %s\n%s", id, want, strings.Join(story, "\n"))
		}
	}
}

// checkOutcomeMetrics reads /metrics and checks the outcomes it shows.
func checkOutcomeMetrics(t *testing.T, s *opsStack) string {
	t.Helper()
	want := []*regexp.Regexp{
		regexp.MustCompile(`handoff_orders_finished_total\{status="completed"\} ([6-9]|\d\d)`),
		regexp.MustCompile(`handoff_provider_rate_limited_total\{operation="create_charge",system="payments"\} [1-9]`),
		regexp.MustCompile(`handoff_provider_permanent_failures_total\{category="permanent",operation="create_invoice",system="accounting"\} [1-9]`),
		regexp.MustCompile(`handoff_credential_refresh_failures_total\{category="[a-z]+",system="crm"\} [1-9]`),
		regexp.MustCompile(`handoff_credential_expires_in_seconds\{system="payments"\} \d`),
		regexp.MustCompile(`handoff_webhook_delivery_delay_seconds_count\{system="payments"\} [1-9]`),
		regexp.MustCompile(`handoff_webhook_processing_delay_seconds_count\{system="payments"\} [1-9]`),
		regexp.MustCompile(`handoff_reconciliation_runs_total [1-9]`),
		regexp.MustCompile(`handoff_task_queue_backlog\{system="payments"\} 0`),
		regexp.MustCompile(`handoff_temporal_state_up 1`),
	}
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		_, raw := devRequest(t, http.MethodGet, s.api+"/metrics", "", nil)
		body = string(raw)
		missing := 0
		for _, re := range want {
			if !re.MatchString(body) {
				missing++
			}
		}
		if missing == 0 {
			return body
		}
	}
	for _, re := range want {
		if !re.MatchString(body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	return body
}

// scanForPlanted counts every planted value found in the logs, the API's
// errors, the metric labels, the workflows' failure messages and anywhere
// in the workflows' histories, payloads decoded from base64 but not
// decrypted. The figure must be 0.
func scanForPlanted(t *testing.T, s *opsStack, metrics string) {
	t.Helper()
	secrets, personal := plantedSecrets(), plantedPersonal()
	everything := map[string]string{}
	for k, v := range secrets {
		everything[k] = v
	}
	for k, v := range personal {
		everything[k] = v
	}
	found := 0
	scan := func(where, text string, values map[string]string) {
		for what, v := range values {
			if strings.Contains(strings.ToLower(text), strings.ToLower(v)) {
				found++
				t.Errorf("the %s is in %s", what, where)
			}
		}
	}
	logs := 0
	for _, l := range strings.Split(s.dev.Output(), "\n") {
		if strings.HasPrefix(l, "{") {
			logs++
			scan("a log line", l, everything)
		}
	}
	for _, e := range s.errors {
		scan("an API error", e, everything)
	}
	labels := 0
	for _, l := range strings.Split(metrics, "\n") {
		if i := strings.IndexByte(l, '{'); i > 0 && !strings.HasPrefix(l, "#") {
			labels++
			scan("a metric label", l[i:], everything)
		}
	}
	failures, histories := workflowTexts(t, s.temporalAddr)
	for _, f := range failures {
		scan("a workflow's failure message", f, everything)
	}
	// `handoff dev` encrypts payloads: no planted value, personal data
	// included, is readable in any history (search attributes hold none).
	for _, h := range histories {
		scan("a workflow history", h, everything)
	}
	t.Logf("planted values found: %d, in %d log lines, %d API errors, %d labelled series, %d failure messages and %d histories",
		found, logs, len(s.errors), labels, len(failures), len(histories))
	if logs < 100 || len(s.errors) < 4 || labels < 50 || len(failures) < 3 || len(histories) < 6 {
		t.Errorf("too little scanned to mean anything")
	}
}

// withPayloadsDecoded is a history in Temporal's JSON form followed by
// every payload's data decoded from base64 (not decrypted): what anyone who
// can read Temporal reads.
func withPayloadsDecoded(history string) string {
	out := history
	for _, m := range payloadData.FindAllStringSubmatch(history, -1) {
		if raw, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			out += "\n" + string(raw)
		}
	}
	return out
}

var (
	failureMessage = regexp.MustCompile(`"message":\s*"((?:[^"\\]|\\.)*)"`)
	payloadData    = regexp.MustCompile(`"data":\s*"([A-Za-z0-9+/=]+)"`)
)

// workflowTexts returns every failure message in every workflow's history
// (and the parked actions' reasons, from their memos), and each history as
// text with its payloads decoded.
func workflowTexts(t *testing.T, addr string) (failures, histories []string) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 100, NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			memo, _ := protojson.Marshal(e.GetMemo())
			var text strings.Builder
			text.Write(memo)
			it := c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := protojson.Marshal(ev)
				text.Write(raw)
				for _, m := range failureMessage.FindAllStringSubmatch(string(raw), -1) {
					failures = append(failures, m[1])
				}
			}
			h := withPayloadsDecoded(text.String())
			if reason, ok := e.GetMemo().GetFields()[workflows.MemoReason]; ok {
				failures = append(failures, string(reason.GetData()))
			}
			histories = append(histories, h)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return failures, histories
}
