package eventpattern

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type matchCase struct {
	name    string
	pattern string
	event   string
	want    bool
}

// runMatchCases checks each case through Pattern.MatchJSON, through a
// Matcher holding the pattern, and through the pattern's canonical form.
func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile([]byte(tc.pattern))
			require.NoError(t, err, "pattern %s", tc.pattern)
			got, err := p.MatchJSON([]byte(tc.event))
			require.NoError(t, err, "event %s", tc.event)
			assert.Equal(t, tc.want, got, "pattern %s\nevent %s", tc.pattern, tc.event)

			var m Matcher[string]
			m.Add("p", p)
			ids, err := m.MatchJSON([]byte(tc.event), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, len(ids) == 1, "matcher disagrees")

			canon, err := Compile([]byte(p.String()))
			require.NoError(t, err, "canonical form %s", p.String())
			assert.Equal(t, p.String(), canon.String())
			again, err := canon.MatchJSON([]byte(tc.event))
			require.NoError(t, err)
			assert.Equal(t, got, again, "canonical form disagrees")
		})
	}
}

func TestExactValues(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"string equal", `{"a":["x"]}`, `{"a":"x"}`, true},
		{"string differs", `{"a":["x"]}`, `{"a":"y"}`, false},
		{"string is case sensitive", `{"a":["x"]}`, `{"a":"X"}`, false},
		{"string does not match number", `{"a":["5"]}`, `{"a":5}`, false},
		{"number does not match string", `{"a":[5]}`, `{"a":"5"}`, false},
		{"number equal", `{"a":[100]}`, `{"a":100}`, true},
		{"number 100 matches 1e2", `{"a":[100]}`, `{"a":1e2}`, true},
		{"number 1e2 matches 100.0", `{"a":[1e2]}`, `{"a":100.0}`, true},
		{"number differs", `{"a":[100]}`, `{"a":101}`, false},
		{"negative number", `{"a":[-3.5]}`, `{"a":-35e-1}`, true},
		{"numbers equal to six decimals", `{"a":[1]}`, `{"a":1.0000001}`, true},
		{"numbers differ at six decimals", `{"a":[1]}`, `{"a":1.000001}`, false},
		{"large numbers compare exactly", `{"a":[123456789012]}`, `{"a":123456789012}`, true},
		{"large numbers differ", `{"a":[123456789012]}`, `{"a":123456789013}`, false},
		{"true", `{"a":[true]}`, `{"a":true}`, true},
		{"true vs false", `{"a":[true]}`, `{"a":false}`, false},
		{"true vs string", `{"a":[true]}`, `{"a":"true"}`, false},
		{"false", `{"a":[false]}`, `{"a":false}`, true},
		{"null", `{"a":[null]}`, `{"a":null}`, true},
		{"null vs missing", `{"a":[null]}`, `{}`, false},
		{"null vs string null", `{"a":[null]}`, `{"a":"null"}`, false},
		{"empty string", `{"a":[""]}`, `{"a":""}`, true},
		{"empty string vs null", `{"a":[""]}`, `{"a":null}`, false},
		{"null vs empty string", `{"a":[null]}`, `{"a":""}`, false},
		{"unicode", `{"a":["héllo ✓"]}`, `{"a":"h\u00e9llo \u2713"}`, true},
		{"escaped quote", `{"a":["say \"hi\""]}`, `{"a":"say \"hi\""}`, true},
		{"missing field", `{"a":["x"]}`, `{"b":"x"}`, false},
	})
}

