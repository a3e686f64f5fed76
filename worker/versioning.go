package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/workflows"
)

// Versioning is how the workers take part in Temporal's Worker Deployment
// Versioning: every task queue of one binary polls as one version
// (deployment name, build id), so that Temporal routes each workflow's
// tasks — its activities on the providers' queues included — to the
// version it runs on. Orders are pinned or auto-upgrading as configured
// (HANDOFF_WORKER_ORDER_VERSIONING); every other workflow auto-upgrades,
// its changes kept behind workflow.GetVersion: they live for days or
// continue as new, and a version should not have to outlive them.
type Versioning struct {
	Version sdkworker.WorkerDeploymentVersion
	// Orders is how OrderWorkflow follows a new version.
	Orders workflow.VersioningBehavior
	// Promote makes a version that has never taken traffic the current
	// one when its workers start.
	Promote bool
}

// VersioningFrom reads the configuration's versioning; nil when the
// workers are unversioned.
func VersioningFrom(cfg config.Worker) (*Versioning, error) {
	if !cfg.Versioned() {
		return nil, nil
	}
	build := cfg.BuildID
	if build == "" {
		var err error
		if build, err = BuildID(); err != nil {
			return nil, err
		}
	}
	v := &Versioning{Version: sdkworker.WorkerDeploymentVersion{DeploymentName: cfg.Deployment, BuildID: build},
		Orders: workflow.VersioningBehaviorAutoUpgrade, Promote: cfg.Promote != "manual"}
	if cfg.OrderVersioning == "pinned" {
		v.Orders = workflow.VersioningBehaviorPinned
	}
	return v, nil
}

// String is the version as Temporal prints it: deployment:build.
func (v *Versioning) String() string { return v.Version.DeploymentName + ":" + v.Version.BuildID }

// options are the deployment options of each of the version's workers.
func (v *Versioning) options() sdkworker.DeploymentOptions {
	if v == nil {
		return sdkworker.DeploymentOptions{}
	}
	return sdkworker.DeploymentOptions{UseVersioning: true, Version: v.Version, DefaultVersioningBehavior: workflow.VersioningBehaviorAutoUpgrade}
}

// registerOrder registers the order workflow with its behaviour.
func (v *Versioning) registerOrder(r sdkworker.WorkflowRegistry) {
	behavior := workflow.VersioningBehaviorUnspecified
	if v != nil {
		behavior = v.Orders
	}
	r.RegisterWorkflowWithOptions(workflows.OrderWorkflow, workflow.RegisterOptions{Name: "OrderWorkflow", VersioningBehavior: behavior})
}

// BuildID names the running binary: its commit, when it was built from a
// clean checkout, followed by a digest of the executable, so that two
// different binaries never share a build id and every replica of one
// image does.
func BuildID() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("build id: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("build id: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("build id: read %s: %w", path, err)
	}
	digest := hex.EncodeToString(h.Sum(nil))[:12]
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev-" + digest, nil
	}
	rev, modified := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		return "dev-" + digest, nil
	case modified:
		return rev[:min(12, len(rev))] + "-modified-" + digest, nil
	}
	return rev[:min(12, len(rev))] + "-" + digest, nil
}

// noCurrentVersion reports whether the deployment has no current version
// (or does not exist yet).
func (ws *Workers) noCurrentVersion(ctx context.Context) (bool, error) {
	d, err := ws.client.WorkerDeploymentClient().GetHandle(ws.versioning.Version.DeploymentName).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("describe worker deployment %s: %w", ws.versioning.Version.DeploymentName, err)
	}
	return d.Info.RoutingConfig.CurrentVersion == nil, nil
}

// promote makes the version current when it has never taken traffic, once
// Temporal knows it polls every one of queues. A version that was current
// and was then replaced is left as it is: it is an older release
// restarting, and what is pinned to it is all it should take.
func (ws *Workers) promote(ctx context.Context, queues []string) error {
	v := ws.versioning
	h := ws.client.WorkerDeploymentClient().GetHandle(v.Version.DeploymentName)
	// Registering a version's queues takes Temporal a few seconds; a
	// minute without it is reported, and the caller tries again.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		desc, err := h.DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: v.Version.BuildID})
		seen := !isNotYetSeen(err)
		last = err
		switch {
		case !seen && v.Promote:
			// The version exists once a poll of its has reached Temporal.
		case seen && err != nil:
			return fmt.Errorf("describe worker version %s: %w", v, err)
		case seen && !desc.Info.CurrentSinceTime.IsZero():
			ws.log.Info("worker version is current", "version", v.String())
			return nil
		case seen && !desc.Info.RoutingChangedTime.IsZero():
			// Current or ramping once, and not now: an older release
			// restarting, or a rollback an operator is making.
			ws.log.Warn("worker version has taken traffic before and is not current: it serves only what is routed to it", "version", v.String())
			return nil
		case !v.Promote:
			none, err := ws.noCurrentVersion(ctx)
			if err != nil {
				return err
			}
			if none {
				return fmt.Errorf("no version of worker deployment %s is current and HANDOFF_WORKER_PROMOTE=manual: make this one current with `temporal worker deployment set-current-version --deployment-name %s --build-id %s`",
					v.Version.DeploymentName, v.Version.DeploymentName, v.Version.BuildID)
			}
			ws.log.Warn("worker version is not current: make it current when it should take new work (README, \"Changing handoff safely\")", "version", v.String())
			return nil
		case registered(desc.Info.TaskQueuesInfos, queues):
			// A paused provider's queue is not polled yet: it joins the
			// version when it resumes.
			_, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: v.Version.BuildID, IgnoreMissingTaskQueues: true})
			if err == nil {
				ws.log.Info("worker version made current", "version", v.String())
				return nil
			}
			if !isNotYetSeen(err) {
				return fmt.Errorf("make worker version %s current: %w", v, err)
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = fmt.Errorf("the version polls %v, and Temporal has not registered them all", queues)
			}
			return fmt.Errorf("make worker version %s current: %w (%w)", v, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registered reports whether every queue is among the version's.
func registered(infos []client.WorkerDeploymentTaskQueueInfo, queues []string) bool {
	for _, q := range queues {
		if !slices.ContainsFunc(infos, func(i client.WorkerDeploymentTaskQueueInfo) bool { return i.Name == q }) {
			return false
		}
	}
	return true
}

// isNotYetSeen reports whether Temporal has not yet registered the
// deployment or the version: its first poll has not arrived.
func isNotYetSeen(err error) bool {
	var notFound *serviceerror.NotFound
	var precondition *serviceerror.FailedPrecondition
	return errors.As(err, &notFound) || errors.As(err, &precondition)
}
