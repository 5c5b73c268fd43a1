//! `http`: DolphinScheduler's HTTP task.
//!
//! Fields as DolphinScheduler and pydolphinscheduler write them (camelCase accepted):
//! `url`, `http_method` (GET, POST, HEAD, PUT, DELETE), `http_params` (each `prop`,
//! `value` and `httpParametersType`: PARAMETER goes into the query string, BODY into a
//! JSON object sent as the body, HEADERS into the request's headers; the type is read
//! ignoring case), `http_body` (a body of its own, sent instead of the BODY object),
//! `http_check_condition` with `condition` (STATUS_CODE_DEFAULT: the status is 200;
//! STATUS_CODE_CUSTOM: the status is `condition`; BODY_CONTAINS / BODY_NOT_CONTAINS: a
//! non-empty body that contains / does not contain `condition`), `connect_timeout` and
//! `socket_timeout` in milliseconds (default 60,000 each).
//!
//! OUT parameters: `<task>.response` is the body, as in DolphinScheduler. A declared OUT
//! parameter takes its value from the response by what it is declared with: `status`
//! (the status code), `body` or nothing (the body), or a JSON path into the body
//! (`$.data.id`, `$.items[0].name`, `$['a key']`).
//!
//! The request goes out through `wasi:http`, so the host's allow-list decides which
//! hosts it may reach.

use shoal_sdk::http::{HttpError, Request};
use shoal_sdk::prelude::*;
use shoal_sdk::serde_json::{self, Value};

mod json_path;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub url: String,
    #[serde(default = "get", alias = "httpMethod")]
    pub http_method: String,
    #[serde(default, alias = "httpParams")]
    pub http_params: Vec<HttpParam>,
    #[serde(default, alias = "httpBody")]
    pub http_body: String,
    #[serde(default = "default_check", alias = "httpCheckCondition")]
    pub http_check_condition: String,
    #[serde(default)]
    pub condition: String,
    #[serde(
        default = "sixty_seconds",
        alias = "connectTimeout",
        deserialize_with = "shoal_sdk::text::number"
    )]
    #[schemars(with = "shoal_sdk::text::Scalar")]
    pub connect_timeout: u64,
    #[serde(
        default = "sixty_seconds",
        alias = "socketTimeout",
        deserialize_with = "shoal_sdk::text::number"
    )]
    #[schemars(with = "shoal_sdk::text::Scalar")]
    pub socket_timeout: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpParam {
    pub prop: String,
    #[serde(default)]
    pub value: String,
    #[serde(
        rename = "httpParametersType",
        alias = "http_parameters_type",
        alias = "type"
    )]
    pub kind: String,
}

fn get() -> String {
    "GET".into()
}
fn default_check() -> String {
    "STATUS_CODE_DEFAULT".into()
}
fn sixty_seconds() -> u64 {
    60_000
}

const METHODS: [&str; 5] = ["GET", "POST", "HEAD", "PUT", "DELETE"];
const CHECKS: [&str; 4] = [
    "STATUS_CODE_DEFAULT",
    "STATUS_CODE_CUSTOM",
    "BODY_CONTAINS",
    "BODY_NOT_CONTAINS",
];
const PARAM_KINDS: [&str; 3] = ["PARAMETER", "BODY", "HEADERS"];

/// The most response body kept; a larger one fails the task.
const MAX_BODY: usize = 8 << 20;

pub struct Http;

