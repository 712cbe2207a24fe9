package netguard

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// maxHeaderBytes bounds an HTTP request's header (net/http's default is
// 1 MB): the API's headers are a token and a content type.
const maxHeaderBytes = 64 << 10

// HTTPOptions are an HTTP listener's timeouts; each must be set (a
// listener without them is how idle keep-alives and trickled requests
// held every descriptor).
type HTTPOptions struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Logger                                                    *slog.Logger
}

// HTTPServer returns an http.Server for h with o's timeouts. Serve it on
// a Guard listener with HTTPRefusal. Request bodies are limited per
// route by the handlers that read them (api's handle); the others never
// read one, and net/http closes a connection whose unread body is large.
func HTTPServer(h http.Handler, o HTTPOptions) *http.Server {
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(lg.Handler(), slog.LevelWarn),
	}
}

// HTTPRefusal is the answer to a connection over a cap, written before
// the request is read: 503 with Retry-After (RFC 9110 section 15.6.4).
func HTTPRefusal(perIP bool, limit int) []byte {
	msg := fmt.Sprintf("too many connections (limit %d)\n", limit)
	if perIP {
		msg = fmt.Sprintf("too many connections from your address (limit %d)\n", limit)
	}
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Retry-After: 10\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
}
