package config

import (
	"errors"
	"fmt"
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
}

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
	if w.WorkflowPollers == 1 {
		errs = append(errs, errors.New("HANDOFF_WORKER_WORKFLOW_POLLERS: must be at least 2 (one polls the worker's sticky queue), got 1"))
	}
	return errs
}
