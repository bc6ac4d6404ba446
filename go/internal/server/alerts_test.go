package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgqueprom"
)

// alertRulesFile is the repository's Prometheus rules, from this package.
var alertRulesFile = filepath.Join("..", "..", "..", "deploy", "prometheus", "alerts.yml")

// ruleFile is the shape of a Prometheus rules file.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promQLNames returns the identifiers of expr that name pgque's metrics:
// those outside strings, label matchers ({...}) and ranges ([...]) that
// start with "pgque_" (label names in by (...) and functions do not).
// It fails on unbalanced brackets.  The durations of ranges are returned
// too, to be checked.
func promQLNames(expr string) (names, durations []string, err string) {
	var stack []byte
	closing := map[byte]byte{'(': ')', '{': '}', '[': ']'}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, nil, "unterminated string"
			}
			i = j + 1
			continue
		case c == '(' || c == '{' || c == '[':
			if c == '[' {
				end := strings.IndexByte(expr[i:], ']')
				if end < 0 {
					return nil, nil, "unterminated range"
				}
				r := expr[i+1 : i+end]
				if d, _, ok := strings.Cut(r, ":"); ok { // a subquery's [range:step]
					r = d
				}
				durations = append(durations, strings.TrimSpace(r))
			}
			stack = append(stack, closing[c])
		case c == ')' || c == '}' || c == ']':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return nil, nil, "unbalanced " + string(c)
			}
			stack = stack[:len(stack)-1]
		case isIdentStart(c):
			j := i
			for j < len(expr) && (isIdentStart(expr[j]) || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			inside := len(stack) > 0 && stack[len(stack)-1] != ')'
			if word := expr[i:j]; !inside && strings.HasPrefix(word, "pgque_") {
				names = append(names, word)
			}
			i = j
			continue
		case c >= '0' && c <= '9':
			// A number or a duration (offset 5m): not a name.
			for i < len(expr) && (isIdentStart(expr[i]) || expr[i] >= '0' && expr[i] <= '9' || expr[i] == '.') {
				i++
			}
			continue
		}
		i++
	}
	if len(stack) > 0 {
		return nil, nil, "unclosed bracket"
	}
	return names, durations, ""
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

// templateStubs stand for the functions Prometheus gives alert templates.
var templateStubs = template.FuncMap{
	"humanize":           func(v any) string { return "1" },
	"humanize1024":       func(v any) string { return "1" },
	"humanizeDuration":   func(v any) string { return "1s" },
	"humanizePercentage": func(v any) string { return "1%" },
	"humanizeTimestamp":  func(v any) string { return "1970-01-01" },
	"title":              strings.ToTitle,
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"match":              regexp.MatchString,
	"reReplaceAll": func(pattern, repl, text string) string {
		return regexp.MustCompile(pattern).ReplaceAllString(text, repl)
	},
}

