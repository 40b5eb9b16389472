//! XML for the S3 wire: writing response documents and reading the few request bodies S3 takes
//! (`Delete`, `ServerSideEncryptionConfiguration`, `CreateBucketConfiguration`).

use serde::Deserialize;

use crate::s3_error::S3Error;

/// The namespace of S3 documents.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A small XML writer: elements with escaped text.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// A document whose root element is `root` in the S3 namespace.
    pub fn document(root: &str) -> Self {
        let mut w = Writer { out: String::with_capacity(512) };
        w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        w.out.push_str(&format!("<{root} xmlns=\"{S3_NS}\">"));
        w
    }

    /// A document whose root element has no namespace (error bodies).
    pub fn plain_document(root: &str) -> Self {
        let mut w = Writer { out: String::with_capacity(256) };
        w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        w.out.push_str(&format!("<{root}>"));
        w
    }

    /// `<name>text</name>`.
    pub fn element(&mut self, name: &str, text: &str) -> &mut Self {
        self.out.push_str(&format!("<{name}>{}</{name}>", escape(text)));
        self
    }

    /// Opens `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        self
    }

    /// Opens `<name attribute="value" ...>`, the values escaped.
    pub fn open_with(&mut self, name: &str, attributes: &[(&str, &str)]) -> &mut Self {
        self.out.push_str(&format!("<{name}"));
        for (attribute, value) in attributes {
            self.out.push_str(&format!(" {attribute}=\"{}\"", escape(value)));
        }
        self.out.push('>');
        self
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str(&format!("</{name}>"));
        self
    }

    /// Closes the root and returns the document.
    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

/// Parses a request body, answering MalformedXML for anything that is not the expected document.
pub fn parse<'de, T: Deserialize<'de>>(body: &'de str) -> Result<T, S3Error> {
    quick_xml::de::from_str(body).map_err(|_| S3Error::malformed_xml())
}

/// `<Delete>` of DeleteObjects.
#[derive(Debug, Deserialize)]
pub struct Delete {
    /// The objects to delete.
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObject>,
    /// Quiet mode: only errors are reported.
    #[serde(rename = "Quiet", default)]
    pub quiet: bool,
}

/// One `<Object>` of `<Delete>`.
#[derive(Debug, Deserialize)]
pub struct DeleteObject {
    /// The key.
    #[serde(rename = "Key")]
    pub key: String,
    /// The version to delete for good (else the key's object, or a delete marker is added).
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<String>,
}

/// `<VersioningConfiguration>` of PutBucketVersioning.
#[derive(Debug, Deserialize)]
pub struct VersioningConfiguration {
    /// `Enabled` or `Suspended`.
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
    /// `Enabled` or `Disabled`.
    #[serde(rename = "MfaDelete", default)]
    pub mfa_delete: Option<String>,
}

impl VersioningConfiguration {
    /// The state asked for. MFA delete needs a device kmsim does not simulate: 501 naming it.
    pub fn versioning(&self) -> std::result::Result<crate::model::Versioning, S3Error> {
        match self.mfa_delete.as_deref() {
            None | Some("Disabled") => {}
            Some("Enabled") => return Err(S3Error::not_implemented("MfaDelete (MFA delete of versions)")),
            Some(_) => return Err(S3Error::malformed_xml()),
        }
        match self.status.as_deref() {
            Some("Enabled") => Ok(crate::model::Versioning::Enabled),
            Some("Suspended") => Ok(crate::model::Versioning::Suspended),
            _ => Err(S3Error::malformed_xml()),
        }
    }
}

/// `<ServerSideEncryptionConfiguration>`.
#[derive(Debug, Deserialize)]
pub struct EncryptionConfiguration {
    /// The rules (S3 accepts exactly one).
    #[serde(rename = "Rule", default)]
    pub rules: Vec<EncryptionRule>,
}

/// One `<Rule>`.
#[derive(Debug, Deserialize)]
pub struct EncryptionRule {
    /// The default encryption.
    #[serde(rename = "ApplyServerSideEncryptionByDefault")]
    pub default: Option<EncryptionDefault>,
    /// Whether S3 Bucket Keys are on.
    #[serde(rename = "BucketKeyEnabled", default)]
    pub bucket_key_enabled: bool,
}

/// `<ApplyServerSideEncryptionByDefault>`.
#[derive(Debug, Deserialize)]
pub struct EncryptionDefault {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    #[serde(rename = "SSEAlgorithm")]
    pub algorithm: String,
    /// The KMS key.
    #[serde(rename = "KMSMasterKeyID")]
    pub kms_key_id: Option<String>,
}

/// `<CORSConfiguration>` of PutBucketCors.
#[derive(Debug, Deserialize)]
pub struct CorsConfiguration {
    /// The rules, in order.
    #[serde(rename = "CORSRule", default)]
    pub rules: Vec<CorsRule>,
}

/// One `<CORSRule>`.
#[derive(Debug, Deserialize)]
pub struct CorsRule {
    /// `<ID>`.
    #[serde(rename = "ID")]
    pub id: Option<String>,
    /// `<AllowedOrigin>`s.
    #[serde(rename = "AllowedOrigin", default)]
    pub allowed_origins: Vec<String>,
    /// `<AllowedMethod>`s.
    #[serde(rename = "AllowedMethod", default)]
    pub allowed_methods: Vec<String>,
    /// `<AllowedHeader>`s.
    #[serde(rename = "AllowedHeader", default)]
    pub allowed_headers: Vec<String>,
    /// `<ExposeHeader>`s.
    #[serde(rename = "ExposeHeader", default)]
    pub expose_headers: Vec<String>,
    /// `<MaxAgeSeconds>`.
    #[serde(rename = "MaxAgeSeconds")]
    pub max_age_seconds: Option<u32>,
}

