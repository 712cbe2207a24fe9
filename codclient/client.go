package codclient

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"certmail/receipts"
)

// Stub is a certified-item stub found in the recipient's mailbox.
type Stub struct {
	Mailbox string
	UID     imap.UID
	Subject string
	Request receipts.CODRequest
}

// The stub's header naming its label, and the attachment holding the
// request; they match what the gateway writes.
const (
	labelHeader     = "Certified-Label"
	requestFilename = "cod-request.json"
	ackMailbox      = "Acknowledge"
	refuseMailbox   = "Refuse"
)

// Skipped is a message that carries a Certified-Label header but is not a
// stub that can be signed: an ordinary message whose sender put the header
// in (anyone can), or a stub whose request does not read. It is left alone.
type Skipped struct {
	UID     imap.UID
	Subject string
	Reason  string
}

// Found is what FindStubs found: the stubs to sign, and the messages it
// passed over, so that the user hears of both.
type Found struct {
	Stubs   []Stub
	Skipped []Skipped
}

// FindStubs lists the stubs in mailbox (usually INBOX), optionally only
// the one with label. The search finds every message with a
// Certified-Label header; one that is not a stub is reported in Skipped
// rather than failing the search, so one such message cannot stop the
// recipient from signing the real stubs beside it.
func FindStubs(c *imapclient.Client, mailbox, label string) (*Found, error) {
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil, fmt.Errorf("selecting %s: %w", mailbox, err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: labelHeader, Value: label}},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("searching %s for stubs: %w", mailbox, err)
	}
	found := &Found{}
	uids := res.AllUIDs()
	if len(uids) == 0 {
		return found, nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetching stubs: %w", err)
	}
	for _, m := range msgs {
		if len(m.BodySection) == 0 {
			found.Skipped = append(found.Skipped, Skipped{UID: m.UID, Reason: "the server sent no body"})
			continue
		}
		st, err := parseStub(m.BodySection[0].Bytes)
		if err != nil {
			found.Skipped = append(found.Skipped, Skipped{UID: m.UID, Subject: st.Subject, Reason: err.Error()})
			continue
		}
		if label != "" && st.Request.Label != label {
			// SEARCH HEADER matches substrings: another item's stub.
			continue
		}
		st.Mailbox, st.UID = mailbox, m.UID
		found.Stubs = append(found.Stubs, st)
	}
	return found, nil
}

// parseStub reads the subject and the COD request attachment of a stub.
func parseStub(raw []byte) (Stub, error) {
	var st Stub
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return st, fmt.Errorf("not a stub: unreadable message: %w", err)
	}
	dec := mime.WordDecoder{}
	st.Subject, _ = dec.DecodeHeader(e.Header.Get("Subject"))
	var found bool
	walkErr := e.Walk(func(path []int, part *gomessage.Entity, err error) error {
		if err != nil || found {
			return nil
		}
		_, params, _ := part.Header.ContentDisposition()
		if params["filename"] != requestFilename {
			return nil
		}
		data, err := io.ReadAll(io.LimitReader(part.Body, 64<<10))
		if err != nil {
			return fmt.Errorf("reading %s: %w", requestFilename, err)
		}
		req, err := receipts.ParseCODRequest(data)
		if err != nil {
			return fmt.Errorf("not a stub: %s: %w", requestFilename, err)
		}
		st.Request, found = req, true
		return nil
	})
	if walkErr != nil {
		return st, walkErr
	}
	if !found {
		return st, fmt.Errorf("not a stub: no %s attachment", requestFilename)
	}
	return st, nil
}

// Sign makes the COD (or refusal) for a stub's request with key, as the
// recipient the request names. What it signs is the request's hash, the
// item's commitment H(L,r,M): the salt r comes only with M, after the COD.
// A COD dated after the request's deadline is refused here, by the rule
// the gateway applies (receipts.CheckSignedAt), rather than handed in to
// be refused there.
func Sign(key ed25519.PrivateKey, st Stub, decision receipts.Decision, now time.Time) (string, error) {
	if st.Request.Deadline != "" {
		deadline, err := time.Parse(time.RFC3339, st.Request.Deadline)
		if err != nil {
			return "", fmt.Errorf("item %s: deadline: %w", st.Request.Label, err)
		}
		if err := receipts.CheckSignedAt(now, time.Time{}, deadline, time.Time{}); err != nil {
			return "", fmt.Errorf("item %s: %w: the gateway would refuse it", st.Request.Label, err)
		}
	}
	return receipts.SignCOD(key, st.Request.Claims(decision, receipts.CustodyRecipientHeld, now))
}

// Submit hands a COD in by APPEND, as a small message whose body is the
// compact JWS, to Acknowledge (a COD) or Refuse (a refusal).
func Submit(c *imapclient.Client, st Stub, decision receipts.Decision, cod string) (*imap.AppendData, error) {
	dest := ackMailbox
	if decision == receipts.DecisionRefusal {
		dest = refuseMailbox
	}
	var h textproto.Header
	h.Set("Subject", fmt.Sprintf("%s for %s", strings.ToUpper(string(decision)), st.Request.Label))
	h.Set("Date", time.Now().Format(time.RFC1123Z))
	h.Set("Content-Type", "application/"+receipts.CODMediaType)
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, h); err != nil {
		return nil, err
	}
	buf.WriteString(cod + "\r\n")
	ac := c.Append(dest, int64(buf.Len()), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	if _, err := ac.Write(buf.Bytes()); err != nil {
		ac.Close()
		return nil, fmt.Errorf("appending to %s: %w", dest, err)
	}
	if err := ac.Close(); err != nil {
		return nil, fmt.Errorf("appending to %s: %w", dest, err)
	}
	data, err := ac.Wait()
	if err != nil {
		return nil, fmt.Errorf("the gateway refused the %s for %s: %w", decision, st.Request.Label, err)
	}
	return data, nil
}
