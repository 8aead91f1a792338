package client

import (
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"
)

// Hand-written encoders for the small request bodies on hot paths (acquire,
// renew, release, check): no reflection, no allocation beyond the buffer.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// seconds converts d to whole seconds, rounding up (a TTL of 1.5s becomes 2).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return int64(d / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

func appendTTLBody(b []byte, ttl time.Duration) []byte {
	b = append(b, `{"ttl_seconds":`...)
	b = strconv.AppendInt(b, seconds(ttl), 10)
	return append(b, '}')
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
	b = append(b, `{"max_requests":`...)
	b = strconv.AppendInt(b, int64(max), 10)
	b = append(b, `,"window_seconds":`...)
	b = strconv.AppendInt(b, seconds(window), 10)
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
