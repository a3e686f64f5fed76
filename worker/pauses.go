package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/workflows"
)

// pauseView is what one worker process knows of the provider pauses, and
// since when: readAt is when the read that produced paused was sent.
//
// A pause must hold from the moment its answer is given, also for a task
// that a worker's outstanding poll receives a moment later. So every
// provider call is checked against the view, and a view older than
// workflows.PauseLease is read again before the call may go. The API
// answers a pause only after workflows.PauseLease has passed since the
// pause was recorded: by then every view that lets a call through was read
// after the pause, and shows it.
type pauseView struct {
	read  func(context.Context) (map[string]workflows.ProviderPause, error)
	lease time.Duration

	mu     sync.Mutex
	paused map[string]workflows.ProviderPause
	readAt time.Time
	// reading serialises the reads that a stale view makes calls wait for.
	reading sync.Mutex
}

func newPauseView(c client.Client, dc converter.DataConverter) *pauseView {
	return &pauseView{read: func(ctx context.Context) (map[string]workflows.ProviderPause, error) {
		return control.ReadPaused(ctx, c, dc)
	}, lease: workflows.PauseLease}
}

// refresh reads the pause state and keeps it unless a newer read already
// landed.
func (v *pauseView) refresh(ctx context.Context) (map[string]workflows.ProviderPause, error) {
	sent := time.Now()
	paused, err := v.read(ctx)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if sent.After(v.readAt) {
		v.paused, v.readAt = paused, sent
	}
	return paused, nil
}

// current returns the pause state if it was read within the lease.
func (v *pauseView) current() (map[string]workflows.ProviderPause, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.paused, time.Since(v.readAt) < v.lease
}

// errPaused refuses a call to a paused provider.
var errPaused = errors.New("the provider is paused by an operator")

// allow reports nil when none of the systems is paused, reading the pause
// state first when the view is stale. A state that cannot be read counts
// as paused: a call that is not sent can be sent later, one that is sent
// cannot be taken back.
func (v *pauseView) allow(ctx context.Context, systems ...string) error {
	paused, fresh := v.current()
	if !fresh {
		v.reading.Lock()
		paused, fresh = v.current()
		if !fresh {
			var err error
			if paused, err = v.refresh(ctx); err != nil {
				v.reading.Unlock()
				return fmt.Errorf("%w: the pause state could not be read: %w", errPaused, err)
			}
		}
		v.reading.Unlock()
	}
	for _, s := range systems {
		if p, ok := paused[s]; ok {
			return fmt.Errorf("%w (%s): %s", errPaused, s, p.Reason)
		}
	}
	return nil
}

// pauseCheck is the activity interceptor that checks the pause where each
// call is made: it gives the activity a gate that every provider request
// passes just before it is sent (providers.WithGate), so that no request
// leaves for a paused provider, also one an activity makes after a look-up,
// or after waiting for credentials.
type pauseCheck struct {
	interceptor.WorkerInterceptorBase
	view *pauseView
}

func (p *pauseCheck) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &pauseCheckInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, view: p.view}
}

type pauseCheckInbound struct {
	interceptor.ActivityInboundInterceptorBase
	view *pauseView
}

func (i *pauseCheckInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	return i.Next.ExecuteActivity(providers.WithGate(ctx, func(ctx context.Context, system string) error {
		return i.view.allow(ctx, system)
	}), in)
}

// providerCalls is the activity interceptor of the provider queues. A
// provider call, once sent, runs to its own end (bounded by the provider's
// timeouts), even when Temporal cancels the activity: an abandoned create
// can still land at the provider after the order stopped waiting for it,
// and an order being cancelled must know whether it did. While it runs, the
// activity heartbeats, so that Temporal notices a worker that died mid-call
// within the step's heartbeat timeout and retries it elsewhere.
type providerCalls struct {
	interceptor.WorkerInterceptorBase
}

func (*providerCalls) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &providerCallsInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type providerCallsInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (i *providerCallsInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	// Every provider call of the activity is logged with its action,
	// workflow and attempt.
	ctx = providers.WithCallContext(ctx, providers.CallContext{
		Attrs: []slog.Attr{
			slog.String("action", info.WorkflowExecution.ID), slog.String("workflow_id", info.WorkflowExecution.ID),
			slog.String("run_id", info.WorkflowExecution.RunID), slog.String("activity", info.ActivityType.Name),
		},
		Attempt: info.Attempt, MaxAttempts: workflows.MaxStepAttempts,
	})
	if every := info.HeartbeatTimeout / 3; every > 0 {
		done := make(chan struct{})
		defer close(done)
		go func() {
			ticker := time.NewTicker(every)
			defer ticker.Stop()
			for {
				select {
				case <-done:
					return
				case <-ticker.C:
					activity.RecordHeartbeat(ctx)
				}
			}
		}()
	}
	return i.Next.ExecuteActivity(context.WithoutCancel(ctx), in)
}
