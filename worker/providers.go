package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/providers/smtp"
	"github.com/handoff-hq/handoff/providers/stripe"
	"github.com/handoff-hq/handoff/system"
)

// An Adapter builds the client of one kind of provider for one system from
// its settings. The client implements the providers interface of its
// system (providers.Payments for payments, …).
type Adapter func(system string, p config.Provider) (any, error)

// adapters are the provider kinds handoff ships, by kind; a new provider is
// one line here (and its package and contract), or one RegisterAdapter call.
var adapters = map[string]Adapter{
	system.Sandbox: func(name string, p config.Provider) (any, error) {
		c := sandbox.NewClient(name, p.URL, HTTPOptions(name, p))
		c.HTTP().SetAuth(authenticator(name, p, c.HTTP()))
		return c, nil
	},
	"stripe": func(name string, p config.Provider) (any, error) {
		return stripe.NewClient(p.URL, p.APIKey, HTTPOptions(name, p)), nil
	},
	smtp.Kind: newSMTP,
}

// newSMTP builds the SMTP mail client from smtp://host:port or
// smtps://host:port and the provider's SMTP settings.
func newSMTP(name string, p config.Provider) (any, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, errors.New("smtp url: it does not parse") // the URL is not shown: it may hold a password
	}
	implicit := u.Scheme == "smtps"
	port := 587
	if implicit {
		port = 465
	}
	if u.Port() != "" {
		if port, err = strconv.Atoi(u.Port()); err != nil {
			return nil, fmt.Errorf("smtp url: port %q", u.Port())
		}
	}
	var tlsConfig *tls.Config
	if p.TLSCAFile != "" {
		pem, err := os.ReadFile(p.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp tls ca file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtp tls ca file %s: no PEM certificate", p.TLSCAFile)
		}
		tlsConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	opts := HTTPOptions(name, p)
	return smtp.NewClient(smtp.Options{
		System: name, Host: u.Hostname(), Port: port, ImplicitTLS: implicit, StartTLS: p.StartTLS, TLS: tlsConfig,
		Username: p.Username, Password: p.Password, From: p.From,
		ConnectTimeout: p.ConnectTimeout, Timeout: p.Timeout, Contract: opts.Contract,
		Logger: p.Logger, Metrics: p.Metrics,
	})
}

var adaptersMu sync.RWMutex

// RegisterAdapter adds a kind of provider, for a system registered with
// package system. Call it before the workers start, from an init function.
func RegisterAdapter(kind string, a Adapter) error {
	adaptersMu.Lock()
	defer adaptersMu.Unlock()
	if _, ok := adapters[kind]; ok {
		return fmt.Errorf("register provider %s: already registered", kind)
	}
	adapters[kind] = a
	return nil
}

func adapter(kind string) (Adapter, bool) {
	adaptersMu.RLock()
	defer adaptersMu.RUnlock()
	a, ok := adapters[kind]
	return a, ok
}

// Clients builds the client of every registered system's configured
// provider, by system name.
func Clients(cfg config.Config) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range system.All() {
		p, ok := cfg.Provider(s.Name)
		if !ok {
			return nil, fmt.Errorf("provider of %s: not configured", s.Name)
		}
		if p.Logger == nil {
			p.Logger = cfg.CallLog
		}
		if p.Metrics == nil {
			p.Metrics = cfg.CallMetrics
		}
		if p.Drift == nil {
			p.Drift = cfg.CallDrift
		}
		build, ok := adapter(p.Provider)
		if !ok {
			return nil, fmt.Errorf("provider of %s: %s_PROVIDER=%s is not available", s.Name, s.EnvPrefix(), p.Provider)
		}
		c, err := build(s.Name, p)
		if err != nil {
			return nil, fmt.Errorf("provider of %s: %w", s.Name, err)
		}
		out[s.Name] = c
	}
	return out, nil
}

// NewActivities builds the provider clients the configuration selects, each
// with its timeouts and credentials, and the Activities that use them.
func NewActivities(cfg config.Config) (*activities.Activities, error) {
	clients, err := Clients(cfg)
	if err != nil {
		return nil, fmt.Errorf("new activities: %w", err)
	}
	crm, ok1 := clients[system.CRM.Name].(providers.CRM)
	payments, ok2 := clients[system.Payments.Name].(providers.Payments)
	accounting, ok3 := clients[system.Accounting.Name].(providers.Accounting)
	mailer, ok4 := clients[system.Mail.Name].(providers.Mailer)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("new activities: a configured provider does not offer what its system needs")
	}
	acts, err := activities.New(crm, payments, accounting, mailer)
	if err != nil {
		return nil, err
	}
	acts.Customers = map[string]providers.Customers{}
	for name := range contracts.CustomerRecords(cfg.Contracts()) {
		if c, ok := clients[name].(providers.Customers); ok {
			acts.Customers[name] = c
		}
	}
	owners := map[string]string{}
	for f, o := range contracts.Owners(cfg.Contracts(), "customer") {
		owners[f] = o.Owner
	}
	acts.Phases = append(acts.Phases, activities.CustomerPhases(acts, owners)...)
	return acts, nil
}

// HTTPOptions are the HTTP client options of a system's provider: its
// timeouts, and its contract, which checks every request before it is sent
// and classifies the answers it declares. Adapters of providers that speak
// HTTP build their client with them.
func HTTPOptions(system string, p config.Provider) providers.HTTPOptions {
	opts := providers.HTTPOptions{ConnectTimeout: p.ConnectTimeout, Timeout: p.Timeout, OperationTimeouts: p.OperationTimeouts, Contract: p.Contract, Logger: p.Logger, Metrics: p.Metrics, Drift: p.Drift}
	// Settings changed after they were loaded may name another provider.
	if c := opts.Contract; c == nil || c.System != system || c.Provider != p.Provider {
		opts.Contract = nil
		if c, ok := contracts.For(system, p.Provider); ok {
			opts.Contract = &c
		}
	}
	return opts
}

// authenticator picks the provider's credentials: OAuth2 client
// credentials, an API key, or none.
func authenticator(system string, p config.Provider, c *providers.HTTPClient) providers.Authenticator {
	switch {
	case p.ClientID != "":
		return providers.NewClientCredentials(system, p.TokenURL, p.ClientID, p.ClientSecret, c.Transport(), p.Timeout)
	case p.APIKey != "":
		return providers.APIKey{System: system, Key: p.APIKey}
	}
	return nil
}
