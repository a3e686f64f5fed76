package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

func loadConfig(opts config.ValidateOptions) (config.Config, error) {
	cfg, err := config.Load()
	if err != nil {
		return config.Config{}, err
	}
	if err := cfg.Validate(opts); err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func runSandbox(ctx context.Context, log *slog.Logger) error {
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	ln, err := listen(cfg.Sandbox.Addr)
	if err != nil {
		return err
	}
	return serveSandbox(ctx, cfg, ln, log)
}

func serveSandbox(ctx context.Context, cfg config.Config, ln net.Listener, log *slog.Logger) error {
	opts := sandbox.Options{
		ClientID: cfg.Sandbox.ClientID, ClientSecret: cfg.Sandbox.ClientSecret,
		Logger: log.With("component", "sandbox"),
		// Zero is the sandbox's default (200 ms); "at once" is the
		// shortest timer.
		SettleDelay: max(cfg.Sandbox.SettleDelay, time.Nanosecond), WebhookDelay: cfg.Sandbox.WebhookDelay,
	}
	// The sandbox signs each system's events with the system's newest
	// secret; a system without one gets none of its events.
	opts.WebhookURL, opts.WebhookSecrets = cfg.Sandbox.WebhookURL, map[string]string{}
	for _, s := range system.All() {
		if p, _ := cfg.Provider(s.Name); p.Provider == system.Sandbox && len(p.WebhookSecrets) > 0 {
			opts.WebhookSecrets[s.Name] = p.WebhookSecrets[0]
		}
	}
	if p, _ := cfg.Provider(system.Payments.Name); len(p.WebhookSecrets) > 0 {
		opts.WebhookSecret = p.WebhookSecrets[0]
	}
	srv := sandbox.NewServer(opts)
	defer srv.Close()
	return serveHTTP(ctx, ln, srv, nil)
}

// newRegistry is the registry a handoff process serves on /metrics: its
// own series and the SDK's (registered by the caller), and the Go
// runtime's and the process's (go_memstats_*, go_gc_* with the live heap
// go_gc_heap_live_bytes, process_resident_memory_bytes,
// process_cpu_seconds_total …), which size a deployment.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func runWorker(ctx context.Context, log *slog.Logger) error {
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	reg := newRegistry()
	metrics, closeMetrics, err := worker.SDKMetrics(reg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	worker.CountPayloadFailures(reg, cfg.Temporal.Encryption)
	// A worker has no API: it serves its metrics and probes on a port of
	// its own, from the start. /healthz: the process runs; /readyz: its
	// workers poll (not while it waits for Temporal).
	ln, err := listen(cfg.MetricsAddr)
	if err != nil {
		return err
	}
	var polling atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { probe(w, true, "ok", "") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		probe(w, polling.Load(), "ready", "the workers are starting, waiting for Temporal, or stopping")
	})
	go func() {
		if err := serveHTTP(ctx, ln, mux, nil); err != nil {
			log.Error("serve worker metrics", "error", err)
		}
	}()
	// A worker that starts while Temporal is unreachable waits for it.
	var c client.Client
	err = worker.Retry(ctx, log, "connect to Temporal", func(actx context.Context) error {
		var err error
		c, err = worker.DialWithMetrics(actx, cfg.Temporal, log, metrics)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	err = worker.Retry(ctx, log, "register search attributes", func(actx context.Context) error {
		return worker.RegisterSearchAttributes(actx, c, cfg.Temporal.Namespace)
	})
	if err != nil {
		return err
	}
	return runWorkers(ctx, cfg, c, reg, log, &polling)
}

// probe answers a health probe: 200 with the status, or 503 saying why not.
func probe(w http.ResponseWriter, ok bool, status, notWhy string) {
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "detail": notWhy})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// dialWithMetrics connects to Temporal with the SDK's metrics reported to reg.
func dialWithMetrics(ctx context.Context, cfg config.Config, reg *prometheus.Registry, log *slog.Logger) (client.Client, func(), error) {
	metrics, closeMetrics, err := worker.SDKMetrics(reg, log)
	if err != nil {
		return nil, nil, err
	}
	worker.CountPayloadFailures(reg, cfg.Temporal.Encryption)
	c, err := worker.DialWithMetrics(ctx, cfg.Temporal, log, metrics)
	if err != nil {
		closeMetrics()
		return nil, nil, err
	}
	return c, closeMetrics, nil
}

// runWorkers runs the workers until ctx ends; polling, when set, says
// whether they are polling.
func runWorkers(ctx context.Context, cfg config.Config, c client.Client, reg prometheus.Registerer, log *slog.Logger, polling *atomic.Bool) error {
	cfg.CallLog = log.With("component", "provider")
	cfg.CallMetrics = providers.NewMetrics(reg)
	cfg.CallDrift = providers.NewDriftLog()
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		return err
	}
	// The schedule is made beside the workers, not before them: a cluster
	// that is slow to answer about schedules must not hold up the work.
	go ensureSchedule(ctx, c, cfg)
	ws, err := worker.New(c, acts, cfg)
	if err != nil {
		return err
	}
	ws.SetLogger(log.With("component", "worker"))
	ws.SetOutcomes(worker.NewOutcomes(reg))
	if err := ws.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if polling != nil {
		polling.Store(true)
		defer polling.Store(false)
	}
	<-ctx.Done()
	if polling != nil {
		polling.Store(false)
	}
	ws.Stop()
	return nil
}

