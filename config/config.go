// Package config holds handoff's configuration: one struct, read once from the
// environment (prefix HANDOFF_), validated as a whole, then passed down. It is the
// only package that reads the environment, so every setting has one name and one
// default, documented in the README's configuration table.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
)

// Prefix is the prefix of every environment variable handoff reads.
const Prefix = "HANDOFF"

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
	// DrainDelay is how long a stopping API instance keeps serving with
	// /readyz failing, for load balancers to stop sending it traffic.
	DrainDelay time.Duration `split_words:"true" default:"0s"`
	// MetricsAddr is where `handoff worker` serves its Prometheus metrics
	// and its probes (the API serves its own on /metrics).
	MetricsAddr string `split_words:"true" default:":9090"`
	// WorkerMetricsURLs are the /metrics URLs of workers that run apart
	// from the API; the operations page reads provider figures from them.
	WorkerMetricsURLs []string `envconfig:"WORKER_METRICS_URLS"`
	// PayloadKeys encrypt what handoff writes to Temporal (package codec):
	// "<id>:<base64 of 32 bytes>", comma-separated, the first encrypts.
	PayloadKeys []string `envconfig:"PAYLOAD_KEYS"`
	// Sandbox configures the provider simulator.
	Sandbox Sandbox
	Worker  Worker

	// ContractsDir, when set, holds contract files (*.yaml) that replace
	// the built-in contracts of the same system and provider.
	ContractsDir string `split_words:"true"`
	// CallLog receives one line per provider call (see
	// providers.HTTPOptions.Logger); nil logs nothing.
	CallLog *slog.Logger `ignored:"true"`
	// CallMetrics counts every provider call (see
	// providers.HTTPOptions.Metrics); nil counts nothing.
	CallMetrics *providers.Metrics `ignored:"true"`
	// CallDrift gathers the provider answers that differ from their
	// contracts (see providers.HTTPOptions.Drift); the workers report it.
	CallDrift *providers.DriftLog `ignored:"true"`
	// ContractOverrides are the contracts read from ContractsDir.
	ContractOverrides []contracts.Contract `ignored:"true"`

	// Providers holds the provider settings of every registered system
	// (package system), by system name, read from HANDOFF_<SYSTEM>_….
	Providers map[string]Provider `ignored:"true"`

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
	// SettleDelay is how long a charge stays pending (0: it settles at
	// once); WebhookDelay how long every event waits before it is sent.
	// Benchmarks set both to measure handoff rather than the simulator.
	SettleDelay  time.Duration `split_words:"true" default:"200ms"`
	WebhookDelay time.Duration `split_words:"true" default:"0s"`
}

// Provider selects, locates and limits the implementation of one external
// system. Every variable is HANDOFF_<SYSTEM>_<NAME>.
type Provider struct {
	// Provider is the implementation, one of the kinds the system accepts;
	// default the first (the sandbox).
	Provider string
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

	// From, Username, Password, StartTLS and TLSCAFile configure an SMTP
	// provider (HANDOFF_MAIL_PROVIDER=smtp): the sender's address, SMTP
	// AUTH, STARTTLS (required, opportunistic or off) and a CA to verify
	// the server with besides the system's.
	From      string
	Username  string
	Password  string
	StartTLS  string `envconfig:"STARTTLS" default:"required"`
	TLSCAFile string `envconfig:"TLS_CA_FILE"`

	// The limits below default to the provider's contract (package
	// contracts); a variable overrides it.

	// ConnectTimeout bounds dialing; Timeout bounds a whole call.
	ConnectTimeout time.Duration `split_words:"true"`
	Timeout        time.Duration
	// OperationTimeouts overrides Timeout per operation, e.g.
	// "create_charge:20s,get_charge:5s"; the contract's operation
	// timeouts fill in the operations not named.
	OperationTimeouts map[string]time.Duration `split_words:"true"`
	// RateLimit is the most calls per second to this provider, across all
	// workers (Temporal enforces it on the provider's task queue).
	RateLimit float64 `split_words:"true"`
	// Concurrency is the most calls in flight per worker.
	Concurrency int

	// Logger receives one line per call to the provider; nil logs
	// nothing. Set from Config.CallLog when the clients are built.
	Logger *slog.Logger `ignored:"true"`
	// Metrics counts the provider's calls; set from Config.CallMetrics.
	Metrics *providers.Metrics `ignored:"true"`
	// Drift gathers contract drift; set from Config.CallDrift.
	Drift *providers.DriftLog `ignored:"true"`
	// Contract is the provider's contract, which the limits above default
	// to; nil when it has none.
	Contract *contracts.Contract `ignored:"true"`
}