func TestValueLists(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"first of list", `{"source":["aws.ec2","aws.fargate"]}`, `{"source":"aws.ec2"}`, true},
		{"second of list", `{"source":["aws.ec2","aws.fargate"]}`, `{"source":"aws.fargate"}`, true},
		{"none of list", `{"source":["aws.ec2","aws.fargate"]}`, `{"source":"aws.s3"}`, false},
		{"mixed types", `{"a":["x",5,true,null]}`, `{"a":null}`, true},
		{"mixed with operators", `{"a":["x",{"prefix":"y"}]}`, `{"a":"yes"}`, true},
		{"long list uses a set", `{"a":["a","b","c","d","e","f","g","h","i","j","k"]}`, `{"a":"k"}`, true},
		{"long list miss", `{"a":["a","b","c","d","e","f","g","h","i","j","k"]}`, `{"a":"z"}`, false},
		{"duplicate keys keep the last", `{"a":["x"],"a":["y"]}`, `{"a":"y"}`, true},
		{"duplicate keys drop the first", `{"a":["x"],"a":["y"]}`, `{"a":"x"}`, false},
	})
}

func TestArrays(t *testing.T) {
	resources := `{"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f","arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f","arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}`
	runMatchCases(t, []matchCase{
		// EventBridge user guide, "Arrays in event patterns".
		{"guide: intersection with event array", resources,
			`{"resources":["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate","arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}`, true},
		{"guide: no intersection", resources,
			`{"resources":["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b"]}`, false},
		{"any element matches", `{"a":["x"]}`, `{"a":["w","x"]}`, true},
		{"no element matches", `{"a":["x"]}`, `{"a":["w","y"]}`, false},
		{"empty event array matches nothing", `{"a":["x"]}`, `{"a":[]}`, false},
		{"nested arrays are flattened", `{"a":["x"]}`, `{"a":[["w"],["x"]]}`, true},
		{"numbers in array", `{"a":[{"numeric":[">",10]}]}`, `{"a":[1,2,30]}`, true},
		{"pattern object over array of objects", `{"employees":{"firstName":["Anna"]}}`,
			`{"employees":[{"firstName":"John","lastName":"Doe"},{"firstName":"Anna","lastName":"Smith"}]}`, true},
		{"array consistency: same element", `{"employees":{"firstName":["Anna"],"lastName":["Smith"]}}`,
			`{"employees":[{"firstName":"John","lastName":"Doe"},{"firstName":"Anna","lastName":"Smith"}]}`, true},
		{"array consistency: different elements", `{"employees":{"firstName":["Anna"],"lastName":["Doe"]}}`,
			`{"employees":[{"firstName":"John","lastName":"Doe"},{"firstName":"Anna","lastName":"Smith"}]}`, false},
		{"multi-level arrays", `{"employees":{"firstName":["Peter"]}}`,
			`{"employees":[[{"firstName":"John"}],[{"firstName":"Peter"}]]}`, true},
		{"leaves mixed with objects", `{"a":["x"]}`, `{"a":[{"b":1},"x"]}`, true},
		{"anything-but over array: one element suffices", `{"a":[{"anything-but":"x"}]}`, `{"a":["x","y"]}`, true},
		{"anything-but over array: all excluded", `{"a":[{"anything-but":"x"}]}`, `{"a":["x","x"]}`, false},
	})
}

func TestNestedFields(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"nested match", `{"detail":{"state":["running"]}}`, `{"detail":{"state":"running"}}`, true},
		{"deep nested", `{"a":{"b":{"c":{"d":[1]}}}}`, `{"a":{"b":{"c":{"d":1}}}}`, true},
		{"deep nested miss", `{"a":{"b":{"c":{"d":[1]}}}}`, `{"a":{"b":{"c":{"d":2}}}}`, false},
		{"parent missing", `{"detail":{"state":["running"]}}`, `{"other":1}`, false},
		{"dotted key is not a path", `{"detail":{"state":["x"]}}`, `{"detail.state":"x"}`, false},
		{"key with dot", `{"a.b":["x"]}`, `{"a.b":"x"}`, true},
		{"other fields ignored", `{"a":["x"]}`, `{"a":"x","b":{"c":[1,2]},"d":null}`, true},
	})
}

