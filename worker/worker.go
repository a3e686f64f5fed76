// Package worker connects handoff to Temporal: it dials the cluster (plain,
// mTLS or API key), makes sure the namespace has handoff's search
// attributes, and runs the workers — one for the workflows and one per
// provider task queue, so that a slow provider holds up only its own queue.
package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// Dial connects to the Temporal cluster the configuration names.
func Dial(ctx context.Context, cfg config.Temporal, logger *slog.Logger) (client.Client, error) {
	return DialWithMetrics(ctx, cfg, logger, nil)
}

// DialWithMetrics is Dial with the SDK's metrics reported through metrics.
func DialWithMetrics(ctx context.Context, cfg config.Temporal, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	opts, err := clientOptions(cfg, logger, metrics)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %s: %w", cfg.Address, err)
	}
	return c, nil
}

// NewLazyClient is a client that connects on its first call, so that a
// process that serves requests (the API) starts while Temporal is away and
// answers them as unavailable until it is back.
func NewLazyClient(cfg config.Temporal, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	opts, err := clientOptions(cfg, logger, metrics)
	if err != nil {
		return nil, err
	}
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal client for %s: %w", cfg.Address, err)
	}
	return c, nil
}

func clientOptions(cfg config.Temporal, logger *slog.Logger, metrics client.MetricsHandler) (client.Options, error) {
	opts := cfg.ClientOptions()
	opts.Logger, opts.MetricsHandler = sdklog.NewStructuredLogger(logger), metrics
	// Every payload and failure is encrypted when keys are set.
	opts.DataConverter, opts.FailureConverter = codec.DataConverter(cfg.Encryption), codec.FailureConverter(cfg.Encryption)
	// HANDOFF_TEMPORAL_TLS_* override the client profile's TLS file by
	// file (its server name and the rest stay); an API key implies TLS.
	if cfg.TLSEnabled() {
		tlsCfg, err := tlsConfig(cfg, opts.ConnectionOptions.TLS)
		if err != nil {
			return client.Options{}, fmt.Errorf("dial temporal: %w", err)
		}
		opts.ConnectionOptions.TLS, opts.ConnectionOptions.TLSDisabled = tlsCfg, false
	}
	return opts, nil
}

// tlsConfig is base (the client profile's TLS, when it has one) with the
// files HANDOFF_TEMPORAL_TLS_* name in place of its own.
func tlsConfig(cfg config.Temporal, base *tls.Config) (*tls.Config, error) {
	out := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		out = base.Clone()
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	if cfg.TLS.CA != "" {
		pem, err := os.ReadFile(cfg.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("read CA: no certificate found")
		}
		out.RootCAs = pool
	}
	return out, nil
}

// RegisterSearchAttributes adds handoff's search attributes to the namespace
// where they are missing. Temporal Cloud namespaces must have them added
// beforehand; there this only checks.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	_, err := AddSearchAttributes(ctx, c, namespace)
	return err
}

