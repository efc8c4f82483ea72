package numerics_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/numerics"
)

func TestParseShapeFlags(t *testing.T) {
	cases := []struct {
		in   []string
		want string // fmt of the map, or "error: substring"
	}{
		{nil, "map[]"},
		{[]string{"x=1x3x48x320"}, "map[x:[1 3 48 320]]"},
		{[]string{"x=1,3,48,320", "y=[2, 5]"}, "map[x:[1 3 48 320] y:[2 5]]"},
		{[]string{"sr=scalar", "t=[]"}, "map[sr:[] t:[]]"},
		{[]string{"a=b=4"}, "map[a=b:[4]]"},
		{[]string{"x=0x3"}, "map[x:[0 3]]"},
		{[]string{"x"}, "error: want NAME=DIMS"},
		{[]string{"=1x2"}, "error: name is empty"},
		{[]string{"x="}, "error: no dims"},
		{[]string{"x=1xx2"}, "error: dim 1 is empty"},
		{[]string{"x=1x-2"}, "error: negative"},
		{[]string{"x=1xa"}, "error: not an integer"},
		{[]string{"x=1,2x3"}, "error: mixes"},
		{[]string{"x=1", "x=2"}, "error: twice"},
		{[]string{"x=1048576x1048576x1048576"}, "error: more than 2^40"},
		{[]string{"x=99999999999999999999"}, "error: not an integer"},
	}
	for _, c := range cases {
		got, err := numerics.ParseShapeFlags(c.in)
		if strings.HasPrefix(c.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) || !strings.HasPrefix(err.Error(), "numerics: ") {
				t.Errorf("%q: err %v, want %s", c.in, err, c.want)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%q: %v %v, want %s", c.in, got, err, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		def  int64
		want int64
		err  bool
	}{
		{"", 7, 7, false},
		{"0", 7, 0, false},
		{"1048576", 0, 1 << 20, false},
		{"512K", 0, 512 << 10, false},
		{"512M", 0, 512 << 20, false},
		{"2G", 0, 2 << 30, false},
		{"2GiB", 0, 2 << 30, false},
		{"64mb", 0, 64 << 20, false},
		{"-1", 0, 0, true},
		{"lots", 0, 0, true},
		{"99999999999G", 0, 0, true},
	}
	for _, c := range cases {
		got, err := numerics.ParseBytes(c.in, c.def)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
