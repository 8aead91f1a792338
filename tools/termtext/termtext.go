// Package termtext makes text that came from a server safe to show on a
// terminal: the one rule shared by the CLI's tables and messages
// (cmd/octostore), the TUI (tui) and the server's refusal of such text where
// it is stored (httpd: config descriptions).
//
// A terminal obeys some characters instead of showing them: ESC starts a
// control sequence (ESC[2J clears the screen, OSC sequences set the title or
// write the clipboard), BEL rings, CR and BS move the cursor over what was
// written, the C1 range (U+0080–U+009F) holds 8-bit forms of the same
// sequences, and the bidirectional controls (U+202A–U+202E, U+2066–U+2069,
// U+200E, U+200F, U+061C) reorder what follows, so that text reads
// differently from what it is ("Trojan Source", CVE-2021-42574). Unsafe
// reports these; Clean replaces them; EscapeJSON escapes them inside JSON
// strings without changing the JSON's value.
package termtext

import (
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// Replacement is what Clean puts in place of a control character: visible,
// one column wide, and plainly not the original.
const Replacement = '\uFFFD'

// Unsafe reports whether a terminal would act on r instead of showing it:
// C0 controls (including TAB, LF and CR), DEL, the C1 controls, the Unicode
// line and paragraph separators, and the bidirectional formatting characters.
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x2028 && r <= 0x202e: // LS, PS, LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// Index returns the byte index of the first Unsafe rune of s, or -1.
func Index(s string) int {
	return strings.IndexFunc(s, Unsafe)
}

// Clean returns s as one line that shows exactly what it holds: TAB, LF, CR
// and the line and paragraph separators become a space, every other Unsafe
// rune and invalid UTF-8 become Replacement (U+FFFD). Text without any comes
// back as it is, without copying.
func Clean(s string) string {
	if Index(s) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // invalid UTF-8 comes out of range as U+FFFD
		switch {
		case r == '\t', r == '\n', r == '\r', r == 0x2028, r == 0x2029:
			b.WriteByte(' ')
		case Unsafe(r):
			b.WriteRune(Replacement)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// EscapeJSON returns the JSON text b with every Unsafe rune inside its
// strings written as a \uXXXX escape, so that printing it cannot drive a
// terminal; a program that decodes the output gets the same value as from
// b. Outside strings valid JSON holds only spaces, tabs and newlines among
// the Unsafe runes: they are kept (anything else there, which valid JSON
// cannot hold, becomes Replacement). b without any comes back as it is.
func EscapeJSON(b []byte) []byte {
	i := firstEscape(b)
	if i < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	inString, escaped := false, false
	for j := 0; j < i; j++ { // the state at i
		inString, escaped = step(b[j], inString, escaped)
	}
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if Unsafe(r) && (inString || !jsonSpace(r)) {
			if inString {
				out = appendU(out, r)
			} else { // not JSON at all: only show it cannot act
				out = utf8.AppendRune(out, Replacement)
			}
			i += n
			escaped = false
			continue
		}
		if n == 1 {
			inString, escaped = step(b[i], inString, escaped)
		} else {
			escaped = false
		}
		out = append(out, b[i:i+n]...)
		i += n
	}
	return out
}

// firstEscape is the index of the first Unsafe rune of b that EscapeJSON
// would escape (any Unsafe rune other than JSON whitespace), or -1.
func firstEscape(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if Unsafe(r) && !jsonSpace(r) {
			return i
		}
		i += n
	}
	return -1
}

// jsonSpace reports the Unsafe runes that valid JSON may hold outside strings.
func jsonSpace(r rune) bool { return r == '\t' || r == '\n' || r == '\r' }

// step advances the string/escape state of a JSON scanner over one byte.
func step(c byte, inString, escaped bool) (bool, bool) {
	switch {
	case !inString:
		return c == '"', false
	case escaped:
		return true, false
	case c == '\\':
		return true, true
	case c == '"':
		return false, false
	}
	return true, false
}

const hexDigits = "0123456789abcdef"

// appendU appends r (a rune of the Basic Multilingual Plane, as every Unsafe
// rune is) as \uXXXX.
func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// Clip cuts s to at most w terminal columns (East Asian wide runes count
// two), ending it with "…" when it was cut.
func Clip(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if runewidth.StringWidth(s) <= w {
		return s
	}
	return runewidth.Truncate(s, w, "…")
}

// Width is the number of terminal columns s takes.
func Width(s string) int { return runewidth.StringWidth(s) }
