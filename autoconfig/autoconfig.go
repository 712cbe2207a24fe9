// Package autoconfig serves Thunderbird's autoconfig document
// (config-v1.1.xml), so that a user types only an address and a password
// and the client finds the IMAP server by itself.
package autoconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Paths are where Thunderbird looks for the document: on
// autoconfig.<domain> and under /.well-known on the domain itself.
var Paths = []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"}

// Server is one server a client should use.
type Server struct {
	Host string
	Port int
	// SocketType is "SSL", "STARTTLS" or "plain".
	SocketType string
}

// Options say what the document describes.
type Options struct {
	// Domains are the mail domains served; the document names the one of
	// the requested address, or the first.
	Domains     []string
	DisplayName string
	// IMAP is the IMAP server. An empty Host is the public name the
	// client reached this document by (the request's Host, less an
	// "autoconfig." label), or FallbackHost when that is no host name.
	IMAP Server
	// SMTP is the submission server. Thunderbird refuses a document
	// without one ("Need proper <outgoingServer> in XML file"), so one is
	// always named: an empty Host is the IMAP server's host.
	SMTP Server
	// FallbackHost is the host named when neither the options nor the
	// request give one (the gateway's hostname).
	FallbackHost string
}

// Username is the user name template: the address the user typed, which
// certmail takes for a login in every served domain.
const Username = "%EMAILADDRESS%"

// ClientConfig is the document (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type ClientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider EmailProvider `xml:"emailProvider"`
}

// EmailProvider is the provider element.
type EmailProvider struct {
	ID               string      `xml:"id,attr"`
	Domains          []string    `xml:"domain"`
	DisplayName      string      `xml:"displayName"`
	DisplayShortName string      `xml:"displayShortName"`
	Incoming         []XMLServer `xml:"incomingServer"`
	Outgoing         []XMLServer `xml:"outgoingServer"`
}

// XMLServer is an incomingServer or outgoingServer element.
type XMLServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

// Document builds the document for a request about address (may be
// empty), reached by the host name reqHost (may be empty).
func Document(o Options, address, reqHost string) ClientConfig {
	domain := ""
	if _, d, ok := strings.Cut(address, "@"); ok {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if slices.Contains(o.Domains, d) || len(o.Domains) == 0 {
			domain = d
		}
	}
	if domain == "" && len(o.Domains) > 0 {
		domain = o.Domains[0]
	}
	imapHost := o.IMAP.Host
	if imapHost == "" {
		imapHost = publicHost(reqHost, o.FallbackHost)
	}
	smtpHost := o.SMTP.Host
	if smtpHost == "" {
		smtpHost = imapHost
	}
	if domain == "" {
		domain = imapHost
	}
	domains := slices.Clone(o.Domains)
	if len(domains) == 0 {
		domains = []string{domain}
	}
	name := o.DisplayName
	if name == "" {
		name = domain
	}
	p := EmailProvider{
		ID:               domain,
		Domains:          domains,
		DisplayName:      name,
		DisplayShortName: name,
		// password-cleartext is the plain password over the (TLS)
		// connection: LOGIN or AUTHENTICATE PLAIN, which is what certmail
		// offers.
		Incoming: []XMLServer{{Type: "imap", Hostname: imapHost, Port: o.IMAP.Port,
			SocketType: o.IMAP.SocketType, Authentication: "password-cleartext", Username: Username}},
		Outgoing: []XMLServer{{Type: "smtp", Hostname: smtpHost, Port: o.SMTP.Port,
			SocketType: o.SMTP.SocketType, Authentication: "password-cleartext", Username: Username}},
	}
	return ClientConfig{Version: "1.1", Provider: p}
}

// hostnameRE is what Thunderbird's Sanitizer.hostname accepts (letters,
// digits, '-' and '.'; an IPv6 literal is not among them).
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// publicHost is the host a client reached the document by: the request's
// Host without its port, and without the "autoconfig." label Thunderbird
// puts in front of the mail domain; fallback when that is no host name.
func publicHost(reqHost, fallback string) string {
	h := reqHost
	if hh, _, err := net.SplitHostPort(reqHost); err == nil {
		h = hh
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if rest, ok := strings.CutPrefix(h, "autoconfig."); ok && strings.Contains(rest, ".") {
		h = rest
	}
	if h == "" || !hostnameRE.MatchString(h) {
		return fallback
	}
	return h
}

// Validate checks an encoded document against the rules of Thunderbird's
// own reader (comm-central mail/components/accountcreation
// readFromXML.sys.mjs), which throws away a document that breaks any:
// a clientConfig with an emailProvider whose id and at least one domain
// are host names; an incomingServer of type imap/pop3 with a host name,
// a port in 1..65535, a user name, a socketType plain, SSL or STARTTLS,
// and a known authentication; and an outgoingServer of type smtp with the
// same, the user name required for a password authentication.
func Validate(doc []byte) error {
	var c ClientConfig
	dec := xml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("autoconfig: not a clientConfig document: %w", err)
	}
	p := c.Provider
	var errs []error
	if !hostnameRE.MatchString(p.ID) {
		errs = append(errs, fmt.Errorf("emailProvider id %q is no host name", p.ID))
	}
	if !slices.ContainsFunc(p.Domains, hostnameRE.MatchString) {
		errs = append(errs, errors.New("need proper <domain> in XML"))
	}
	check := func(kind string, s XMLServer, types ...string) error {
		switch {
		case !slices.Contains(types, s.Type):
			return fmt.Errorf("%s type %q", kind, s.Type)
		case !hostnameRE.MatchString(s.Hostname):
			return fmt.Errorf("%s hostname %q", kind, s.Hostname)
		case s.Port < 1 || s.Port > 65535:
			return fmt.Errorf("%s port %d", kind, s.Port)
		case !slices.Contains([]string{"plain", "SSL", "STARTTLS"}, s.SocketType):
			return fmt.Errorf("%s: need proper <socketType> in XML (%q)", kind, s.SocketType)
		case !slices.Contains([]string{"password-cleartext", "plain", "password-encrypted", "secure", "none",
			"client-IP-address", "smtp-after-pop"}, s.Authentication):
			return fmt.Errorf("%s: need proper <authentication> in XML (%q)", kind, s.Authentication)
		case s.Username == "":
			return fmt.Errorf("%s: no username", kind)
		}
		return nil
	}
	if len(p.Incoming) == 0 {
		errs = append(errs, errors.New("Need proper <incomingServer> in XML file"))
	}
	for _, s := range p.Incoming {
		errs = append(errs, check("incomingServer", s, "imap", "pop3"))
	}
	if len(p.Outgoing) == 0 {
		errs = append(errs, errors.New("Need proper <outgoingServer> in XML file"))
	}
	for _, s := range p.Outgoing {
		errs = append(errs, check("outgoingServer", s, "smtp"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("autoconfig: Thunderbird would refuse the document: %w", err)
	}
	return nil
}

// Handler serves the document; register it at each of Paths.
func Handler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Thunderbird passes the address the user typed.
		doc := Document(o, r.URL.Query().Get("emailaddress"), r.Host)
		out, err := xml.MarshalIndent(doc, "", "  ")
		if err != nil {
			http.Error(w, "encoding autoconfig: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(out)+1))
		w.Write([]byte(xml.Header))
		w.Write(out)
		w.Write([]byte("\n"))
	})
}
