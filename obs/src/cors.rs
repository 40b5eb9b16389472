//! Cross-origin resource sharing, as S3 evaluates a bucket's CORS configuration: which rule (if any)
//! allows a preflight (`OPTIONS` with `Origin`, `Access-Control-Request-Method` and
//! `Access-Control-Request-Headers`) or an actual request with an `Origin`, and the
//! `Access-Control-*` headers S3 then answers with.
//!
//! The first rule whose origins, methods and (for a preflight) headers all match decides. Origins
//! are matched case-sensitively with at most one `*` wildcard per pattern; headers
//! case-insensitively, also with `*`. These are S3's rules as recorded against real S3 (the
//! AllowedHeaders of a rule are required only for a preflight's requested headers; the allowed
//! headers S3 answers are the requested ones, lowercased).

use serde::{Deserialize, Serialize};

/// The methods a CORS rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];
/// Rules per configuration at most.
pub const MAX_RULES: usize = 100;
/// `Vary` of every CORS answer.
pub const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// One `<CORSRule>` of a bucket's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// `<ID>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `<AllowedOrigin>`s, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// `<AllowedMethod>`s, among [`METHODS`].
    pub allowed_methods: Vec<String>,
    /// `<AllowedHeader>`s, as sent (matched without regard to case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    /// `<ExposeHeader>`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// `<MaxAgeSeconds>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// No rule, or a rule without an origin or a method: not the schema.
    Malformed,
    /// More than [`MAX_RULES`] rules.
    TooManyRules,
    /// A method S3 does not allow in CORS.
    UnsupportedMethod(String),
    /// An origin with more than one `*`.
    OriginWildcards(String),
    /// An allowed header with more than one `*`.
    HeaderWildcards(String),
}

/// Checks a configuration as S3 does on PutBucketCors.
pub fn validate(rules: &[CorsRule]) -> Result<(), Invalid> {
    if rules.is_empty() {
        return Err(Invalid::Malformed);
    }
    if rules.len() > MAX_RULES {
        return Err(Invalid::TooManyRules);
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(Invalid::Malformed);
        }
        if let Some(method) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(Invalid::UnsupportedMethod(method.clone()));
        }
        if let Some(origin) = rule.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(Invalid::OriginWildcards(origin.clone()));
        }
        if let Some(header) = rule.allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(Invalid::HeaderWildcards(header.clone()));
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern`, whose one `*` (if any) stands for any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len() && text.starts_with(prefix) && text.ends_with(suffix)
        }
    }
}

impl CorsRule {
    fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|pattern| wildcard_match(pattern, origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        let header = header.to_ascii_lowercase();
        self.allowed_headers.iter().any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &header))
    }

    /// Whether every origin is allowed (`*`): S3 then answers `Access-Control-Allow-Origin: *`
    /// and no `Access-Control-Allow-Credentials`.
    fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// The `Access-Control-*` headers of an allowed request, in the order S3 sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `Access-Control-Allow-Origin`: the request's origin, or `*`.
    pub allow_origin: String,
    /// `Access-Control-Allow-Credentials: true` (not with `*`).
    pub allow_credentials: bool,
    /// `Access-Control-Allow-Methods`: the rule's methods, `, `-separated.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers` of a preflight: the requested headers, lowercased.
    pub allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Option<String>,
    /// `Access-Control-Max-Age`.
    pub max_age: Option<u32>,
}

impl Allowed {
    fn of(rule: &CorsRule, origin: &str, requested_headers: &[String]) -> Self {
        let any = rule.any_origin();
        Allowed {
            allow_origin: if any { "*".to_owned() } else { origin.to_owned() },
            allow_credentials: !any,
            allow_methods: rule.allowed_methods.join(", "),
            allow_headers: (!requested_headers.is_empty()).then(|| requested_headers.join(", ")),
            expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.join(", ")),
            max_age: rule.max_age_seconds,
        }
    }

    /// The headers as (name, value) pairs, `Vary` last.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("access-control-allow-origin", self.allow_origin.clone())];
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".to_owned()));
        }
        out.push(("access-control-allow-methods", self.allow_methods.clone()));
        if let Some(headers) = &self.allow_headers {
            out.push(("access-control-allow-headers", headers.clone()));
        }
        if let Some(expose) = &self.expose_headers {
            out.push(("access-control-expose-headers", expose.clone()));
        }
        if let Some(age) = self.max_age {
            out.push(("access-control-max-age", age.to_string()));
        }
        out.push(("vary", VARY.to_owned()));
        out
    }
}

