package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"certmail/authguard"
	"certmail/certified"
	"certmail/mailbox"
	"certmail/receipts/evidence"

	"certmail/kv"
)

// OpenAPI is the API's OpenAPI 3.1 description, served at
// /v1/openapi.json; openapi.json in the repository is the source.
//
//go:embed openapi.json
var OpenAPI []byte

// DefaultMaxMessageBytes is the message size limit when Options gives
// none (the config default).
const DefaultMaxMessageBytes = 50 << 20

// Body limits of the requests that have a body besides a submission; the
// others get none (GET).
const (
	maxCODBody = 64 << 10 // a COD is well under 2 kB
	maxGetBody = 0
)

// Options configure a Server.
type Options struct {
	Store     *mailbox.Store
	Certified *certified.Service
	// Resolve maps a recipient, as a submission names it (an account or
	// an address), to a local account; errors from the delivery package
	// keep their meaning (delivery.ErrTemporary is a 503). Nil accepts
	// existing account names only.
	Resolve func(rcpt string) (string, error)
	// MaxMessageBytes bounds a submitted message; zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// Auth checks recipients' passwords (HTTP Basic auth) and counts
	// failures; give it the IMAP server's Guard, so that a lockout holds
	// on both. Nil: a guard of the API's own that limits nothing.
	Auth   *authguard.Guard
	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the API under /v1/.
type Server struct {
	store *mailbox.Store
	svc   *certified.Service
	log   *evidence.Log
	db    kv.RecordStore
	opts  Options
	lg    *slog.Logger
	mux   *http.ServeMux
	// routes are the patterns served, for the OpenAPI check.
	routes []string
}

// New returns the API server.
func New(opts Options) *Server {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Auth == nil {
		opts.Auth = authguard.New(opts.Store, authguard.Policy{}, opts.Logger)
	}
	s := &Server{
		store: opts.Store,
		svc:   opts.Certified,
		log:   opts.Certified.Log(),
		db:    opts.Store.Records(),
		opts:  opts,
		lg:    opts.Logger,
		mux:   http.NewServeMux(),
	}
	// A submission is the message in base64 (4/3) or as a JSON string
	// (escapes may double it), plus the other fields.
	submitLimit := 2*opts.MaxMessageBytes + 1<<20
	s.handle("POST /v1/items", submitLimit, s.submit)
	s.handle("GET /v1/items/{label}", maxGetBody, s.getItem)
	s.handle("GET /v1/items/{label}/evidence", maxGetBody, s.getEvidence)
	s.handle("POST /v1/items/{label}/cod", maxCODBody, s.postCOD)
	s.handle("GET /v1/log/checkpoint", maxGetBody, s.getCheckpoint)
	s.handle("GET /v1/log/proof/inclusion", maxGetBody, s.getInclusion)
	s.handle("GET /v1/log/proof/consistency", maxGetBody, s.getConsistency)
	s.handle("GET /v1/log/leaves", maxGetBody, s.getLeaves)
	s.handle("GET /v1/keys", maxGetBody, s.getKeys)
	s.handle("GET /v1/openapi.json", maxGetBody, s.getOpenAPI)
	s.mux.HandleFunc("/v1/", s.notFound)
	return s
}

// Register serves the API on mux, under /v1/.
func (s *Server) Register(mux *http.ServeMux) { mux.Handle("/v1/", s) }

// Routes are the "METHOD /path" patterns the API serves.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// Answers depend on who asks and on the log's growth.
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// handlerFunc is a handler that reports failure as an error: an
// *httpError says what the client gets, anything else is a 500.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, maxBody int64, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		start := time.Now()
		err := h(w, r)
		if err == nil {
			s.lg.Debug("api request", "method", r.Method, "path", r.URL.Path, "dur", time.Since(start))
			return
		}
		if errors.Is(err, mailbox.ErrDiskFull) {
			// RFC 4918 11.5: the server cannot store what it needs to;
			// the client may retry once space is freed.
			err = &httpError{status: http.StatusInsufficientStorage, msg: "the mail store's disk is full; try again later",
				header: http.Header{"Retry-After": {"60"}}}
		}
		var he *httpError
		if !errors.As(err, &he) {
			s.lg.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			he = &httpError{status: http.StatusInternalServerError, msg: "internal error"}
		} else {
			s.lg.Info("api request refused", "method", r.Method, "path", r.URL.Path, "status", he.status, "err", he.msg)
		}
		for k, v := range he.header {
			w.Header()[k] = v
		}
		writeJSON(w, he.status, errorBody{Error: he.msg})
	})
}

// notFound answers what no route serves: 405 with Allow when the path
// is served for other methods, else 404, both as JSON.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/v1/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s not allowed; use %s", r.Method, strings.Join(allow, " or "))})
		return
	}
	writeJSON(w, http.StatusNotFound, errorBody{Error: "no such endpoint: " + r.URL.Path})
}

type errorBody struct {
	Error string `json:"error"`
}

// httpError is a refusal the client is told about.
type httpError struct {
	status int
	msg    string
	header http.Header
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	// Error texts quote <token> and the like; keep them readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own types get here; a failure is a bug, and the
		// client still gets a JSON error.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(OpenAPI)
	return nil
}