func TestShapeMismatch(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"value list vs object", `{"a":["x"]}`, `{"a":{"b":"x"}}`, false},
		{"object pattern vs leaf", `{"a":{"b":["x"]}}`, `{"a":"x"}`, false},
		{"object pattern vs array of leaves", `{"a":{"b":["x"]}}`, `{"a":["x"]}`, false},
		{"object pattern vs null", `{"a":{"b":["x"]}}`, `{"a":null}`, false},
		{"array pattern vs array of arrays", `{"a":["x"]}`, `{"a":[["x"]]}`, true},
		{"scalar pattern vs array", `{"a":[5]}`, `{"a":[5]}`, true},
		{"exists false vs object", `{"a":[{"exists":false}]}`, `{"a":{"b":1}}`, true},
		{"exists true vs object", `{"a":[{"exists":true}]}`, `{"a":{"b":1}}`, false},
		{"exists false below leaf", `{"a":{"b":[{"exists":false}]}}`, `{"a":"x"}`, true},
		{"exists true below leaf", `{"a":{"b":[{"exists":true}]}}`, `{"a":"x"}`, false},
		{"prefix vs number", `{"a":[{"prefix":"1"}]}`, `{"a":123}`, false},
		{"numeric vs numeric string", `{"a":[{"numeric":[">",1]}]}`, `{"a":"5"}`, false},
		{"numeric vs bool", `{"a":[{"numeric":[">",0]}]}`, `{"a":true}`, false},
		{"cidr vs number", `{"a":[{"cidr":"10.0.0.0/8"}]}`, `{"a":10}`, false},
	})
}

func TestPrefix(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: time prefix", `{"time":[{"prefix":"2017-10-02"}]}`, `{"time":"2017-10-02T18:43:48Z"}`, true},
		{"prefix miss", `{"time":[{"prefix":"2017-10-02"}]}`, `{"time":"2017-10-03T18:43:48Z"}`, false},
		{"guide: region prefix", `{"source":["aws.autoscaling"],"region":[{"prefix":"eu-"}]}`, `{"source":"aws.autoscaling","region":"eu-west-1"}`, true},
		{"whole value", `{"a":[{"prefix":"abc"}]}`, `{"a":"abc"}`, true},
		{"longer than value", `{"a":[{"prefix":"abcd"}]}`, `{"a":"abc"}`, false},
		{"case sensitive", `{"a":[{"prefix":"ABC"}]}`, `{"a":"abcdef"}`, false},
		{"empty prefix matches any string", `{"a":[{"prefix":""}]}`, `{"a":"x"}`, true},
		{"empty prefix not a number", `{"a":[{"prefix":""}]}`, `{"a":1}`, false},
		{"ignore case", `{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}`, `{"service":"eventbridge"}`, true},
		{"ignore case upper", `{"service":[{"prefix":{"equals-ignore-case":"eventb"}}]}`, `{"service":"EVENTBRIDGE"}`, true},
		{"ignore case miss", `{"service":[{"prefix":{"equals-ignore-case":"eventb"}}]}`, `{"service":"events"}`, false},
		{"ignore case unicode", `{"a":[{"prefix":{"equals-ignore-case":"ÉCOLE"}}]}`, `{"a":"école normale"}`, true},
	})
}

func TestSuffix(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: png suffix", `{"FileName":[{"suffix":".png"}]}`, `{"FileName":"image.png"}`, true},
		{"suffix miss", `{"FileName":[{"suffix":".png"}]}`, `{"FileName":"image.jpg"}`, false},
		{"suffix case sensitive", `{"FileName":[{"suffix":".png"}]}`, `{"FileName":"image.PNG"}`, false},
		{"ignore case", `{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}`, `{"FileName":"image.PNG"}`, true},
		{"guide: ends with ignoring case", `{"service":[{"suffix":{"equals-ignore-case":"tBridge"}}]}`, `{"service":"EventBRIDGE"}`, true},
		{"ignore case miss", `{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}`, `{"FileName":"image.pn"}`, false},
		{"suffix vs number", `{"a":[{"suffix":"0"}]}`, `{"a":10}`, false},
	})
}

