package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Webhook is an endpoint that receives notices as JSON POSTs, signed with
// HMAC-SHA256 under Secret so the receiver can tell them from forgeries.
type Webhook struct {
	URL    string
	Secret string
}

// Headers of a webhook POST.
const (
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
	SignatureHeader = "X-Certmail-Signature"
	// DeliveryHeader carries the notice ID; a retried POST repeats it.
	DeliveryHeader = "X-Certmail-Delivery"
)

func (w Webhook) check() error {
	u, err := url.Parse(w.URL)
	if err != nil {
		return fmt.Errorf("webhook %q: %w", w.URL, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("webhook %q: want an http or https URL", w.URL)
	}
	if w.Secret == "" {
		return fmt.Errorf("webhook %q: no secret to sign with", w.URL)
	}
	return nil
}

// WebhookSignature returns the SignatureHeader value for body.
func WebhookSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhookSignature reports, in constant time, whether header is
// the signature of body under secret. It is for receivers written in Go.
func VerifyWebhookSignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(WebhookSignature(secret, body)), []byte(header))
}

// post sends one notice. A 2xx answer is success; a 4xx other than 408
// and 429, or a redirect, is permanent, since repeating it cannot help.
func (w Webhook) post(ctx context.Context, client *http.Client, id string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(payload))
	if err != nil {
		return permanent(fmt.Errorf("webhook %s: %w", w.URL, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certmail-notifier")
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(SignatureHeader, WebhookSignature(w.Secret, payload))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err = fmt.Errorf("webhook %s: %s: %s", w.URL, resp.Status, strings.TrimSpace(string(snippet)))
	switch {
	case code >= 300 && code < 400:
		return permanent(fmt.Errorf("%w (redirected to %q; configure the final URL)", err, resp.Header.Get("Location")))
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return permanent(err)
	}
	return err
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	return errors.As(err, new(permanentError))
}
