package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/replicaof/replicaof/syncer"
)

// FuzzScrape feeds arbitrary source names, URLs, timestamps and command
// names through the instruments: every scrape must still be valid
// Prometheus text, and command labels stay bounded and well formed.
func FuzzScrape(f *testing.F) {
	f.Add("orders", "redis://:***@127.0.0.1:7000", "2025-01-02T03:04:05.123456789Z", int64(3), "GET", 1)
	f.Add("", "", "", int64(-1), "", 0)
	f.Add("a\"b\\c\nd", "redis://\xff\xfe", "not a time", int64(1<<62), "bad\r\ncmd", 1<<20)
	f.Add("{tag}", "rediss://h:1", "2025-13-45T99:99:99Z", int64(0), "CLIENT|SETNAME", -5)
	p, err := New(Config{NoRuntime: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, name, uri, ts string, lag int64, cmd string, shard int) {
		src := &memSource{st: syncer.Status{Status: name, Sources: []syncer.SourceStatus{
			{UID: 1, Name: name, URI: uri, SyncState: name, LagMS: lag, LastUpdate: ts, LastErrorTime: ts, RDBSize: lag, Progress: int(lag)},
		}}}
		sp, err := New(Config{Source: src, NoRuntime: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Shutdown(context.Background())
		scrape(t, sp)

		a := p.proxy.attrs(cmd)
		if a != p.proxy.other && !plausibleCommand(cmd) {
			t.Fatalf("command %q got its own label", cmd)
		}
		p.Proxy().Command(cmd, time.Duration(lag), lag%2 == 0)
		p.Shards().Pipeline(shard, int(lag%1000), time.Duration(lag), false)
		p.Shards().Applied(name, shard, 1)
		mfs, _ := scrape(t, p)
		if n := len(mfs["replicaof_proxy_command_duration_seconds"].GetMetric()); n > maxCommandNames+1 {
			t.Fatalf("%d command label sets", n)
		}
	})
}
