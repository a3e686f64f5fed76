package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/workflows"
)

// pauseStore is the pause state as the control workflow keeps it.
type pauseStore struct {
	mu     sync.Mutex
	paused map[string]workflows.ProviderPause
	reads  int
}

func (s *pauseStore) read(context.Context) (map[string]workflows.ProviderPause, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	out := map[string]workflows.ProviderPause{}
	for k, v := range s.paused {
		out[k] = v
	}
	return out, nil
}

func (s *pauseStore) pause(system string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused[system] = workflows.ProviderPause{Reason: "outage"}
}

// TestAPauseHoldsFromItsAnswerOn follows the pause protocol: a worker read
// the pause state a moment before the pause was recorded; the API answers
// the pause one lease after recording it. From the answer on, no call gets
// through, although the worker learnt nothing in between.
func TestAPauseHoldsFromItsAnswerOn(t *testing.T) {
	const lease = 200 * time.Millisecond
	store := &pauseStore{paused: map[string]workflows.ProviderPause{}}
	v := &pauseView{read: store.read, lease: lease}
	ctx := context.Background()
	if _, err := v.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	store.pause("payments")
	// Before the answer, the worker's view may still let a call through:
	// this is why the answer waits.
	if err := v.allow(ctx, "payments"); err != nil {
		t.Logf("refused already before the answer: %v", err)
	}
	time.Sleep(lease) // what the API waits before it answers
	err := v.allow(ctx, "payments")
	if !errors.Is(err, errPaused) {
		t.Fatalf("a call after the pause was answered: %v, want it refused", err)
	}
	if err := v.allow(ctx, "crm"); err != nil {
		t.Errorf("a call to another provider: %v, want it let through", err)
	}
}

// TestAPauseStateThatCannotBeReadRefusesCalls: a call that is not sent can
// be sent later; one that is sent during an unknown pause cannot be taken back.
func TestAPauseStateThatCannotBeReadRefusesCalls(t *testing.T) {
	v := &pauseView{read: func(context.Context) (map[string]workflows.ProviderPause, error) {
		return nil, errors.New("temporal unreachable")
	}, lease: time.Second}
	if err := v.allow(context.Background(), "payments"); !errors.Is(err, errPaused) {
		t.Errorf("allow with an unreadable pause state = %v, want refused", err)
	}
}

// TestAFreshViewAnswersWithoutReading: within the lease, calls are decided
// from memory; the worker's follower keeps the view fresh.
func TestAFreshViewAnswersWithoutReading(t *testing.T) {
	store := &pauseStore{paused: map[string]workflows.ProviderPause{}}
	v := &pauseView{read: store.read, lease: time.Minute}
	ctx := context.Background()
	for range 100 {
		if err := v.allow(ctx, "payments"); err != nil {
			t.Fatal(err)
		}
	}
	if store.reads != 1 {
		t.Errorf("reads = %d for 100 calls, want 1", store.reads)
	}
}