/// The requested headers of a preflight (`Access-Control-Request-Headers`), trimmed and lowercased.
pub fn requested_headers(value: &str) -> Vec<String> {
    value.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
}

/// The answer to a preflight for `method` and `requested` headers from `origin`, if a rule allows it.
pub fn preflight(rules: &[CorsRule], origin: &str, method: &str, requested: &[String]) -> Option<Allowed> {
    rules
        .iter()
        .find(|rule| {
            rule.allows_origin(origin) && rule.allows_method(method) && requested.iter().all(|h| rule.allows_header(h))
        })
        .map(|rule| Allowed::of(rule, origin, requested))
}

/// The CORS headers of an actual request with an `Origin`, if a rule allows its origin and method.
pub fn actual(rules: &[CorsRule], origin: &str, method: &str) -> Option<Allowed> {
    rules
        .iter()
        .find(|rule| rule.allows_origin(origin) && rule.allows_method(method))
        .map(|rule| Allowed::of(rule, origin, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: vec![],
            max_age_seconds: Some(3000),
        }
    }

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(wildcard_match("*", "https://anything"));
        assert!(wildcard_match("http://*.origin.com", "http://test.origin.com"));
        assert!(!wildcard_match("http://*.origin.com", "http://origin.com"));
        assert!(!wildcard_match("https://localhost:4200", "https://LOCALHOST:4200"));
        assert!(wildcard_match("", ""));
    }

    #[test]
    fn first_matching_rule_decides_as_s3_answers() {
        // Recorded against S3: a named origin echoes it with credentials, `*` answers `*` without.
        let rules = [rule(&["https://localhost:4200"], &["GET", "PUT"], &[]), rule(&["*"], &["GET"], &["x-amz-*"])];
        let named = preflight(&rules, "https://localhost:4200", "PUT", &[]).unwrap();
        assert_eq!((named.allow_origin.as_str(), named.allow_credentials), ("https://localhost:4200", true));
        assert_eq!(named.allow_methods, "GET, PUT");
        let any = preflight(&rules, "http://elsewhere", "GET", &requested_headers("X-Amz-Meta-A, x-amz-date")).unwrap();
        assert_eq!((any.allow_origin.as_str(), any.allow_credentials), ("*", false));
        assert_eq!(any.allow_headers.as_deref(), Some("x-amz-meta-a, x-amz-date"));
        // A header no rule allows, a method no rule allows for the origin.
        assert_eq!(preflight(&rules, "https://localhost:4200", "GET", &["content-type".into()]), None);
        assert_eq!(preflight(&rules, "http://elsewhere", "PUT", &[]), None);
        // Actual requests do not check headers; a method the rule does not allow gets nothing.
        assert!(actual(&rules, "https://localhost:4200", "PUT").is_some());
        assert_eq!(actual(&rules, "http://elsewhere", "DELETE"), None);
        let headers = named.headers();
        assert_eq!(headers.first().unwrap().0, "access-control-allow-origin");
        assert_eq!(headers.last().unwrap(), &("vary", VARY.to_owned()));
        assert!(headers.contains(&("access-control-max-age", "3000".to_owned())));
    }

    #[test]
    fn configurations_are_validated() {
        assert_eq!(validate(&[]), Err(Invalid::Malformed));
        assert_eq!(validate(&[rule(&[], &["GET"], &[])]), Err(Invalid::Malformed));
        assert_eq!(validate(&[rule(&["*"], &["MYMETHOD"], &[])]), Err(Invalid::UnsupportedMethod("MYMETHOD".into())));
        assert_eq!(validate(&[rule(&["*.*"], &["GET"], &[])]), Err(Invalid::OriginWildcards("*.*".into())));
        assert_eq!(validate(&[rule(&["*"], &["GET"], &["a*b*"])]), Err(Invalid::HeaderWildcards("a*b*".into())));
        assert_eq!(validate(&vec![rule(&["*"], &["GET"], &[]); 101]), Err(Invalid::TooManyRules));
        assert_eq!(validate(&[rule(&[""], &["GET", "PUT", "HEAD", "POST", "DELETE"], &["*"])]), Ok(()));
    }
}
