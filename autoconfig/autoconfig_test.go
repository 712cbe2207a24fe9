package autoconfig

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDocumentOverHTTP(t *testing.T) {
	o := Options{
		Domains: []string{"example.org", "example.net"},
		IMAP:    Server{Host: "mail.example.org", Port: 993, SocketType: "SSL"},
		SMTP:    &Server{Host: "smtp.example.org", Port: 587, SocketType: "STARTTLS"},
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
		var doc ClientConfig
		if err := xml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, body)
		}
		in := doc.Provider.Incoming
		if doc.Version != "1.1" || doc.Provider.ID != "example.net" || len(in) != 1 ||
			in[0] != (XMLServer{"imap", "mail.example.org", 993, "SSL", "password-cleartext", "%EMAILLOCALPART%"}) {
			t.Fatalf("%s: %+v", p, doc)
		}
		out := doc.Provider.Outgoing
		if len(out) != 1 || out[0].Hostname != "smtp.example.org" || out[0].Port != 587 || out[0].SocketType != "STARTTLS" {
			t.Fatalf("%s: outgoing %+v", p, out)
		}
	}
}

func TestDocumentWithoutSMTPOrDomains(t *testing.T) {
	doc := Document(Options{IMAP: Server{Host: "imap.test", Port: 143, SocketType: "STARTTLS"}}, "bob@Other.Test")
	if doc.Provider.ID != "other.test" || len(doc.Provider.Outgoing) != 0 || doc.Provider.Domains[0] != "other.test" {
		t.Fatalf("%+v", doc)
	}
	// An address outside the served domains gets the first served domain.
	doc = Document(Options{Domains: []string{"a.test"}, IMAP: Server{Host: "h"}}, "x@evil.test")
	if doc.Provider.ID != "a.test" {
		t.Fatalf("%+v", doc)
	}
}
