// Package bench measures handoff against the same work written on Temporal
// alone, side by side on one dev server (`make bench`): order throughput
// and latency, CPU per order of every process, history events per order,
// webhook intake against bare SignalWithStart, reads of running orders and
// placement latency. Each figure is the median of several rounds; each
// phase starts once the one before has drained.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/devserver"
	"github.com/handoff-hq/handoff/internal/cluster"
	"github.com/handoff-hq/handoff/system"
)

// Options configure a benchmark run; zero fields take the defaults.
type Options struct {
	// Bin holds temporal and handoff; Self is the program that runs the
	// bare side's worker as `<Self> bare-worker`.
	Bin, Self string
	// Dir keeps the dev server's file and every process's log.
	Dir string
	// Orders each side places per round, Concurrency at a time (each
	// placer waits for its order to complete before the next).
	Orders, Concurrency int
	// Rounds of every phase; figures are their medians.
	Rounds int
	// Webhooks each side takes per round, WebhookConcurrency at a time.
	Webhooks, WebhookConcurrency int
	// Reads of running orders each side makes per round.
	Reads int
	// InMemory runs the dev server without its SQLite file.
	InMemory bool
	// Only, when set, runs one kind of phase: "orders", "webhooks" or
	// "reads".
	Only string
	// Env is added to handoff's processes (worker tuning, for one).
	Env []string
	// Progress, when set, is told what runs.
	Progress func(string)
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Orders, 200)
	def(&o.Concurrency, 16)
	def(&o.Rounds, 3)
	def(&o.Webhooks, 400)
	def(&o.WebhookConcurrency, 32)
	def(&o.Reads, 200)
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// runs reports whether a kind of phase runs.
func (o Options) runs(kind string) bool { return o.Only == "" || o.Only == kind }

// The two sides.
const (
	sideHandoff = "handoff"
	sideBare    = "bare"
)

// rig is everything a run talks to.
type rig struct {
	opts Options
	c    client.Client
	api  string
	// bareWebhooks is the bare worker's webhook endpoint.
	bareWebhooks string
	token        string
	secret       string
	http         *http.Client
	procs        []proc
	// events is handoff's control client, which the API hands verified
	// webhooks to; the bench calls it for the intake without HTTP.
	events *control.Client
	// phase numbers the phases, for distinct workflow ids; round is the
	// round under way, from 0.
	phase, round int
}

