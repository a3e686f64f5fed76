package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Worker tunes how a worker takes tasks from Temporal (see README,
// "Performance", for the measurements behind the defaults).
type Worker struct {
	// WorkflowPollers and ActivityPollers are how many long polls each of
	// the worker's task queues keeps open for workflow and for activity
	// tasks. 4 of each (the SDK's default is 2) took 10% more orders a
	// second at 16 in flight on two cores, with p99 latency a third lower.
	// The SDK needs at least 2 workflow pollers (one for the worker's own
	// sticky queue).
	WorkflowPollers int `split_words:"true" default:"4"`
	ActivityPollers int `split_words:"true" default:"4"`
	// CacheSize is how many workflows the worker keeps in memory between
	// their tasks, so that a task does not replay the history; the SDK's
	// default is 10 000. Zero in any of these keeps the SDK's default.
	CacheSize int `split_words:"true" default:"10000"`

	// Versioning registers the workers with Temporal's Worker Deployment
	// Versioning: "on" (the default) or "off" (unversioned workers, as
	// before). See README, "Changing handoff safely".
	Versioning string `default:"on"`
	// Deployment is the Worker Deployment's name; every version of
	// handoff that serves the same namespace and task queues shares it.
	Deployment string `default:"handoff"`
	// BuildID names this version; empty takes it from the binary (its
	// commit and a digest of the executable, see worker.BuildID).
	BuildID string `envconfig:"BUILD_ID"`
	// Promote is "auto" (the default): a version that has never taken
	// traffic becomes the deployment's current version when its workers
	// start. "manual" leaves that to an operator.
	Promote string `default:"auto"`
	// OrderVersioning is how an order follows a new version:
	// "auto-upgrade" (the default) moves it to the current version at its
	// next step, which handoff's changes allow (they stay behind
	// workflow.GetVersion and are replayed before a release); "pinned"
	// finishes it on the version it started on, for deployments that keep
	// the old version's workers until it is drained.
	OrderVersioning string `split_words:"true" default:"auto-upgrade"`
}

// Versioned reports whether the workers use Worker Deployment Versioning.
func (w Worker) Versioned() bool { return w.Versioning == "on" }

func (w Worker) validate() []error {
	var errs []error
	for _, v := range []struct {
		name  string
		value int
	}{{"HANDOFF_WORKER_WORKFLOW_POLLERS", w.WorkflowPollers}, {"HANDOFF_WORKER_ACTIVITY_POLLERS", w.ActivityPollers}, {"HANDOFF_WORKER_CACHE_SIZE", w.CacheSize}} {
		if v.value < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %d", v.name, v.value))
		}
	}
	for _, v := range []struct {
		name, value string
		allowed     []string
	}{{"HANDOFF_WORKER_VERSIONING", w.Versioning, []string{"on", "off"}}, {"HANDOFF_WORKER_PROMOTE", w.Promote, []string{"auto", "manual"}},
		{"HANDOFF_WORKER_ORDER_VERSIONING", w.OrderVersioning, []string{"auto-upgrade", "pinned"}}} {
		if !slices.Contains(v.allowed, v.value) {
			errs = append(errs, fmt.Errorf("%s: must be one of %s, got %q", v.name, strings.Join(v.allowed, ", "), v.value))
		}
	}
	if w.Versioned() {
		if w.Deployment == "" || strings.ContainsAny(w.Deployment, ". ") {
			errs = append(errs, fmt.Errorf("HANDOFF_WORKER_DEPLOYMENT: must be a name without dots or spaces, got %q", w.Deployment))
		}
		if strings.ContainsAny(w.BuildID, " ") {
			errs = append(errs, fmt.Errorf("HANDOFF_WORKER_BUILD_ID: must not contain spaces, got %q", w.BuildID))
		}
	}
	if w.WorkflowPollers == 1 {
		errs = append(errs, errors.New("HANDOFF_WORKER_WORKFLOW_POLLERS: must be at least 2 (one polls the worker's sticky queue), got 1"))
	}
	return errs
}
