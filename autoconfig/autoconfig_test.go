package autoconfig

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, host, target string) []byte {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/xml; charset=utf-8" {
		t.Fatalf("%s: %d %s", target, rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := Validate(body); err != nil {
		t.Fatalf("%s: %v\n%s", target, err, body)
	}
	return body
}

func TestDocumentOverHTTP(t *testing.T) {
	o := Options{
		Domains: []string{"example.org", "example.net"},
		IMAP:    Server{Host: "mail.example.org", Port: 993, SocketType: "SSL"},
		SMTP:    Server{Host: "smtp.example.org", Port: 587, SocketType: "STARTTLS"},
	}
	mux := http.NewServeMux()
	for _, p := range Paths {
		mux.Handle("GET "+p, Handler(o))
	}
	ts := httptest.NewServer(mux)
	defer ts.Close()
	for _, p := range Paths {
		resp, err := http.Get(ts.URL + p + "?emailaddress=alice%40example.net")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/xml; charset=utf-8" {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := Validate(body); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, body)
		}
		var doc ClientConfig
		if err := xml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, body)
		}
		in := doc.Provider.Incoming
		if doc.Version != "1.1" || doc.Provider.ID != "example.net" || len(in) != 1 ||
			in[0] != (XMLServer{"imap", "mail.example.org", 993, "SSL", "password-cleartext", "%EMAILADDRESS%"}) {
			t.Fatalf("%s: %+v", p, doc)
		}
		out := doc.Provider.Outgoing
		if len(out) != 1 || out[0] != (XMLServer{"smtp", "smtp.example.org", 587, "STARTTLS", "password-cleartext", "%EMAILADDRESS%"}) {
			t.Fatalf("%s: outgoing %+v", p, out)
		}
	}
}

// TestDocumentDefaults: without a configured host the document names the
// host the client asked (less "autoconfig."), never an empty or invalid
// one, and always has an outgoing server (Thunderbird refuses a document
// without), on the IMAP host unless one is configured.
func TestDocumentDefaults(t *testing.T) {
	o := Options{Domains: []string{"example.org"}, IMAP: Server{Port: 993, SocketType: "SSL"},
		SMTP: Server{Port: 587, SocketType: "STARTTLS"}, FallbackHost: "gw.internal"}
	h := Handler(o)
	for host, want := range map[string]string{
		"autoconfig.example.org":      "example.org",
		"Mail.Example.org:8443":       "mail.example.org",
		"127.0.0.1:8080":              "127.0.0.1",
		"[::1]:8080":                  "gw.internal",
		"":                            "gw.internal",
		"autoconfig":                  "autoconfig",
		"bad_host<name>.example:8080": "gw.internal",
	} {
		var doc ClientConfig
		if err := xml.Unmarshal(get(t, h, host, "/mail/config-v1.1.xml?emailaddress=bob%40Example.org"), &doc); err != nil {
			t.Fatal(err)
		}
		in, out := doc.Provider.Incoming[0], doc.Provider.Outgoing
		if in.Hostname != want || len(out) != 1 || out[0].Hostname != want || out[0].Port != 587 || doc.Provider.ID != "example.org" {
			t.Errorf("Host %q: %+v, want %s", host, doc.Provider, want)
		}
	}
	// No domains: the provider is the host.
	doc := Document(Options{IMAP: Server{Host: "imap.test", Port: 143, SocketType: "STARTTLS"},
		SMTP: Server{Port: 587, SocketType: "STARTTLS"}}, "bob@Other.Test", "")
	if doc.Provider.ID != "other.test" || doc.Provider.Outgoing[0].Hostname != "imap.test" || doc.Provider.Domains[0] != "other.test" {
		t.Fatalf("%+v", doc)
	}
	// An address outside the served domains gets the first served domain.
	doc = Document(Options{Domains: []string{"a.test"}, IMAP: Server{Host: "h"}}, "x@evil.test", "")
	if doc.Provider.ID != "a.test" {
		t.Fatalf("%+v", doc)
	}
}

// TestValidate: the model of Thunderbird's reader refuses what it
// refuses, the missing outgoing server first of all.
func TestValidate(t *testing.T) {
	good := `<clientConfig version="1.1"><emailProvider id="example.org"><domain>example.org</domain>
<incomingServer type="imap"><hostname>mail.example.org</hostname><port>993</port><socketType>SSL</socketType><authentication>password-cleartext</authentication><username>%EMAILADDRESS%</username></incomingServer>
<outgoingServer type="smtp"><hostname>mail.example.org</hostname><port>587</port><socketType>STARTTLS</socketType><authentication>password-cleartext</authentication><username>%EMAILADDRESS%</username></outgoingServer>
</emailProvider></clientConfig>`
	if err := Validate([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ old, new, want string }{
		"no outgoing":  {`outgoingServer`, `ignored`, "Need proper <outgoingServer>"},
		"no incoming":  {`incomingServer`, `ignored`, "Need proper <incomingServer>"},
		"no domain":    {`<domain>example.org</domain>`, ``, "need proper <domain>"},
		"bad socket":   {`<socketType>SSL</socketType>`, `<socketType>TLS</socketType>`, "socketType"},
		"bad type":     {`type="smtp"`, `type="ews"`, "outgoingServer type"},
		"empty host":   {`<hostname>mail.example.org</hostname><port>993`, `<hostname></hostname><port>993`, "hostname"},
		"port 0":       {`<port>587</port>`, `<port>0</port>`, "port 0"},
		"no auth":      {`<authentication>password-cleartext</authentication><username>%EMAILADDRESS%</username></outgoingServer>`, `<username>x</username></outgoingServer>`, "authentication"},
		"not xml":      {`<clientConfig`, `clientConfig`, "not a clientConfig"},
		"ipv6 literal": {`<hostname>mail.example.org</hostname><port>993`, `<hostname>::1</hostname><port>993`, "hostname"},
		"no username":  {`<username>%EMAILADDRESS%</username></incomingServer>`, `</incomingServer>`, "no username"},
		"bad provider": {`id="example.org"`, `id=""`, "emailProvider id"},
	} {
		err := Validate([]byte(strings.ReplaceAll(good, c.old, c.new)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
