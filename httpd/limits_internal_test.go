package httpd

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendTimeMS(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 7, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // out of the fast range
		{},
	} {
		if got, want := string(appendTimeMS(nil, tm)), string(appendTime(nil, tm)); got != want {
			t.Errorf("%v: %s, want %s", tm, got, want)
		}
	}
}

// fastCheckBody agrees with encoding/json whenever it accepts a body.
func FuzzFastCheckBody(f *testing.F) {
	for _, s := range []string{
		`{"max_requests":3,"window_seconds":60}`,
		" {\n\"window_seconds\" : 60 ,\"max_requests\":3 }\n",
		`{"max_requests":3,"window_seconds":60,"max_requests":4}`,
		`{"max_requests":03,"window_seconds":60}`,
		`{"max_requests":3.5,"window_seconds":60}`,
		`{"max_requests":-3,"window_seconds":60}`,
		`{"max_requests":3}`,
		`{"max_requests":3,"window_seconds":60}x`,
		`{"max\u005frequests":3,"window_seconds":60}`,
		`{}`, ``, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		max, win, ok := fastCheckBody(b)
		if !ok {
			return
		}
		var v struct {
			Max    *int64 `json:"max_requests"`
			Window *int64 `json:"window_seconds"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", b, err)
		}
		if v.Max == nil || v.Window == nil || *v.Max != max || *v.Window != win {
			t.Fatalf("fast path read %q as %d/%d, encoding/json as %v/%v", b, max, win, v.Max, v.Window)
		}
	})
}

func TestFastCheckBody(t *testing.T) {
	for _, tc := range []struct {
		body     string
		max, win int64
		ok       bool
	}{
		{`{"max_requests":3,"window_seconds":60}`, 3, 60, true},
		{" {\n\t\"window_seconds\" : 60 ,\"max_requests\":3 }\r\n", 3, 60, true},
		{`{"max_requests":3,"window_seconds":60,"max_requests":4}`, 0, 0, false}, // given twice: the decoder answers 422
		{`{"max_requests":03,"window_seconds":60}`, 0, 0, false},
		{`{"max_requests":3.0,"window_seconds":60}`, 0, 0, false},
		{`{"max_requests":-3,"window_seconds":60}`, 0, 0, false},
		{`{"max_requests":3}`, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60,"x":1}`, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60}}`, 0, 0, false},
		{`{"max\u005frequests":3,"window_seconds":60}`, 0, 0, false},
		{`{"max_requests":3,"window_seconds":9999999999999999999}`, 0, 0, false},
	} {
		max, win, ok := fastCheckBody([]byte(tc.body))
		if ok != tc.ok || (ok && (max != tc.max || win != tc.win)) {
			t.Errorf("%q: %d %d %v, want %d %d %v", tc.body, max, win, ok, tc.max, tc.win, tc.ok)
		}
	}
}