impl TaskType for Http {
    type Params = Params;
    const NAME: &'static str = "http";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Sends an HTTP request and checks the response (DolphinScheduler's HTTP task)";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::Short;
    const CAPABILITIES: &'static [&'static str] = &["http"];

    fn validate(p: &Params) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // A definition is checked before its parameters are substituted: a field that
        // holds a reference is checked when the task runs, with its value.
        let later = |v: &str| v.contains("${") || v.contains("$[");
        let url_ok = p.url.starts_with("http://") || p.url.starts_with("https://");
        if !(later(&p.url) || url_ok) {
            errors.push(FieldError::new(
                "url",
                format!("`{}` is not an http:// or https:// URL", p.url),
            ));
        }
        if !later(&p.http_method) && !METHODS.contains(&p.http_method.to_ascii_uppercase().as_str())
        {
            errors.push(FieldError::new(
                "http_method",
                format!("`{}` is not one of {}", p.http_method, METHODS.join(", ")),
            ));
        }
        let check = p.http_check_condition.to_ascii_uppercase();
        if !CHECKS.contains(&check.as_str()) {
            errors.push(FieldError::new(
                "http_check_condition",
                format!(
                    "`{}` is not one of {}",
                    p.http_check_condition,
                    CHECKS.join(", ")
                ),
            ));
        } else if check != "STATUS_CODE_DEFAULT" && p.condition.is_empty() {
            errors.push(FieldError::new(
                "condition",
                format!("{check} needs a condition to check"),
            ));
        } else if check == "STATUS_CODE_CUSTOM"
            && !later(&p.condition)
            && p.condition.trim().parse::<u16>().is_err()
        {
            errors.push(FieldError::new(
                "condition",
                format!("`{}` is not a status code", p.condition),
            ));
        }
        for (i, param) in p.http_params.iter().enumerate() {
            if !later(&param.kind)
                && !PARAM_KINDS.contains(&param.kind.to_ascii_uppercase().as_str())
            {
                errors.push(FieldError::new(
                    format!("http_params.{i}.httpParametersType"),
                    format!("`{}` is not one of {}", param.kind, PARAM_KINDS.join(", ")),
                ));
            }
            if param.prop.is_empty() {
                errors.push(FieldError::new(
                    format!("http_params.{i}.prop"),
                    "must name the parameter",
                ));
            }
        }
        for (field, ms) in [
            ("connect_timeout", p.connect_timeout),
            ("socket_timeout", p.socket_timeout),
        ] {
            if ms == 0 {
                errors.push(FieldError::new(field, "must be at least 1 millisecond"));
            }
        }
        errors
    }

    fn start(ctx: &mut TaskContext, p: Params) -> Result<Start, Error> {
        let request = build(&p)?;
        log::info(format!("{} {}", request.method, request.url));
        let started = std::time::Instant::now();
        let response = request.send().map_err(|e| match e {
            HttpError::Denied(m) => Error::new(format!(
                "capability denied: {m}; the operator allows hosts for this task type with `[plugins.http] http-hosts` in the policy"
            )),
            other => Error::new(other.to_string()),
        })?;
        let body = response.text();
        log::info(format!(
            "status {} after {} ms, {} bytes",
            response.status,
            started.elapsed().as_millis(),
            response.body.len()
        ));
        log::info(format!("body: {}", shorten(&body, 4096)));
        ctx.set_out_param(format!("{}.response", ctx.task_name), body.clone());
        for (name, from) in declared_out_values() {
            let value = out_value(from.trim(), response.status, &body)
                .map_err(|e| Error::new(format!("OUT parameter `{name}`: {e}")))?;
            ctx.set_out_param(name, value);
        }
        match check(&p, response.status, &body) {
            Ok(()) => Ok(Start::success(format!("status {}", response.status))),
            Err(why) => Ok(Start::failure(why)),
        }
    }
}

/// The request the parameters describe.
pub fn build(p: &Params) -> Result<Request, Error> {
    let kind = |param: &HttpParam| param.kind.to_ascii_uppercase();
    let query: Vec<(&str, &str)> = p
        .http_params
        .iter()
        .filter(|q| kind(q) == "PARAMETER")
        .map(|q| (q.prop.as_str(), q.value.as_str()))
        .collect();
    let mut url = p.url.clone();
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&encoded.join("&"));
    }
    let mut request = Request::new(p.http_method.to_ascii_uppercase(), url)
        .timeouts(Some(p.connect_timeout), Some(p.socket_timeout))
        .max_body(MAX_BODY);
    let body_params: serde_json::Map<String, Value> = p
        .http_params
        .iter()
        .filter(|q| kind(q) == "BODY")
        .map(|q| (q.prop.clone(), Value::String(q.value.clone())))
        .collect();
    let headers: Vec<&HttpParam> = p
        .http_params
        .iter()
        .filter(|q| kind(q) == "HEADERS")
        .collect();
    let body = if !p.http_body.is_empty() {
        Some(p.http_body.clone().into_bytes())
    } else if !body_params.is_empty() {
        Some(Value::Object(body_params).to_string().into_bytes())
    } else {
        None
    };
    let has_content_type = headers
        .iter()
        .any(|h| h.prop.eq_ignore_ascii_case("content-type"));
    if let Some(body) = body {
        if !has_content_type {
            request = request.header("content-type", "application/json; charset=utf-8");
        }
        request = request.body(body);
    }
    for h in headers {
        request = request.header(h.prop.clone(), h.value.clone());
    }
    Ok(request)
}

/// DolphinScheduler's check of a response; `Err` says why it failed.
pub fn check(p: &Params, status: u16, body: &str) -> Result<(), String> {
    let condition = &p.condition;
    match p.http_check_condition.to_ascii_uppercase().as_str() {
        "BODY_CONTAINS" if body.is_empty() || !body.contains(condition.as_str()) => Err(format!(
            "{} does not contain `{condition}` (status {status})",
            p.url
        )),
        "BODY_NOT_CONTAINS" if body.is_empty() || body.contains(condition.as_str()) => {
            Err(format!(
                "{} contains `{condition}` or is empty (status {status})",
                p.url
            ))
        }
        "STATUS_CODE_CUSTOM" if status.to_string() != condition.trim() => Err(format!(
            "{} answered status {status}, must be {}",
            p.url,
            condition.trim()
        )),
        "STATUS_CODE_DEFAULT" if status != 200 => {
            Err(format!("{} answered status {status}, must be 200", p.url))
        }
        _ => Ok(()),
    }
}