// fillFromContract takes the limits not set from the provider's contract:
// the contract is where a provider's timeouts and rate limits are
// maintained, the environment where a deployment overrides them.
func (p *Provider) fillFromContract(c contracts.Contract) {
	p.Contract = &c
	l := c.Limits
	if p.ConnectTimeout == 0 {
		p.ConnectTimeout = time.Duration(l.ConnectTimeout)
	}
	if p.Timeout == 0 {
		p.Timeout = time.Duration(l.Timeout)
	}
	if p.RateLimit == 0 {
		p.RateLimit = l.RateLimit
	}
	if p.Concurrency == 0 {
		p.Concurrency = l.Concurrency
	}
	for op, d := range c.Timeouts() {
		if _, set := p.OperationTimeouts[op]; !set {
			if p.OperationTimeouts == nil {
				p.OperationTimeouts = map[string]time.Duration{}
			}
			p.OperationTimeouts[op] = d
		}
	}
	if p.URL == "" && (strings.HasPrefix(c.API.BaseURL, "https://") || strings.HasPrefix(c.API.BaseURL, "http://")) {
		p.URL = c.API.BaseURL
	}
}

// Load reads the configuration from the environment and fills in derived
// defaults. It does not validate; call Validate.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	var err error
	if c.ContractOverrides, err = contractOverrides(c.ContractsDir); err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	all := contracts.With(c.ContractOverrides)
	c.Providers = map[string]Provider{}
	for _, s := range system.All() {
		var p Provider
		if err := envconfig.Process(s.EnvPrefix(), &p); err != nil {
			return Config{}, fmt.Errorf("read configuration of %s: %w", s.Name, err)
		}
		if p.Provider == "" {
			p.Provider = s.Providers[0].Kind
		}
		if contract, ok := contracts.Find(all, s.Name, p.Provider); ok {
			p.fillFromContract(contract)
		}
		c.Providers[s.Name] = p
	}
	if err := c.Temporal.applyClientProfile(); err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	c.fillDefaults()
	// An invalid key ring is reported by Validate.
	c.Temporal.Encryption, _ = payloadEncryption(c.PayloadKeys)
	if c.Sandbox.ClientID != "" {
		c.SetSandboxClient(c.Sandbox.ClientID, c.Sandbox.ClientSecret)
	}
	return c, nil
}

// LoadContracts reads only what the contracts need: the deployment's own
// contracts in HANDOFF_CONTRACTS_DIR, none when it is not set. `handoff
// contracts` uses it, so that it runs without the rest of the settings.
func LoadContracts() ([]contracts.Contract, error) {
	var c struct {
		ContractsDir string `split_words:"true"`
	}
	if err := envconfig.Process(Prefix, &c); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return contractOverrides(c.ContractsDir)
}

func contractOverrides(dir string) ([]contracts.Contract, error) {
	if dir == "" {
		return nil, nil
	}
	cs, err := contracts.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("HANDOFF_CONTRACTS_DIR: %w", err)
	}
	return cs, nil
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
	for name, p := range c.Providers {
		if p.URL == "" && p.Provider == system.Sandbox {
			p.URL = c.SandboxURL() + "/" + name
		}
		if p.TokenURL == "" && p.ClientID != "" && p.Provider == system.Sandbox {
			p.TokenURL = strings.TrimSuffix(p.URL, "/"+name) + "/oauth/token"
		}
		c.Providers[name] = p
	}
}

