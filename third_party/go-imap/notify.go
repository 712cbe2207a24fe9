package imap

// NotifyFilter names the mailboxes an event group of NOTIFY SET is about
// (RFC 5465 section 6, filter-mailboxes). certmail patch.
type NotifyFilter string

const (
	NotifyFilterSelected        NotifyFilter = "SELECTED"
	NotifyFilterSelectedDelayed NotifyFilter = "SELECTED-DELAYED"
	NotifyFilterInboxes         NotifyFilter = "INBOXES"
	NotifyFilterPersonal        NotifyFilter = "PERSONAL"
	NotifyFilterSubscribed      NotifyFilter = "SUBSCRIBED"
	NotifyFilterSubtree         NotifyFilter = "SUBTREE"
	NotifyFilterMailboxes       NotifyFilter = "MAILBOXES"
)

// NotifyEvent is an event a NOTIFY event group asks for (RFC 5465
// section 5). An event the server does not know keeps its name as sent.
type NotifyEvent string

const (
	NotifyEventMessageNew            NotifyEvent = "MessageNew"
	NotifyEventMessageExpunge        NotifyEvent = "MessageExpunge"
	NotifyEventFlagChange            NotifyEvent = "FlagChange"
	NotifyEventAnnotationChange      NotifyEvent = "AnnotationChange"
	NotifyEventMailboxName           NotifyEvent = "MailboxName"
	NotifyEventSubscriptionChange    NotifyEvent = "SubscriptionChange"
	NotifyEventMailboxMetadataChange NotifyEvent = "MailboxMetadataChange"
	NotifyEventServerMetadataChange  NotifyEvent = "ServerMetadataChange"
)

// NotifyGroup is one event group of NOTIFY SET.
type NotifyGroup struct {
	Filter NotifyFilter
	// Mailboxes are the names of a SUBTREE or MAILBOXES filter.
	Mailboxes []string
	// Events is empty for NONE.
	Events []NotifyEvent
	// Fetch holds MessageNew's fetch attributes, if any.
	Fetch *FetchOptions
}

// Has reports whether the group asks for ev.
func (g *NotifyGroup) Has(ev NotifyEvent) bool {
	for _, e := range g.Events {
		if e == ev {
			return true
		}
	}
	return false
}

// NotifyOptions is a NOTIFY command: Groups is nil for NOTIFY NONE.
type NotifyOptions struct {
	// Status is SET's STATUS indicator: a STATUS response for each
	// mailbox the groups cover, before the tagged OK.
	Status bool
	Groups []NotifyGroup
}

const (
	// ResponseCodeNotificationOverflow: the server stopped sending
	// notifications (RFC 5465 section 5.8).
	ResponseCodeNotificationOverflow ResponseCode = "NOTIFICATIONOVERFLOW"
	// ResponseCodeBadEvent: NOTIFY asked for events the server cannot
	// send (RFC 5465 section 3.1).
	ResponseCodeBadEvent ResponseCode = "BADEVENT"
)
