package numerics

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

func TestChooseMetric(t *testing.T) {
	sig := func(shape []int64, v ...float32) Accuracy {
		var m AccuracyMeter
		if err := m.Add([]*runtime.Tensor{f32(shape, v...)}, []*runtime.Tensor{f32(shape, v...)}, nil); err != nil {
			t.Fatal(err)
		}
		return m.Result()
	}
	tests := []struct {
		name     string
		acc      Accuracy
		labelled bool
		want     string
		top1     bool // Top1Agreement reported
		iou      bool // IoU reported
	}{
		{"class vector [N,C]", sig([]int64{2, 3}, 1, 2, 3, 3, 2, 1), false, "agreement", true, false},
		{"softmax [N,C,1,1]", sig([]int64{1, 3, 1, 1}, 0.1, 0.7, 0.2), false, "agreement", true, false},
		{"labelled", Accuracy{Top1Accuracy: ptr(0.9), OutputShape: []int64{1, 10}}, true, "top1", false, false},
		{"sigmoid map [N,1,H,W]", sig([]int64{1, 1, 2, 2}, 0.1, 0.9, 0.5, 0), false, "iou@0.3", false, true},
		{"map outside [0,1]", sig([]int64{1, 1, 2, 2}, -1, 0.9, 0.5, 0), false, "cosine", false, false},
		{"sequence [N,T,D]", sig([]int64{1, 2, 2}, 3, 1, -2, 5), false, "cosine", false, false},
		{"one class [N,1]", sig([]int64{2, 1}, 0.3, 0.4), false, "cosine", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChooseMetric(tc.acc, tc.labelled).String(); got != tc.want {
				t.Errorf("ChooseMetric = %s, want %s", got, tc.want)
			}
			if (tc.acc.IoU != nil) != tc.iou {
				t.Errorf("IoU reported: %v, want %v (shape %v)", tc.acc.IoU != nil, tc.iou, tc.acc.OutputShape)
			}
			if (tc.acc.Top1Agreement != nil) != tc.top1 {
				t.Errorf("top-1 agreement reported: %v, want %v (shape %v)", tc.acc.Top1Agreement != nil, tc.top1, tc.acc.OutputShape)
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }

func TestIoU(t *testing.T) {
	// ref > 0.3: {0,1,3}; got > 0.3: {1,2,3}: intersection 2, union 4.
	ref := []*runtime.Tensor{f32([]int64{1, 1, 2, 2}, 0.9, 0.8, 0.1, 0.4)}
	got := []*runtime.Tensor{f32([]int64{1, 1, 2, 2}, 0.2, 0.8, 0.5, 0.35)}
	tests := []struct {
		name string
		thr  float64
		want float64
	}{
		{"default 0.3", 0, 0.5},
		{"at 0.6", 0.6, 0.5}, // ref {0,1}, got {1}: 1/2
		{"at 0.95", 0.95, 1}, // both empty
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := AccuracyMeter{IoUThreshold: tc.thr}
			if err := m.Add(ref, got, nil); err != nil {
				t.Fatal(err)
			}
			a := m.Result()
			if a.IoU == nil || !near(*a.IoU, tc.want, 1e-12) {
				t.Fatalf("IoU %v, want %v", a.IoU, tc.want)
			}
		})
	}
}

func TestParseMetric(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"top1", "top1", ""},
		{"agreement", "agreement", ""},
		{"cosine", "cosine", ""},
		{"SQNR", "sqnr", ""},
		{"iou", "iou@0.3", ""},
		{"iou@0.5", "iou@0.5", ""},
		{"iou@1.5", "", "threshold"},
		{"cosine@0.5", "", "only iou"},
		{"top5", "", "want top1"},
	}
	for _, tc := range tests {
		m, err := ParseMetric(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.String() != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.in, m, err, tc.want)
		}
	}
	mins := []struct {
		in   string
		want string
		v    float64
		err  string
	}{
		{"iou=1.0", "iou@0.3", 1, ""},
		{"iou@0.5=0.9", "iou@0.5", 0.9, ""},
		{"sqnr=25", "sqnr", 25, ""},
		{"cosine=2", "", 0, "at most 1"},
		{"agreement=0.99", "", 0, "--max-accuracy-drop"},
		{"cosine", "", 0, "METRIC=VALUE"},
		{"cosine=x", "", 0, "not a number"},
	}
	for _, tc := range mins {
		m, v, err := ParseMinMetric(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.String() != tc.want || v != tc.v {
			t.Errorf("%s: %v %v %v; want %s %v", tc.in, m, v, err, tc.want, tc.v)
		}
	}
}

func TestBudgetJudge(t *testing.T) {
	a := Accuracy{Samples: 2, Top1Agreement: ptr(0.985), Cosine: ptr(0.995), SQNRdB: ptr(18), IoU: ptr(0.96), MaxAbsError: ptr(0.1),
		Top1Accuracy: ptr(0.90), OutputShape: []int64{2, 10}}
	b := DefaultBudget
	tests := []struct {
		metric string
		value  float64
		met    bool
		err    string
	}{
		{"agreement", 1.5, false, ""},
		{"top1", 2, false, ""},
		{"cosine", 0.995, true, ""},
		{"sqnr", 18, false, ""},
		{"iou", 0.96, true, ""},
	}
	for _, tc := range tests {
		m, err := ParseMetric(tc.metric)
		if err != nil {
			t.Fatal(err)
		}
		v, err := b.Judge(m, a, ptr(0.92))
		if err != nil {
			t.Fatalf("%s: %v", tc.metric, err)
		}
		if !near(v.Value, tc.value, 1e-9) || v.Met != tc.met {
			t.Errorf("%s: %v met %v; want %v met %v", tc.metric, v.Value, v.Met, tc.value, tc.met)
		}
	}
	// what a metric needs
	if _, err := b.Judge(Metric{Kind: MetricTop1}, a, nil); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("top1 without labels: %v", err)
	}
	mapAcc := Accuracy{Samples: 1, OutputShape: []int64{1, 1, 8, 8}, Cosine: ptr(1)}
	if _, err := b.Judge(Metric{Kind: MetricAgreement}, mapAcc, nil); err == nil || !strings.Contains(err.Error(), "[1 1 8 8]") {
		t.Errorf("agreement on a map: %v", err)
	}
	// identical outputs: infinite SQNR meets any minimum, written as null
	v, err := b.Judge(Metric{Kind: MetricSQNR}, Accuracy{Samples: 1, MaxAbsError: ptr(0), Cosine: ptr(1)}, nil)
	if err != nil || !v.Met || !math.IsInf(v.Value, 1) {
		t.Fatalf("identical SQNR: %+v %v", v, err)
	}
	if js, err := json.Marshal(v); err != nil || !strings.Contains(string(js), `"value":null`) {
		t.Errorf("json %s %v", js, err)
	}
	// non-finite outputs never meet a budget
	bad := a
	bad.NonFinite = 1
	if v, _ := b.Judge(Metric{Kind: MetricCosine}, bad, nil); v.Met {
		t.Error("NaN outputs met the budget")
	}
}
