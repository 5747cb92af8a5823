// Package metricstest reads a Prometheus text exposition for tests: fetch
// or parse it, then look up one series by name and labels.
package metricstest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed exposition, by metric name.
type Families = map[string]*dto.MetricFamily

// Parse parses a text exposition.
func Parse(body string) (Families, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(strings.NewReader(body))
}

// Scrape GETs base+"/metrics" and parses it, failing t on any error. It
// returns the families and the raw body (for failure messages).
func Scrape(t testing.TB, ctx context.Context, base string) (Families, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %v %d %s", err, resp.StatusCode, b)
	}
	mfs, err := Parse(string(b))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, b)
	}
	return mfs, string(b)
}

// Value is the value of the first series of name whose labels include
// every "k=v" in labels: a gauge's, counter's or untyped value, or a
// histogram's sample count.
func Value(mfs Families, name string, labels ...string) (float64, bool) {
next:
	for _, m := range mfs[name].GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// Need is Value that fails t, showing body, when there is no such series.
func Need(t testing.TB, mfs Families, body, name string, labels ...string) float64 {
	t.Helper()
	v, ok := Value(mfs, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in:\n%s", name, labels, body)
	}
	return v
}
