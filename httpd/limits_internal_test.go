package httpd

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
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
		`{"max_requests":3,"window_seconds":60,"cost":2,"algorithm":"token_bucket"}`,
		`{"algorithm":"sliding_window","cost":1,"window_seconds":60,"max_requests":3}`,
		`{"max_requests":3,"window_seconds":60,"algorithm":"token\u005fbucket"}`,
		`{"max_requests":3,"window_seconds":60,"algorithm":"leaky"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := fastCheckBody(b)
		if !ok {
			return
		}
		var v struct {
			Max       *int64  `json:"max_requests"`
			Window    *int64  `json:"window_seconds"`
			Cost      *int64  `json:"cost"`
			Algorithm *string `json:"algorithm"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", b, err)
		}
		cost, alg := int64(1), actors.SlidingWindowName
		if v.Cost != nil {
			cost = *v.Cost
		}
		if v.Algorithm != nil {
			alg = *v.Algorithm
		}
		if v.Max == nil || v.Window == nil || *v.Max != int64(p.Max) || time.Duration(*v.Window)*time.Second != p.Window ||
			cost != int64(p.Cost) || alg != p.Algorithm.String() {
			t.Fatalf("fast path read %q as %+v, encoding/json as %v/%v/%v/%v", b, p, v.Max, v.Window, v.Cost, v.Algorithm)
		}
	})
}

func TestFastCheckBody(t *testing.T) {
	for _, tc := range []struct {
		body           string
		max, win, cost int64
		alg            actors.Algorithm
		ok             bool
	}{
		{`{"max_requests":3,"window_seconds":60,"cost":2,"algorithm":"token_bucket"}`, 3, 60, 2, actors.AlgTokenBucket, true},
		{`{"algorithm" : "sliding_window","cost":1,"window_seconds":60,"max_requests":3}`, 3, 60, 1, actors.AlgSlidingWindow, true},
		{`{"max_requests":3,"window_seconds":60,"algorithm":"token\u005fbucket"}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60,"algorithm":"leaky"}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60,"algorithm":1}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60,"cost":1,"cost":2}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60}`, 3, 60, 1, 0, true},
		{" {\n\t\"window_seconds\" : 60 ,\"max_requests\":3 }\r\n", 3, 60, 1, 0, true},
		{`{"max_requests":3,"window_seconds":60,"max_requests":4}`, 0, 0, 0, 0, false}, // given twice: the decoder answers 422
		{`{"max_requests":03,"window_seconds":60}`, 0, 0, 0, 0, false},
		{`{"max_requests":3.0,"window_seconds":60}`, 0, 0, 0, 0, false},
		{`{"max_requests":-3,"window_seconds":60}`, 0, 0, 0, 0, false},
		{`{"max_requests":3}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60,"x":1}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":60}}`, 0, 0, 0, 0, false},
		{`{"max\u005frequests":3,"window_seconds":60}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":9999999999999999999}`, 0, 0, 0, 0, false},
		{`{"max_requests":3,"window_seconds":99999999999}`, 0, 0, 0, 0, false},
	} {
		p, ok := fastCheckBody([]byte(tc.body))
		if ok != tc.ok || (ok && (int64(p.Max) != tc.max || p.Window != time.Duration(tc.win)*time.Second || int64(p.Cost) != tc.cost || p.Algorithm != tc.alg)) {
			t.Errorf("%q: %+v %v, want %d %d %d %v %v", tc.body, p, ok, tc.max, tc.win, tc.cost, tc.alg, tc.ok)
		}
	}
}