func TestEqualsIgnoreCase(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: alice", `{"Name":[{"equals-ignore-case":"alice"}]}`, `{"Name":"Alice"}`, true},
		{"upper", `{"Name":[{"equals-ignore-case":"alice"}]}`, `{"Name":"ALICE"}`, true},
		{"different", `{"Name":[{"equals-ignore-case":"alice"}]}`, `{"Name":"Alicia"}`, false},
		{"unicode folding", `{"a":[{"equals-ignore-case":"straße"}]}`, `{"a":"STRAßE"}`, true},
		{"not a string", `{"a":[{"equals-ignore-case":"true"}]}`, `{"a":true}`, false},
	})
}

func TestWildcard(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"ruler: Simple*Service", `{"source":[{"wildcard":"Simple*Service"}]}`, `{"source":"SimpleQueueService"}`, true},
		{"empty run", `{"source":[{"wildcard":"Simple*Service"}]}`, `{"source":"SimpleService"}`, true},
		{"suffix form", `{"a":[{"wildcard":"*.png"}]}`, `{"a":"dir/file.png"}`, true},
		{"infix form", `{"a":[{"wildcard":"*Title*"}]}`, `{"a":"The Title Page"}`, true},
		{"infix miss", `{"a":[{"wildcard":"*Title*"}]}`, `{"a":"The title page"}`, false},
		{"guide: folder and extension", `{"a":[{"wildcard":"dir/*.png"}]}`, `{"a":"dir/a/b.png"}`, true},
		{"folder miss", `{"a":[{"wildcard":"dir/*.png"}]}`, `{"a":"other/b.png"}`, false},
		{"star alone matches any string", `{"a":[{"wildcard":"*"}]}`, `{"a":""}`, true},
		{"star alone not a number", `{"a":[{"wildcard":"*"}]}`, `{"a":1}`, false},
		{"no star is exact", `{"a":[{"wildcard":"abc"}]}`, `{"a":"abc"}`, true},
		{"no star is exact miss", `{"a":[{"wildcard":"abc"}]}`, `{"a":"abcd"}`, false},
		{"escaped star is literal", `{"a":[{"wildcard":"a\\*b"}]}`, `{"a":"a*b"}`, true},
		{"escaped star does not expand", `{"a":[{"wildcard":"a\\*b"}]}`, `{"a":"axb"}`, false},
		{"escaped backslash", `{"a":[{"wildcard":"a\\\\*"}]}`, `{"a":"a\\bc"}`, true},
		{"prefix and suffix must not overlap", `{"a":[{"wildcard":"ab*ba"}]}`, `{"a":"aba"}`, false},
		{"several stars in order", `{"a":[{"wildcard":"*a*b*c*"}]}`, `{"a":"xaybzc"}`, true},
		{"several stars out of order", `{"a":[{"wildcard":"*a*b*c*"}]}`, `{"a":"cba"}`, false},
		{"backtracking needed", `{"a":[{"wildcard":"*ab*abc"}]}`, `{"a":"ababab abc"}`, true},
	})
}

