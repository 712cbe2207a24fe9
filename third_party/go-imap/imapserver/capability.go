package imapserver

import (
	"fmt"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleCapability(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("CAPABILITY")
	for _, c := range c.availableCaps() {
		enc.SP().Atom(string(c))
	}
	return enc.CRLF()
}

// availableCaps returns the capabilities supported by the server.
//
// They depend on the connection state.
//
// Some extensions (e.g. SASL-IR, ENABLE) don't require backend support and
// thus are always enabled.
func (c *Conn) availableCaps() []imap.Cap {
	available := c.server.options.caps()

	var caps []imap.Cap
	addAvailableCaps(&caps, available, []imap.Cap{
		imap.CapIMAP4rev2,
		imap.CapIMAP4rev1,
	})
	if len(caps) == 0 {
		panic("imapserver: must support at least IMAP4rev1 or IMAP4rev2")
	}

	if available.Has(imap.CapIMAP4rev1) {
		caps = append(caps, []imap.Cap{
			imap.CapSASLIR,
			imap.CapLiteralMinus,
		}...)
	}
	if c.canStartTLS() {
		caps = append(caps, imap.CapStartTLS)
	}
	// certmail patch: ID (RFC 2971) in every state, when the session
	// answers it and the server lists it.
	if _, ok := c.session.(SessionID); ok {
		addAvailableCaps(&caps, available, []imap.Cap{imap.CapID})
	}
	if c.canAuth() {
		mechs := []string{"PLAIN"}
		if authSess, ok := c.session.(SessionSASL); ok {
			mechs = authSess.AuthenticateMechanisms()
		}
		for _, mech := range mechs {
			caps = append(caps, imap.Cap("AUTH="+mech))
		}
	} else if c.state == imap.ConnStateNotAuthenticated {
		caps = append(caps, imap.CapLoginDisabled)
	}
	if c.state == imap.ConnStateAuthenticated || c.state == imap.ConnStateSelected {
		if available.Has(imap.CapIMAP4rev1) {
			// IMAP4rev1-specific capabilities that don't require backend
			// support and are not applicable to IMAP4rev2
			caps = append(caps, []imap.Cap{
				imap.CapUnselect,
				imap.CapEnable,
				imap.CapIdle,
				imap.CapUTF8Accept,
			}...)

			// IMAP4rev1-specific capabilities which require backend support
			// and are not applicable to IMAP4rev2
			addAvailableCaps(&caps, available, []imap.Cap{
				imap.CapNamespace,
				imap.CapUIDPlus,
				imap.CapESearch,
				imap.CapSearchRes,
				imap.CapListExtended,
				imap.CapListStatus,
				imap.CapMove,
				imap.CapStatusSize,
				imap.CapBinary,
				imap.CapChildren,
			})
		}

		// Capabilities which require backend support and apply to both
		// IMAP4rev1 and IMAP4rev2
		addAvailableCaps(&caps, available, []imap.Cap{
			imap.CapSpecialUse,
			imap.CapCreateSpecialUse,
			imap.CapLiteralPlus,
			imap.CapUnauthenticate,
			imap.CapObjectID, // certmail patch: RFC 8474
			imap.CapSaveDate, // certmail patch: RFC 8514
			imap.CapPreview,  // certmail patch: RFC 8970
		})
		// certmail patch: CONDSTORE and QRESYNC (RFC 7162) when the
		// server lists them and the session has them on.
		if c.condStoreSupported() {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapCondStore})
		}
		if c.qresyncSupported() {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapQResync})
		}

		// certmail patch: QUOTA (RFC 9208) and the resources the
		// session counts (section 7.1: QUOTA=RES-*).
		if _, ok := c.session.(SessionQuota); ok && available.Has(imap.CapQuota) {
			caps = append(caps, imap.CapQuota)
			var res []imap.Cap
			for c := range available {
				if strings.HasPrefix(string(c), "QUOTA=RES-") {
					res = append(res, c)
				}
			}
			sort.Slice(res, func(i, j int) bool { return res[i] < res[j] })
			caps = append(caps, res...)
		}

		// certmail patch: METADATA and METADATA-SERVER (RFC 5464), when
		// the session answers them and the server lists them.
		if _, ok := c.session.(SessionMetadata); ok {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapMetadata, imap.CapMetadataServer})
		}

		// certmail patch: RFC 4978, until it is active.
		if c.canCompress() {
			caps = append(caps, imap.CapCompressDeflate)
		}

		// certmail patch: MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469)
		// when the session takes APPEND whole (appendmulti.go) and the
		// server lists them.
		if _, ok := c.session.(SessionAppendMulti); ok {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapMultiAppend, imap.CapCatenate})
		}

		// certmail patch: SORT (RFC 5256, RFC 5957) and THREAD, when the
		// session answers them and the server lists them.
		if _, ok := c.session.(SessionSort); ok {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapSort, imap.CapSortDisplay, imap.CapESort})
		}
		// certmail patch: CONTEXT=SEARCH, and CONTEXT=SORT with SORT
		// (RFC 5267 section 4).
		if _, ok := c.session.(SessionContext); ok {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapContextSearch, imap.CapPartial})
			if _, ok := c.session.(SessionSort); ok {
				addAvailableCaps(&caps, available, []imap.Cap{imap.CapContextSort})
			}
		}
		if _, ok := c.session.(SessionThread); ok {
			addAvailableCaps(&caps, available, []imap.Cap{
				imap.Cap("THREAD=" + imap.ThreadOrderedSubject),
				imap.Cap("THREAD=" + imap.ThreadReferences),
			})
		}

		// certmail patch: NOTIFY (RFC 5465) when the session has it.
		if _, ok := c.session.(SessionNotify); ok {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapNotify})
		}

		if appendLimitSession, ok := c.session.(SessionAppendLimit); ok {
			limit := appendLimitSession.AppendLimit()
			caps = append(caps, imap.Cap(fmt.Sprintf("APPENDLIMIT=%d", limit)))
		} else {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapAppendLimit})
		}
	}
	return caps
}

func addAvailableCaps(caps *[]imap.Cap, available imap.CapSet, l []imap.Cap) {
	for _, c := range l {
		if available.Has(c) {
			*caps = append(*caps, c)
		}
	}
}
