package imapsrv

import (
	"bytes"
	"encoding/gob"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// gobRoundTrip is a summary as the gob form stored and read it back.
func gobRoundTrip(t testing.TB, s *summary) *summary {
	t.Helper()
	registerSummaryTypes()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		t.Fatal(err)
	}
	var out summary
	if err := gob.NewDecoder(&buf).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// FuzzSummaryCodec: the binary form reads back exactly what gob did
// (differential, over the summaries of arbitrary messages), and arbitrary
// bytes after the magic are an error, never a panic or a runaway
// allocation.
func FuzzSummaryCodec(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if enc, err := encodeSummary(nil, computeSummary(b)); err == nil {
			f.Add(enc[len(summaryMagic):])
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := computeSummary(raw)
		enc, err := encodeSummary(nil, s)
		if err != nil {
			t.Skip("nested beyond the binary form (stored as gob)")
		}
		got, err := decodeSummaryBinary(enc[len(summaryMagic):])
		if err != nil {
			t.Fatalf("decoding what encodeSummary wrote: %v", err)
		}
		if want := gobRoundTrip(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("binary form read back\n%#v\ngob read back\n%#v", got, want)
		}
		if again, _ := encodeSummary(nil, got); !bytes.Equal(again, enc) {
			t.Fatal("encoding is not stable")
		}
		if s, err := decodeSummaryBinary(raw); err == nil {
			if _, err := encodeSummary(nil, s); err != nil {
				t.Fatalf("re-encoding a decoded record: %v", err)
			}
		}
	})
}

// TestSummaryGobStillRead: summaries stored as gob before the binary form
// decode as before.
func TestSummaryGobStillRead(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "multipart.eml"))
	if err != nil {
		t.Fatal(err)
	}
	s := computeSummary(raw)
	var buf bytes.Buffer
	buf.WriteString(sortKeysMagic)
	buf.Write(encodeSortKeys(nil, computeSortKeys(raw)))
	registerSummaryTypes()
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		t.Fatal(err)
	}
	got, err := decodeSummary(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := decodeSummary(Summarize(raw)); !reflect.DeepEqual(got, want) {
		t.Fatalf("gob record\n%#v\nbinary record\n%#v", got, want)
	}
	if !bytes.Contains(Summarize(raw), []byte(summaryMagic)) {
		t.Fatal("Summarize does not write the binary form")
	}
}

// BenchmarkDecodeSummary: reading a stored summary, as FETCH ENVELOPE or
// BODYSTRUCTURE does per message.
func BenchmarkDecodeSummary(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "multipart.eml"))
	if err != nil {
		b.Fatal(err)
	}
	s := computeSummary(raw)
	var gobRec bytes.Buffer
	registerSummaryTypes()
	gob.NewEncoder(&gobRec).Encode(s)
	for _, c := range []struct {
		name string
		rec  []byte
	}{{"binary", Summarize(raw)}, {"gob", gobRec.Bytes()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := decodeSummary(c.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