func TestAnythingBut(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: string", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":"running"}}`, true},
		{"guide: string excluded", `{"detail":{"state":[{"anything-but":"initializing"}]}}`, `{"detail":{"state":"initializing"}}`, false},
		{"guide: number", `{"detail":{"x-limit":[{"anything-but":123}]}}`, `{"detail":{"x-limit":456}}`, true},
		{"guide: number excluded", `{"detail":{"x-limit":[{"anything-but":123}]}}`, `{"detail":{"x-limit":1.23e2}}`, false},
		{"guide: string list", `{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}`, `{"detail":{"state":"running"}}`, true},
		{"guide: string list excluded", `{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}`, `{"detail":{"state":"overloaded"}}`, false},
		{"guide: number list", `{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}`, `{"detail":{"x-limit":150}}`, true},
		{"guide: number list excluded", `{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}`, `{"detail":{"x-limit":200}}`, false},
		{"guide: prefix", `{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}`, `{"detail":{"state":"running"}}`, true},
		{"guide: prefix excluded", `{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}`, `{"detail":{"state":"initializing"}}`, false},
		{"guide: not aws", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, `{"source":"com.example"}`, true},
		{"guide: suffix", `{"FileName":[{"anything-but":{"suffix":".png"}}]}`, `{"FileName":"a.jpg"}`, true},
		{"guide: suffix excluded", `{"FileName":[{"anything-but":{"suffix":".png"}}]}`, `{"FileName":"a.png"}`, false},
		{"guide: ignore case", `{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}`, `{"state":"INITIALIZING"}`, false},
		{"ignore case other value", `{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}`, `{"state":"running"}`, true},
		{"ignore case list", `{"state":[{"anything-but":{"equals-ignore-case":["a","b"]}}]}`, `{"state":"B"}`, false},
		{"guide: wildcard", `{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"FilePath":"/usr/bin/x"}`, true},
		{"guide: wildcard excluded", `{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"FilePath":"/usr/lib/x"}`, false},
		{"wildcard list", `{"a":[{"anything-but":{"wildcard":["a*","*z"]}}]}`, `{"a":"buzz"}`, false},
		{"missing field does not match", `{"a":[{"anything-but":"x"}]}`, `{}`, false},
		{"object value does not match", `{"a":[{"anything-but":"x"}]}`, `{"a":{"b":"y"}}`, false},
		{"empty array does not match", `{"a":[{"anything-but":"x"}]}`, `{"a":[]}`, false},
		{"string exclusion lets numbers through", `{"a":[{"anything-but":"5"}]}`, `{"a":5}`, true},
		{"number exclusion lets strings through", `{"a":[{"anything-but":5}]}`, `{"a":"5"}`, true},
		{"null is never excluded", `{"a":[{"anything-but":"x"}]}`, `{"a":null}`, true},
		{"prefix list: none matches", `{"a":[{"anything-but":{"prefix":["init","boot"]}}]}`, `{"a":"running"}`, true},
		{"prefix list: the second matches", `{"a":[{"anything-but":{"prefix":["init","boot"]}}]}`, `{"a":"booting"}`, false},
		{"suffix list: the first matches", `{"a":[{"anything-but":{"suffix":[".png",".jpg"]}}]}`, `{"a":"cat.png"}`, false},
		{"suffix list: none matches", `{"a":[{"anything-but":{"suffix":[".png",".jpg"]}}]}`, `{"a":"cat.gif"}`, true},
		{"prefix exclusion lets numbers through", `{"a":[{"anything-but":{"prefix":"1"}}]}`, `{"a":123}`, true},
		{"guide: detail-type", `{"detail-type":[{"anything-but":"AWS API Call via CloudTrail"}]}`, `{"detail-type":"EC2 Instance State-change Notification"}`, true},
		{"guide: sources", `{"source":[{"anything-but":["aws.ec2","aws.s3"]}]}`, `{"source":"aws.s3"}`, false},
	})
}

func TestNumeric(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"greater", `{"a":[{"numeric":[">",0]}]}`, `{"a":1}`, true},
		{"greater boundary", `{"a":[{"numeric":[">",0]}]}`, `{"a":0}`, false},
		{"greater or equal boundary", `{"a":[{"numeric":[">=",0]}]}`, `{"a":0}`, true},
		{"less", `{"a":[{"numeric":["<",10]}]}`, `{"a":9.99}`, true},
		{"less boundary", `{"a":[{"numeric":["<",10]}]}`, `{"a":10}`, false},
		{"less or equal boundary", `{"a":[{"numeric":["<=",10]}]}`, `{"a":1e1}`, true},
		{"equals", `{"a":[{"numeric":["=",3.018e2]}]}`, `{"a":301.8}`, true},
		{"equals miss", `{"a":[{"numeric":["=",301.8]}]}`, `{"a":301.9}`, false},
		{"range inside", `{"a":[{"numeric":[">",0,"<=",5]}]}`, `{"a":5}`, true},
		{"range below", `{"a":[{"numeric":[">",0,"<=",5]}]}`, `{"a":0}`, false},
		{"range above", `{"a":[{"numeric":[">",0,"<=",5]}]}`, `{"a":5.000001}`, false},
		{"range closed low", `{"a":[{"numeric":[">=",0,"<",5]}]}`, `{"a":0}`, true},
		{"negative", `{"a":[{"numeric":["<",-1.5]}]}`, `{"a":-2}`, true},
		{"six decimal precision", `{"a":[{"numeric":[">",1]}]}`, `{"a":1.0000001}`, false},
		{"outside range never matches", `{"a":[{"numeric":[">",0]}]}`, `{"a":6e9}`, false},
		{"limit is inclusive", `{"a":[{"numeric":[">",0]}]}`, `{"a":5e9}`, true},
		{"array of numbers", `{"a":[{"numeric":[">",100]}]}`, `{"a":[1,200]}`, true},
		{"two ranges are OR", `{"a":[{"numeric":["<",0]},{"numeric":[">",100]}]}`, `{"a":150}`, true},
		{"guide: all fields", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"numeric":["=",3.018e2]}]}}`,
			`{"detail":{"c-count":5,"d-count":3,"x-limit":301.8}}`, true},
		{"guide: one field fails", `{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"numeric":["=",3.018e2]}]}}`,
			`{"detail":{"c-count":5,"d-count":30,"x-limit":301.8}}`, false},
	})
}