// The alert rules in deploy/ are well formed and use only metrics the
// server exports.  promtool, when installed, checks them as Prometheus
// would; the test does not need it.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(raw, &rf); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}

	mfs := exportedMetrics(t)

	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	alerts := map[string]bool{}
	groups := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			name := r.Alert
			switch {
			case r.Record != "":
				t.Errorf("recording rule %q: the file holds alerts only", r.Record)
				continue
			case name == "" || alerts[name]:
				t.Errorf("alert name %q empty or repeated", name)
			}
			alerts[name] = true
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if _, err := model.ParseDuration(d); d != "" && err != nil {
					t.Errorf("%s: duration %q: %v", name, d, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("%s: severity %q, want critical, warning or info", name, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", name)
			}
			for k, text := range r.Annotations {
				tmpl, err := template.New(k).Funcs(templateStubs).Option("missingkey=zero").Parse(
					"{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}" + text)
				if err == nil {
					err = tmpl.Execute(&strings.Builder{}, map[string]any{
						"Labels":         map[string]string{"queue": "q", "consumer": "c", "instance": "i"},
						"ExternalLabels": map[string]string{}, "ExternalURL": "", "Value": 1.0})
				}
				if err != nil {
					t.Errorf("%s: annotation %s: %v", name, k, err)
				}
			}
			names, durations, perr := promQLNames(r.Expr)
			if perr != "" {
				t.Errorf("%s: expr %q: %s", name, r.Expr, perr)
			}
			if len(names) == 0 {
				t.Errorf("%s: expr %q uses no pgque metric", name, r.Expr)
			}
			for _, m := range names {
				if !exported(mfs, m) {
					t.Errorf("%s: metric %s is exported neither by /metrics nor by pgqueprom", name, m)
				}
				// rate, increase and delta of a gauge read a drop (a
				// dead letter replayed) as a counter reset.
				if len(durations) > 0 && mfs[m] != nil && mfs[m].GetType() != dto.MetricType_COUNTER {
					t.Errorf("%s: %s is a %v under a range: use a counter", name, m, mfs[m].GetType())
				}
			}
			for _, d := range durations {
				if _, err := model.ParseDuration(d); err != nil {
					t.Errorf("%s: range [%s]: %v", name, d, err)
				}
			}
		}
	}
	for _, want := range []string{"PgqueUnclaimedEvents", "PgqueConsumerBlockingRotation", "PgqueConsumerLagging",
		"PgqueWorkerLeasesExpired", "PgqueTickerLagging", "PgqueQueueMaintenanceFailing"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the rules (scripts/setup.sh test installs it, from Debian's prometheus): %v", err)
	}
	if out, err := exec.Command(promtool, "check", "rules", alertRulesFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// exportedMetrics returns the metric families of a scrape of /metrics with
// every conditional metric present (a single reader's open batch, a queue
// without consumers) and of pgqueprom's collector with a series of each.
func exportedMetrics(t *testing.T) map[string]*dto.MetricFamily {
	e := newEnv(t, server.Options{})
	e.sendTick(t, 1)
	e.receive(t, `{"single_reader": true}`)
	mfs := e.scrape(t)

	m := pgqueprom.New()
	ctx := context.Background()
	msg := pgque.Message{Queue: "q", Type: "t", CreatedAt: time.Now()}
	_, sent := m.StartSend(ctx, "q", []pgque.Event{{Type: "t"}})
	sent(nil)
	m.StartReceive(ctx, "q", "c")([]pgque.Message{msg}, errors.New("x"))
	m.StartReceive(ctx, "q", "c")([]pgque.Message{msg}, nil)
	_, handled := m.StartHandle(ctx, "c", msg)
	handled("")
	m.Settled("c", msg, pgque.OutcomeDead)
	m.StartAck(ctx, "q", "c", 1)(errors.New("x"))
	m.TickerCall("ticker()", 1, time.Millisecond, nil)
	m.TickerLeading(true)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	sdk, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sdk {
		// pgque_ticker_leader means the same in both: a process's ticker
		// leads.
		if old := mfs[f.GetName()]; old != nil && (f.GetName() != "pgque_ticker_leader" || old.GetType() != f.GetType()) {
			t.Errorf("pgqueprom's %s is a metric of /metrics too", f.GetName())
		}
		mfs[f.GetName()] = f
	}
	return mfs
}

// exported reports whether name is a metric of mfs, or a series of one of
// its histograms.
func exported(mfs map[string]*dto.MetricFamily, name string) bool {
	if mfs[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && mfs[base] != nil &&
			(mfs[base].GetType() == dto.MetricType_HISTOGRAM || mfs[base].GetType() == dto.MetricType_SUMMARY) {
			return true
		}
	}
	return false
}

// The Grafana dashboard in deploy/ is valid JSON whose queries use only
// exported metrics, histograms through their buckets.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "grafana", "pgque.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("pgque.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard %q (uid %q) with %d panels", d.Title, d.UID, len(d.Panels))
	}
	mfs := exportedMetrics(t)
	exprs := map[string]string{}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && strings.HasPrefix(q, "label_values(") {
			exprs["variable "+v.Name] = q
		}
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || len(p.Targets) == 0 {
			t.Errorf("panel %q: id %d repeated, or no queries", p.Title, p.ID)
		}
		ids[p.ID] = true
		for i, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %q query %d", p.Title, i)] = tg.Expr
		}
	}
	for where, expr := range exprs {
		names, _, perr := promQLNames(expr)
		if perr != "" || len(names) == 0 {
			t.Errorf("%s: %q: %s, metrics %v", where, expr, perr, names)
		}
		for _, m := range names {
			if !exported(mfs, m) {
				t.Errorf("%s: metric %s is exported neither by /metrics nor by pgqueprom", where, m)
			}
		}
	}
}

// The checker of the test finds what it should.
func TestPromQLNames(t *testing.T) {
	for _, c := range []struct {
		expr, names, durations, err string
	}{
		{`pgque_a > 0`, "pgque_a", "", ""},
		{`sum by (queue) (rate(pgque_b_total{queue!~"pgque_x"}[5m])) > 2 and pgque_c == 1`, "pgque_b_total pgque_c", "5m", ""},
		{`max_over_time(pgque_d[1h:1m]) offset 5m`, "pgque_d", "1h", ""},
		{`delta(pgque_e[1h]`, "", "", "unclosed bracket"},
		{`pgque_f{queue="x}`, "", "", "unterminated string"},
	} {
		names, durations, err := promQLNames(c.expr)
		if strings.Join(names, " ") != c.names || strings.Join(durations, " ") != c.durations || err != c.err {
			t.Errorf("%s: %v %v %q", c.expr, names, durations, err)
		}
	}
}
