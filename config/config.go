// Package config holds handoff's configuration: one struct, read once from the
// environment (prefix HANDOFF_), validated as a whole, then passed down. It is the
// only package that reads the environment, so every setting has one name and one
// default, documented in the README's configuration table.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/handoff-hq/handoff/webhooks"
)

// StripeURL is Stripe's API, the default URL of the stripe payments provider.
const StripeURL = "https://api.stripe.com"

// Prefix is the prefix of every environment variable handoff reads.
const Prefix = "HANDOFF"

// Systems names the external systems handoff talks to, in the order they are
// reported. Each has its own Provider settings.
var Systems = []string{"payments", "accounting", "crm", "mail"}

// Config is handoff's whole configuration. Environment names are derived from
// the field names (split at word boundaries), so that only HANDOFF_-prefixed
// variables are ever read.
type Config struct {
	Temporal Temporal

	// APIAddr is where the HTTP API listens.
	APIAddr string `split_words:"true" default:":8080"`
	// APITokens are the bearer tokens accepted on /v1.
	APITokens []string `split_words:"true"`
	// OperatorTokens are the bearer tokens accepted on operator endpoints.
	OperatorTokens []string `split_words:"true"`
	// MetricsAddr is where `handoff worker` serves its Prometheus metrics
	// (the API serves its own on /metrics).
	MetricsAddr string `split_words:"true" default:":9090"`
	// Sandbox configures the provider simulator.
	Sandbox Sandbox

	Payments   Provider
	Accounting Provider
	CRM        Provider
	Mail       Provider

	// PaymentPollInterval is the first pause between two looks at a pending charge.
	PaymentPollInterval time.Duration `split_words:"true" default:"500ms"`
	// PaymentTimeout is how long an order waits for a charge to settle before it
	// needs attention.
	PaymentTimeout time.Duration `split_words:"true" default:"10m"`
	// PaymentWebhookWait is how long an order waits for the payment webhook
	// before it asks the provider for the charge.
	PaymentWebhookWait time.Duration `split_words:"true" default:"30s"`
	// OrphanEventWindow is how long provider events for an order not placed
	// yet are kept before the order needs attention.
	OrphanEventWindow time.Duration `split_words:"true" default:"24h"`

	// Reconcile configures the scheduled reconciliation (HANDOFF_RECONCILE_*).
	Reconcile Reconcile
}

// Reconcile configures reconciliation.
type Reconcile struct {
	// Interval is how often the schedule runs it.
	Interval time.Duration `default:"1h"`
	// PageSize is how many records one page compares.
	PageSize int `split_words:"true" default:"500"`
	// Grace leaves orders younger than it alone: they may be in flight.
	Grace time.Duration `default:"10m"`
	// Since is the look-back window: records older than it are not
	// compared, so that a provider account with years of history (or a
	// fresh one next to an old one) is not "repaired" wholesale.
	Since time.Duration `default:"72h"`
	// MaxRepairs caps the repairs one reconciliation makes; beyond it safe
	// differences are flagged for a person instead.
	MaxRepairs int `split_words:"true" default:"100"`
}

// Temporal says where the Temporal cluster is and how to authenticate to it.
type Temporal struct {
	Address   string `default:"localhost:7233"`
	Namespace string `default:"default"`
	// TLS names the files for mTLS: HANDOFF_TEMPORAL_TLS_CERT, _KEY and _CA.
	TLS TLSFiles
	// APIKey authenticates to Temporal Cloud; it implies TLS.
	APIKey string `split_words:"true"`
	// UI locates the Web UI that links in API answers point to.
	UI WebUI
}

// Sandbox configures the provider simulator (HANDOFF_SANDBOX_*).
type Sandbox struct {
	// Addr is where it listens.
	Addr string `default:":8090"`
	// ClientID and ClientSecret, when set, are the one OAuth2 client the
	// sandbox accepts; every provider call then needs a token it issued.
	ClientID     string `split_words:"true"`
	ClientSecret string `split_words:"true"`
	// WebhookURL is where the sandbox delivers its events, as
	// WebhookURL/<system>; empty means this handoff's API.
	WebhookURL string `split_words:"true"`
}

// TLSFiles are PEM files for a TLS connection.
type TLSFiles struct {
	// Cert and Key are a client certificate for mTLS.
	Cert string
	Key  string
	// CA signed the server's certificate.
	CA string
}

// WebUI is the Temporal Web UI.
type WebUI struct {
	// URL is the UI's base URL; empty leaves links out (HANDOFF_TEMPORAL_UI_URL).
	URL string `default:"http://localhost:8233"`
}

// TLSEnabled reports whether the connection to Temporal uses TLS.
func (t Temporal) TLSEnabled() bool {
	return t.TLS.Cert != "" || t.TLS.CA != "" || t.APIKey != ""
}