// SetSandboxClient makes every sandbox provider authenticate with the given
// OAuth2 client, unless it has credentials of its own.
func (c *Config) SetSandboxClient(id, secret string) {
	for name, p := range c.Providers {
		if p.Provider == system.Sandbox && p.ClientID == "" && p.APIKey == "" {
			p.ClientID, p.ClientSecret = id, secret
			c.Providers[name] = p
		}
	}
	c.fillDefaults()
}

// SandboxURL is the base URL at which this process reaches the sandbox.
func (c Config) SandboxURL() string {
	return "http://" + dialable(c.Sandbox.Addr)
}

// Contracts are the contracts of the configured providers, one per system.
func (c Config) Contracts() []contracts.Contract {
	var out []contracts.Contract
	for _, s := range system.All() {
		p, ok := c.Provider(s.Name)
		switch {
		case !ok:
		case p.Contract != nil:
			out = append(out, *p.Contract)
		default:
			if ct, ok := contracts.Find(contracts.With(c.ContractOverrides), s.Name, p.Provider); ok {
				out = append(out, ct)
			}
		}
	}
	return out
}

// Provider returns the settings of the named system.
func (c Config) Provider(name string) (Provider, bool) {
	p, ok := c.Providers[name]
	return p, ok
}

// SetProvider replaces the settings of the named system.
func (c *Config) SetProvider(name string, p Provider) {
	if c.Providers == nil {
		c.Providers = map[string]Provider{}
	}
	c.Providers[name] = p
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
		add("HANDOFF_TEMPORAL_ADDRESS (or TEMPORAL_ADDRESS, or the temporal.toml profile) %q: want host:port", c.Temporal.Address)
	}
	if c.Temporal.Namespace == "" {
		add("HANDOFF_TEMPORAL_NAMESPACE: must not be empty")
	}
	errs = append(errs, c.Worker.validate()...)
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
	if _, err := payloadEncryption(c.PayloadKeys); err != nil {
		add("HANDOFF_PAYLOAD_KEYS: %w", err)
	}
	for _, u := range c.WorkerMetricsURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			add("HANDOFF_WORKER_METRICS_URLS %q: want http(s)://host:port/metrics", u)
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
	if err := contracts.Check(c.ContractOverrides...); err != nil {
		errs = append(errs, err)
	}
	for _, s := range system.All() {
		p, ok := c.Providers[s.Name]
		if !ok {
			add("%s_PROVIDER: the system %s has no settings", s.EnvPrefix(), s.Name)
			continue
		}
		errs = append(errs, p.validate(s)...)
	}
	if c.PaymentPollInterval <= 0 {
		add("HANDOFF_PAYMENT_POLL_INTERVAL: must be positive")
	}
	if c.PaymentWebhookWait <= 0 {
		add("HANDOFF_PAYMENT_WEBHOOK_WAIT: must be positive")
	}
	if c.Sandbox.SettleDelay < 0 || c.Sandbox.WebhookDelay < 0 {
		add("HANDOFF_SANDBOX_SETTLE_DELAY, HANDOFF_SANDBOX_WEBHOOK_DELAY: must not be negative")
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

func (p Provider) validate(s system.System) []error {
	var errs []error
	name := s.EnvPrefix()
	kind, known := s.Provider(p.Provider)
	if !known {
		errs = append(errs, fmt.Errorf("%s_PROVIDER %q: want one of %s", name, p.Provider, strings.Join(s.Kinds(), ", ")))
	}
	schemes := kind.Schemes()
	if u, err := url.Parse(p.URL); err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s_URL %q: want a URL of scheme %s", name, redactURL(p.URL), strings.Join(schemes, " or ")))
	}
	if p.Provider == "smtp" {
		errs = append(errs, p.validateSMTP(name)...)
	}
	if (p.ClientID == "") != (p.ClientSecret == "") {
		errs = append(errs, fmt.Errorf("%s_CLIENT_ID and %s_CLIENT_SECRET: set both or neither", name, name))
	}
	if p.Provider == "stripe" && p.APIKey == "" {
		errs = append(errs, fmt.Errorf("%s_API_KEY: the stripe provider needs a secret key", name))
	}
	for i, secret := range p.WebhookSecrets {
		switch kind.Webhooks {
		case system.SchemeStripe:
			if !strings.HasPrefix(secret, "whsec_") || len(secret) == len("whsec_") {
				errs = append(errs, fmt.Errorf("%s_WEBHOOK_SECRETS: secret %d: want Stripe's whsec_… signing secret", name, i+1))
			}
		case system.SchemeStandard:
			if err := webhooks.CheckStandardSecret(secret); err != nil {
				errs = append(errs, fmt.Errorf("%s_WEBHOOK_SECRETS: secret %d: %w", name, i+1, err))
			}
		}
	}
	if p.ClientID != "" && p.APIKey != "" {
		errs = append(errs, fmt.Errorf("%s_API_KEY and %s_CLIENT_ID: choose one way to authenticate", name, name))
	}
	if p.ConnectTimeout <= 0 || p.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s_CONNECT_TIMEOUT and %s_TIMEOUT: must be positive", name, name))
	}
	if p.Timeout > system.MaxCallTimeout || p.ConnectTimeout > system.MaxCallTimeout {
		errs = append(errs, fmt.Errorf("%s_TIMEOUT and %s_CONNECT_TIMEOUT: at most %s, so that a look-up and a call fit in one attempt of a step (%s)",
			name, name, system.MaxCallTimeout, system.StepTimeout))
	}
	for _, op := range slices.Sorted(maps.Keys(p.OperationTimeouts)) {
		switch d := p.OperationTimeouts[op]; {
		case d <= 0:
			errs = append(errs, fmt.Errorf("%s_OPERATION_TIMEOUTS: %s must be positive", name, op))
		case d > system.MaxCallTimeout:
			errs = append(errs, fmt.Errorf("%s_OPERATION_TIMEOUTS: %s is at most %s, so that a look-up and a call fit in one attempt of a step (%s)",
				name, op, system.MaxCallTimeout, system.StepTimeout))
		}
	}
	if p.RateLimit <= 0 {
		errs = append(errs, fmt.Errorf("%s_RATE_LIMIT: must be positive", name))
	}
	if p.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("%s_CONCURRENCY: must be at least 1", name))
	}
	return errs
}

