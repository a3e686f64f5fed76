package worker

import (
	"fmt"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/providers/stripe"
)

// NewActivities builds the provider clients the configuration selects, each
// with its timeouts and credentials, and the Activities that use them.
func NewActivities(cfg config.Config) (*activities.Activities, error) {
	clients := map[string]*sandbox.Client{}
	for _, system := range config.Systems {
		p, _ := cfg.Provider(system)
		c := sandbox.NewClient(system, p.URL, httpOptions(p))
		c.HTTP().SetAuth(authenticator(system, p, c.HTTP()))
		clients[system] = c
	}
	var payments providers.Payments = clients["payments"]
	switch p := cfg.Payments; p.Provider {
	case "sandbox":
	case "stripe":
		payments = stripe.NewClient(p.URL, p.APIKey, httpOptions(p))
	default:
		return nil, fmt.Errorf("new activities: HANDOFF_PAYMENTS_PROVIDER=%s is not available", p.Provider)
	}
	return activities.New(clients["crm"], payments, clients["accounting"], clients["mail"])
}

func httpOptions(p config.Provider) providers.HTTPOptions {
	return providers.HTTPOptions{ConnectTimeout: p.ConnectTimeout, Timeout: p.Timeout, OperationTimeouts: p.OperationTimeouts}
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
