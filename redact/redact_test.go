package redact

import "testing"

func TestText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"e-mail", "No such customer: ada.lovelace+shop@example.co.uk", "No such customer: a***@example.co.uk"},
		{"two e-mails", "a@b.io and bob@example.com", "a***@b.io and b***@example.com"},
		{"card with spaces", "card 4242 4242 4242 4242 declined", "card ****4242 declined"},
		{"card with dashes", "4000-0000-0000-0002", "****0002"},
		{"card in one run", "pan=5555555555554444.", "pan=****4444."},
		{"short numbers stay", "order 12345 of 2024-06-20 costs 4500", "order 12345 of 2024-06-20 costs 4500"},
		{"ids stay", "charge ch_1a2b3c_00000001 is pending", "charge ch_1a2b3c_00000001 is pending"},
		{"nothing personal", "injected 503", "injected 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