impl From<CorsRule> for crate::cors::CorsRule {
    fn from(rule: CorsRule) -> Self {
        crate::cors::CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers,
            expose_headers: rule.expose_headers,
            max_age_seconds: rule.max_age_seconds,
        }
    }
}

/// `<Tagging>` of PutObjectTagging, PutBucketTagging and a form upload's `tagging` field.
#[derive(Debug, Deserialize)]
pub struct Tagging {
    /// `<TagSet>`.
    #[serde(rename = "TagSet")]
    pub tag_set: TagSet,
}

/// `<TagSet>`.
#[derive(Debug, Deserialize, Default)]
pub struct TagSet {
    /// The tags, in order.
    #[serde(rename = "Tag", default)]
    pub tags: Vec<XmlTag>,
}

/// One `<Tag>`.
#[derive(Debug, Deserialize)]
pub struct XmlTag {
    /// `<Key>`.
    #[serde(rename = "Key")]
    pub key: String,
    /// `<Value>` (S3 requires it; it may be empty).
    #[serde(rename = "Value", default)]
    pub value: String,
}

impl Tagging {
    /// The tags, in order.
    pub fn into_tags(self) -> Vec<crate::model::Tag> {
        self.tag_set.tags.into_iter().map(|t| crate::model::Tag { key: t.key, value: t.value }).collect()
    }
}

/// Writes `<Tagging><TagSet>...</TagSet></Tagging>`.
pub fn tagging_document(tags: &[crate::model::Tag]) -> String {
    let mut w = Writer::document("Tagging");
    w.open("TagSet");
    for tag in tags {
        w.open("Tag").element("Key", &tag.key).element("Value", &tag.value).close("Tag");
    }
    w.close("TagSet");
    w.finish("Tagging")
}

/// `<CreateBucketConfiguration>`.
#[derive(Debug, Deserialize)]
pub struct CreateBucketConfiguration {
    /// The region the bucket is for.
    #[serde(rename = "LocationConstraint")]
    pub location_constraint: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;&#x1;");
    }

    #[test]
    fn parses_delete_and_refuses_garbage() {
        let body =
            "<Delete><Object><Key>a</Key></Object><Object><Key>b&amp;c</Key></Object><Quiet>true</Quiet></Delete>";
        let delete: Delete = parse(body).unwrap();
        assert_eq!(delete.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a", "b&c"]);
        assert!(delete.quiet);
        assert_eq!(parse::<Delete>("<Delete><Object>").unwrap_err().code, crate::S3ErrorCode::MalformedXML);
    }

    #[test]
    fn parses_cors_configuration() {
        let body = r#"<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule><ID>r1</ID><AllowedHeader>*</AllowedHeader><AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedOrigin>http://a.example</AllowedOrigin><AllowedOrigin></AllowedOrigin><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>"#;
        let config: CorsConfiguration = parse(body).unwrap();
        assert_eq!(config.rules.len(), 2);
        let rule = crate::cors::CorsRule::from(config.rules.into_iter().next().unwrap());
        assert_eq!(rule.id.as_deref(), Some("r1"));
        assert_eq!(rule.allowed_methods, ["PUT", "GET"]);
        assert_eq!(rule.allowed_origins, ["http://a.example", ""]);
        assert_eq!((rule.expose_headers.len(), rule.max_age_seconds), (1, Some(3000)));
        assert!(
            parse::<CorsConfiguration>(
                "<CORSConfiguration><CORSRule><MaxAgeSeconds>x</MaxAgeSeconds></CORSRule></CORSConfiguration>"
            )
            .is_err()
        );
    }

    #[test]
    fn parses_encryption_configuration() {
        let body = r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>alias/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>"#;
        let config: EncryptionConfiguration = parse(body).unwrap();
        let rule = &config.rules[0];
        assert_eq!(rule.default.as_ref().unwrap().kms_key_id.as_deref(), Some("alias/k"));
        assert!(rule.bucket_key_enabled);
    }
}

/// `<CompleteMultipartUpload>`.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    /// The parts, in the order given.
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPart>,
}

/// One `<Part>` of `<CompleteMultipartUpload>`.
#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    /// The part number.
    #[serde(rename = "PartNumber")]
    pub number: u32,
    /// The part's ETag as UploadPart returned it.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// `<ChecksumCRC32>` as UploadPart returned it.
    #[serde(rename = "ChecksumCRC32")]
    pub checksum_crc32: Option<String>,
    /// `<ChecksumCRC32C>`.
    #[serde(rename = "ChecksumCRC32C")]
    pub checksum_crc32c: Option<String>,
    /// `<ChecksumCRC64NVME>`.
    #[serde(rename = "ChecksumCRC64NVME")]
    pub checksum_crc64nvme: Option<String>,
    /// `<ChecksumSHA1>`.
    #[serde(rename = "ChecksumSHA1")]
    pub checksum_sha1: Option<String>,
    /// `<ChecksumSHA256>`.
    #[serde(rename = "ChecksumSHA256")]
    pub checksum_sha256: Option<String>,
}

impl CompletedPart {
    /// The checksum the request gives for the part: its header name and value.
    pub fn checksum(&self) -> Option<(&'static str, &str)> {
        [
            ("x-amz-checksum-crc32", &self.checksum_crc32),
            ("x-amz-checksum-crc32c", &self.checksum_crc32c),
            ("x-amz-checksum-crc64nvme", &self.checksum_crc64nvme),
            ("x-amz-checksum-sha1", &self.checksum_sha1),
            ("x-amz-checksum-sha256", &self.checksum_sha256),
        ]
        .into_iter()
        .find_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    }
}
