package metering

import (
	"testing"
)

func TestRequestModel(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"model":"gpt-4o","messages":[]}`, "gpt-4o"},
		{` { "messages" : [{"role":"user","content":"say \"model\": {\"x\"}"}], "model" : "claude-sonnet-4-6" }`, "claude-sonnet-4-6"},
		{`{"metadata":{"model":"nested"},"model":"top"}`, "top"},
		{`{"n":1,"stream":true,"x":null,"f":-1.5e3,"model":"m"}`, "m"},
		{`{"\u006dodel":"escaped-key"}`, "escaped-key"},
		{`{"model":"a\/b"}`, "a/b"},
		{`{"path":"C:\\","model":"after-backslash"}`, "after-backslash"},
		{`{"model":"first","model":"second"}`, "first"},
		{`{"model":42}`, ""},
		{`{"messages":[]}`, ""},
		{`["model","x"]`, ""},
		{`{"model":"unterminated`, ""},
		{`{"a":[1,2,{"b":"]"}],"model":"after-array"}`, "after-array"},
		{``, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		if got := RequestModel([]byte(tt.body)); got != tt.want {
			t.Errorf("RequestModel(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}
