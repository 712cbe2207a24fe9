package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Deterministic test mail: message i of a given seed and profile is always
// the same bytes, whichever server and goroutine asks for it.

// sizeProfile says how large the generated messages are.
type sizeProfile struct {
	min, max int // bytes, drawn log-uniformly
	// attachAbove: messages at least this large are multipart with a
	// base64 attachment (most of the size) and a short text part.
	attachAbove int
}

var (
	// realistic: 1 KB–200 KB, median about 14 KB; a third of the
	// messages carry an attachment.
	realistic = sizeProfile{min: 1 << 10, max: 200 << 10, attachAbove: 24 << 10}
	// small: 1–8 KB, for filling a large mailbox quickly; some multipart.
	small = sizeProfile{min: 1 << 10, max: 8 << 10, attachAbove: 6 << 10}
)

var vocabulary = strings.Fields(`the of and to in is that for it as with was on be by
at this have from or one had not but what all were when we there can an your which
their said if do will each about how up out them then she many some so these would
other into has more her two like him see time could no make than first been its who
now people my made over did down only way find use may water long little very after
words called just where most know get through back much before go good new write our
used me man too any day same right look think also around another came come work three
word must because does part even place well such here take why things help put years
different away again off went old number great tell men say small every found still
between name should home big give air line set own under read last never us left end
along while might next sound below saw something thought both few those always looked
show large often together asked house world going want school important until form food
keep children feet land side without boy once animals life enough took sometimes four
head above kind began almost live page got earth need far hand high year mother light
parts country father let night following picture being study second eyes soon times story
boys since white days ever paper hard near sentence better best across during today others
however sure means knew its try told young miles sun ways thing whole hear example heard
several change answer room sea against top turned learn point city play toward five
invoice meeting quarterly report contract shipment schedule budget review proposal draft
attached please regards thanks project deadline customer account payment order delivery`)

// searchWord is put into the body of one message in a hundred, for
// SEARCH TEXT; it occurs nowhere else.
const searchWord = "quokka"

// hasSearchWord reports whether message i contains searchWord.
func hasSearchWord(i int) bool { return i%100 == 7 }

func words(r *rand.Rand, n int) string {
	var b strings.Builder
	for j := 0; j < n; j++ {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[r.IntN(len(vocabulary))])
	}
	return b.String()
}

// textLines writes CRLF-terminated lines of words until about n bytes.
func textLines(b *bytes.Buffer, r *rand.Rand, n int, marker bool) {
	start := b.Len()
	line := 0
	for b.Len()-start < n {
		w := words(r, 8+r.IntN(6))
		if marker && line == 3 {
			w += " " + searchWord
		}
		b.WriteString(w)
		b.WriteString("\r\n")
		line++
		if line%9 == 0 {
			b.WriteString("\r\n")
		}
	}
	if marker && line <= 3 {
		b.WriteString(searchWord + "\r\n")
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var baseDate = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

// message returns message i for recipient to.
func message(seed uint64, i int, to string, p sizeProfile) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	lo, hi := math.Log(float64(p.min)), math.Log(float64(p.max))
	size := int(math.Exp(lo + r.Float64()*(hi-lo)))
	var b bytes.Buffer
	b.Grow(size + 1024)
	from := fmt.Sprintf("%s %s <%s%d@example.net>", capitalize(vocabulary[r.IntN(len(vocabulary))]),
		capitalize(vocabulary[r.IntN(len(vocabulary))]), "sender", r.IntN(500))
	fmt.Fprintf(&b, "Return-Path: <sender@example.net>\r\n")
	fmt.Fprintf(&b, "Received: from mx.example.net (mx.example.net [192.0.2.%d])\r\n\tby mail.example.org with ESMTPS id %08x\r\n\tfor <%s>; %s\r\n",
		1+r.IntN(250), r.Uint32(), to, baseDate.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", words(r, 3+r.IntN(6)))
	fmt.Fprintf(&b, "Date: %s\r\n", baseDate.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d.%08x@certbench.example>\r\n", seed, i, r.Uint32())
	b.WriteString("MIME-Version: 1.0\r\n")
	marker := hasSearchWord(i)
	if size < p.attachAbove {
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
		textLines(&b, r, size-b.Len(), marker)
		return b.Bytes()
	}
	boundary := fmt.Sprintf("=_certbench_%d_%08x", i, r.Uint32())
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a multi-part message in MIME format.\r\n\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary)
	textLines(&b, r, 600+r.IntN(2000), marker)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/pdf; name=\"document-%d.pdf\"\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"document-%d.pdf\"\r\n\r\n",
		boundary, i, i)
	n := (size - b.Len()) * 3 / 4
	if n < 64 {
		n = 64
	}
	bin := make([]byte, n)
	var enc string
	for {
		for j := range bin {
			bin[j] = byte(r.Uint32())
		}
		enc = base64.StdEncoding.EncodeToString(bin)
		// The search word must be found in text only, on every server,
		// whether it searches the raw or the decoded body.
		if !strings.Contains(strings.ToLower(enc), searchWord) {
			break
		}
	}
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}
