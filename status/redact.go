package status

import (
	"net/url"
	"regexp"
	"strings"
)

// The Source promises no secrets: targets without credentials, error
// messages without tokens, add commands with the secret elided. The
// functions here hold the pages to that promise anyway, on the fields where
// a secret could slip in (a URL with userinfo or a token in its query, an
// Authorization header quoted in an error).

// SecretPlaceholder stands for a drain's secret in the add commands shown.
const SecretPlaceholder = "<secret shown by drains add>"

var (
	// urlRE finds URLs in free text (an error message quotes the URL of
	// the request that failed).
	urlRE = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)
	// schemeRE finds an authorization scheme followed by its credentials.
	schemeRE = regexp.MustCompile(`(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=\-]{6,}`)
	// paramRE finds key=value or key: value pairs whose key names a secret.
	// The value may start with a scheme: "Authorization: Bearer xyz".
	paramRE = regexp.MustCompile(`(?i)\b([a-z_\-]*(?:token|api[_\-]?key|apikey|secret|password|passwd|pwd|access[_\-]?key|authorization|credential)[a-z_\-]*)(["']?\s*[=:]\s*["']?)((?:(?:bearer|basic|token)\s+)?[^\s"'&,;]+)`)
)

// redactURL removes what could be a credential from one URL: the userinfo
// (everything up to the last '@' before the query), the query and the
// fragment. A query is shown as "?…".
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	var query bool
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		query = rest[i] == '?'
		rest = rest[:i]
	}
	// The last '@', even after a '/': an unescaped '/' in a password would
	// otherwise end the authority early and leave the rest of it showing.
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if query {
		rest += "?…"
	}
	if ok {
		return scheme + "://" + rest
	}
	return rest
}

// redactText removes credentials from free text such as an error message:
// URLs lose their userinfo and query, and tokens after "Bearer" or after a
// key like "token=" or "api_key:" are replaced.
func redactText(s string) string {
	s = urlRE.ReplaceAllStringFunc(s, redactURL)
	s = paramRE.ReplaceAllString(s, "$1$2[redacted]")
	s = schemeRE.ReplaceAllString(s, "$1$2[redacted]")
	return s
}

// redactTarget shows an outlet's endpoint without credentials. A target
// that is not a URL (the log outlet's "stdout") is shown as it is, up to a
// userinfo-looking prefix.
func redactTarget(s string) string {
	if strings.Contains(s, "://") || strings.Contains(s, "@") || strings.Contains(s, "?") {
		return redactText(redactURL(s))
	}
	return redactText(s)
}

// elideSecrets returns a `heroku drains:add` command with the password of
// every URL in it replaced by SecretPlaceholder, unless the password is
// already a placeholder ("<…>") or a command substitution ("$(…)"), which
// hold no secret by construction.
func elideSecrets(cmd string) string {
	var b strings.Builder
	for {
		i := strings.Index(cmd, "://")
		if i < 0 {
			b.WriteString(cmd)
			return b.String()
		}
		b.WriteString(cmd[:i+3])
		cmd = cmd[i+3:]
		// The user name: up to ':' or '@' (or the end of the authority).
		u := strings.IndexAny(cmd, ":@/ '\"")
		if u < 0 || cmd[u] != ':' {
			continue // no password
		}
		user, rest := cmd[:u], cmd[u+1:]
		n := passwordLen(rest)
		if n < 0 {
			// No '@' ends it: a port, not a password.
			b.WriteString(user + ":")
			cmd = rest
			continue
		}
		pw := rest[:n]
		if !isPlaceholder(pw) {
			pw = SecretPlaceholder
		}
		b.WriteString(user + ":" + pw + "@")
		cmd = rest[n+1:]
	}
}

// passwordLen returns the length of the password at the start of s, which
// ends at the last '@' of the URL (an unescaped '@' or '/' may be part of
// it); -1 if there is none (a port, not a password). A placeholder or a
// command substitution may hold spaces.
func passwordLen(s string) int {
	n := 0
	switch {
	case strings.HasPrefix(s, "$("):
		n = strings.IndexByte(s, ')') + 1
	case strings.HasPrefix(s, "<"):
		n = strings.IndexByte(s, '>') + 1
	}
	at := -1
	for i := n; i < len(s); i++ {
		switch s[i] {
		case '@':
			at = i
		case ' ', '\t', '\n', '\'', '"':
			return at
		}
	}
	return at
}

// isPlaceholder reports whether a password in a shown command is a
// placeholder or a command substitution, not a secret.
func isPlaceholder(pw string) bool {
	return (strings.HasPrefix(pw, "$(") && strings.HasSuffix(pw, ")") && !strings.Contains(pw[2:len(pw)-1], "@")) ||
		(strings.HasPrefix(pw, "<") && strings.HasSuffix(pw, ">") && !strings.Contains(pw, "@"))
}

// cleanBaseURL returns scheme://host[/path] of an http(s) URL, without
// userinfo, query or trailing slash; "" if it is not one.
func cleanBaseURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
}

// hostRE is what a Host header may hold to be shown: a DNS name or an IP,
// and a port.
var hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
