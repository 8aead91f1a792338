package client

import (
	"net/url"
	"strconv"
	"time"

	"github.com/octostore/octostore/tools/jsonw"
)

// Hand-written encoders for the small request bodies on hot paths (acquire,
// renew, release, check): no reflection, no allocation beyond the buffer.

// appendJSONString appends s as a JSON string literal (tools/jsonw).
func appendJSONString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }

// seconds converts d to whole seconds, rounding up (a TTL of 1.5s becomes 2).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return int64(d / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendAcquireBody renders an acquire: ttl_seconds (or session_id), and the
// options that are set (holder_id unless it is "", wait_seconds when
// positive).
func appendAcquireBody(b []byte, ttl time.Duration, o AcquireOptions) []byte {
	return append(appendAcquireFields(append(b, '{'), ttl, o), '}')
}

// appendSemaphoreBody renders a semaphore acquire: limit and the fields of
// an acquire.
func appendSemaphoreBody(b []byte, limit int, ttl time.Duration, o AcquireOptions) []byte {
	b = append(b, `{"limit":`...)
	b = strconv.AppendInt(b, int64(limit), 10)
	return append(appendAcquireFields(append(b, ','), ttl, o), '}')
}

// appendAcquireFields appends the fields of an acquire (no braces).
func appendAcquireFields(b []byte, ttl time.Duration, o AcquireOptions) []byte {
	if o.SessionID != "" {
		b = append(b, `"session_id":`...)
		b = appendJSONString(b, o.SessionID)
	} else {
		b = append(b, `"ttl_seconds":`...)
		b = strconv.AppendInt(b, seconds(ttl), 10)
	}
	if o.HolderID != "" {
		b = append(b, `,"holder_id":`...)
		b = appendJSONString(b, o.HolderID)
	}
	if o.Wait > 0 {
		b = append(b, `,"wait_seconds":`...)
		b = strconv.AppendInt(b, seconds(min(o.Wait, MaxWait)), 10)
	}
	if o.LockDelay > 0 {
		b = append(b, `,"lock_delay_seconds":`...)
		b = strconv.AppendInt(b, seconds(o.LockDelay), 10)
	}
	if o.Metadata != nil {
		b = append(b, `,"metadata":`...)
		b = appendJSONString(b, *o.Metadata)
	}
	return b
}

func appendRenewBody(b []byte, leaseID string, ttl time.Duration) []byte {
	b = append(b, `{"lease_id":`...)
	b = appendJSONString(b, leaseID)
	b = append(b, `,"ttl_seconds":`...)
	b = strconv.AppendInt(b, seconds(ttl), 10)
	return append(b, '}')
}

func appendReleaseBody(b []byte, leaseID string) []byte {
	b = append(b, `{"lease_id":`...)
	b = appendJSONString(b, leaseID)
	return append(b, '}')
}

func appendCheckBody(b []byte, max int, window time.Duration) []byte {
	return appendCheck(b, LimitCheck{MaxRequests: max, Window: window})
}

// appendCheck renders a check's body: {"name"?,"max_requests",
// "window_seconds","cost"?,"algorithm"?}.
func appendCheck(b []byte, c LimitCheck) []byte {
	b = append(b, '{')
	if c.Name != "" {
		b = append(b, `"name":`...)
		b = jsonw.AppendString(b, c.Name)
		b = append(b, ',')
	}
	b = append(b, `"max_requests":`...)
	b = strconv.AppendInt(b, int64(c.MaxRequests), 10)
	b = append(b, `,"window_seconds":`...)
	b = strconv.AppendInt(b, seconds(c.Window), 10)
	if c.Cost != 0 {
		b = append(b, `,"cost":`...)
		b = strconv.AppendInt(b, int64(c.Cost), 10)
	}
	if c.Algorithm != "" {
		b = append(b, `,"algorithm":`...)
		b = jsonw.AppendString(b, c.Algorithm)
	}
	return append(b, '}')
}

// seg escapes one path segment; names are usually plain, so check first.
func seg(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return url.PathEscape(s)
		}
	}
	return s
}