// Provider selects, locates and limits the implementation of one external
// system. Every variable is HANDOFF_<SYSTEM>_<NAME>.
type Provider struct {
	// Provider is the implementation: "sandbox", or "stripe" for payments.
	Provider string `default:"sandbox"`
	// URL is the provider's base URL; empty means the local sandbox.
	URL string
	// WebhookSecrets verify the provider's webhooks; two during a rotation.
	WebhookSecrets []string `split_words:"true"`

	// APIKey is sent as a bearer token (Stripe's secret key, for example).
	APIKey string `split_words:"true"`
	// ClientID, ClientSecret and TokenURL enable OAuth2 client credentials;
	// TokenURL defaults to the sandbox's token endpoint for the sandbox.
	ClientID     string `split_words:"true"`
	ClientSecret string `split_words:"true"`
	TokenURL     string `split_words:"true"`

	// ConnectTimeout bounds dialing; Timeout bounds a whole call.
	ConnectTimeout time.Duration `split_words:"true" default:"5s"`
	Timeout        time.Duration `default:"15s"`
	// OperationTimeouts overrides Timeout per operation, e.g.
	// "create_charge:20s,get_charge:5s".
	OperationTimeouts map[string]time.Duration `split_words:"true"`
	// RateLimit is the most calls per second to this provider, across all
	// workers (Temporal enforces it on the provider's task queue).
	RateLimit float64 `split_words:"true" default:"50"`
	// Concurrency is the most calls in flight per worker.
	Concurrency int `default:"20"`
}

// Load reads the configuration from the environment and fills in derived
// defaults. It does not validate; call Validate.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	c.fillDefaults()
	if c.Sandbox.ClientID != "" {
		c.SetSandboxClient(c.Sandbox.ClientID, c.Sandbox.ClientSecret)
	}
	return c, nil
}

// LookupEnv reports whether the named HANDOFF_ variable is set. Commands use
// it to fill development defaults without overriding what the user set.
func LookupEnv(name string) bool {
	_, ok := os.LookupEnv(Prefix + "_" + name)
	return ok
}

// fillDefaults points every sandbox provider without a URL at the local
// sandbox, and its OAuth2 clients at the sandbox's token endpoint.
func (c *Config) fillDefaults() {
	if c.Sandbox.WebhookURL == "" {
		c.Sandbox.WebhookURL = URLFor(c.APIAddr) + "/webhooks"
	}
	for _, p := range c.providers() {
		if p.cfg.URL == "" && p.cfg.Provider == "sandbox" {
			p.cfg.URL = c.SandboxURL() + "/" + p.system
		}
		if p.cfg.URL == "" && p.cfg.Provider == "stripe" {
			p.cfg.URL = StripeURL
		}
		if p.cfg.TokenURL == "" && p.cfg.ClientID != "" && p.cfg.Provider == "sandbox" {
			p.cfg.TokenURL = strings.TrimSuffix(p.cfg.URL, "/"+p.system) + "/oauth/token"
		}
	}
}

// SetSandboxClient makes every sandbox provider authenticate with the given
// OAuth2 client, unless it has credentials of its own.
func (c *Config) SetSandboxClient(id, secret string) {
	for _, p := range c.providers() {
		if p.cfg.Provider == "sandbox" && p.cfg.ClientID == "" && p.cfg.APIKey == "" {
			p.cfg.ClientID, p.cfg.ClientSecret = id, secret
		}
	}
	c.fillDefaults()
}

// SandboxURL is the base URL at which this process reaches the sandbox.
func (c Config) SandboxURL() string {
	return "http://" + dialable(c.Sandbox.Addr)
}

// Provider returns the settings of the named system.
func (c Config) Provider(system string) (Provider, bool) {
	for _, p := range c.providers() {
		if p.system == system {
			return *p.cfg, true
		}
	}
	return Provider{}, false
}

type namedProvider struct {
	system string
	cfg    *Provider
}

func (c *Config) providers() []namedProvider {
	return []namedProvider{
		{"payments", &c.Payments},
		{"accounting", &c.Accounting},
		{"crm", &c.CRM},
		{"mail", &c.Mail},
	}
}

// ValidateOptions relaxes checks that only some commands need.
type ValidateOptions struct {
	// NeedAPITokens requires at least one API token (the api and dev commands).
	NeedAPITokens bool
}

