// Command handoff-cluster runs handoff on a real Temporal cluster on this
// machine (`make cluster`): PostgreSQL, Temporal's four services each in its
// own process, the Web UI, the sandbox, two API instances behind a failover
// balancer and two workers. State is kept in .cluster/; Ctrl-C stops
// everything in order.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-hq/handoff/internal/cluster"
)

func main() {
	dir := flag.String("dir", ".cluster", "where the cluster keeps its state")
	bin := flag.String("bin", "bin", "where temporal-server, temporal-sql-tool, temporal-ui-server and handoff are")
	tls := flag.Bool("tls", false, "mTLS at the Temporal frontend, with certificates made in <dir>/tls")
	flag.Parse()
	if err := run(*dir, *bin, *tls); err != nil {
		fmt.Fprintf(os.Stderr, "handoff-cluster: %v\n", err)
		os.Exit(1)
	}
}

// The cluster's ports: apart from `make run`'s (7233, 8233, 8080, 8090,
// 9090), so that both can run at once.
var (
	temporalPorts = cluster.Ports{Postgres: 5433, Frontend: 7333, FrontendHTTP: 7343, History: 7334, Matching: 7335, Worker: 7339,
		UI: 8333, Membership: [4]int{6934, 6935, 6933, 6939}}
	fleetPorts = cluster.FleetOptions{APIs: 2, Workers: 2, BalancerPort: 8180, SandboxPort: 8190,
		APIPorts: []int{8181, 8182}, MetricsPorts: []int{9191, 9192}}
)

func run(dir, bin string, tls bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	progress := func(s string) { fmt.Println("  " + s) }
	started := time.Now()
	t, err := cluster.StartTemporal(ctx, cluster.Options{Dir: dir, Bin: bin, Ports: temporalPorts, TLS: tls, Progress: progress,
		CodecEndpoint: fmt.Sprintf("http://127.0.0.1:%d/codec", fleetPorts.BalancerPort)})
	if err != nil {
		return err
	}
	defer t.Stop()
	f, err := cluster.StartFleet(ctx, t.Target(), fleetPorts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping...")
		f.Stop()
		t.Stop()
		fmt.Println("stopped.")
	}()
	token := ""
	for _, kv := range f.Env {
		if v, ok := strings.CutPrefix(kv, "HANDOFF_API_TOKENS="); ok {
			token = v
		}
	}
	fmt.Printf(`
handoff on a Temporal cluster is up (%s):
  API (balancer) %s   instances: %s
  Temporal       %s (frontend; history, matching, worker apart)   PostgreSQL 127.0.0.1:%d
  Web UI         %s
  Sandbox        %s
  Worker metrics %s
  Operations     %s/ops
  Credentials    %s (development only)
  Logs           %s

  curl -H "Authorization: Bearer %s" %s/v1/orders -d @order.json

Press Ctrl-C to stop.
`, time.Since(started).Round(100*time.Millisecond), f.URL, strings.Join(f.APIURLs, " "), t.Frontend, t.Ports.Postgres, t.UI, f.Sandbox,
		strings.Join(f.WorkerMetrics, " "), f.URL, filepath.Join(dir, "credentials.env"), filepath.Join(dir, "logs"), token, f.URL)
	// A program that stops by itself is said, once: the rest go on, as
	// they would in a fleet.
	for _, p := range append(t.Processes(), f.Processes()...) {
		go func() {
			select {
			case <-p.Exited():
				if ctx.Err() == nil {
					fmt.Printf("%s stopped; its log: %s\n", p.Name, filepath.Join(dir, "logs", p.Name+".log"))
				}
			case <-ctx.Done():
			}
		}()
	}
	<-ctx.Done()
	return nil
}
