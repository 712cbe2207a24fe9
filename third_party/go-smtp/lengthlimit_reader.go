package smtp

import (
	"bytes"
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 {
		return n, nil
	}

	// A line at a time rather than a byte at a time (certmail patch; the
	// same as counting each byte: the count only grows within a line).
	rest := b[:n]
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			r.curLineLength += len(rest)
			if r.curLineLength > r.LineLimit {
				return 0, ErrTooLongLine
			}
			break
		}
		r.curLineLength += i
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		// The newline starts the next line's count, as upstream does.
		r.curLineLength = 1
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		rest = rest[i+1:]
	}

	return n, nil
}
