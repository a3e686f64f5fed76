package providers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
)

// Every provider call gets one JSON log line that says what was called for
// which action, how it ended and whether it will be tried again, with the
// endpoint as a template and nothing of the request's content.
func TestEveryProviderCallGetsOneLogLine(t *testing.T) {
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"down"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"ct_1","version":2}`))
	}))
	t.Cleanup(srv.Close)
	contract, ok := contracts.For("crm", "sandbox")
	if !ok {
		t.Fatal("no crm contract")
	}
	var buf bytes.Buffer
	c := providers.NewHTTPClient("crm", srv.URL, providers.HTTPOptions{Contract: &contract, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	call := providers.Call{IdempotencyKey: "customer/c-1/crm-v3", CorrelationID: "corr-1"}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
	update := func(ctx context.Context, body map[string]string) error {
		return c.Do(ctx, providers.Request{Operation: "update_contact", Method: http.MethodPatch, Path: "/contacts/ct_1?token=planted-secret", Call: call, Body: body}, nil)
	}
	ctx := providers.WithCallContext(context.Background(), providers.CallContext{
		Attrs: []slog.Attr{slog.String("workflow_id", "customer/c-1")}, Attempt: 1, MaxAttempts: 8})

	_ = update(ctx, map[string]string{"email": "planted.person@example.com"})
	l := lines()
	if len(l) != 1 {
		t.Fatalf("lines: %v", l)
	}
	want := map[string]any{"msg": "provider call", "level": "WARN", "system": "crm", "operation": "update_contact", "method": "PATCH",
		"endpoint": "/contacts/{id}", "status": float64(503), "category": "temporary", "will_retry": true, "attempt": float64(1),
		"idempotency_key": "customer/c-1/crm-v3", "correlation_id": "corr-1", "workflow_id": "customer/c-1", "outcome": "failed"}
	for k, v := range want {
		if l[0][k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, l[0][k], v, l[0])
		}
	}
	if _, ok := l[0]["duration_ms"]; !ok {
		t.Errorf("no duration: %v", l[0])
	}

	last := providers.WithCallContext(context.Background(), providers.CallContext{Attempt: 8, MaxAttempts: 8})
	_ = update(last, map[string]string{"name": "x"})
	if l := lines(); l[0]["will_retry"] != false {
		t.Errorf("the last attempt: will_retry %v", l[0]["will_retry"])
	}

	_ = update(ctx, map[string]string{"email": "not an address"})
	if l := lines(); l[0]["outcome"] != "not_sent" || l[0]["category"] != "permanent" || l[0]["will_retry"] != false {
		t.Errorf("a request the contract refuses: %v", l[0])
	}

	status = http.StatusOK
	if err := update(ctx, map[string]string{"name": "Planted Name"}); err != nil {
		t.Fatal(err)
	}
	if l := lines(); l[0]["outcome"] != "ok" || l[0]["status"] != float64(200) || l[0]["level"] != "INFO" || l[0]["remote_ref"] != "ct_1" {
		t.Errorf("a call that succeeded: %v", l[0])
	}

	_ = update(ctx, map[string]string{"email": "planted.person@example.com", "name": "Planted Name"})
	if s := buf.String(); strings.Contains(s, "planted") || strings.Contains(s, "Planted") {
		t.Errorf("the log holds request content or query values: %s", s)
	}
}
