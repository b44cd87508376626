package awstest

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// This file holds the Query protocol plumbing SNS uses: form-encoded
// requests, XML responses and XML errors.

type form url.Values

func (f form) get(k string) string { return url.Values(f).Get(k) }

func (f form) has(k string) bool { _, ok := f[k]; return ok }

// kv reads a map serialised as <prefix>.entry.N.key / .value.
func (f form) kv(prefix string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.entry.%d.", prefix, i)
		if !f.has(p + "key") {
			return out
		}
		out[f.get(p+"key")] = f.get(p + "value")
	}
}

// attrs reads message attributes serialised as <prefix>.entry.N.Name and
// .Value.DataType / .Value.StringValue / .Value.BinaryValue (base64).
func (f form) attrs(prefix string) (map[string]msgAttr, *apiError) {
	var out map[string]msgAttr
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.entry.%d.", prefix, i)
		if !f.has(p + "Name") {
			return out, nil
		}
		a := msgAttr{DataType: f.get(p + "Value.DataType")}
		if f.has(p + "Value.StringValue") {
			v := f.get(p + "Value.StringValue")
			a.StringValue = &v
		}
		if f.has(p + "Value.BinaryValue") {
			b, err := base64.StdEncoding.DecodeString(f.get(p + "Value.BinaryValue"))
			if err != nil {
				return nil, snsInvalid("InvalidParameterValue", "ParameterValueInvalid", "Invalid binary value for message attribute %s", f.get(p+"Name"))
			}
			a.BinaryValue = b
		}
		if out == nil {
			out = map[string]msgAttr{}
		}
		out[f.get(p+"Name")] = a
	}
}

// members returns the prefixes "<prefix>.member.N." present in the form.
func (f form) members(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		p := prefix + ".member." + strconv.Itoa(i) + "."
		found := false
		for k := range f {
			if strings.HasPrefix(k, p) {
				found = true
				break
			}
		}
		if !found {
			return out
		}
		out = append(out, p)
	}
}

func snsInvalid(typ, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typ, QueryCode: code, Sender: true, Message: fmt.Sprintf(format, args...)}
}

// xmlWriter builds a Query protocol response.
type xmlWriter struct{ b strings.Builder }

func (x *xmlWriter) elem(name, value string) {
	x.b.WriteString("<" + name + ">")
	_ = xml.EscapeText(&x.b, []byte(value))
	x.b.WriteString("</" + name + ">")
}

func (x *xmlWriter) open(name string)  { x.b.WriteString("<" + name + ">") }
func (x *xmlWriter) close(name string) { x.b.WriteString("</" + name + ">") }

const snsXMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"

func (s *Server) writeQueryResult(w http.ResponseWriter, action string, result *xmlWriter) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n")
	b.WriteString("<" + action + `Response xmlns="` + snsXMLNS + `">`)
	b.WriteString("<" + action + "Result>")
	if result != nil {
		b.WriteString(result.b.String())
	}
	b.WriteString("</" + action + "Result>")
	b.WriteString("<ResponseMetadata><RequestId>" + s.requestID() + "</RequestId></ResponseMetadata>")
	b.WriteString("</" + action + "Response>")
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) writeQueryError(w http.ResponseWriter, e *apiError) {
	code := e.QueryCode
	if code == "" {
		code = e.Type
	}
	fault := "Receiver"
	if e.Sender {
		fault = "Sender"
	}
	var x xmlWriter
	x.b.WriteString(`<?xml version="1.0"?>` + "\n")
	x.b.WriteString(`<ErrorResponse xmlns="` + snsXMLNS + `"><Error>`)
	x.elem("Type", fault)
	x.elem("Code", code)
	x.elem("Message", e.Message)
	x.b.WriteString("</Error>")
	x.elem("RequestId", s.requestID())
	x.b.WriteString("</ErrorResponse>")
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(x.b.String()))
}
