package gateway

import (
	"fmt"
	"io"
	"log/slog"
)

// ParseLevel maps log.level names to slog levels.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("gateway: unknown log level %q", s)
}

// NewLogger builds the daemon's logger: format "text" or "json" (the
// --log-format flag overrides log.format), level from log.level. The
// returned LevelVar lets a SIGHUP reload change the level in place.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	l, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, nil, fmt.Errorf("gateway: unknown log format %q (want text or json)", format)
	}
	return slog.New(h), lv, nil
}