// validateSMTP checks the settings of an SMTP provider.
func (p Provider) validateSMTP(name string) []error {
	var errs []error
	if a, err := mail.ParseAddress(p.From); err != nil || a.Name != "" {
		errs = append(errs, fmt.Errorf("%s_FROM %q: want the sender's e-mail address", name, p.From))
	}
	if (p.Username == "") != (p.Password == "") {
		errs = append(errs, fmt.Errorf("%s_USERNAME and %s_PASSWORD: set both or neither", name, name))
	}
	if p.Username != "" && p.StartTLS == "off" {
		errs = append(errs, fmt.Errorf("%s_STARTTLS=off with %s_USERNAME: credentials are never sent in the clear; use STARTTLS or smtps://", name, name))
	}
	if u, err := url.Parse(p.URL); err == nil && u.User != nil {
		errs = append(errs, fmt.Errorf("%s_URL: credentials go in %s_USERNAME and %s_PASSWORD, not in the URL", name, name, name))
	}
	if !slices.Contains([]string{"required", "opportunistic", "off"}, p.StartTLS) {
		errs = append(errs, fmt.Errorf("%s_STARTTLS %q: want required, opportunistic or off", name, p.StartTLS))
	}
	if p.TLSCAFile != "" {
		if _, err := os.Stat(p.TLSCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s_TLS_CA_FILE: %w", name, err))
		}
	}
	return errs
}

// redactURL drops a URL's password before it is shown in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil && strings.Contains(raw, "@"):
		return "(a URL that does not parse)"
	case err != nil || u.User == nil:
		return raw
	}
	return u.Redacted()
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
