package imapsrv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/authguard"
	"certmail/buildinfo"
	"certmail/mailbox"
	"certmail/metrics"
	"certmail/netguard"
)

// Options configure the IMAP server.
type Options struct {
	Logger *slog.Logger
	// TLSConfig enables STARTTLS on plain listeners and is required by
	// ServeTLS.
	TLSConfig *tls.Config
	// InsecureAuth allows password authentication without TLS from
	// non-loopback addresses. Loopback clients may always authenticate.
	InsecureAuth bool
	// AppendLimit is the largest message APPEND accepts, in bytes.
	AppendLimit uint32
	// Debug, if set, receives the raw protocol traffic.
	Debug io.Writer
	// Hooks, if set, take over COPY/MOVE/APPEND into their mailboxes.
	Hooks Hooks
	// Limits bound connections and sessions (limits.go).
	Limits Limits
	// Auth checks every password and counts failed logins (auth.go).
	// Give the API server the same Guard: a lockout then holds on every
	// way in. Nil: a guard of the server's own that limits nothing.
	Auth *authguard.Guard
	// Metrics, if set, counts sessions, commands and their latency, and
	// logins refused by a session limit (observe.go).
	Metrics *metrics.Metrics
	// Metadata bounds each account's METADATA entries and gives the
	// server's read-only ones (metadata.go).
	Metadata MetadataOptions
}

// DefaultAppendLimit is used when Options.AppendLimit is zero.
const DefaultAppendLimit = 50 << 20

// Server serves the store over IMAP.
type Server struct {
	store *mailbox.Store
	opts  Options
	log   *slog.Logger
	// limits is the state of opts.Limits (limits.go).
	limits *limiter
	auth   *authguard.Guard
	// id is the answer to ID (id.go).
	id *imap.IDData
	// sessions are the logged-in sessions by account (accounts.go).
	sessions accountSessions
	// notifiers hear the changes NOTIFY sessions follow (notify.go).
	notifiers notifiers
	// sortKeys caches decoded sort keys by blob (sort.go).
	sortKeys sortKeyCache
	// previews caches previews computed for messages stored without one
	// (preview.go).
	previews previewCache
	// slowFetch turns off fetchfast.go, for tests that compare its
	// output with imapserver's.
	slowFetch bool
	// onSearchDone, if set, learns what each SEARCH cost (tests).
	onSearchDone func(messages, folds int, err error)
	// onSearchMessage, if set, is called before each message a SEARCH
	// looks at (tests: a slow search without the CPU cost).
	onSearchMessage func()
	// afterStore, if set, runs after a STORE's change commits, before its
	// responses (tests: another session's change in between).
	afterStore func()
	// beforeBye, if set, runs before a deleted account's session is
	// sent its BYE (tests: a command read meanwhile).
	beforeBye func()
	// afterPassword, if set, runs in LOGIN between the password check
	// and the session's registration (tests).
	afterPassword func(acct string)

	// Two imapserver instances that differ only in whether password
	// authentication is allowed without TLS: loopback connections go to
	// the permissive one (unless InsecureAuth makes both permissive).
	local, remote *imapserver.Server

	boxesMu sync.Mutex
	boxes   map[boxKey]*trackedBox

	// The listeners that feed local and remote: every accept loop hands
	// its connections to one of them.
	localLn, remoteLn *routedListener

	// tlsSrv serves implicit-TLS connections. Connections reach
	// imapserver wrapped in a literalGuard, which hides the *tls.Conn
	// imapserver looks for to allow password authentication and to stop
	// offering STARTTLS, so these go to an instance that allows the one
	// and has no TLS configuration to offer the other.
	tlsSrv *imapserver.Server
	tlsLn  *routedListener

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	closed    bool
}

type boxKey struct {
	acct string
	id   uint32
}

// New returns a server for store.
func New(store *mailbox.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = DefaultAppendLimit
	}
	if opts.Auth == nil {
		opts.Auth = authguard.New(store, authguard.Policy{}, opts.Logger)
	}
	s := &Server{
		store:     store,
		opts:      opts,
		log:       opts.Logger,
		boxes:     make(map[boxKey]*trackedBox),
		listeners: make(map[net.Listener]struct{}),
		limits:    newLimiter(opts.Limits),
		sessions:  accountSessions{m: make(map[string]map[*session]struct{})},
		auth:      opts.Auth,
		id:        serverID(buildinfo.Read()),
	}
	s.local = imapserver.New(s.serverOptions(true))
	s.remote = imapserver.New(s.serverOptions(opts.InsecureAuth))
	s.localLn = newRoutedListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	s.remoteLn = newRoutedListener(&net.TCPAddr{})
	go s.local.Serve(s.localLn)
	go s.remote.Serve(s.remoteLn)
	tlsOpts := s.serverOptions(true)
	tlsOpts.TLSConfig = nil
	s.tlsSrv = imapserver.New(tlsOpts)
	s.tlsLn = newRoutedListener(&net.TCPAddr{})
	go s.tlsSrv.Serve(s.tlsLn)
	store.OnChange(s.onChange)
	if store.Shared() {
		// Several nodes: \Recent claims go to the store with the message
		// (recent.go, claimOnInsert).
		store.AddHooks(mailbox.Hooks{AfterInsert: s.claimOnInsert})
	}
	return s
}

