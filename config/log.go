package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Log is how handoff logs.
type Log struct {
	// JSON: one JSON object per line; else text (key=value).
	JSON  bool
	Level slog.Level
}

// LoadLog reads HANDOFF_LOG_FORMAT (json or text; defaultFormat when
// unset) and HANDOFF_LOG_LEVEL (debug, info, warn or error; default info).
func LoadLog(defaultFormat string) (Log, error) {
	format, ok := os.LookupEnv("HANDOFF_LOG_FORMAT")
	if !ok || format == "" {
		format = defaultFormat
	}
	var l Log
	switch strings.ToLower(format) {
	case "json":
		l.JSON = true
	case "text":
	default:
		return Log{}, fmt.Errorf("HANDOFF_LOG_FORMAT %q: want json or text", format)
	}
	level := os.Getenv("HANDOFF_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	if err := l.Level.UnmarshalText([]byte(level)); err != nil {
		return Log{}, fmt.Errorf("HANDOFF_LOG_LEVEL %q: want debug, info, warn or error", level)
	}
	return l, nil
}

// Handler is the log handler writing to w.
func (l Log) Handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.JSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
