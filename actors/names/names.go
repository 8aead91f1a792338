// Package names is octostore's name rule: which strings name a lock, a rate
// limit or flag, a config key, or a user. It is the one definition of the
// rule, beside the domain types of package actors, used by the HTTP API
// (httpd), the CLI (cmd/octostore) and the test server
// (tools/client/clienttest), so that all three accept exactly the same
// names and say so in the same words. It imports nothing of the server, so
// that the test server of the Go client can use it.
package names

import "strconv"

// The character classes, as the body of a regular expression bracket
// expression. Every pattern, check and message below is built from them.
const (
	// plain is the class of lock, rate limit, flag and user names.
	plain = "A-Za-z0-9_-"
	// dotted is the class of config keys: plain and '.' (its letters are
	// written lower case first, as the API has always quoted it).
	dotted = "a-zA-Z0-9._-"
	// ident is the class of holder ids: plain, and what host names, host:pid,
	// user@host, k8s namespace/pod, UUIDs and base64 need ('.', ':', '@',
	// '/', '+', '='). No spaces, quotes or control characters: a holder id is
	// printed in listings and CLI output as it is.
	ident = "A-Za-z0-9._:@/+=-"
)

// Rule is the rule of one kind of name: characters from a class, 1 to Max
// of them, and for config keys not the path segments "." or "..".
type Rule struct {
	max         int
	noDots      bool      // "." and ".." are refused (no client can send them as a path segment)
	allowed     [256]bool // from the class
	pattern     string    // ^[class]{1,max}$
	requirement string    // "must match …" for messages
}

// The rules.
var (
	// Lock names: locks are one namespace shared by every user.
	Lock = newRule(plain, 128, false)
	// Resource names: rate limits and flags, per owner.
	Resource = newRule(plain, 100, false)
	// ConfigKey names a config key, per owner.
	ConfigKey = newRule(dotted, 100, true)
	// Login names a user: static-token users, `octostore token create
	// --user`, ?owner=, and GitHub logins (at most 39 characters there).
	Login = newRule(plain, 64, false)
	// HolderID names one process or task of a user holding a lock (the
	// acquire's optional holder_id): a lock is held by the user and the
	// holder id together.
	HolderID = newRule(ident, 128, false)
	// Variant names a variant of a feature flag, unique within the flag.
	Variant = newRule(dotted, 64, false)
	// Attribute names an attribute of a flag evaluation context, as a
	// targeting rule reads it (GET /flags/{name}?attr.NAME=…, an OFREP
	// context's properties).
	Attribute = newRule(dotted, 128, false)
)

func newRule(class string, max int, noDots bool) *Rule {
	r := &Rule{max: max, noDots: noDots, pattern: "^[" + class + "]{1," + strconv.Itoa(max) + "}$"}
	for i := 0; i < len(class); i++ {
		if i+2 < len(class) && class[i+1] == '-' {
			for c := int(class[i]); c <= int(class[i+2]); c++ {
				r.allowed[c] = true
			}
			i += 2
			continue
		}
		r.allowed[class[i]] = true
	}
	r.requirement = "must match " + r.pattern
	if noDots {
		r.requirement += " (and not be . or ..)"
	}
	return r
}

// Valid reports whether s is a name under the rule.
func (r *Rule) Valid(s string) bool {
	if len(s) == 0 || len(s) > r.max || (r.noDots && (s == "." || s == "..")) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !r.allowed[s[i]] {
			return false
		}
	}
	return true
}

// Max is the longest name, in bytes (every allowed character is one byte).
func (r *Rule) Max() int { return r.max }

// Pattern is the rule as a regular expression: ^[class]{1,max}$.
func (r *Rule) Pattern() string { return r.pattern }

// Requirement completes a message that names what is refused: "must match
// ^[…]{1,N}$", plus " (and not be . or ..)" for config keys. For example
// "lock name " + Lock.Requirement().
func (r *Rule) Requirement() string { return r.requirement }