// Validate reports every problem in the configuration at once.
func (c Config) Validate(opts ValidateOptions) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Temporal.Address); err != nil {
		add("HANDOFF_TEMPORAL_ADDRESS %q: want host:port", c.Temporal.Address)
	}
	if c.Temporal.Namespace == "" {
		add("HANDOFF_TEMPORAL_NAMESPACE: must not be empty")
	}
	if (c.Temporal.TLS.Cert == "") != (c.Temporal.TLS.Key == "") {
		add("HANDOFF_TEMPORAL_TLS_CERT and HANDOFF_TEMPORAL_TLS_KEY: set both or neither")
	}
	for _, f := range []struct{ name, path string }{{"TLS_CERT", c.Temporal.TLS.Cert}, {"TLS_KEY", c.Temporal.TLS.Key}, {"TLS_CA", c.Temporal.TLS.CA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			add("HANDOFF_TEMPORAL_%s: %w", f.name, err)
		}
	}
	for _, v := range []struct{ name, addr string }{{"HANDOFF_API_ADDR", c.APIAddr}, {"HANDOFF_SANDBOX_ADDR", c.Sandbox.Addr}} {
		if _, _, err := net.SplitHostPort(v.addr); err != nil {
			add("%s %q: want [host]:port", v.name, v.addr)
		}
	}
	if opts.NeedAPITokens && len(nonEmpty(c.APITokens)) == 0 {
		add("HANDOFF_API_TOKENS: at least one bearer token is required")
	}
	for _, tokens := range []struct {
		name   string
		values []string
	}{{"HANDOFF_API_TOKENS", c.APITokens}, {"HANDOFF_OPERATOR_TOKENS", c.OperatorTokens}} {
		for _, t := range tokens.values {
			if len(t) < 16 {
				add("%s: every token must be at least 16 characters", tokens.name)
				break
			}
		}
	}
	for _, p := range c.providers() {
		errs = append(errs, p.validate()...)
	}
	if c.PaymentPollInterval <= 0 {
		add("HANDOFF_PAYMENT_POLL_INTERVAL: must be positive")
	}
	if c.PaymentWebhookWait <= 0 {
		add("HANDOFF_PAYMENT_WEBHOOK_WAIT: must be positive")
	}
	if c.Reconcile.Interval < time.Minute {
		add("HANDOFF_RECONCILE_INTERVAL: must be at least 1m")
	}
	if c.Reconcile.PageSize < 1 || c.Reconcile.PageSize > 1000 {
		add("HANDOFF_RECONCILE_PAGE_SIZE: must be between 1 and 1000")
	}
	if c.Reconcile.Grace < 0 {
		add("HANDOFF_RECONCILE_GRACE: must not be negative")
	}
	if c.Reconcile.Since <= c.Reconcile.Grace {
		add("HANDOFF_RECONCILE_SINCE: must be longer than HANDOFF_RECONCILE_GRACE")
	}
	if c.Reconcile.MaxRepairs < 0 {
		add("HANDOFF_RECONCILE_MAX_REPAIRS: must not be negative")
	}
	if c.OrphanEventWindow <= 0 {
		add("HANDOFF_ORPHAN_EVENT_WINDOW: must be positive")
	}
	if c.PaymentTimeout < c.PaymentPollInterval {
		add("HANDOFF_PAYMENT_TIMEOUT: must be at least HANDOFF_PAYMENT_POLL_INTERVAL")
	}
	return errors.Join(errs...)
}

func (p namedProvider) validate() []error {
	var errs []error
	name := "HANDOFF_" + strings.ToUpper(p.system)
	switch {
	case p.cfg.Provider == "sandbox":
	case p.cfg.Provider == "stripe" && p.system == "payments":
	default:
		errs = append(errs, fmt.Errorf("%s_PROVIDER %q: want sandbox%s", name, p.cfg.Provider, map[bool]string{true: " or stripe"}[p.system == "payments"]))
	}
	if u, err := url.Parse(p.cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s_URL %q: want an http or https URL", name, p.cfg.URL))
	}
	if (p.cfg.ClientID == "") != (p.cfg.ClientSecret == "") {
		errs = append(errs, fmt.Errorf("%s_CLIENT_ID and %s_CLIENT_SECRET: set both or neither", name, name))
	}
	if p.cfg.Provider == "stripe" && p.cfg.APIKey == "" {
		errs = append(errs, fmt.Errorf("%s_API_KEY: the stripe provider needs a secret key", name))
	}
	for i, secret := range p.cfg.WebhookSecrets {
		switch {
		case p.cfg.Provider == "stripe" && (!strings.HasPrefix(secret, "whsec_") || len(secret) == len("whsec_")):
			errs = append(errs, fmt.Errorf("%s_WEBHOOK_SECRETS: secret %d: want Stripe's whsec_… signing secret", name, i+1))
		case p.cfg.Provider != "stripe":
			if err := webhooks.CheckStandardSecret(secret); err != nil {
				errs = append(errs, fmt.Errorf("%s_WEBHOOK_SECRETS: secret %d: %w", name, i+1, err))
			}
		}
	}
	if p.cfg.ClientID != "" && p.cfg.APIKey != "" {
		errs = append(errs, fmt.Errorf("%s_API_KEY and %s_CLIENT_ID: choose one way to authenticate", name, name))
	}
	if p.cfg.ConnectTimeout <= 0 || p.cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s_CONNECT_TIMEOUT and %s_TIMEOUT: must be positive", name, name))
	}
	for op, d := range p.cfg.OperationTimeouts {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s_OPERATION_TIMEOUTS: %s must be positive", name, op))
		}
	}
	if p.cfg.RateLimit <= 0 {
		errs = append(errs, fmt.Errorf("%s_RATE_LIMIT: must be positive", name))
	}
	if p.cfg.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("%s_CONCURRENCY: must be at least 1", name))
	}
	return errs
}

func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

// dialable turns a listen address such as ":8090" into one a client can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// URLFor is the http URL at which a listen address can be reached locally.
func URLFor(addr string) string {
	return "http://" + dialable(addr)
}