// AddSearchAttributes adds handoff's search attributes that the namespace
// lacks and names those it added.
func AddSearchAttributes(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	existing, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	var added []string
	for _, key := range workflows.SearchAttributes {
		if _, ok := existing.GetCustomAttributes()[key.GetName()]; !ok {
			missing[key.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
			added = append(added, key.GetName())
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		return nil, fmt.Errorf("add search attributes: %w", err)
	}
	return added, nil
}

// Registration is what a deployment adds to the workers beyond the order:
// the workflows of its own actions, and the activities its systems' queues
// run. Systems and action kinds are registered with package system and
// action.RegisterKind; their steps are declared in workflows.Steps tables.
type Registration struct {
	// Workflows run on the workflow queue.
	Workflows []any
	// Activities run on the named system's queue: activity functions, or
	// structs whose methods are activities.
	Activities map[string][]any
}

// stepActivities registers, on each system's queue, the activities the
// order's steps name (workflows.OrderSteps), as methods of acts, and the
// customer's (workflows.CustomerSteps) on the queues of the systems that
// keep customer records.
func stepActivities(acts *activities.Activities) map[string][]activityByName {
	out := map[string][]activityByName{}
	seen := map[string]bool{}
	for _, spec := range workflows.OrderSteps {
		for _, name := range spec.Activities {
			if seen[spec.System.Name+"/"+name] {
				continue
			}
			seen[spec.System.Name+"/"+name] = true
			out[spec.System.Name] = append(out[spec.System.Name], activityByName{name: name, fn: reflect.ValueOf(acts).MethodByName(name).Interface()})
		}
	}
	// Every system that keeps customer records finds and writes them.
	for _, name := range slices.Sorted(maps.Keys(acts.Customers)) {
		out[name] = append(out[name], activityByName{name: "MatchCustomer", fn: acts.MatchCustomer}, activityByName{name: "WriteCustomer", fn: acts.WriteCustomer},
			activityByName{name: "DeliverCustomerRecord", fn: acts.DeliverCustomerRecord})
	}
	return out
}

// activityByName is an activity to register under its declared name.
type activityByName struct {
	name string
	fn   any
}

// Workers are handoff's Temporal workers: the workflow worker, and one
// activity worker per provider queue that runs only while its provider is
// not paused. A pause is read from the provider control workflow, so it
// holds across restarts and across every worker process; every provider
// call is also checked against it where it is made (see pauseView).
type Workers struct {
	client    client.Client
	workflows func() sdkworker.Worker
	providers []*providerWorker
	pauses    *pauseView
	// ControlInterval is how often the pause state is read; default 0.5 s.
	ControlInterval time.Duration
	log             *slog.Logger
	// outcomes, when set, counts what the workflows reach.
	outcomes *Outcomes
	// drift, when set, is sent to the contract drift workflow every
	// DriftInterval (default 5 s).
	drift         *providers.DriftLog
	DriftInterval time.Duration
	driftStop     chan struct{}
	driftDone     chan struct{}
	// versioning is nil for unversioned workers.
	versioning *Versioning
	promoted   bool

	running sdkworker.Worker
	stop    chan struct{}
	done    chan struct{}
}

// providerWorker is the activity worker of one provider's queue.
type providerWorker struct {
	system  string
	queue   string
	build   func() sdkworker.Worker
	running sdkworker.Worker
}

// New builds the workflow worker and one activity worker per provider
// queue, each limited by its provider's rate limit (enforced by Temporal for
// the whole queue, across workers) and concurrency.
func New(c client.Client, acts *activities.Activities, cfg config.Config, extra ...Registration) (*Workers, error) {
	if c == nil || acts == nil {
		return nil, errors.New("new workers: client and activities are required")
	}
	// Reconciliation reads every provider; its comparing activities run
	// beside the workflows, its repairs on the providers' own queues.
	if acts.Orders == nil {
		acts.Orders = orderLookup{client: c}
	}
	if acts.News == nil {
		acts.News = customerNews{client: c}
	}
	// Memos and signals are read as the clients wrote them: encrypted
	// when payload keys are set.
	dc := codec.DataConverter(cfg.Temporal.Encryption)
	pauses := newPauseView(c, dc)
	if cfg.Worker.CacheSize > 0 {
		// One cache for every worker of the process.
		sdkworker.SetStickyWorkflowCacheSize(cfg.Worker.CacheSize)
	}
	versioning, err := VersioningFrom(cfg.Worker)
	if err != nil {
		return nil, err
	}
	ws := &Workers{client: c, pauses: pauses, ControlInterval: 500 * time.Millisecond, log: slog.New(slog.DiscardHandler), versioning: versioning,
		drift: cfg.CallDrift, DriftInterval: 5 * time.Second}
	ws.workflows = func() sdkworker.Worker {
		wf := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
			MaxConcurrentWorkflowTaskPollers: cfg.Worker.WorkflowPollers,
			MaxConcurrentActivityTaskPollers: cfg.Worker.ActivityPollers,
			DeploymentOptions:                versioning.options(),
			Interceptors:                     []interceptor.WorkerInterceptor{&pauseCheck{view: pauses}, &correlationLogs{payloads: dc}, &outcomeCounter{outcomes: ws.outcomes, payloads: dc}},
		})
		registerWorkflows(wf, versioning)
		wf.RegisterActivity(acts.ComparePage)
		wf.RegisterActivity(acts.OrderStandings)
		for _, r := range extra {
			for _, fn := range r.Workflows {
				wf.RegisterWorkflow(fn)
			}
		}
		return wf
	}
	byQueue := stepActivities(acts)
	for _, s := range system.All() {
		p, _ := cfg.Provider(s.Name)
		fns := byQueue[s.Name]
		var more []any
		for _, r := range extra {
			more = append(more, r.Activities[s.Name]...)
		}
		ws.providers = append(ws.providers, &providerWorker{system: s.Name, queue: s.TaskQueue(), build: func() sdkworker.Worker {
			w := sdkworker.New(c, s.TaskQueue(), sdkworker.Options{
				DisableWorkflowWorker:              true,
				DeploymentOptions:                  versioning.options(),
				MaxConcurrentActivityTaskPollers:   cfg.Worker.ActivityPollers,
				TaskQueueActivitiesPerSecond:       p.RateLimit,
				MaxConcurrentActivityExecutionSize: p.Concurrency,
				// A pause lets the calls in flight finish.
				WorkerStopTimeout: 30 * time.Second,
				// The pause is checked before the call is made; the call,
				// once made, runs to its end.
				Interceptors: []interceptor.WorkerInterceptor{&pauseCheck{view: pauses}, &providerCalls{}, &correlationLogs{payloads: dc}},
			})
			for _, a := range fns {
				w.RegisterActivityWithOptions(a.fn, activity.RegisterOptions{Name: a.name})
			}
			for _, a := range more {
				w.RegisterActivity(a)
			}
			return w
		}})
	}
	return ws, nil
}

// SetLogger sets where pause changes and start-up retries are logged.
func (ws *Workers) SetLogger(l *slog.Logger) { ws.log = l }

