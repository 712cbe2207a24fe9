package main

import (
	"errors"
	"net"
	"testing"

	"github.com/emersion/go-smtp"
)

// lmtpSend runs one LMTP transaction for one recipient against a real
// server and returns the recipient's reply: nil for 250, else the
// *smtp.SMTPError the server answered (or a connection error).
func lmtpSend(t *testing.T, addr, rcpt, msg string) error {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("test.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	_, err = w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if errors.As(err, &lerr) {
		for _, e := range lerr {
			return e
		}
	}
	if err != nil {
		return err
	}
	c.Quit()
	return nil
}
