// Package redact masks personal data in text that handoff stores or logs
// but did not write itself, such as a provider's error message: e-mail
// addresses and card-like numbers. Provider messages end up in an order's
// last_error, in the memo that operators' lists read and in log lines, all
// of which live longer and are read more widely than the provider's own
// records.
package redact

import (
	"regexp"
	"strings"
)

var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// cardPattern matches 13 to 19 digits, optionally grouped by spaces or
	// dashes, as card numbers are written.
	cardPattern = regexp.MustCompile(`\b\d(?:[ -]?\d){12,18}\b`)
)

// Text masks every e-mail address (keeping its first character and its
// domain: a***@example.com) and every card-like number (keeping its last
// four digits: ****4242) in s.
func Text(s string) string {
	s = emailPattern.ReplaceAllStringFunc(s, func(addr string) string {
		at := strings.LastIndexByte(addr, '@')
		return addr[:1] + "***" + addr[at:]
	})
	return cardPattern.ReplaceAllStringFunc(s, func(num string) string {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, num)
		return "****" + digits[len(digits)-4:]
	})
}
