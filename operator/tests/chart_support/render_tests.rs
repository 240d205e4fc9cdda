//! The renderer itself: the subset it implements, and that it refuses everything else
//! with an error naming what it does not understand.

use serde_json::{Value, json};

use super::render::{ChartMeta, Release, Templates};

fn render_one(template: &str, values: Value) -> Result<String, String> {
    let sources = vec![
        (
            "_helpers.tpl".to_owned(),
            "{{- define \"t.name\" -}}\n{{ .Release.Name }}-x\n{{- end -}}\n".to_owned(),
        ),
        ("t.yaml".to_owned(), template.to_owned()),
    ];
    let templates = Templates::parse(&sources).map_err(|e| e.to_string())?;
    let chart = ChartMeta {
        name: "c".into(),
        version: "1.0.0".into(),
        app_version: "2.0".into(),
    };
    let release = Release {
        name: "rel".into(),
        namespace: "ns".into(),
    };
    templates
        .render(&chart, &release, &values)
        .map(|r| r.files["t.yaml"].clone())
        .map_err(|e| e.to_string())
}

#[test]
fn renderer_implements_the_subset() {
    let values = json!({"a": {"b": "x", "n": 3, "on": true, "off": false, "empty": "", "m": {"k": "v"}, "l": []}});
    let cases = [
        ("{{ .Values.a.b }}", "x"),
        ("{{ .Values.a.n }}", "3"),
        (
            "{{ .Release.Name }}/{{ .Release.Namespace }}/{{ .Release.Service }}",
            "rel/ns/Helm",
        ),
        (
            "{{ .Chart.Name }}-{{ .Chart.Version }}-{{ .Chart.AppVersion }}",
            "c-1.0.0-2.0",
        ),
        (
            "{{ .Values.a.on | quote }} {{ \"a\\\"b\" | quote }}",
            "\"true\" \"a\\\"b\"",
        ),
        (
            "{{ .Values.a.empty | default \"d\" }} {{ .Values.a.b | default \"d\" }}",
            "d x",
        ),
        (
            "{{ .Values.a.empty | default (include \"t.name\" .) }}",
            "rel-x",
        ),
        (
            "k:\n  {{- include \"t.name\" . | nindent 2 }}\n",
            "k:\n  rel-x\n",
        ),
        ("m:\n  {{- toYaml .Values.a.m | nindent 2 }}", "m:\n  k: v"),
        ("l: {{ toYaml .Values.a.l }}", "l: []"),
        ("{{ indent 2 \"a\\nb\" }}", "  a\n  b"),
        (
            "a\n{{- if .Values.a.on }}\nyes\n{{- else }}\nno\n{{- end }}\n",
            "a\nyes\n",
        ),
        (
            "a\n{{- if .Values.a.off }}\nyes\n{{- else }}\nno\n{{- end }}\n",
            "a\nno\n",
        ),
        (
            "{{ if .Values.a.empty }}x{{ end }}{{ if .Values.a.l }}y{{ end }}.",
            ".",
        ),
        ("a   {{- /* gone */ -}}   b", "ab"),
        ("{{/* a comment } with braces */}}z", "z"),
    ];
    for (template, expected) in cases {
        assert_eq!(
            render_one(template, values.clone()).as_deref(),
            Ok(expected),
            "{template:?}"
        );
    }
}

#[test]
fn renderer_refuses_what_it_does_not_implement() {
    let values = json!({"a": {"b": "x", "m": {"k": "v"}, "big": 1000000, "null": null}});
    let cases = [
        ("{{ range .Values.a.m }}x{{ end }}", "unsupported construct"),
        ("{{ with .Values.a }}x{{ end }}", "unsupported construct"),
        ("{{ template \"t.name\" . }}", "unsupported construct"),
        (
            "{{ if .Values.a.b }}x{{ else if .Values.a.b }}y{{ end }}",
            "unsupported construct",
        ),
        ("{{ upper .Values.a.b }}", "unsupported function"),
        ("{{ $x := 1 }}", "unsupported syntax"),
        (
            "{{ .Values.a.missing }}",
            ".Values.a.missing is not in the values",
        ),
        ("{{ .Capabilities.KubeVersion }}", "unsupported field"),
        ("{{ .Values.a.m }}", "printing a collection"),
        ("{{ .Values.a.big }}", "Go's float format"),
        ("{{ .Values.a.null }}", "null"),
        ("{{ .Values.a.b", "unterminated action"),
        ("{{ if .Values.a.b }}x", "if without end"),
        ("x{{ end }}", "without an open block"),
        ("{{ include \"nope\" . }}", "no template named"),
        (
            "{{ include \"t.name\" }}",
            "include: expects a template name and .",
        ),
        ("{{ nindent \"two\" .Values.a.b }}", "expected an integer"),
        (
            "{{ .Values.a.b .Values.a.b }}",
            "only a function may take arguments",
        ),
    ];
    for (template, expected) in cases {
        match render_one(template, values.clone()) {
            Ok(out) => panic!("{template:?} rendered {out:?}; it must be refused"),
            Err(e) => assert!(
                e.contains(expected),
                "{template:?}: {e} (expected {expected:?})"
            ),
        }
    }
}
