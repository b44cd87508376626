package awstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// authenticate verifies a Signature Version 4 Authorization header the way
// AWS does: the credential's access key and scope, the signed headers, the
// request time (within 15 minutes), and the signature over the canonical
// request.
func (s *Server) authenticate(r *http.Request, body []byte, service string) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &apiError{Status: http.StatusForbidden, Type: "MissingAuthenticationTokenException", QueryCode: "MissingAuthenticationToken", Sender: true,
			Message: "Request is missing Authentication Token"}
	}
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return incompleteSignature("Authorization header requires the AWS4-HMAC-SHA256 algorithm")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(auth[len(alg):], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return incompleteSignature("Authorization header part %q is not key=value", part)
		}
		fields[k] = v
	}
	cred, signed, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if cred == "" || signed == "" || sig == "" {
		return incompleteSignature("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return incompleteSignature("Credential %q must be <key>/<date>/<region>/<service>/aws4_request", cred)
	}
	if scope[0] != s.opts.AccessKeyID {
		return &apiError{Status: http.StatusForbidden, Type: "UnrecognizedClientException", QueryCode: "InvalidClientTokenId", Sender: true,
			Message: "The security token included in the request is invalid."}
	}
	if scope[3] != service {
		return signatureMismatch("Credential should be scoped to correct service: '%s'.", service)
	}
	if scope[2] != s.opts.Region {
		return signatureMismatch("Credential should be scoped to a valid region, not '%s'.", scope[2])
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return incompleteSignature("X-Amz-Date header %q is missing or not in the form 20060102T150405Z", amzDate)
	}
	if scope[1] != amzDate[:8] {
		return signatureMismatch("Credential should be scoped to a valid date, not '%s'.", scope[1])
	}
	if d := time.Since(t); d > 15*time.Minute || d < -15*time.Minute {
		return signatureMismatch("Signature expired: %s is now earlier than %s.", amzDate, time.Now().UTC().Add(-15*time.Minute).Format("20060102T150405Z"))
	}
	headers := strings.Split(signed, ";")
	if !sort.StringsAreSorted(headers) || !contains(headers, "host") {
		return signatureMismatch("SignedHeaders %q must be sorted and include host", signed)
	}
	var canon strings.Builder
	canon.WriteString(r.Method)
	canon.WriteByte('\n')
	canon.WriteString(canonicalPath(r.URL))
	canon.WriteByte('\n')
	canon.WriteString(canonicalQuery(r.URL.Query()))
	canon.WriteByte('\n')
	for _, h := range headers {
		canon.WriteString(h)
		canon.WriteByte(':')
		canon.WriteString(headerValue(r, h))
		canon.WriteByte('\n')
	}
	canon.WriteByte('\n')
	canon.WriteString(signed)
	canon.WriteByte('\n')
	sum := sha256.Sum256(body)
	canon.WriteString(hex.EncodeToString(sum[:]))

	creq := sha256.Sum256([]byte(canon.String()))
	credScope := strings.Join(scope[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + credScope + "\n" + hex.EncodeToString(creq[:])
	key := hmacSHA256([]byte("AWS4"+s.opts.SecretAccessKey), scope[1])
	key = hmacSHA256(key, scope[2])
	key = hmacSHA256(key, scope[3])
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return signatureMismatch("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}

func incompleteSignature(format string, args ...any) *apiError {
	e := clientErr("IncompleteSignatureException", "IncompleteSignature", format, args...)
	e.Status = http.StatusForbidden
	return e
}

func signatureMismatch(format string, args ...any) *apiError {
	e := clientErr("InvalidSignatureException", "SignatureDoesNotMatch", format, args...)
	e.Status = http.StatusForbidden
	return e
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, uriEncode(k)+"="+uriEncode(v))
		}
	}
	return strings.Join(parts, "&")
}

// uriEncode escapes everything but the unreserved characters (RFC 3986).
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

// headerValue is a header's canonical value: values joined by commas, with
// surrounding spaces trimmed and inner runs of spaces collapsed.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := append([]string(nil), r.Header.Values(name)...)
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}
