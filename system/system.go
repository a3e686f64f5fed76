// Package system declares, once each, the external systems handoff
// integrates — payments, accounting, CRM, mail — and the provider
// implementations each accepts. Configuration, the workers, the API's
// webhook routing and provider endpoints, and the workflows loop over this
// registry; nothing else lists systems. A new system is one Register call.
package system

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scheme is how a provider signs its webhooks.
type Scheme string

// Webhook signature schemes.
const (
	// SchemeNone is a provider that sends no webhooks.
	SchemeNone Scheme = ""
	// SchemeStandard is Standard Webhooks (webhook-id, webhook-timestamp,
	// webhook-signature).
	SchemeStandard Scheme = "standard"
	// SchemeStripe is Stripe's Stripe-Signature.
	SchemeStripe Scheme = "stripe"
)

// Provider is one implementation a system accepts.
type Provider struct {
	// Kind names it in HANDOFF_<SYSTEM>_PROVIDER: "sandbox", "stripe", "smtp".
	Kind string
	// Webhooks is how it signs the webhooks it sends.
	Webhooks Scheme
	// URLSchemes are the schemes its address (HANDOFF_<SYSTEM>_URL) may
	// have; http and https when empty.
	URLSchemes []string
}

// Schemes are the URL schemes the provider's address may have.
func (p Provider) Schemes() []string {
	if len(p.URLSchemes) == 0 {
		return []string{"http", "https"}
	}
	return p.URLSchemes
}

// StepTimeout bounds one attempt of a step's activity on a system's task
// queue: room for a look-up and a call, each bounded by the provider's own
// call timeout, so that the provider client's classification is what fails
// an attempt, not Temporal's timeout.
const StepTimeout = 45 * time.Second

// MaxCallTimeout is the longest a provider's call timeout may be: two calls
// and their dialing fit in one step attempt. A longer one would let an
// attempt time out while its call still runs, and Temporal start the next
// attempt beside it.
const MaxCallTimeout = 20 * time.Second

// Sandbox is the local provider simulator every system accepts.
const Sandbox = "sandbox"

// System is one external system.
type System struct {
	// Name is its lower-case name: in task queues, configuration
	// ("HANDOFF_<NAME>_…"), webhook paths and the API.
	Name string
	// Purpose says what handoff uses it for.
	Purpose string
	// Providers are the implementations it accepts; the first is the
	// default.
	Providers []Provider
}

// Built-in systems.
var (
	Payments   = System{Name: "payments", Purpose: "takes the customer's money", Providers: []Provider{{Kind: Sandbox, Webhooks: SchemeStandard}, {Kind: "stripe", Webhooks: SchemeStripe}}}
	Accounting = System{Name: "accounting", Purpose: "keeps invoices", Providers: []Provider{{Kind: Sandbox, Webhooks: SchemeStandard}}}
	CRM        = System{Name: "crm", Purpose: "keeps customer records", Providers: []Provider{{Kind: Sandbox, Webhooks: SchemeStandard}}}
	Mail       = System{Name: "mail", Purpose: "sends e-mail", Providers: []Provider{{Kind: Sandbox, Webhooks: SchemeStandard}, {Kind: "smtp", URLSchemes: []string{"smtp", "smtps"}}}}
)

// TaskQueue is where the system's activities run, so that a slow or
// failing provider holds up only its own queue.
func (s System) TaskQueue() string { return "handoff-" + s.Name }

// EnvPrefix starts every configuration variable of the system:
// "HANDOFF_PAYMENTS".
func (s System) EnvPrefix() string { return "HANDOFF_" + strings.ToUpper(s.Name) }

// Provider returns the implementation of the given kind.
func (s System) Provider(kind string) (Provider, bool) {
	i := slices.IndexFunc(s.Providers, func(p Provider) bool { return p.Kind == kind })
	if i < 0 {
		return Provider{}, false
	}
	return s.Providers[i], true
}

// Kinds lists the kinds of provider the system accepts.
func (s System) Kinds() []string {
	out := make([]string, 0, len(s.Providers))
	for _, p := range s.Providers {
		out = append(out, p.Kind)
	}
	return out
}

var (
	mu         sync.RWMutex
	registered = []System{Payments, Accounting, CRM, Mail}
	namePat    = regexp.MustCompile(`^[a-z][a-z0-9]{1,30}$`)
)

// Register adds a system, or providers of an existing one (same name: its
// providers are added). Call it before configuration is loaded and workers
// start, from an init function or a test's TestMain.
func Register(s System) error {
	if !namePat.MatchString(s.Name) {
		return fmt.Errorf("register system %q: want a lower-case name of letters and digits", s.Name)
	}
	if len(s.Providers) == 0 {
		return fmt.Errorf("register system %s: it needs at least one provider", s.Name)
	}
	mu.Lock()
	defer mu.Unlock()
	i := slices.IndexFunc(registered, func(r System) bool { return r.Name == s.Name })
	if i < 0 {
		registered = append(registered, s)
		return nil
	}
	for _, p := range s.Providers {
		if _, ok := registered[i].Provider(p.Kind); ok {
			return fmt.Errorf("register system %s: provider %s is already registered", s.Name, p.Kind)
		}
		registered[i].Providers = append(registered[i].Providers, p)
	}
	return nil
}

// All returns the registered systems, in the order they were registered.
func All() []System {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Clone(registered)
}

// Names lists the registered systems' names.
func Names() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.Name)
	}
	return out
}

// Lookup returns the named system.
func Lookup(name string) (System, bool) {
	for _, s := range All() {
		if s.Name == name {
			return s, true
		}
	}
	return System{}, false
}
