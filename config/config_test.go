package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/system"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "localhost:7233" || c.Temporal.Namespace != "default" || c.APIAddr != ":8080" || c.Sandbox.Addr != ":8090" {
		t.Errorf("defaults = %+v", c)
	}
	for _, name := range system.Names() {
		p, ok := c.Provider(name)
		if !ok || p.Provider != "sandbox" || p.URL != "http://localhost:8090/"+name {
			t.Errorf("provider %s = %+v, want the local sandbox", name, p)
		}
	}
	if c.PaymentPollInterval != 500*time.Millisecond {
		t.Errorf("poll interval = %s, want 500ms", c.PaymentPollInterval)
	}
}

func TestLoadReadsTheEnvironment(t *testing.T) {
	t.Setenv("HANDOFF_TEMPORAL_ADDRESS", "temporal.internal:7233")
	t.Setenv("HANDOFF_TEMPORAL_NAMESPACE", "shop")
	t.Setenv("HANDOFF_API_TOKENS", "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb")
	t.Setenv("HANDOFF_SANDBOX_ADDR", "127.0.0.1:9999")
	t.Setenv("HANDOFF_CRM_URL", "https://crm.example.com/api")
	t.Setenv("HANDOFF_PAYMENTS_WEBHOOK_SECRETS", "whsec_c2VjcmV0LWE=,whsec_c2VjcmV0LWI=")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "temporal.internal:7233" || c.Temporal.Namespace != "shop" {
		t.Errorf("temporal = %+v", c.Temporal)
	}
	if len(c.APITokens) != 2 {
		t.Errorf("api tokens = %d, want 2", len(c.APITokens))
	}
	if c.Providers["crm"].URL != "https://crm.example.com/api" {
		t.Errorf("crm url = %q", c.Providers["crm"].URL)
	}
	if c.Providers["payments"].URL != "http://127.0.0.1:9999/payments" {
		t.Errorf("payments url = %q, want the sandbox at the configured address", c.Providers["payments"].URL)
	}
	if len(c.Providers["payments"].WebhookSecrets) != 2 {
		t.Errorf("webhook secrets = %d, want 2", len(c.Providers["payments"].WebhookSecrets))
	}
	if err := c.Validate(ValidateOptions{NeedAPITokens: true}); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Setenv("HANDOFF_TEMPORAL_ADDRESS", "no-port")
	t.Setenv("HANDOFF_API_TOKENS", "short")
	t.Setenv("HANDOFF_CRM_PROVIDER", "stripe")
	t.Setenv("HANDOFF_MAIL_URL", "ftp://mail")
	t.Setenv("HANDOFF_TEMPORAL_TLS_CERT", "/nonexistent/cert.pem")
	t.Setenv("HANDOFF_WORKER_METRICS_URLS", "http://worker:9090/metrics,worker:9090")
	t.Setenv("HANDOFF_SANDBOX_SETTLE_DELAY", "-1s")
	t.Setenv("HANDOFF_WORKER_ACTIVITY_POLLERS", "-2")
	t.Setenv("HANDOFF_WORKER_WORKFLOW_POLLERS", "1")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(ValidateOptions{NeedAPITokens: true})
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, want := range []string{
		"HANDOFF_TEMPORAL_ADDRESS", "HANDOFF_API_TOKENS", "HANDOFF_CRM_PROVIDER",
		"HANDOFF_MAIL_URL", "HANDOFF_TEMPORAL_TLS_CERT and HANDOFF_TEMPORAL_TLS_KEY", `HANDOFF_WORKER_METRICS_URLS "worker:9090"`,
		"HANDOFF_SANDBOX_SETTLE_DELAY", "HANDOFF_WORKER_ACTIVITY_POLLERS", "HANDOFF_WORKER_WORKFLOW_POLLERS: must be at least 2",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors do not mention %s:\n%v", want, err)
		}
	}
}

