package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test binary is also the bare side's worker, as handoff-bench is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bare-worker" {
		if err := RunBareWorker(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestABenchmarkRoundComparesBothSides runs one short round of `make
// bench`: both sides complete every order, handoff's reads of running
// orders need no workflow task, its history per order stays within the
// README's bound of the bare workflow's, and the table has every figure.
// It asserts no speed: timings on shared machines are noise.
func TestABenchmarkRoundComparesBothSides(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "handoff"), "./cmd/handoff")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build handoff: %v\n%s", err, out)
	}
	temporal := filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(temporal); err != nil {
		t.Fatalf("%s is missing: run the tests with `make test`, which builds it", temporal)
	}
	if err := os.Symlink(temporal, filepath.Join(bin, "temporal")); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Bin: bin, Self: self, Dir: dir, Orders: 24, Rounds: 1, Webhooks: 48, Reads: 32,
		Progress: func(s string) { t.Log(s) }})
	if err != nil {
		for _, name := range []string{"worker-1", "api-1", "bare-worker", "sandbox"} {
			raw, _ := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
			t.Logf("%s log:\n%s", name, tail(string(raw), 3000))
		}
		t.Fatal(err)
	}
	table := rep.Table()
	t.Log("\n" + table)
	handoff, bare, placed := rep.Completed()
	if handoff != placed || bare != placed {
		t.Errorf("completed orders: handoff %d, bare %d, of %d placed on each side", handoff, bare, placed)
	}
	for _, rd := range rep.Rounds {
		for via, f := range map[string]intakeFigures{
			"handoff's API": rd.handoff.webhooks, "handoff in process": rd.handoff.inProcess,
			"the bare endpoint": rd.bare.webhooks, "bare in process": rd.bare.inProcess} {
			if f.accepted != 48 {
				t.Errorf("%s intake accepted %d events of 48", via, f.accepted)
			}
		}
	}
	if src := rep.ReadSources(); src["snapshot"] != 32 || len(src) != 1 {
		t.Errorf("handoff's reads answered by %v, want all 32 from Temporal's record (no workflow task)", src)
	}
	for _, g := range rep.Goals() {
		if g.Name == "history events per order" && !g.Met {
			t.Errorf("history events per order: %.2f × the bare workflow's, want at most %.2f", g.Ratio, g.Goal)
		}
	}
	for _, f := range figures {
		if !strings.Contains(table, "| "+f.name) {
			t.Errorf("the table lacks %q", f.name)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// A run of one kind of phase judges only that phase's goals: the others
// have no figures to judge.
func TestOnlyThePhasesThatRanAreJudged(t *testing.T) {
	for only, want := range map[string][]string{
		"webhooks": {"webhooks accepted/s"},
		"orders":   {"completed orders/s", "placement → completed, p99", "history events per order"},
		"reads":    nil,
		"":         {"completed orders/s", "placement → completed, p99", "history events per order", "webhooks accepted/s"},
	} {
		rep := &Report{Options: Options{Only: only}}
		var got []string
		for _, g := range rep.Goals() {
			got = append(got, g.Name)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("only %q: goals %q, want %q", only, got, want)
		}
		reads := strings.Contains(rep.Table(), "reads without a workflow task")
		if reads != (only == "" || only == "reads") {
			t.Errorf("only %q: the reads goal printed: %v", only, reads)
		}
	}
}
