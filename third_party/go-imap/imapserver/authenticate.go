package imapserver

import (
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleAuthenticate(tag string, dec *imapwire.Decoder) error {
	var mech string
	if !dec.ExpectSP() || !dec.ExpectAtom(&mech) {
		return dec.Err()
	}
	mech = strings.ToUpper(mech)

	var initialRespStr string
	hasInitialResp := dec.SP()
	if hasInitialResp && !dec.ExpectText(&initialRespStr) {
		return dec.Err()
	}

	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	if err := c.checkState(imap.ConnStateNotAuthenticated); err != nil {
		return err
	}
	if !c.canAuth() {
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodePrivacyRequired,
			Text: "TLS is required to authenticate",
		}
	}

	var saslServer sasl.Server
	if authSess, ok := c.session.(SessionSASL); ok {
		var err error
		saslServer, err = authSess.Authenticate(mech)
		if err != nil {
			return err
		}
	} else {
		if mech != "PLAIN" {
			return &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Text: "SASL mechanism not supported",
			}
		}
		saslServer = sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &imap.Error{
					Type: imap.StatusResponseTypeNo,
					Code: imap.ResponseCodeAuthorizationFailed,
					Text: "SASL identity not supported",
				}
			}
			return c.session.Login(username, password)
		})
	}

	// certmail patch: the initial response is decoded here, after the
	// checks above, and a malformed one is answered BAD as one on its own
	// line is (RFC 9051 section 6.2.2), not NO [SERVERBUG], and reported
	// to the session.
	var resp []byte
	if hasInitialResp {
		var err error
		if resp, err = decodeSASL(initialRespStr); err != nil {
			return c.authenticateMalformed(mech, err)
		}
	}

	enc := newResponseEncoder(c)
	defer enc.end()

	for {
		challenge, done, err := saslServer.Next(resp)
		if err != nil {
			return err
		} else if done {
			break
		}

		// certmail patch: an empty challenge is "+ " (RFC 9051 7.5,
		// continue-req, and the AUTHENTICATE example in 6.2.2); "="
		// stands for an empty response only where a client sends one
		// (RFC 4959 section 3, the initial response).
		var challengeStr string
		if len(challenge) > 0 {
			challengeStr = internal.EncodeSASL(challenge)
		}
		if err := writeContReq(enc.Encoder, challengeStr); err != nil {
			return err
		}

		encodedResp, isPrefix, err := c.br.ReadLine()
		if err != nil {
			return err
		} else if isPrefix {
			// certmail patch: BAD, not NO [SERVERBUG], and the rest of
			// the line is dropped instead of read as the next command.
			for isPrefix && err == nil {
				_, isPrefix, err = c.br.ReadLine()
			}
			if err != nil {
				return err
			}
			return c.authenticateMalformed(mech, &imap.Error{
				Type: imap.StatusResponseTypeBad,
				Text: "SASL response too long",
			})
		} else if string(encodedResp) == "*" {
			return &imap.Error{
				Type: imap.StatusResponseTypeBad,
				Text: "AUTHENTICATE cancelled",
			}
		}

		resp, err = decodeSASL(string(encodedResp))
		if err != nil {
			return c.authenticateMalformed(mech, err) // certmail patch
		}
	}

	c.state = imap.ConnStateAuthenticated
	text := fmt.Sprintf("%v authentication successful", mech)
	return writeCapabilityOK(enc.Encoder, tag, c.availableCaps(), text)
}

// authenticateMalformed tells a SessionAuthenticateMalformed of an
// exchange that failed before its mechanism saw the response, and returns
// the error to answer with (certmail patch).
func (c *Conn) authenticateMalformed(mech string, err error) error {
	if s, ok := c.session.(SessionAuthenticateMalformed); ok {
		return s.AuthenticateMalformed(mech, err)
	}
	return err
}

func decodeSASL(s string) ([]byte, error) {
	b, err := internal.DecodeSASL(s)
	if err != nil {
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeBad,
			Text: "Malformed SASL response",
		}
	}
	return b, nil
}

func (c *Conn) handleUnauthenticate(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	session, ok := c.session.(SessionUnauthenticate)
	if !ok {
		return newClientBugError("UNAUTHENTICATE is not supported")
	}
	if err := session.Unauthenticate(); err != nil {
		return err
	}
	c.state = imap.ConnStateNotAuthenticated
	c.mutex.Lock()
	c.enabled = make(imap.CapSet)
	c.mutex.Unlock()
	return nil
}
