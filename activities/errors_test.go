package activities

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name       string
		attempt    int32
		retryAfter time.Duration
		random     float64
		want       time.Duration
	}{
		{"first attempt, bottom of the range", 1, 0, 0, time.Second},
		{"first attempt, top of the range", 1, 0, 1, 2 * time.Second},
		{"third attempt, middle", 3, 0, 0.5, 4500 * time.Millisecond},
		{"capped at 30 s", 12, 0, 1, 30 * time.Second},
		{"huge attempt stays capped", 1000, 0, 1, 30 * time.Second},
		{"never before Retry-After", 1, 3 * time.Second, 0.1, 3 * time.Second},
		{"Retry-After is itself bounded", 1, time.Hour, 0.1, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := retryDelay(tt.attempt, tt.retryAfter, func() float64 { return tt.random })
			if got != tt.want {
				t.Errorf("retryDelay(%d, %s, %v) = %s, want %s", tt.attempt, tt.retryAfter, tt.random, got, tt.want)
			}
		})
	}
}

func TestRetryDelayIsSpread(t *testing.T) {
	// Fifty callers failing together must not come back together.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[retryDelay(4, 0, randomFloat)] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 delays took %d distinct values, want them spread", len(seen))
	}
}