func TestWorkerVersioningSettings(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Worker.Versioned() || c.Worker.Deployment != "handoff" || c.Worker.Promote != "auto" || c.Worker.OrderVersioning != "auto-upgrade" || c.Worker.BuildID != "" {
		t.Errorf("defaults = %+v, want versioned deployment handoff, promote auto, orders auto-upgrade, build id from the binary", c.Worker)
	}
	t.Setenv("HANDOFF_WORKER_DEPLOYMENT", "handoff.eu")
	t.Setenv("HANDOFF_WORKER_BUILD_ID", "v1 2")
	t.Setenv("HANDOFF_WORKER_PROMOTE", "later")
	t.Setenv("HANDOFF_WORKER_ORDER_VERSIONING", "sticky")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	err = c.Validate(ValidateOptions{})
	for _, want := range []string{"HANDOFF_WORKER_DEPLOYMENT", "HANDOFF_WORKER_BUILD_ID", `HANDOFF_WORKER_PROMOTE: must be one of auto, manual, got "later"`,
		`HANDOFF_WORKER_ORDER_VERSIONING: must be one of auto-upgrade, pinned, got "sticky"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors do not mention %s:\n%v", want, err)
		}
	}
	t.Setenv("HANDOFF_WORKER_VERSIONING", "yes")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ValidateOptions{}); err == nil || !strings.Contains(err.Error(), "HANDOFF_WORKER_VERSIONING: must be one of on, off") {
		t.Errorf("Validate = %v, want HANDOFF_WORKER_VERSIONING refused", err)
	}
}

func TestValidateRequiresAPITokensOnlyWhenAsked(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ValidateOptions{}); err != nil {
		t.Errorf("worker validation: %v", err)
	}
	if err := c.Validate(ValidateOptions{NeedAPITokens: true}); err == nil || !strings.Contains(err.Error(), "HANDOFF_API_TOKENS") {
		t.Errorf("api validation = %v, want HANDOFF_API_TOKENS required", err)
	}
}

func TestLoadRejectsMalformedValues(t *testing.T) {
	t.Setenv("HANDOFF_PAYMENT_TIMEOUT", "ten minutes")
	if _, err := Load(); err == nil {
		t.Error("Load with a malformed duration = nil error")
	}
}

func TestLoadIgnoresUnprefixedVariables(t *testing.T) {
	t.Setenv("NAMESPACE", "prod")
	t.Setenv("ADDRESS", "elsewhere:1")
	t.Setenv("API_KEY", "leak")
	t.Setenv("URL", "http://evil:1")
	t.Setenv("API_TOKENS", "aaaaaaaaaaaaaaaaaaaa")
	t.Setenv("PROVIDER", "stripe")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Namespace != "default" || c.Temporal.Address != "localhost:7233" || c.Temporal.APIKey != "" ||
		c.Providers["payments"].URL != "http://localhost:8090/payments" || len(c.APITokens) != 0 || c.Providers["payments"].Provider != "sandbox" {
		t.Errorf("unprefixed variables leaked into the configuration: %+v", c)
	}
}

func TestEveryDocumentedVariableIsRead(t *testing.T) {
	t.Setenv("HANDOFF_TEMPORAL_TLS_CERT", "cert.pem")
	t.Setenv("HANDOFF_TEMPORAL_TLS_KEY", "key.pem")
	t.Setenv("HANDOFF_TEMPORAL_TLS_CA", "ca.pem")
	t.Setenv("HANDOFF_TEMPORAL_API_KEY", "key")
	t.Setenv("HANDOFF_TEMPORAL_UI_URL", "https://ui.example.com")
	t.Setenv("HANDOFF_OPERATOR_TOKENS", "op-token-0123456789")
	t.Setenv("HANDOFF_API_ADDR", ":9000")
	t.Setenv("HANDOFF_MAIL_PROVIDER", "sandbox")
	t.Setenv("HANDOFF_ACCOUNTING_WEBHOOK_SECRETS", "whsec_x")
	t.Setenv("HANDOFF_PAYMENT_POLL_INTERVAL", "2s")
	t.Setenv("HANDOFF_PAYMENT_TIMEOUT", "1h")
	t.Setenv("HANDOFF_RECONCILE_SINCE", "168h")
	t.Setenv("HANDOFF_RECONCILE_MAX_REPAIRS", "25")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Temporal.TLS.Cert, c.Temporal.TLS.Key, c.Temporal.TLS.CA, c.Temporal.APIKey, c.Temporal.UI.URL,
		strings.Join(c.OperatorTokens, ","), c.APIAddr, c.Providers["mail"].Provider, strings.Join(c.Providers["accounting"].WebhookSecrets, ","),
		c.PaymentPollInterval.String(), c.PaymentTimeout.String(), c.Reconcile.Since.String(), strconv.Itoa(c.Reconcile.MaxRepairs)}
	want := []string{"cert.pem", "key.pem", "ca.pem", "key", "https://ui.example.com",
		"op-token-0123456789", ":9000", "sandbox", "whsec_x", "2s", "1h0m0s", "168h0m0s", "25"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d = %q, want %q", i, got[i], want[i])
		}
	}
	if !c.Temporal.TLSEnabled() {
		t.Error("TLSEnabled = false with certificate files set")
	}
}

func TestValidateRefusesMalformedWebhookSecretsNamingTheVariable(t *testing.T) {
	tests := []struct {
		name, provider, secrets, want string
	}{
		{"not base64", "sandbox", "whsec_not-base64!", "HANDOFF_PAYMENTS_WEBHOOK_SECRETS: secret 1"},
		{"no prefix", "sandbox", "whsec_c2VjcmV0,c2VjcmV0", "HANDOFF_PAYMENTS_WEBHOOK_SECRETS: secret 2"},
		{"empty key", "sandbox", "whsec_", "HANDOFF_PAYMENTS_WEBHOOK_SECRETS: secret 1"},
		{"stripe without prefix", "stripe", "sk_test_123", "HANDOFF_PAYMENTS_WEBHOOK_SECRETS: secret 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HANDOFF_PAYMENTS_PROVIDER", tt.provider)
			t.Setenv("HANDOFF_PAYMENTS_API_KEY", "sk_test_123")
			t.Setenv("HANDOFF_PAYMENTS_WEBHOOK_SECRETS", tt.secrets)
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate(ValidateOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	t.Run("valid secrets pass", func(t *testing.T) {
		t.Setenv("HANDOFF_PAYMENTS_WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		c, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(ValidateOptions{}); err != nil {
			t.Errorf("Validate = %v", err)
		}
	})
}

func TestProviderLimitsComeFromTheContractAndTheEnvironmentOverrides(t *testing.T) {
	t.Setenv("HANDOFF_PAYMENTS_PROVIDER", "stripe")
	t.Setenv("HANDOFF_PAYMENTS_API_KEY", "sk_test_development_only")
	t.Setenv("HANDOFF_PAYMENTS_RATE_LIMIT", "7")
	t.Setenv("HANDOFF_PAYMENTS_OPERATION_TIMEOUTS", "create_charge:20s")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	stripe, ok := contracts.For("payments", "stripe")
	if !ok {
		t.Fatal("no stripe contract")
	}
	p := c.Providers["payments"]
	if p.Timeout != time.Duration(stripe.Limits.Timeout) || p.ConnectTimeout != time.Duration(stripe.Limits.ConnectTimeout) || p.Concurrency != stripe.Limits.Concurrency {
		t.Errorf("payments limits = %s %s %d, want the stripe contract's %+v", p.Timeout, p.ConnectTimeout, p.Concurrency, stripe.Limits)
	}
	if p.RateLimit != 7 || p.OperationTimeouts["create_charge"] != 20*time.Second {
		t.Errorf("payments rate %v, create_charge timeout %s: the environment did not override the contract", p.RateLimit, p.OperationTimeouts["create_charge"])
	}
	if p.URL != stripe.API.BaseURL || p.Contract == nil || p.Contract.Provider != "stripe" {
		t.Errorf("payments url %q, contract %v: want the stripe contract's", p.URL, p.Contract)
	}
	if err := c.Validate(ValidateOptions{}); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestAContractsDirectoryThatDoesNotParseOrContradictsTheRegistryIsRefused(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HANDOFF_CONTRACTS_DIR", dir)
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "HANDOFF_CONTRACTS_DIR") {
		t.Errorf("Load with an empty contracts directory = %v, want an error naming HANDOFF_CONTRACTS_DIR", err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "system: payments\nprovider: [\n")
	write("b.yaml", "system: payments\nprovidr: sandbox\n")
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), "a.yaml") || !strings.Contains(err.Error(), "b.yaml") {
		t.Errorf("Load = %v, want both broken files named", err)
	}
	_ = os.Remove(filepath.Join(dir, "a.yaml"))
	write("b.yaml", "system: payments\nprovider: sandbox\nauth: {scheme: none}\nlimits: {timeout: 1s, connect_timeout: 1s, rate_limit: 1, concurrency: 1}\n")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(ValidateOptions{})
	for _, want := range []string{"b.yaml", "api: the pinned version", "invalid_data", "no operations"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %q", err, want)
		}
	}
}

func TestAnSMTPMailProviderIsConfiguredAndCheckedByItsVariables(t *testing.T) {
	t.Setenv("HANDOFF_MAIL_PROVIDER", "smtp")
	t.Setenv("HANDOFF_MAIL_URL", "https://shop:hunter2-development-only@smtp.example.com")
	t.Setenv("HANDOFF_MAIL_FROM", "Shop <shop@example.com>")
	t.Setenv("HANDOFF_MAIL_USERNAME", "shop")
	t.Setenv("HANDOFF_MAIL_STARTTLS", "sometimes")
	t.Setenv("HANDOFF_MAIL_TLS_CA_FILE", "/nonexistent/ca.pem")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(ValidateOptions{})
	for _, want := range []string{"HANDOFF_MAIL_URL", "smtp or smtps", "not in the URL", "HANDOFF_MAIL_FROM", "HANDOFF_MAIL_PASSWORD", "HANDOFF_MAIL_STARTTLS", "HANDOFF_MAIL_TLS_CA_FILE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate shows the URL's password: %v", err)
	}
	t.Setenv("HANDOFF_MAIL_STARTTLS", "off")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ValidateOptions{}); err == nil || !strings.Contains(err.Error(), "never sent in the clear") {
		t.Errorf("STARTTLS off with credentials: %v", err)
	}

	t.Setenv("HANDOFF_MAIL_URL", "smtps://mail.example.com:465")
	t.Setenv("HANDOFF_MAIL_FROM", "shop@example.com")
	t.Setenv("HANDOFF_MAIL_PASSWORD", "development-only")
	t.Setenv("HANDOFF_MAIL_STARTTLS", "required")
	t.Setenv("HANDOFF_MAIL_TLS_CA_FILE", "")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ValidateOptions{}); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	p, _ := c.Provider("mail")
	if p.Timeout != 20*time.Second || p.RateLimit != 10 || p.Contract == nil || p.Contract.Provider != "smtp" {
		t.Errorf("mail provider = timeout %v, rate %v, contract %v; want the SMTP contract's limits", p.Timeout, p.RateLimit, p.Contract)
	}
}

func TestACallTimeoutMustFitInOneAttemptOfAStep(t *testing.T) {
	t.Setenv("HANDOFF_PAYMENTS_TIMEOUT", "30s")
	t.Setenv("HANDOFF_CRM_OPERATION_TIMEOUTS", "upsert_contact:1m")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(ValidateOptions{})
	for _, want := range []string{"HANDOFF_PAYMENTS_TIMEOUT", "HANDOFF_CRM_OPERATION_TIMEOUTS: upsert_contact is at most 20s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}

func TestLogFormatAndLevelAreReadAndChecked(t *testing.T) {
	t.Setenv("HANDOFF_LOG_FORMAT", "")
	t.Setenv("HANDOFF_LOG_LEVEL", "")
	if l, err := LoadLog("json"); err != nil || !l.JSON || l.Level != slog.LevelInfo {
		t.Errorf("defaults: %+v %v", l, err)
	}
	t.Setenv("HANDOFF_LOG_FORMAT", "text")
	t.Setenv("HANDOFF_LOG_LEVEL", "debug")
	if l, err := LoadLog("json"); err != nil || l.JSON || l.Level != slog.LevelDebug {
		t.Errorf("text, debug: %+v %v", l, err)
	}
	t.Setenv("HANDOFF_LOG_FORMAT", "xml")
	if _, err := LoadLog("json"); err == nil || !strings.Contains(err.Error(), "HANDOFF_LOG_FORMAT") {
		t.Errorf("xml: %v", err)
	}
	t.Setenv("HANDOFF_LOG_FORMAT", "json")
	t.Setenv("HANDOFF_LOG_LEVEL", "loud")
	if _, err := LoadLog("json"); err == nil || !strings.Contains(err.Error(), "HANDOFF_LOG_LEVEL") {
		t.Errorf("loud: %v", err)
	}
}
