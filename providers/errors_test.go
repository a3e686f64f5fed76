package providers

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		status       int
		wantCategory Category
		wantType     string
	}{
		{http.StatusBadRequest, Permanent, TypeInvalidInput},
		{http.StatusUnauthorized, Permanent, TypeUnauthorized},
		{http.StatusForbidden, Permanent, TypeForbidden},
		{http.StatusNotFound, Permanent, TypeNotFound},
		{http.StatusConflict, Permanent, TypeConflict},
		{http.StatusUnprocessableEntity, Permanent, TypeInvalidInput},
		{http.StatusRequestTimeout, Temporary, TypeTemporary},
		{http.StatusTooManyRequests, Temporary, TypeTemporary},
		{http.StatusInternalServerError, Temporary, TypeTemporary},
		{http.StatusBadGateway, Temporary, TypeTemporary},
		{http.StatusServiceUnavailable, Temporary, TypeTemporary},
		{http.StatusGatewayTimeout, Temporary, TypeTemporary},
		{599, Temporary, TypeTemporary},
		{http.StatusTeapot, Permanent, TypeUnsupported},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			gotCategory, gotType := ClassifyStatus(tt.status)
			if gotCategory != tt.wantCategory || gotType != tt.wantType {
				t.Errorf("ClassifyStatus(%d) = %s, %s; want %s, %s", tt.status, gotCategory, gotType, tt.wantCategory, tt.wantType)
			}
		})
	}
}

func TestClassifyPrefersTheProvidersErrorType(t *testing.T) {
	tests := []struct {
		status       int
		errorType    string
		wantCategory Category
		wantType     string
	}{
		{402, "card_error", Permanent, TypeCardDeclined},
		{400, "idempotency_error", Permanent, TypeConflict},
		{429, "rate_limit_error", Temporary, TypeTemporary},
		{500, "api_error", Temporary, TypeTemporary},
		{401, "authentication_error", Permanent, TypeUnauthorized},
		{400, "invalid_request_error", Permanent, TypeInvalidInput},
		{404, "invalid_request_error", Permanent, TypeNotFound},
		{503, "", Temporary, TypeTemporary},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.errorType), func(t *testing.T) {
			gotCategory, gotType := Classify(tt.status, tt.errorType)
			if gotCategory != tt.wantCategory || gotType != tt.wantType {
				t.Errorf("Classify(%d, %q) = %s, %s; want %s, %s", tt.status, tt.errorType, gotCategory, gotType, tt.wantCategory, tt.wantType)
			}
		})
	}
}

func TestCategoryOf(t *testing.T) {
	wrapped := fmt.Errorf("create charge: %w", &Error{Category: Ambiguous})
	if got := CategoryOf(wrapped); got != Ambiguous {
		t.Errorf("CategoryOf(wrapped ambiguous) = %s, want ambiguous", got)
	}
	if got := CategoryOf(errors.New("unclassified")); got != Temporary {
		t.Errorf("CategoryOf(plain error) = %s, want temporary", got)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  int
	}{
		{"empty", "", 0},
		{"seconds", "3", 3},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"negative", "-4", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfterSeconds(tt.value, now); got != tt.want {
				t.Errorf("retryAfterSeconds(%q) = %d, want %d", tt.value, got, tt.want)
			}
		})
	}
}
