package workflows

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflows depend on the vocabulary, the registry, the contracts and the
// activities' types, never on an edge of the system: what receives
// requests, reads the environment or runs workers.
func TestWorkflowsImportNoEdgePackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/handoff-hq/handoff/"
	for _, dep := range strings.Fields(string(out)) {
		for _, edge := range []string{"api", "webhooks", "config", "worker", "control", "cmd/handoff", "devserver"} {
			if dep == module+edge || strings.HasPrefix(dep, module+edge+"/") {
				t.Errorf("workflows depends on %s", dep)
			}
		}
	}
}
