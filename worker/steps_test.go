package worker

import (
	"testing"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/workflows"
)

// TestEveryDeclaredActivityIsAnActivity: the order's step table names its
// activities; each must be a method of activities.Activities, registered on
// its step's system queue.
func TestEveryDeclaredActivityIsAnActivity(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("a declared activity is not a method of Activities: %v", r)
		}
	}()
	byQueue := stepActivities(&activities.Activities{})
	for _, spec := range workflows.OrderSteps {
		for _, name := range spec.Activities {
			found := false
			for _, a := range byQueue[spec.System.Name] {
				found = found || a.name == name
			}
			if !found {
				t.Errorf("%s of step %s is not registered on %s", name, spec.Name, spec.System.TaskQueue())
			}
		}
	}
}