func runAPI(ctx context.Context, log *slog.Logger) error {
	cfg, err := loadConfig(config.ValidateOptions{NeedAPITokens: true})
	if err != nil {
		return err
	}
	reg := newRegistry()
	metrics, closeMetrics, err := worker.SDKMetrics(reg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	worker.CountPayloadFailures(reg, cfg.Temporal.Encryption)
	// The API serves while Temporal is away, answering 503 with
	// Retry-After, rather than refusing to start.
	c, err := worker.NewLazyClient(cfg.Temporal, log, metrics)
	if err != nil {
		return err
	}
	defer c.Close()
	ln, err := listen(cfg.APIAddr)
	if err != nil {
		return err
	}
	return serveAPI(ctx, cfg, c, ln, reg, log)
}

func serveAPI(ctx context.Context, cfg config.Config, c client.Client, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	st, err := control.New(c, controlOptions(cfg))
	if err != nil {
		return err
	}
	srv, err := api.New(api.Options{
		Orders: st, Customers: st, Events: st, Operators: st, Reconciliations: st, Webhooks: webhookSources(cfg),
		APITokens: cfg.APITokens, OperatorTokens: cfg.OperatorTokens,
		Ready: func(ctx context.Context) error {
			_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		WebUIURL: cfg.Temporal.UI.URL, Namespace: cfg.Temporal.Namespace,
		Logger: log.With("component", "api"), Registry: reg,
		Health: st, WorkerMetricsURLs: cfg.WorkerMetricsURLs, Codec: cfg.Temporal.Encryption,
	})
	if err != nil {
		return err
	}
	// Stopping, the instance first drains: /readyz fails while requests
	// are still served, until load balancers have noticed.
	return serveHTTP(ctx, ln, srv, func() {
		srv.Drain()
		if cfg.DrainDelay > 0 {
			log.Info("draining before stopping", "delay", cfg.DrainDelay.String())
			time.Sleep(cfg.DrainDelay)
		}
	})
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// serveHTTP serves h on ln until ctx ends, then runs drain (when set) and
// shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, drain func()) error {
	srv := api.NewHTTPServer(h, api.DefaultTimeouts)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if drain != nil {
		drain()
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	return nil
}

func controlOptions(cfg config.Config) control.Options {
	rules, systems := workflows.CustomerRulesFrom(cfg.Contracts())
	return control.Options{
		PaymentPollInterval: cfg.PaymentPollInterval, PaymentTimeout: cfg.PaymentTimeout,
		PaymentWebhookWait: cfg.PaymentWebhookWait, OrphanWindow: cfg.OrphanEventWindow,
		Namespace: cfg.Temporal.Namespace, Reconcile: reconcileInput(cfg),
		CustomerRules: rules, CustomerSystems: systems, DataConverter: codec.DataConverter(cfg.Temporal.Encryption),
	}
}

func reconcileInput(cfg config.Config) workflows.ReconcileInput {
	maxRepairs := cfg.Reconcile.MaxRepairs
	if maxRepairs == 0 {
		maxRepairs = -1 // configured to repair nothing
	}
	in := workflows.ReconcileInput{PageSize: cfg.Reconcile.PageSize, Grace: cfg.Reconcile.Grace,
		Since: cfg.Reconcile.Since, MaxRepairs: maxRepairs}
	// Customers are compared where both the CRM and accounting keep them
	// (the workers add these phases on the same condition).
	if records := contracts.CustomerRecords(cfg.Contracts()); records["crm"].System != "" && records["accounting"].System != "" {
		in.Phases = []string{activities.PhaseCharges, activities.PhaseInvoices, activities.PhaseCustomers, activities.PhaseAccountingCustomers}
	}
	return in
}

// webhookSources says, per system, how its configured provider signs its
// webhooks.
func webhookSources(cfg config.Config) map[string]api.WebhookSource {
	out := map[string]api.WebhookSource{}
	for _, s := range system.All() {
		p, _ := cfg.Provider(s.Name)
		kind, _ := s.Provider(p.Provider)
		if kind.Webhooks == system.SchemeNone {
			continue // a provider that sends none: its path answers 404
		}
		out[s.Name] = api.WebhookSource{Scheme: kind.Webhooks, Secrets: p.WebhookSecrets}
	}
	return out
}

// ensureSchedule creates or updates the reconciliation schedule, trying
// again for a while if the cluster does not answer.
func ensureSchedule(ctx context.Context, c client.Client, cfg config.Config) {
	opts := worker.ReconcileScheduleOptions{Every: cfg.Reconcile.Interval, Input: reconcileInput(cfg)}
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := worker.EnsureReconcileSchedule(tctx, c, opts)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 10 {
			slog.Default().Error("reconciliation schedule not ensured; reconcile on demand until a worker restarts", "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt) * 3 * time.Second):
		}
	}
}
