package forwarding

import (
	"bytes"
	"net/mail"
	"strings"
)

// messageID is the Message-ID of raw, or "".
func messageID(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(msg.Header.Get("Message-Id"))
}

// countResent counts the resent blocks in raw's header: one per forward.
func countResent(raw []byte) int {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return 0
	}
	return len(msg.Header["Resent-Message-Id"])
}
