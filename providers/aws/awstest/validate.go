package awstest

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// validText reports whether s holds only the characters SQS accepts in a
// message body or attribute value: #x9 | #xA | #xD | #x20-#xD7FF |
// #xE000-#xFFFD | #x10000-#x10FFFF. It returns the first bad rune.
func validText(s string) (bad rune, ok bool) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return r, false
			}
		}
		if r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF {
			continue
		}
		return r, false
	}
	return 0, true
}

// validAttrName applies the SQS and SNS rules for message attribute names:
// up to 256 characters of A-Z a-z 0-9 _ - . ; not starting with "AWS." or
// "Amazon." (any case); no leading, trailing or doubled period.
func validAttrName(name string) bool {
	if name == "" || len(name) > 256 || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	l := strings.ToLower(name)
	if strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// transport is the attribute's wire kind: 1 for String and Number, 2 for
// Binary (as the MD5 digest encodes it), 0 for an unknown type.
func transport(dataType string) byte {
	base, _, _ := strings.Cut(dataType, ".")
	switch base {
	case "String", "Number":
		return 1
	case "Binary":
		return 2
	}
	return 0
}

// checkAttrs validates message attributes as SQS does and returns their
// size as SQS counts it (name + type + value).
func checkAttrs(attrs map[string]msgAttr, max int) (int, *apiError) {
	if len(attrs) > max {
		return 0, invalidParam("Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), max)
	}
	size := 0
	for name, a := range attrs {
		if !validAttrName(name) {
			return 0, invalidParam("Message (user) attribute name '%s' is invalid. The attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters, must not start with AWS. or Amazon., and must not start or end with a period or have successive periods.", name)
		}
		if a.DataType == "" {
			return 0, invalidParam("The message attribute '%s' must contain non-empty message attribute type.", name)
		}
		if len(a.DataType) > 256 {
			return 0, invalidParam("Message (user) attribute '%s' type must be shorter than 256 bytes.", name)
		}
		switch transport(a.DataType) {
		case 0:
			return 0, invalidParam("The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		case 1:
			if a.StringValue == nil || *a.StringValue == "" {
				return 0, invalidParam("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			if r, ok := validText(*a.StringValue); !ok {
				return 0, invalidParam("Message (user) attribute '%s' value contains invalid character #x%X.", name, r)
			}
			if strings.HasPrefix(a.DataType, "Number") {
				if _, err := strconv.ParseFloat(*a.StringValue, 64); err != nil {
					return 0, invalidParam("Can't cast the value of message (user) attribute '%s' to a number.", name)
				}
			}
		case 2:
			if len(a.BinaryValue) == 0 {
				return 0, invalidParam("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
		}
		size += a.size(name)
	}
	return size, nil
}

// md5OfAttrs is the digest SQS returns as MD5OfMessageAttributes: over the
// attributes sorted by name, each as length-prefixed name, length-prefixed
// type, a transport byte and the length-prefixed value.
func md5OfAttrs(attrs map[string]msgAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := md5.New()
	var l [4]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint32(l[:], uint32(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	for _, n := range names {
		a := attrs[n]
		put([]byte(n))
		put([]byte(a.DataType))
		t := transport(a.DataType)
		h.Write([]byte{t})
		if t == 2 {
			put(a.BinaryValue)
		} else if a.StringValue != nil {
			put([]byte(*a.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// validQueueName: 1-80 of A-Z a-z 0-9 - _, plus the ".fifo" suffix of FIFO
// queues (within the 80).
func validQueueName(name string) bool {
	base := strings.TrimSuffix(name, ".fifo")
	if base == "" || len(name) > 80 {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validBatchID: up to 80 of A-Z a-z 0-9 - _.
func validBatchID(id string) bool {
	if id == "" || len(id) > 80 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validFIFOToken checks a MessageGroupId or MessageDeduplicationId: 1-128
// of alphanumerics and punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
func validFIFOToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