func capabilities() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:        {},
		imap.CapIMAP4rev2:        {},
		imap.CapNamespace:        {},
		imap.CapUIDPlus:          {},
		imap.CapESearch:          {},
		imap.CapSearchRes:        {},
		imap.CapListExtended:     {},
		imap.CapListStatus:       {},
		imap.CapMove:             {},
		imap.CapStatusSize:       {},
		imap.CapSpecialUse:       {},
		imap.CapCreateSpecialUse: {},
		imap.CapLiteralPlus:      {},
		imap.CapCondStore:        {},
		imap.CapQResync:          {},
		imap.CapID:               {},
		imap.CapCompressDeflate:  {},
		imap.CapObjectID:         {}, // RFC 8474 (objectid.go)
		imap.CapSaveDate:         {}, // RFC 8514 (savedate.go)
		imap.CapPreview:          {}, // RFC 8970 (preview.go)
		imap.CapBinary:           {}, // RFC 3516 (binary.go)
		imap.CapMultiAppend:      {}, // RFC 3502 (append.go)
		imap.CapMetadata:         {}, // RFC 5464 (metadata.go)
		imap.CapMetadataServer:   {},
		imap.CapCatenate:         {}, // RFC 4469 (catenate.go)
		imap.CapNotify:           {}, // RFC 5465 (notify.go)
		// quota.go
		imap.CapQuota:       {},
		"QUOTA=RES-STORAGE": {},
		"QUOTA=RES-MESSAGE": {},
		// sort.go, thread.go (RFC 5256, RFC 5957)
		imap.CapSort:        {},
		imap.CapSortDisplay: {},
		imap.CapESort:       {},
		imap.Cap("THREAD=" + imap.ThreadOrderedSubject): {},
		imap.Cap("THREAD=" + imap.ThreadReferences):     {},
		// context.go (RFC 5267 section 4)
		imap.CapContextSearch: {},
		imap.CapContextSort:   {},
		imap.CapPartial:       {}, // RFC 9394: SEARCH/SORT RETURN (PARTIAL), UID FETCH (PARTIAL)
	}
}

func (s *Server) serverOptions(insecureAuth bool) *imapserver.Options {
	return &imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			// Over limits.max_connections_per_ip: the error is a BYE,
			// which imapserver sends instead of the greeting (limits.go).
			if err := s.admitConn(c); err != nil {
				return nil, nil, err
			}
			return s.newSession(c), nil, nil
		},
		Caps:         capabilities(),
		Logger:       slogAdapter{s.log},
		TLSConfig:    s.opts.TLSConfig,
		InsecureAuth: insecureAuth,
		DebugWriter:  s.opts.Debug,
		// Once COMPRESS is active, the guard beneath sees compressed
		// bytes and steps aside; this one sees the protocol.
		WrapCompressed: func(c net.Conn) net.Conn {
			g := newLiteralGuard(c)
			g.log = s.log
			return g
		},
	}
}

// Serve accepts plain connections (with STARTTLS if configured) on ln.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(s.guard(ln, "imap"))
}

// ServeTLS accepts implicit-TLS connections on ln.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imaps: no TLS certificate configured")
	}
	return s.serve(tls.NewListener(s.guard(ln, "imaps"), s.opts.TLSConfig))
}

// guard makes Accept on ln survive errors (out of descriptors): the
// listener pauses and goes on instead of taking the server down.
func (s *Server) guard(ln net.Listener, name string) net.Listener {
	return netguard.Guard(ln, netguard.Options{Name: name, Logger: s.log})
}

// serve accepts on ln and hands each connection to the local or the
// remote imapserver depending on the peer address.
func (s *Server) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("imap server closed")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// The guard retries every other error; this is a bug.
			return fmt.Errorf("accepting IMAP connection: %w", err)
		}
		// Every connection goes through a literalGuard, which keeps
		// imapserver from running the data of a literal it refused as
		// commands; beneath it, a coalescingConn gathers each reply's
		// lines into few writes (see coalesce.go).
		g := newLiteralGuard(newCoalescingConn(conn))
		g.log = s.log // for the command line length limit (limits.go)
		if _, isTLS := conn.(*tls.Conn); isTLS {
			s.tlsLn.deliver(g)
		} else if isLoopback(conn.RemoteAddr()) {
			s.localLn.deliver(g)
		} else {
			s.remoteLn.deliver(g)
		}
	}
}

func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close stops accepting, says BYE to every logged-in session and closes
// every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	// imapserver.Server.Close must not race with its Serve starting up
	// (Serve registers itself with a WaitGroup that Close waits on), so
	// wait until both accept loops are running.
	s.localLn.waitAccepting()
	s.remoteLn.waitAccepting()
	s.tlsLn.waitAccepting()
	s.localLn.Close()
	s.remoteLn.Close()
	s.tlsLn.Close()
	s.sessions.byeAll(byeShutdown)
	err1 := s.local.Close()
	err2 := s.remote.Close()
	err3 := s.tlsSrv.Close()
	return errors.Join(err1, err2, err3)
}

// routedListener is a net.Listener fed by serve's accept loop.
type routedListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	// accepting is closed when Accept is first called.
	accepting     chan struct{}
	acceptingOnce sync.Once
}

func newRoutedListener(addr net.Addr) *routedListener {
	return &routedListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{}), accepting: make(chan struct{})}
}

func (l *routedListener) waitAccepting() {
	select {
	case <-l.accepting:
	case <-time.After(5 * time.Second):
	}
}

func (l *routedListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *routedListener) Accept() (net.Conn, error) {
	l.acceptingOnce.Do(func() { close(l.accepting) })
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *routedListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *routedListener) Addr() net.Addr { return l.addr }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, args ...any) {
	a.l.Warn(fmt.Sprintf(format, args...))
}
