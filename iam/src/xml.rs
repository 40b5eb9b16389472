//! The XML of the Query APIs' answers: `<{Action}Response xmlns=...><{Action}Result>...</{Action}Result>
//! <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata></{Action}Response>`, and the error document
//! `<ErrorResponse><Error><Type>Sender</Type><Code>...</Code><Message>...</Message></Error><RequestId>...
//! </RequestId></ErrorResponse>`. Text is escaped; policy documents are URL-encoded, as IAM returns them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The IAM API's XML namespace.
pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// The STS API's XML namespace.
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// What IAM leaves unencoded in a policy document: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A policy document as IAM returns it: URL-encoded JSON (the SDKs decode it).
pub fn encode_policy(document: &str) -> String {
    utf8_percent_encode(document, UNRESERVED).to_string()
}

/// Appends `text` with `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// The body of one successful answer, built element by element.
#[derive(Debug)]
pub struct Answer {
    out: String,
    action: &'static str,
}

impl Answer {
    /// Opens `<{action}Response xmlns="{namespace}"><{action}Result>`.
    pub fn new(action: &'static str, namespace: &str) -> Self {
        let mut out = String::with_capacity(512);
        out.push_str(&format!("<{action}Response xmlns=\"{namespace}\">\n  <{action}Result>\n"));
        Answer { out, action }
    }

    /// An answer without a result element (DeleteUser, PutUserPolicy, ...).
    pub fn empty(action: &'static str, namespace: &str, request_id: &str) -> String {
        format!(
            "<{action}Response xmlns=\"{namespace}\">\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  \
             </ResponseMetadata>\n</{action}Response>\n"
        )
    }

    /// Opens `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        self
    }

    /// `<name>text</name>`, escaped.
    pub fn field(&mut self, name: &str, text: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.close(name)
    }

    /// `<name>text</name>` when `text` is given.
    pub fn optional(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(text) = text {
            self.field(name, text);
        }
        self
    }

    /// Closes the result and adds the request id.
    pub fn finish(mut self, request_id: &str) -> String {
        let action = self.action;
        self.out.push_str(&format!(
            "  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
        ));
        self.out
    }
}

/// The error document of the Query APIs.
pub fn error_document(namespace: &str, sender: bool, code: &str, message: &str, request_id: &str) -> String {
    let mut out = format!("<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>");
    out.push_str(if sender { "Sender" } else { "Receiver" });
    out.push_str("</Type>\n    <Code>");
    escape_into(&mut out, code);
    out.push_str("</Code>\n    <Message>");
    escape_into(&mut out, message);
    out.push_str(&format!("</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_errors_render_as_the_sdks_read_them() {
        let mut answer = Answer::new("GetUser", IAM_NAMESPACE);
        answer.open("User").field("UserName", "a&b<c>").optional("Path", None).close("User");
        let xml = answer.finish("req-1");
        assert!(xml.starts_with("<GetUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"), "{xml}");
        assert!(xml.contains("<User><UserName>a&amp;b&lt;c&gt;</UserName>\n</User>"), "{xml}");
        assert!(xml.contains("<RequestId>req-1</RequestId>") && xml.ends_with("</GetUserResponse>\n"), "{xml}");
        assert!(!xml.contains("<Path>"));
        let empty = Answer::empty("DeleteUser", IAM_NAMESPACE, "r");
        assert!(empty.contains("<DeleteUserResponse") && !empty.contains("Result"), "{empty}");
        let error = error_document(STS_NAMESPACE, true, "AccessDenied", "User: a is \"not\" <ok>", "r2");
        assert!(error.contains("<Type>Sender</Type>"), "{error}");
        assert!(error.contains("<Message>User: a is &quot;not&quot; &lt;ok&gt;</Message>"), "{error}");
        assert_eq!(
            encode_policy(r#"{"Version":"2012-10-17","Statement":[]}"#),
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D"
        );
    }
}
