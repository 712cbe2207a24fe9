package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionNotify is an IMAP session that supports NOTIFY (RFC 5465,
// certmail patch).
//
// Notify replaces the session's notification settings; options.Groups is
// nil for NOTIFY NONE. It may write STATUS responses through w (the
// STATUS indicator) and answers events it cannot send with NO [BADEVENT].
// From then on, Poll and Idle write the events the session has queued,
// with UpdateWriter.WriteStatus, WriteList and NotifyFetchWriter.
type SessionNotify interface {
	Session
	Notify(w *UpdateWriter, options *imap.NotifyOptions) error
}

func (c *Conn) handleNotify(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	options, writerOptions, err := readNotify(dec)
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	session, ok := c.session.(SessionNotify)
	if !ok || !c.server.options.caps().Has(imap.CapNotify) {
		return newClientBugError("Unknown command")
	}
	w := &UpdateWriter{conn: c, allowExpunge: true}
	if err := session.Notify(w, options); err != nil {
		return err
	}
	c.mutex.Lock()
	c.notifyDelayed = false
	c.notifyFetch = writerOptions
	for _, g := range options.Groups {
		if g.Filter == imap.NotifyFilterSelectedDelayed {
			c.notifyDelayed = true
		}
	}
	c.mutex.Unlock()
	return nil
}

// readNotify reads the arguments of NOTIFY (RFC 5465 section 8) up to the
// line's end. What the grammar or section 5's rules forbid is BAD; an
// event the server may not know is kept for the session to refuse with
// NO [BADEVENT].
func readNotify(dec *imapwire.Decoder) (*imap.NotifyOptions, fetchWriterOptions, error) {
	writerOptions := fetchWriterOptions{obsolete: make(map[*imap.FetchItemBodySection]string)}
	var verb string
	if !dec.ExpectAtom(&verb) {
		return nil, writerOptions, dec.Err()
	}
	options := &imap.NotifyOptions{}
	switch strings.ToUpper(verb) {
	case "NONE":
		return options, writerOptions, nil
	case "SET":
	default:
		return nil, writerOptions, newClientBugError("NOTIFY takes SET or NONE")
	}
	if !dec.ExpectSP() {
		return nil, writerOptions, dec.Err()
	}
	var status string
	if dec.Atom(&status) {
		if !strings.EqualFold(status, "STATUS") {
			return nil, writerOptions, newClientBugError("NOTIFY SET: expected STATUS or an event group")
		}
		options.Status = true
		if !dec.ExpectSP() {
			return nil, writerOptions, dec.Err()
		}
	}
	selected := false
	for {
		var g imap.NotifyGroup
		if err := dec.ExpectList(func() error {
			return readNotifyGroup(dec, &g, &writerOptions)
		}); err != nil {
			return nil, writerOptions, err
		}
		if g.Filter == "" {
			return nil, writerOptions, newClientBugError("NOTIFY: empty event group")
		}
		if g.Filter == imap.NotifyFilterSelected || g.Filter == imap.NotifyFilterSelectedDelayed {
			if selected {
				return nil, writerOptions, newClientBugError("NOTIFY: SELECTED given twice")
			}
			selected = true
			if err := checkNotifySelected(&g); err != nil {
				return nil, writerOptions, err
			}
		}
		options.Groups = append(options.Groups, g)
		if !dec.SP() {
			break
		}
	}
	return options, writerOptions, nil
}

// readNotifyGroup reads the inside of one event group: filter-mailboxes SP
// events. It is called once per space-separated item of the list, so it
// keeps its place in g.
func readNotifyGroup(dec *imapwire.Decoder, g *imap.NotifyGroup, writerOptions *fetchWriterOptions) error {
	var filter string
	if !dec.ExpectAtom(&filter) {
		return dec.Err()
	}
	g.Filter = imap.NotifyFilter(strings.ToUpper(filter))
	switch g.Filter {
	case imap.NotifyFilterSelected, imap.NotifyFilterSelectedDelayed,
		imap.NotifyFilterInboxes, imap.NotifyFilterPersonal, imap.NotifyFilterSubscribed:
	case imap.NotifyFilterSubtree, imap.NotifyFilterMailboxes:
		if !dec.ExpectSP() {
			return dec.Err()
		}
		isList, err := dec.List(func() error {
			var name string
			if !dec.ExpectMailbox(&name) {
				return dec.Err()
			}
			g.Mailboxes = append(g.Mailboxes, name)
			return nil
		})
		if err != nil {
			return err
		}
		if !isList {
			var name string
			if !dec.ExpectMailbox(&name) {
				return dec.Err()
			}
			g.Mailboxes = append(g.Mailboxes, name)
		}
		if len(g.Mailboxes) == 0 {
			return newClientBugError("NOTIFY: " + string(g.Filter) + " needs at least one mailbox")
		}
	default:
		return newClientBugError("NOTIFY: unknown filter " + filter)
	}
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var none string
	if dec.Atom(&none) {
		if !strings.EqualFold(none, "NONE") {
			return newClientBugError("NOTIFY: expected NONE or a list of events")
		}
		return nil
	}
	err := dec.ExpectList(func() error {
		isList, err := dec.List(func() error {
			name, err := readFetchAttName(dec)
			if err != nil {
				return err
			}
			if g.Fetch == nil {
				g.Fetch = &imap.FetchOptions{}
			}
			switch name {
			case "ALL", "FAST", "FULL":
				return newClientBugError("FETCH macros are not allowed in a list")
			}
			return handleFetchAtt(dec, name, g.Fetch, writerOptions)
		})
		if err != nil {
			return err
		}
		if isList {
			// RFC 5465 section 8: only MessageNew takes fetch-att.
			if n := len(g.Events); n == 0 || g.Events[n-1] != imap.NotifyEventMessageNew || g.Fetch == nil {
				return newClientBugError("NOTIFY: fetch attributes must follow MessageNew")
			}
			return nil
		}
		var ev string
		if !dec.ExpectAtom(&ev) {
			return dec.Err()
		}
		g.Events = append(g.Events, canonicalNotifyEvent(ev))
		return nil
	})
	if err == nil && len(g.Events) == 0 {
		// RFC 5465 section 8: events = ( "(" event *(SP event) ")" ) / "NONE"
		return newClientBugError("NOTIFY: an empty list of events (NONE says none)")
	}
	return err
}

func canonicalNotifyEvent(ev string) imap.NotifyEvent {
	for _, known := range []imap.NotifyEvent{
		imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge, imap.NotifyEventFlagChange,
		imap.NotifyEventAnnotationChange, imap.NotifyEventMailboxName, imap.NotifyEventSubscriptionChange,
		imap.NotifyEventMailboxMetadataChange, imap.NotifyEventServerMetadataChange,
	} {
		if strings.EqualFold(ev, string(known)) {
			return known
		}
	}
	return imap.NotifyEvent(ev)
}

// checkNotifySelected applies RFC 5465 section 5's rules on the selected
// mailbox's events, where sequence numbers depend on them: MessageNew and
// MessageExpunge come together (5.2, 5.3), and FlagChange or
// AnnotationChange need both (5.4, 5.5). Other groups are told by STATUS,
// which numbers nothing (as on Dovecot, they may ask for any one).
func checkNotifySelected(g *imap.NotifyGroup) error {
	newMsg, expunge := g.Has(imap.NotifyEventMessageNew), g.Has(imap.NotifyEventMessageExpunge)
	if newMsg != expunge {
		return newClientBugError("NOTIFY: MessageNew and MessageExpunge must be given together")
	}
	if (g.Has(imap.NotifyEventFlagChange) || g.Has(imap.NotifyEventAnnotationChange)) && !newMsg {
		return newClientBugError("NOTIFY: FlagChange and AnnotationChange need MessageNew and MessageExpunge")
	}
	return nil
}

// NotifyFetchWriter returns a FetchWriter for the fetch attributes of the
// last successful NOTIFY's MessageNew, which the session writes for
// messages new in the selected mailbox (RFC 5465 section 5.2).
func (w *UpdateWriter) NotifyFetchWriter() *FetchWriter {
	w.conn.mutex.Lock()
	defer w.conn.mutex.Unlock()
	return &FetchWriter{conn: w.conn, options: w.conn.notifyFetch}
}

// WriteStatus writes an unsolicited STATUS response (RFC 5465 sections
// 5.2 to 5.5: events in a mailbox other than the selected one).
func (w *UpdateWriter) WriteStatus(data *imap.StatusData, options *imap.StatusOptions) error {
	return w.conn.writeStatus(data, options)
}

// WriteList writes an unsolicited LIST response (RFC 5465 sections 5.6
// and 5.7: a mailbox created, deleted or renamed, a subscription changed).
func (w *UpdateWriter) WriteList(data *imap.ListData) error {
	return w.conn.writeList(data)
}

// WriteNotificationOverflow writes OK [NOTIFICATIONOVERFLOW]: the session
// has dropped events and sends no more until the next NOTIFY (RFC 5465
// section 5.8).
func (w *UpdateWriter) WriteNotificationOverflow(text string) error {
	w.conn.mutex.Lock()
	w.conn.notifyDelayed = false
	w.conn.mutex.Unlock()
	return w.conn.writeStatusResp("", &imap.StatusResponse{
		Type: imap.StatusResponseTypeOK,
		Code: imap.ResponseCodeNotificationOverflow,
		Text: text,
	})
}

// WriteMetadataChanged writes an unsolicited METADATA response naming
// entries that changed (RFC 5464 section 4.4.2, "* METADATA mailbox
// entry ..."; mailbox "" for server entries): RFC 5465 section 5.6's
// MailboxMetadataChange and ServerMetadataChange.
func (w *UpdateWriter) WriteMetadataChanged(mailbox string, entries []string) error {
	enc := newResponseEncoder(w.conn)
	defer enc.end()
	enc.Atom("*").SP().Atom("METADATA").SP().Mailbox(mailbox)
	for _, e := range entries {
		enc.SP().String(e)
	}
	return enc.CRLF()
}
