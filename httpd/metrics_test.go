package httpd_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
)

// metricValue finds the sample of the exposition whose line starts with
// name{labels} (labels in the order Prometheus writes them: sorted).
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", series, grepLines(text, "octostore_"))
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsAuth(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	ctx := context.Background()
	if _, err := evClient(t, a, "").Metrics(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no credentials: %v, want 401", err)
	}
	if _, err := evClient(t, a, "nope").Metrics(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("unknown token: %v, want 401", err)
	}
	if _, err := evClient(t, a, "tokA").Metrics(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("user token: %v, want 403", err)
	}
	if _, err := evClient(t, a, "adminkey").Metrics(ctx); err != nil {
		t.Fatalf("admin: %v", err)
	}
	// The admin key in X-Admin-Key works too, and the content type is the
	// Prometheus text format.
	req, _ := http.NewRequest("GET", a.URL()+"/metrics", nil)
	req.Header.Set("X-Admin-Key", "adminkey")
	resp, err := apitest.Client(t, nil).Do(req) // checked against docs/openapi.yaml
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(body), "# TYPE octostore_http_requests_total counter") {
		t.Fatalf("body lacks the request counter:\n%s", body)
	}
}

func TestMetricsContent(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	ctx := context.Background()
	alice, admin := evClient(t, a, "tokA"), evClient(t, a, "adminkey")
	s := subscribe(t, evClient(t, a, "tokB"), client.EventFilter{})
	for _, n := range []string{"m1", "m2", "m3"} {
		if _, err := alice.Acquire(ctx, n, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := evClient(t, a, "tokB").Acquire(ctx, "m1", 30*time.Second); !errors.Is(err, client.ErrLockHeld) {
		t.Fatalf("bob acquire: %v", err)
	}
	next(t, s, 5*time.Second) // the stream is live
	if _, err := alice.LockStatus(ctx, "bad name"); err == nil {
		t.Fatal("bad name accepted")
	}
	resp, err := apitest.Client(t, nil).Get(a.URL() + "/no/such/route") // checked: a 404 {"error"}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	text, err := admin.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		series string
		min    float64
	}{
		{`octostore_http_requests_total{code="200",method="POST",route="/locks/{name}/acquire"}`, 3},
		{`octostore_http_requests_total{code="409",method="POST",route="/locks/{name}/acquire"}`, 1},
		{`octostore_http_requests_total{code="200",method="GET",route="/events"}`, 1},
		{`octostore_http_requests_total{code="404",method="GET",route="unmatched"}`, 1},
		{`octostore_http_request_duration_seconds_count{method="POST",route="/locks/{name}/acquire"}`, 4},
		{`octostore_resources{kind="lock"}`, 3},
		{`octostore_event_subscribers`, 1},
		{`octostore_events_published_total`, 3},
		{`octostore_live_actors`, 3},
		{`octostore_writer_batch_size_count`, 1},
		{`octostore_writer_commit_duration_seconds_count`, 1},
		{`octostore_storage_healthy`, 1},
	}
	for _, c := range checks {
		if v := metricValue(t, text, c.series); v < c.min {
			t.Errorf("%s = %v, want >= %v", c.series, v, c.min)
		}
	}
	if v := metricValue(t, text, `octostore_resources{kind="lock"}`); v != 3 {
		t.Errorf("held locks = %v, want 3", v)
	}
	for _, zero := range []string{`octostore_sqlite_errors_total`, `octostore_event_subscribers_dropped_total`} {
		if v := metricValue(t, text, zero); v != 0 {
			t.Errorf("%s = %v, want 0", zero, v)
		}
	}
	// Raw paths never become labels.
	if strings.Contains(text, `route="/locks/m1`) {
		t.Error("a raw path is used as a route label")
	}
	for _, kind := range []string{"limit", "flag", "config"} {
		metricValue(t, text, `octostore_resources{kind="`+kind+`"}`)
	}
}