// Run starts the dev server, handoff (sandbox, worker and API, each a
// process) and the bare worker, measures opts.Rounds rounds, and stops
// everything.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	if !opts.runs("orders") && !opts.runs("webhooks") && !opts.runs("reads") {
		return nil, fmt.Errorf("only %q: want orders, webhooks or reads", opts.Only)
	}
	logs := filepath.Join(opts.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	port, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	frontend := fmt.Sprintf("127.0.0.1:%d", port)
	out, err := os.Create(filepath.Join(logs, "temporal.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	db := filepath.Join(opts.Dir, "temporal.db")
	if opts.InMemory {
		db = ""
	}
	opts.Progress("starting the Temporal dev server (" + map[bool]string{true: "in memory", false: "SQLite file"}[opts.InMemory] + ")")
	srv, err := devserver.Start(ctx, devserver.Options{Binary: filepath.Join(opts.Bin, "temporal"), Address: frontend,
		Namespace: "default", DBFile: db, Output: out})
	if err != nil {
		return nil, err
	}
	defer func() { _ = srv.Stop(10 * time.Second) }()
	// The sandbox answers at once and sends its events at once, so that
	// the figures are handoff's and Temporal's, not the simulator's.
	env := append([]string{"HANDOFF_SANDBOX_SETTLE_DELAY=0s", "HANDOFF_SANDBOX_WEBHOOK_DELAY=0s"}, opts.Env...)
	fleet, err := cluster.StartFleet(ctx, cluster.Target{Frontend: frontend, Dir: opts.Dir, Bin: opts.Bin, Progress: opts.Progress},
		cluster.FleetOptions{APIs: 1, Workers: 1, Env: env})
	if err != nil {
		return nil, err
	}
	defer fleet.Stop()
	opts.Progress("starting the bare worker")
	bareWebhooks, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	bareAddr := fmt.Sprintf("127.0.0.1:%d", bareWebhooks)
	bare := cluster.NewProcess(logs, "bare-worker", opts.Self, []string{"bare-worker", bareAddr}, fleet.Env)
	if err := bare.Start(); err != nil {
		return nil, err
	}
	defer bare.Stop(10 * time.Second)

	var cfg config.Config
	if err := cfg.SetPayloadKeys([]string{envValue(fleet.Env, "HANDOFF_PAYLOAD_KEYS")}); err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{HostPort: frontend, Namespace: "default",
		Logger:        sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter: codec.DataConverter(cfg.Temporal.Encryption), FailureConverter: codec.FailureConverter(cfg.Temporal.Encryption)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &rig{opts: opts, c: c, api: fleet.APIURLs[0], bareWebhooks: "http://" + bareAddr + "/webhooks/payments", token: envValue(fleet.Env, "HANDOFF_API_TOKENS"),
		secret: envValue(fleet.Env, "HANDOFF_PAYMENTS_WEBHOOK_SECRETS"),
		http:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}}
	// The API's control client, with the API's defaults.
	if r.events, err = control.New(c, control.Options{PaymentPollInterval: 500 * time.Millisecond, PaymentTimeout: 10 * time.Minute,
		OrphanWindow: 24 * time.Hour, DataConverter: codec.DataConverter(cfg.Temporal.Encryption)}); err != nil {
		return nil, err
	}
	r.procs = []proc{{"temporal", srv.PID()}, {"bench driver", os.Getpid()}, {"bare worker", bare.PID()}}
	for _, p := range fleet.Processes() {
		r.procs = append(r.procs, proc{strings.Replace(p.Name, "-1", "", 1), p.PID()})
	}
	if err := r.waitForBareWorker(ctx); err != nil {
		return nil, errors.Join(err, errors.New(bare.Tail(2000)))
	}

	// A short warm-up of each side, not counted: connections, caches,
	// the server's first writes.
	opts.Progress("warming up")
	for _, side := range []string{sideHandoff, sideBare} {
		if _, err := r.orders(ctx, side, opts.Concurrency); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	rep := &Report{Options: opts}
	for i := range opts.Rounds {
		r.round = i
		// The side that goes first alternates, so that neither always
		// meets a server still settling from the other.
		sides := []string{sideHandoff, sideBare}
		if i%2 == 1 {
			sides = []string{sideBare, sideHandoff}
		}
		rd := round{}
		for _, ph := range phases {
			if !opts.runs(ph.kind) {
				continue
			}
			for _, side := range sides {
				opts.Progress(fmt.Sprintf("round %d of %d: %s %s", i+1, opts.Rounds, side, ph.what))
				if err := ph.run(ctx, r, side, rd.side(side)); err != nil {
					return nil, err
				}
			}
		}
		rep.Rounds = append(rep.Rounds, rd)
	}
	return rep, nil
}

// phases are what each round measures, in order, each side in turn.
var phases = []struct {
	kind, what string
	run        func(ctx context.Context, r *rig, side string, f *sideFigures) error
}{
	{"orders", "orders", func(ctx context.Context, r *rig, side string, f *sideFigures) (err error) {
		f.orders, err = r.orders(ctx, side, r.opts.Orders)
		return err
	}},
	{"webhooks", "webhook intake", func(ctx context.Context, r *rig, side string, f *sideFigures) (err error) {
		// Each side's webhook endpoint, and what it does once a webhook
		// is verified, called in process; in an order that alternates too.
		order := []string{intakeAPI, intakeHandoff}
		if side == sideBare {
			order = []string{intakeBareHTTP, intakeBare}
		}
		if r.round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, via := range order {
			fig, err := r.webhooks(ctx, via)
			if err != nil {
				return err
			}
			if via == intakeAPI || via == intakeBareHTTP {
				f.webhooks = fig
			} else {
				f.inProcess = fig
			}
		}
		return nil
	}},
	{"reads", "reads of running orders", func(ctx context.Context, r *rig, side string, f *sideFigures) (err error) {
		f.reads, err = r.reads(ctx, side)
		return err
	}},
}

// waitForBareWorker waits until the bare worker polls its queues and its
// webhook endpoint answers.
func (r *rig) waitForBareWorker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	queues := []struct {
		name string
		kind enumspb.TaskQueueType
	}{{BareTaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW}}
	for _, s := range []system.System{system.CRM, system.Payments, system.Accounting, system.Mail} {
		queues = append(queues, struct {
			name string
			kind enumspb.TaskQueueType
		}{barePrefix + s.TaskQueue(), enumspb.TASK_QUEUE_TYPE_ACTIVITY})
	}
	for _, q := range queues {
		for {
			resp, err := r.c.DescribeTaskQueue(ctx, q.name, q.kind)
			if err == nil && len(resp.GetPollers()) > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the bare worker does not poll %s: %w", q.name, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	for {
		// Any answer will do: an unsigned request is refused.
		resp, err := r.http.Post(r.bareWebhooks, "application/json", nil)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the bare worker's webhook endpoint does not answer: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// drain waits until visibility shows no running workflow whose id starts
// with prefix and n closed ones, then a few seconds more for the server's
// queues and the timers the workflows left to settle.
func (r *rig) drain(ctx context.Context, prefix string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	count := func(query string) (int64, error) {
		resp, err := r.c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
		return resp.GetCount(), err
	}
	base := fmt.Sprintf("WorkflowId STARTS_WITH '%s'", prefix)
	for {
		running, err := count(base + " AND ExecutionStatus = 'Running'")
		if err != nil {
			return fmt.Errorf("drain %s: %w", prefix, err)
		}
		closed, err := count(base + " AND ExecutionStatus != 'Running'")
		if err != nil {
			return fmt.Errorf("drain %s: %w", prefix, err)
		}
		if running == 0 && closed >= int64(n) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %d running, %d of %d closed: %w", prefix, running, closed, n, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The timers of an order's payment grace (2 s) fire after it ended.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
	}
	return nil
}

// nextPrefix is a fresh order-id prefix for one phase of one side.
func (r *rig) nextPrefix(what, side string) string {
	r.phase++
	return fmt.Sprintf("%s-%s-%02d-", what, side[:1], r.phase)
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
