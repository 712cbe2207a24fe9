// Package autoconfig serves Thunderbird's autoconfig document
// (config-v1.1.xml), so that a user types only an address and a password
// and the client finds the IMAP server by itself.
package autoconfig

import (
	"encoding/xml"
	"net/http"
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
	IMAP        Server
	// SMTP is the submission server, if any.
	SMTP *Server
}

// UsernameLocalPart is the user name template: accounts are local parts.
const UsernameLocalPart = "%EMAILLOCALPART%"

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

// Document builds the document for a request about address (may be empty).
func Document(o Options, address string) ClientConfig {
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
	if domain == "" {
		domain = o.IMAP.Host
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
		Incoming: []XMLServer{{Type: "imap", Hostname: o.IMAP.Host, Port: o.IMAP.Port,
			SocketType: o.IMAP.SocketType, Authentication: "password-cleartext", Username: UsernameLocalPart}},
	}
	if o.SMTP != nil {
		p.Outgoing = []XMLServer{{Type: "smtp", Hostname: o.SMTP.Host, Port: o.SMTP.Port,
			SocketType: o.SMTP.SocketType, Authentication: "password-cleartext", Username: UsernameLocalPart}}
	}
	return ClientConfig{Version: "1.1", Provider: p}
}

// Handler serves the document; register it at each of Paths.
func Handler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Thunderbird passes the address the user typed.
		doc := Document(o, r.URL.Query().Get("emailaddress"))
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
