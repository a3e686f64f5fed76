package worker

import (
	"regexp"
	"testing"

	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/config"
)

func TestBuildIDNamesTheBinary(t *testing.T) {
	first, err := BuildID()
	if err != nil {
		t.Fatal(err)
	}
	// A test binary carries no commit: the digest alone names it.
	if !regexp.MustCompile(`^(dev|[0-9a-f]{1,12}(-modified)?)-[0-9a-f]{12}$`).MatchString(first) {
		t.Errorf("BuildID() = %q, want <commit>-<digest> or dev-<digest>", first)
	}
	if again, _ := BuildID(); again != first {
		t.Errorf("BuildID() = %q, then %q: want the same binary named the same", first, again)
	}
}

func TestVersioningFromTheConfiguration(t *testing.T) {
	if v, err := VersioningFrom(config.Worker{Versioning: "off"}); err != nil || v != nil {
		t.Errorf("off = %v, %v; want unversioned", v, err)
	}
	v, err := VersioningFrom(config.Worker{Versioning: "on", Deployment: "handoff", BuildID: "r42", Promote: "manual", OrderVersioning: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "handoff:r42" || v.Promote || v.Orders != workflow.VersioningBehaviorPinned {
		t.Errorf("versioning = %+v, want handoff:r42, manual, orders pinned", v)
	}
	opts := v.options()
	if !opts.UseVersioning || opts.DefaultVersioningBehavior != workflow.VersioningBehaviorAutoUpgrade {
		t.Errorf("deployment options = %+v, want versioning with every other workflow auto-upgrading", opts)
	}
	v, err = VersioningFrom(config.Worker{Versioning: "on", Deployment: "handoff", Promote: "auto", OrderVersioning: "auto-upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.BuildID == "" || !v.Promote || v.Orders != workflow.VersioningBehaviorAutoUpgrade {
		t.Errorf("versioning = %+v, want the binary's build id, promoted, orders auto-upgrading", v)
	}
}