// SetOutcomes makes the workflow worker count what its workflows reach; it
// must be called before Start.
func (ws *Workers) SetOutcomes(o *Outcomes) { ws.outcomes = o }

// Start makes sure the provider control workflow exists, starts the
// workflow worker and the workers of providers that are not paused, and
// keeps following the pause state until Stop. While Temporal cannot be
// reached it tries again, with backoff, until ctx ends.
func (ws *Workers) Start(ctx context.Context) error {
	var paused map[string]workflows.ProviderPause
	err := Retry(ctx, ws.log, "start workers", func(ctx context.Context) error {
		if err := EnsureProviderControl(ctx, ws.client); err != nil {
			return err
		}
		if ws.running == nil {
			// The control workflow may answer by query, through a
			// workflow worker.
			w := ws.workflows()
			if err := w.Start(); err != nil {
				return fmt.Errorf("start workflow worker: %w", err)
			}
			ws.running = w
		}
		// The control workflow answers through the current version's
		// workers: when the deployment has none, this version becomes it
		// before it asks.
		if ws.versioning != nil && !ws.promoted {
			none, err := ws.noCurrentVersion(ctx)
			if err != nil {
				return err
			}
			if none {
				if err := ws.promote(ctx, []string{workflows.TaskQueue}); err != nil {
					return err
				}
				ws.promoted = true
			}
		}
		var err error
		paused, err = ws.pauses.refresh(ctx)
		return err
	})
	if err != nil {
		if ws.running != nil {
			ws.running.Stop()
			ws.running = nil
		}
		return err
	}
	queues := []string{workflows.TaskQueue}
	for _, p := range ws.providers {
		if _, isPaused := paused[p.system]; !isPaused {
			if err := p.start(); err != nil {
				ws.Stop()
				return err
			}
			queues = append(queues, p.queue)
		}
	}
	// Otherwise the version takes traffic once Temporal knows every queue
	// it polls, so that no task waits for a queue of it to be registered.
	if ws.versioning != nil && !ws.promoted {
		if err := Retry(ctx, ws.log, "make the worker version current", func(ctx context.Context) error { return ws.promote(ctx, queues) }); err != nil {
			ws.Stop()
			return err
		}
		ws.promoted = true
	}
	ws.stop, ws.done = make(chan struct{}), make(chan struct{})
	go ws.follow()
	if ws.drift != nil {
		ws.driftStop, ws.driftDone = make(chan struct{}), make(chan struct{})
		go ws.reportDrift(ws.driftStop, ws.driftDone)
	}
	return nil
}

func (p *providerWorker) start() error {
	w := p.build()
	if err := w.Start(); err != nil {
		return fmt.Errorf("start %s worker: %w", p.system, err)
	}
	p.running = w
	return nil
}

func (p *providerWorker) halt() {
	if p.running != nil {
		p.running.Stop()
		p.running = nil
	}
}

// follow applies pause changes until Stop.
func (ws *Workers) follow() {
	defer close(ws.done)
	ticker := time.NewTicker(ws.ControlInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ws.stop:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		paused, err := ws.pauses.refresh(ctx)
		cancel()
		if err != nil {
			continue // keep the current state until the control workflow answers
		}
		for _, p := range ws.providers {
			_, isPaused := paused[p.system]
			switch {
			case isPaused && p.running != nil:
				ws.log.Warn("provider paused: its calls wait in the queue", "system", p.system, "reason", paused[p.system].Reason)
				p.halt()
			case !isPaused && p.running == nil:
				if err := p.start(); err != nil {
					ws.log.Error("resume provider worker", "system", p.system, "error", err)
					continue
				}
				ws.log.Info("provider resumed", "system", p.system)
			}
		}
	}
}

// Stop stops every worker, letting running activities finish.
func (ws *Workers) Stop() {
	defer ws.stopDrift()
	if ws.stop != nil {
		close(ws.stop)
		<-ws.done
		ws.stop = nil
	}
	for _, p := range ws.providers {
		p.halt()
	}
	if ws.running != nil {
		ws.running.Stop()
		ws.running = nil
	}
}

// stopDrift sends the drift read last, once the provider calls in flight
// have finished.
func (ws *Workers) stopDrift() {
	if ws.driftStop != nil {
		close(ws.driftStop)
		<-ws.driftDone
		ws.driftStop = nil
	}
}

// EnsureProviderControl starts the provider control workflow unless it runs.
func EnsureProviderControl(ctx context.Context, c client.Client) error {
	_, err := c.ExecuteWorkflow(ctx, workflows.ProviderControlStart(), workflows.ProviderControlWorkflow, workflows.ProviderControlState{})
	if err != nil {
		return fmt.Errorf("start provider control: %w", err)
	}
	return nil
}

// Running lists the providers whose worker is polling now.
func (ws *Workers) Running() []string {
	var out []string
	for _, p := range ws.providers {
		if p.running != nil {
			out = append(out, p.system)
		}
	}
	return out
}
