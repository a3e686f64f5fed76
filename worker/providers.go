package worker

import (
	"fmt"
	"strings"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
)

// NewActivities builds the provider clients the configuration selects and
// the Activities that use them.
func NewActivities(cfg config.Config) (*activities.Activities, error) {
	clients := map[string]*sandbox.Client{}
	for _, system := range config.Systems {
		p, _ := cfg.Provider(system)
		if p.Provider != "sandbox" {
			return nil, fmt.Errorf("new activities: HANDOFF_%s_PROVIDER=%s is not available in this build", strings.ToUpper(system), p.Provider)
		}
		clients[system] = sandbox.NewClient(system, p.URL, providers.HTTPOptions{})
	}
	return activities.New(clients["crm"], clients["payments"], clients["accounting"], clients["mail"])
}