/// The value an OUT parameter declared with `from` takes from the response.
pub fn out_value(from: &str, status: u16, body: &str) -> Result<String, String> {
    match from {
        "status" | "STATUS" => Ok(status.to_string()),
        "" | "body" | "BODY" | "response" => Ok(body.to_owned()),
        path if path.starts_with('$') => {
            let doc: Value = serde_json::from_str(body)
                .map_err(|e| format!("`{path}`: the body is not JSON ({e})"))?;
            let found = json_path::find(&doc, path)?
                .ok_or_else(|| format!("`{path}` finds nothing in the body"))?;
            Ok(match found {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }
        // Anything else is a plain default, as for other task types.
        other => Ok(other.to_owned()),
    }
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

export_task!(Http);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: Value) -> Params {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn parameters_go_to_the_query_body_and_headers() {
        let p = params(serde_json::json!({
            "url": "http://127.0.0.1:9/x?a=1",
            "http_method": "post",
            "http_params": [
                {"prop": "q", "value": "a b&c", "httpParametersType": "parameter"},
                {"prop": "name", "value": "shoal", "httpParametersType": "BODY"},
                {"prop": "X-Token", "value": "t", "httpParametersType": "Headers"},
            ],
        }));
        assert!(Http::validate(&p).is_empty());
        let r = build(&p).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://127.0.0.1:9/x?a=1&q=a%20b%26c");
        assert_eq!(String::from_utf8(r.body).unwrap(), r#"{"name":"shoal"}"#);
        assert!(r.headers.contains(&("X-Token".into(), "t".into())));
        assert_eq!(r.connect_timeout_ms, Some(60_000));
    }

    #[test]
    fn a_body_of_its_own_wins_over_body_params() {
        let p = params(serde_json::json!({
            "url": "http://h/", "httpMethod": "PUT", "httpBody": "raw",
            "httpParams": [{"prop": "a", "value": "1", "httpParametersType": "BODY"},
                           {"prop": "Content-Type", "value": "text/plain", "httpParametersType": "HEADERS"}],
            "connectTimeout": "5", "socketTimeout": 7,
        }));
        let r = build(&p).unwrap();
        assert_eq!(r.body, b"raw");
        assert_eq!(r.connect_timeout_ms, Some(5));
        assert_eq!(r.read_timeout_ms, Some(7));
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .count(),
            1
        );
    }

    #[test]
    fn checks_are_dolphinschedulers() {
        let p = |check: &str, condition: &str| {
            params(
                serde_json::json!({"url": "http://h/", "http_check_condition": check, "condition": condition}),
            )
        };
        assert!(check(&p("STATUS_CODE_DEFAULT", ""), 200, "").is_ok());
        assert!(check(&p("STATUS_CODE_DEFAULT", ""), 201, "").is_err());
        assert!(check(&p("status_code_custom", "404"), 404, "").is_ok());
        assert!(check(&p("STATUS_CODE_CUSTOM", "404"), 200, "").is_err());
        assert!(check(&p("BODY_CONTAINS", "ok"), 500, "all ok").is_ok());
        assert!(check(&p("BODY_CONTAINS", "ok"), 200, "nope").is_err());
        assert!(check(&p("BODY_NOT_CONTAINS", "error"), 200, "fine").is_ok());
        assert!(check(&p("BODY_NOT_CONTAINS", "error"), 200, "").is_err());
        assert!(check(&p("BODY_NOT_CONTAINS", "error"), 200, "an error").is_err());
    }

    #[test]
    fn references_are_checked_when_the_task_runs() {
        let p = params(serde_json::json!({
            "url": "${base}/x", "http_method": "${method}",
            "http_check_condition": "STATUS_CODE_CUSTOM", "condition": "${code}",
        }));
        assert!(Http::validate(&p).is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        let p = params(serde_json::json!({
            "url": "ftp://h", "http_method": "PATCH", "http_check_condition": "BODY_CONTAINS",
            "http_params": [{"prop": "", "value": "", "httpParametersType": "COOKIE"}],
            "socket_timeout": 0,
        }));
        let fields: Vec<String> = Http::validate(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "url",
                "http_method",
                "condition",
                "http_params.0.httpParametersType",
                "http_params.0.prop",
                "socket_timeout"
            ]
        );
    }

    #[test]
    fn out_parameters_come_from_the_response() {
        let body = r#"{"data": {"id": 42, "tags": ["a", "b"], "name": "x"}}"#;
        assert_eq!(out_value("status", 201, body).unwrap(), "201");
        assert_eq!(out_value("", 200, body).unwrap(), body);
        assert_eq!(out_value("$.data.id", 200, body).unwrap(), "42");
        assert_eq!(out_value("$.data.name", 200, body).unwrap(), "x");
        assert_eq!(out_value("$.data.tags[1]", 200, body).unwrap(), "b");
        assert_eq!(out_value("$.data.tags", 200, body).unwrap(), r#"["a","b"]"#);
        assert!(
            out_value("$.data.nope", 200, body)
                .unwrap_err()
                .contains("finds nothing")
        );
        assert!(
            out_value("$.a", 200, "not json")
                .unwrap_err()
                .contains("not JSON")
        );
        assert_eq!(out_value("fixed", 200, body).unwrap(), "fixed");
    }
}