func TestExists(t *testing.T) {
	ec2 := `{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"123456789012","time":"2015-11-11T21:29:54Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],"detail":{"instance-id":"i-abcd1111","state":"pending"}}`
	runMatchCases(t, []matchCase{
		{"guide: exists true", `{"detail":{"state":[{"exists":true}]}}`, ec2, true},
		{"guide: exists true missing", `{"detail":{"state":[{"exists":true}]}}`, `{"detail":{"c-count":{"c1":100}}}`, false},
		{"guide: exists false", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail":{"state":["initializing","running"]}}`, true},
		{"guide: exists false on non-leaf", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail":{"state":["initializing","running"],"c-count":{"c1":100}}}`, true},
		{"exists false present", `{"detail":{"c-count":[{"exists":false}]}}`, `{"detail":{"c-count":3}}`, false},
		{"exists false parent missing", `{"detail":{"c-count":[{"exists":false}]}}`, `{}`, true},
		{"exists true null", `{"a":[{"exists":true}]}`, `{"a":null}`, true},
		{"exists false null", `{"a":[{"exists":false}]}`, `{"a":null}`, false},
		{"exists true empty string", `{"a":[{"exists":true}]}`, `{"a":""}`, true},
		{"exists true empty array", `{"a":[{"exists":true}]}`, `{"a":[]}`, false},
		{"exists false empty array", `{"a":[{"exists":false}]}`, `{"a":[]}`, true},
		{"exists false array of objects", `{"a":[{"exists":false}]}`, `{"a":[{"b":1}]}`, true},
		{"exists true array", `{"a":[{"exists":true}]}`, `{"a":[1]}`, true},
		{"exists false array with leaf", `{"a":[{"exists":false}]}`, `{"a":[{"b":1},2]}`, false},
		{"exists false in array element", `{"items":{"sku":[{"exists":false}],"qty":[2]}}`, `{"items":[{"sku":"a","qty":1},{"qty":2}]}`, true},
		{"exists false or value", `{"a":[{"exists":false},"x"]}`, `{"a":"x"}`, true},
		{"exists false or value missing", `{"a":[{"exists":false},"x"]}`, `{}`, true},
		{"exists false or value other", `{"a":[{"exists":false},"x"]}`, `{"a":"y"}`, false},
		{"exists true and exists false", `{"a":[{"exists":true},{"exists":false}]}`, `{"a":1}`, true},
	})
}

func TestCIDR(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: inside", `{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}`, `{"detail":{"sourceIPAddress":"10.0.0.255"}}`, true},
		{"guide: outside", `{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}`, `{"detail":{"sourceIPAddress":"10.0.1.0"}}`, false},
		{"ipv6 inside", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db8:1::5"}`, true},
		{"ipv6 outside", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db9::5"}`, false},
		{"v4 address vs v6 network", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"10.0.0.1"}`, false},
		{"v4-mapped address", `{"ip":[{"cidr":"10.0.0.0/8"}]}`, `{"ip":"::ffff:10.1.2.3"}`, true},
		{"host bits in network", `{"ip":[{"cidr":"10.0.0.7/24"}]}`, `{"ip":"10.0.0.1"}`, true},
		{"not an address", `{"ip":[{"cidr":"10.0.0.0/8"}]}`, `{"ip":"10.example.com"}`, false},
		{"zone rejected", `{"ip":[{"cidr":"fe80::/10"}]}`, `{"ip":"fe80::1%eth0"}`, false},
		{"slash zero", `{"ip":[{"cidr":"0.0.0.0/0"}]}`, `{"ip":"192.168.1.1"}`, true},
	})
}

func TestOr(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"guide: Location or Day", `{"$or":[{"Location":["New York"]},{"Day":["Monday"]}]}`, `{"Location":"Boston","Day":"Monday"}`, true},
		{"guide: neither", `{"$or":[{"Location":["New York"]},{"Day":["Monday"]}]}`, `{"Location":"Boston","Day":"Friday"}`, false},
		{"ruler: source and (metricName or namespace)", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization","ReadLatency"]},{"namespace":["AWS/EC2","AWS/ES"]}]}`,
			`{"source":"aws.cloudwatch","namespace":"AWS/ES"}`, true},
		{"ruler: and part fails", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization","ReadLatency"]},{"namespace":["AWS/EC2","AWS/ES"]}]}`,
			`{"source":"aws.ec2","namespace":"AWS/ES"}`, false},
		{"ruler: parallel or", `{"$or":[{"metricName":["CPUUtilization"]},{"namespace":["AWS/EC2"]}],"detail":{"$or":[{"source":["aws.cloudwatch"]},{"detail-type":["CloudWatch Alarm State Change"]}]}}`,
			`{"namespace":"AWS/EC2","detail":{"detail-type":"CloudWatch Alarm State Change"}}`, true},
		{"ruler: parallel or second fails", `{"$or":[{"metricName":["CPUUtilization"]},{"namespace":["AWS/EC2"]}],"detail":{"$or":[{"source":["aws.cloudwatch"]},{"detail-type":["CloudWatch Alarm State Change"]}]}}`,
			`{"namespace":"AWS/EC2","detail":{"detail-type":"other"}}`, false},
		{"ruler: or with and inside", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization"]},{"metricType":["MetricType"],"namespace":["AWS/EC2"]},{"scope":["Service"]}]}`,
			`{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/EC2"}`, true},
		{"ruler: and inside or incomplete", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization"]},{"metricType":["MetricType"],"namespace":["AWS/EC2"]},{"scope":["Service"]}]}`,
			`{"source":"aws.cloudwatch","metricType":"MetricType"}`, false},
		{"ruler: nested or", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization"]},{"metricType":["MetricType"],"namespace":["AWS/EC2"],"$or":[{"metricId":[1234]},{"spaceId":[1000]}]},{"scope":["Service"]}]}`,
			`{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/EC2","spaceId":1000}`, true},
		{"ruler: nested or fails", `{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization"]},{"metricType":["MetricType"],"namespace":["AWS/EC2"],"$or":[{"metricId":[1234]},{"spaceId":[1000]}]},{"scope":["Service"]}]}`,
			`{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/EC2","spaceId":1}`, false},
		{"or with nested paths", `{"$or":[{"data":{"a":[1]}},{"data":{"b":[2]}}]}`, `{"data":{"b":2}}`, true},
		{"or inside array element", `{"items":{"$or":[{"a":[1]},{"b":[2]}],"c":[3]}}`, `{"items":[{"a":1,"c":0},{"b":2,"c":3}]}`, true},
		{"or inside array element inconsistent", `{"items":{"$or":[{"a":[1]},{"b":[2]}],"c":[3]}}`, `{"items":[{"a":1,"c":0},{"b":0,"c":3}]}`, false},
	})
}

func TestAndAcrossFields(t *testing.T) {
	ec2 := `{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","time":"2017-12-22T18:43:48Z","region":"us-west-1","resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],"detail":{"instance-id":"i-1234567890abcdef0","state":"terminated"}}`
	complexPattern := `{"time":[{"prefix":"2017-10-02"}],"detail":{"state":[{"anything-but":"initializing"}],"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"anything-but":[100,200,300]}],"source-ip":[{"cidr":"10.0.0.0/8"}]}}`
	ruler := `{"version":"0","id":"ddddd4-aaaa-7777-4444-345dd43cc333","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"012345679012","time":"2017-10-02T16:24:49Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],"detail":{"c-count":5,"d-count":3,"x-limit":301.8,"source-ip":"10.0.0.33","instance-id":"i-000000aaaaaa00000","state":"running"}}`
	runMatchCases(t, []matchCase{
		{"guide: EC2 termination", `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["terminated"]}}`, ec2, true},
		{"guide: EC2 wrong state", `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["running"]}}`, ec2, false},
		{"guide: EC2 wrong source", `{"source":["aws.s3"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["terminated"]}}`, ec2, false},
		{"guide: complex example", complexPattern, ruler, true},
		{"guide: complex example, excluded limit", complexPattern, `{"time":"2017-10-02T16:24:49Z","detail":{"c-count":5,"d-count":3,"x-limit":200,"source-ip":"10.0.0.33","state":"running"}}`, false},
		{"ruler: simple matching", `{"detail-type":["EC2 Instance State-change Notification"],"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],"detail":{"state":["initializing","running"]}}`, ruler, true},
	})
}

func TestNullAndEmpty(t *testing.T) {
	ev := `{"version":"0","id":"3e3c153a-8339-4e30-8c35-687ebef853fe","detail-type":"EC2 Instance Launch Successful","source":"aws.autoscaling","account":"123456789012","time":"2015-11-11T21:31:47Z","region":"us-east-1","resources":[],"detail":{"eventVersion":"","responseElements":null}}`
	runMatchCases(t, []matchCase{
		{"guide: empty string", `{"detail":{"eventVersion":[""]}}`, ev, true},
		{"guide: null", `{"detail":{"responseElements":[null]}}`, ev, true},
		{"guide: empty does not match null", `{"detail":{"responseElements":[""]}}`, ev, false},
		{"guide: null does not match empty", `{"detail":{"eventVersion":[null]}}`, ev, false},
		{"empty resources array", `{"resources":[{"exists":true}]}`, ev, false},
		{"empty resources array is missing", `{"resources":[{"exists":false}]}`, ev, true},
		{"anything-but matches null", `{"detail":{"responseElements":[{"anything-but":"x"}]}}`, ev, true},
	})
}

func TestMatchJSONRejectsInvalidEvents(t *testing.T) {
	p := MustCompile(`{"a":["x"]}`)
	for _, doc := range []string{``, `[]`, `"a"`, `{"a":`, `{"a":"x"} x`, `nul`} {
		_, err := p.MatchJSON([]byte(doc))
		assert.Error(t, err, "%q", doc)
	}
	var d Doc
	require.Error(t, d.ResetJSON([]byte(`[1]`)))
	assert.False(t, p.MatchDoc(&d), "a failed reset matches nothing")
	assert.False(t, p.MatchDoc(&Doc{}), "the zero Doc matches nothing")
}
