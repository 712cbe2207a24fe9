package delivery

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"certmail/imapsrv"
	"certmail/mailbox"
)

// benchMessage is a plain message of about size bytes.
func benchMessage(i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender <sender@example.net>\r\nTo: bench@example.org\r\nSubject: message %d\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <%d@bench.example>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n", i, i)
	for b.Len() < size {
		b.WriteString("the quick brown fox jumps over the lazy dog, again and again and again\r\n")
	}
	return []byte(b.String())
}

// BenchmarkDeliver is the LMTP ingest path without the network: Deliver
// (one transaction, then a sync shared with concurrent deliveries) from
// several goroutines, on a store on disk with IMAP summaries, as serve
// runs it. msgs/s is the figure to compare with certbench's.
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{1, 8} {
		for _, size := range []int{4 << 10, 40 << 10} {
			b.Run(fmt.Sprintf("conc=%d/size=%dK", conc, size>>10), func(b *testing.B) {
				st, err := mailbox.Open(mailbox.Options{Dir: b.TempDir(), GCInterval: -1, Logger: quietLogger(), Summarize: imapsrv.Summarize})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				for u := 0; u < 4; u++ {
					if err := st.CreateAccount(fmt.Sprintf("u%d", u), "pw", mailbox.DefaultMailboxes()); err != nil {
						b.Fatal(err)
					}
				}
				d := NewDeliverer(st, Options{Logger: quietLogger()})
				defer d.Close(context.Background())
				msgs := make([][]byte, 64)
				for i := range msgs {
					msgs[i] = benchMessage(i, size)
				}
				b.SetBytes(int64(size))
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for g := 0; g < conc; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := int(next.Add(1) - 1)
							if i >= b.N {
								return
							}
							errs := d.Deliver(context.Background(), []string{fmt.Sprintf("u%d@example.org", i%4)}, "", msgs[i%len(msgs)])
							if errs[0] != nil {
								b.Error(errs[0])
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}
