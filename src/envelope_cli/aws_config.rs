//! Where `kmsim encrypt` / `decrypt` find credentials, region, endpoint and CA bundle, as the AWS SDKs resolve
//! them (environment, then the shared `~/.aws/credentials` and `~/.aws/config` files; no IMDS, SSO or role
//! assumption).
//!
//! The process environment is read once, at the edge, into an [`Environment`]; everything here works on that
//! snapshot, so the rules are unit-tested without touching the real environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kms::model::KeyRef;
use zeroize::Zeroizing;

/// Why the AWS settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No access key was found anywhere.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put aws_access_key_id and \
         aws_secret_access_key in profile '{profile}' of {credentials_file}"
    )]
    NoCredentials {
        /// The profile that was looked at.
        profile: String,
        /// The shared credentials file that was looked at.
        credentials_file: String,
    },
    /// The profile asks for a credential source this tool does not implement.
    #[error(
        "profile '{profile}' gets its credentials through {setting}, which kmsim does not resolve: export \
         AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (e.g. from `aws configure \
         export-credentials`) instead"
    )]
    UnsupportedSource {
        /// The profile.
        profile: String,
        /// The setting that names the source (`role_arn`, `sso_session`, `credential_process`, ...).
        setting: String,
    },
    /// A key ARN whose region is not a region's name (a message's key names where the call goes).
    #[error("the key ARN '{key}' names no valid region (lowercase letters and digits joined by '-'): not calling it")]
    BadRegion {
        /// The key ARN, escaped for a terminal.
        key: String,
    },
    /// A profile was named (`--profile`, `AWS_PROFILE`) that neither shared file has.
    #[error("the profile '{profile}' is in neither {credentials_file} nor {config_file}")]
    NoSuchProfile {
        /// The profile.
        profile: String,
        /// The shared credentials file.
        credentials_file: String,
        /// The shared config file.
        config_file: String,
    },
    /// A profile has one half of an access key.
    #[error("profile '{profile}' has {present} but not {missing}")]
    HalfAKey {
        /// The profile.
        profile: String,
        /// The setting it has.
        present: &'static str,
        /// The setting it lacks.
        missing: &'static str,
    },
    /// A shared file exists but could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No region anywhere, and the key is not an ARN that names one.
    #[error("no AWS region: pass --region, set AWS_REGION, or put region in profile '{profile}' of {config_file}")]
    NoRegion {
        /// The profile.
        profile: String,
        /// The shared config file.
        config_file: String,
    },
}

/// A snapshot of the environment variables and home directory the resolution reads.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
}

impl Environment {
    /// The current process's environment.
    pub fn from_process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Environment { vars, home: std::env::home_dir() }
    }

    /// An environment of just these variables and this home directory (for tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, home: Option<&Path>) -> Environment {
        let vars = pairs.into_iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        Environment { vars, home: home.map(Path::to_path_buf) }
    }

    /// A variable's value, if it is set and not empty (an empty variable counts as unset, as in the SDKs).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    /// A path under the home directory (`~/.aws/...`), or the bare relative path when there is no home.
    fn home_path(&self, relative: &str) -> PathBuf {
        match &self.home {
            Some(home) => home.join(relative),
            None => PathBuf::from(relative),
        }
    }
}

/// An access key to sign requests with.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (wiped when dropped).
    pub secret_access_key: Zeroizing<String>,
    /// The session token of temporary credentials, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What the command line says about AWS settings; each, when given, wins over the environment and the files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--profile`: a profile of the shared files, whose credentials then win over the environment's.
    pub profile: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--ca-bundle`.
    pub ca_bundle: Option<PathBuf>,
}

/// The resolved settings for talking to KMS.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The credentials requests are signed with.
    pub credentials: Credentials,
    /// The configured region, if any (a key ARN's region wins for calls about that key).
    pub region: Option<String>,
    /// An endpoint for every region (`--endpoint-url`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, the profile's
    /// `endpoint_url`), else AWS's.
    pub endpoint_url: Option<String>,
    /// Extra certificate authorities to trust (`--ca-bundle`, `AWS_CA_BUNDLE`, the profile's `ca_bundle`).
    pub ca_bundle: Option<PathBuf>,
    /// The profile that was used, for messages.
    pub profile: String,
    /// The shared config file, for messages.
    pub config_file: String,
}

impl AwsSettings {
    /// Resolves credentials, region, endpoint and CA bundle as the AWS SDKs do:
    ///
    /// - credentials: the `--profile`'s when one is given; else `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
    ///   `AWS_SESSION_TOKEN`); else the profile `AWS_PROFILE` (or `default`) of the shared credentials file
    ///   (`AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`), then of the config file (`AWS_CONFIG_FILE`,
    ///   `~/.aws/config`);
    /// - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the config file;
    /// - endpoint: `--endpoint-url`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url` in the
    ///   config file (the last three unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else
    ///   `https://kms.<region>.amazonaws.com`;
    /// - CA bundle: `--ca-bundle`, `AWS_CA_BUNDLE`, the profile's `ca_bundle`.
    pub fn resolve(overrides: &Overrides, env: &Environment) -> Result<AwsSettings, ConfigError> {
        let credentials_path = env
            .get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| env.home_path(".aws/credentials"));
        let config_path = env.get("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| env.home_path(".aws/config"));
        let credentials_file = SharedFile::read(&credentials_path, FileKind::Credentials)?;
        let config_file = SharedFile::read(&config_path, FileKind::Config)?;
        let named = overrides.profile.clone().or_else(|| env.get("AWS_PROFILE").map(str::to_owned));
        let profile_name = named.clone().unwrap_or_else(|| "default".to_owned());
        let from_credentials = credentials_file.profile(&profile_name);
        let from_config = config_file.profile(&profile_name);
        if named.is_some() && from_credentials.is_none() && from_config.is_none() {
            return Err(ConfigError::NoSuchProfile {
                profile: profile_name,
                credentials_file: credentials_path.display().to_string(),
                config_file: config_path.display().to_string(),
            });
        }
        let profile = Profile { name: &profile_name, sections: [from_credentials, from_config] };

        let from_env = match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Credentials {
                access_key_id: id.to_owned(),
                secret_access_key: Zeroizing::new(secret.to_owned()),
                session_token: env.get("AWS_SESSION_TOKEN").map(str::to_owned),
            }),
            _ => None,
        };
        let credentials = match (overrides.profile.is_some(), from_env) {
            (false, Some(credentials)) => credentials,
            _ => profile.credentials()?.ok_or_else(|| ConfigError::NoCredentials {
                profile: profile_name.clone(),
                credentials_file: credentials_path.display().to_string(),
            })?,
        };
        let region = overrides
            .region
            .clone()
            .or_else(|| env.get("AWS_REGION").map(str::to_owned))
            .or_else(|| env.get("AWS_DEFAULT_REGION").map(str::to_owned))
            .or_else(|| from_config.and_then(|section| section.get("region")).cloned());
        // Endpoints configured in the environment or the profile, unless the SDKs' switch turns them off.
        let configured =
            !env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint_url = overrides.endpoint_url.clone().or_else(|| {
            configured
                .then(|| {
                    env.get("AWS_ENDPOINT_URL_KMS")
                        .or_else(|| env.get("AWS_ENDPOINT_URL"))
                        .map(str::to_owned)
                        .or_else(|| from_config.and_then(|section| section.get("endpoint_url")).cloned())
                })
                .flatten()
        });
        let ca_bundle = overrides
            .ca_bundle
            .clone()
            .or_else(|| env.get("AWS_CA_BUNDLE").map(PathBuf::from))
            .or_else(|| from_config.and_then(|section| section.get("ca_bundle")).map(PathBuf::from));
        Ok(AwsSettings {
            credentials,
            region,
            endpoint_url,
            ca_bundle,
            profile: profile_name,
            config_file: config_path.display().to_string(),
        })
    }

    /// The region for a call: the key ARN's when the key is one (as the AWS Encryption SDK's strict mode calls the
    /// key's own region), else the configured one.
    pub fn region_for(&self, key: &str) -> Result<String, ConfigError> {
        if key.starts_with("arn:") {
            // The region becomes the endpoint's host name: only a region's name may get there.
            return arn_region(key)
                .map(str::to_owned)
                .ok_or_else(|| ConfigError::BadRegion { key: key.escape_debug().to_string() });
        }
        self.region.clone().ok_or_else(|| ConfigError::NoRegion {
            profile: self.profile.clone(),
            config_file: self.config_file.clone(),
        })
    }

    /// The KMS endpoint for `region`: the configured one, else AWS's (`amazonaws.com.cn` in the China regions).
    pub fn endpoint_for(&self, region: &str) -> String {
        match &self.endpoint_url {
            Some(url) => url.clone(),
            None if region.starts_with("cn-") => format!("https://kms.{region}.amazonaws.com.cn"),
            None => format!("https://kms.{region}.amazonaws.com"),
        }
    }
}

/// The region of a KMS key or alias ARN (`arn:<partition>:kms:<region>:<account>:key/<id>`), if `key` is one,
/// as the KMS itself parses key references.
pub fn arn_region(key: &str) -> Option<&str> {
    match KeyRef::parse(key).ok()? {
        KeyRef::KeyArn { region, .. } | KeyRef::AliasArn { region, .. } => Some(region).filter(|r| is_region(r)),
        KeyRef::Id(_) | KeyRef::Alias(_) => None,
    }
}

/// Whether `name` has a region's shape (`us-east-1`, `cn-north-1`, `eu-de`): lowercase letters and digits in
/// words joined by single hyphens, as botocore requires of a region before it becomes part of a host name.
pub fn is_region(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// One profile, as its sections in the credentials file and the config file give it (the credentials file wins).
struct Profile<'a> {
    name: &'a str,
    sections: [Option<&'a BTreeMap<String, String>>; 2],
}

impl Profile<'_> {
    fn credentials(&self) -> Result<Option<Credentials>, ConfigError> {
        for section in self.sections.into_iter().flatten() {
            let id = section.get("aws_access_key_id").filter(|value| !value.is_empty());
            let secret = section.get("aws_secret_access_key").filter(|value| !value.is_empty());
            let half = |present, missing| ConfigError::HalfAKey { profile: self.name.to_owned(), present, missing };
            match (id, secret) {
                (Some(id), Some(secret)) => {
                    return Ok(Some(Credentials {
                        access_key_id: id.clone(),
                        secret_access_key: Zeroizing::new(secret.clone()),
                        session_token: section.get("aws_session_token").filter(|token| !token.is_empty()).cloned(),
                    }));
                }
                (Some(_), None) => return Err(half("aws_access_key_id", "aws_secret_access_key")),
                (None, Some(_)) => return Err(half("aws_secret_access_key", "aws_access_key_id")),
                (None, None) => {}
            }
        }
        for section in self.sections.into_iter().flatten() {
            for setting in ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"]
            {
                if section.contains_key(setting) {
                    return Err(ConfigError::UnsupportedSource {
                        profile: self.name.to_owned(),
                        setting: setting.to_owned(),
                    });
                }
            }
        }
        Ok(None)
    }
}

/// Which shared file: they name their sections differently (`[name]` vs `[profile name]` / `[default]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Credentials,
    Config,
}

/// A parsed shared file: profile name → settings. Other sections of the config file (`[sso-session x]`,
/// `[services x]`) and nested settings (`s3 =` followed by indented lines) are skipped.
#[derive(Debug, Default)]
struct SharedFile {
    profiles: BTreeMap<String, BTreeMap<String, String>>,
}

impl SharedFile {
    /// Reads `path`; a file that does not exist is an empty one.
    fn read(path: &Path, kind: FileKind) -> Result<SharedFile, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SharedFile::parse(&text, kind)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(SharedFile::default()),
            Err(source) => Err(ConfigError::Read { path: path.display().to_string(), source }),
        }
    }

    fn parse(text: &str, kind: FileKind) -> SharedFile {
        let mut profiles: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|rest| rest.split(']').next()) {
                let name = name.trim();
                current = match kind {
                    FileKind::Credentials => Some(name.to_owned()),
                    FileKind::Config if name == "default" => Some(name.to_owned()),
                    FileKind::Config => name
                        .strip_prefix("profile")
                        .filter(|rest| rest.starts_with(char::is_whitespace))
                        .map(|rest| rest.trim().to_owned()),
                };
                if let Some(name) = &current {
                    profiles.entry(name.clone()).or_default();
                }
                continue;
            }
            // Indented lines continue a nested setting (`s3 =` then `  addressing_style = path`).
            if line.starts_with(char::is_whitespace) {
                continue;
            }
            let (Some(profile), Some((key, value))) = (&current, trimmed.split_once('=')) else { continue };
            let value = value.trim();
            // An inline comment needs whitespace before it, as in botocore.
            let value = value.split(" #").next().unwrap_or(value).split(" ;").next().unwrap_or(value).trim();
            profiles.entry(profile.clone()).or_default().insert(key.trim().to_ascii_lowercase(), value.to_owned());
        }
        SharedFile { profiles }
    }

    fn profile(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.profiles.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message names its keys, and a key ARN's region becomes the endpoint's host name: only a region's name may.
    #[test]
    fn a_key_arn_whose_region_is_no_region_is_not_called() {
        let dir = tempfile::tempdir().unwrap();
        let settings = resolve(&[], &home(dir.path(), CREDENTIALS, CONFIG), &Overrides::default()).unwrap();
        let key = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(settings.region_for(key).unwrap(), "eu-central-1");
        assert_eq!(settings.region_for("alias/x").unwrap(), "eu-west-1", "the profile's region");
        for bad in
            ["arn:aws:kms:x@attacker.example/:1:key/a", "arn:aws:kms:US-EAST-1:1:key/a", "arn:aws:kms:a--b:1:key/a"]
        {
            let error = settings.region_for(bad).unwrap_err();
            assert!(matches!(error, ConfigError::BadRegion { .. }), "{bad}: {error}");
            assert_eq!(arn_region(bad), None);
        }
        assert!(is_region("cn-north-1") && is_region("eu-de") && !is_region("") && !is_region("us-east-1."));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An environment whose home is `dir` (with `~/.aws/credentials` and `~/.aws/config` as given).
    fn home(dir: &Path, credentials: &str, config: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        write(dir, ".aws/credentials", credentials);
        write(dir, ".aws/config", config);
        dir.to_path_buf()
    }

    fn resolve(pairs: &[(&str, &str)], home: &Path, overrides: &Overrides) -> Result<AwsSettings, ConfigError> {
        AwsSettings::resolve(overrides, &Environment::from_pairs(pairs.iter().copied(), Some(home)))
    }

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = default-secret

[work]
aws_access_key_id=AKWORK
aws_secret_access_key=work-secret # a comment
aws_session_token = work-token
";
    const CONFIG: &str = "\
[default]
region = eu-west-1
s3 =
  addressing_style = path

[profile work]
region = ap-southeast-2
ca_bundle = /etc/work-ca.pem

[profile roles]
role_arn = arn:aws:iam::123456789012:role/x
source_profile = default

[sso-session corp]
region = us-west-2
";

    #[test]
    fn environment_credentials_win_unless_a_profile_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = home(dir.path(), CREDENTIALS, CONFIG);
        let env = [("AWS_ACCESS_KEY_ID", "AKENV"), ("AWS_SECRET_ACCESS_KEY", "env-secret"), ("AWS_SESSION_TOKEN", "t")];
        let settings = resolve(&env, &home, &Overrides::default()).unwrap();
        assert_eq!(settings.credentials.access_key_id, "AKENV");
        assert_eq!(settings.credentials.session_token.as_deref(), Some("t"));
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        // AWS_PROFILE chooses the profile's region, but the environment's keys still win (as in the SDKs).
        let with_profile = [env[0], env[1], ("AWS_PROFILE", "work")];
        let settings = resolve(&with_profile, &home, &Overrides::default()).unwrap();
        assert_eq!(
            (settings.credentials.access_key_id.as_str(), settings.region.as_deref()),
            ("AKENV", Some("ap-southeast-2"))
        );
        // --profile wins over the environment's keys.
        let overrides = Overrides { profile: Some("work".into()), ..Overrides::default() };
        let settings = resolve(&env, &home, &overrides).unwrap();
        assert_eq!(settings.credentials.access_key_id, "AKWORK");
        assert_eq!(settings.credentials.secret_access_key.as_str(), "work-secret");
        assert_eq!(settings.credentials.session_token.as_deref(), Some("work-token"));
        assert_eq!(settings.ca_bundle.as_deref(), Some(Path::new("/etc/work-ca.pem")));
        // No keys in the environment: the default profile.
        let settings = resolve(&[], &home, &Overrides::default()).unwrap();
        assert_eq!(settings.credentials.access_key_id, "AKDEFAULT");
        assert!(!format!("{:?}", settings.credentials).contains("default-secret"));
    }

    #[test]
    fn region_endpoint_and_bundle_follow_the_sdks_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = home(dir.path(), CREDENTIALS, CONFIG);
        let mut env = vec![("AWS_DEFAULT_REGION", "us-east-2")];
        assert_eq!(resolve(&env, &home, &Overrides::default()).unwrap().region.as_deref(), Some("us-east-2"));
        env.push(("AWS_REGION", "us-west-1"));
        assert_eq!(resolve(&env, &home, &Overrides::default()).unwrap().region.as_deref(), Some("us-west-1"));
        let overrides = Overrides { region: Some("sa-east-1".into()), ..Overrides::default() };
        let settings = resolve(&env, &home, &overrides).unwrap();
        assert_eq!(settings.region.as_deref(), Some("sa-east-1"));
        assert_eq!(settings.endpoint_for("sa-east-1"), "https://kms.sa-east-1.amazonaws.com");
        assert_eq!(settings.endpoint_for("cn-north-1"), "https://kms.cn-north-1.amazonaws.com.cn");
        // A key ARN's region wins for that key; an alias or key id takes the configured region.
        let arn = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(settings.region_for(arn).unwrap(), "eu-central-1");
        assert_eq!(settings.region_for("alias/x").unwrap(), "sa-east-1");
        env.push(("AWS_ENDPOINT_URL", "http://generic:1"));
        assert_eq!(resolve(&env, &home, &overrides).unwrap().endpoint_for("x"), "http://generic:1");
        env.push(("AWS_ENDPOINT_URL_KMS", "http://kms-only:2"));
        assert_eq!(resolve(&env, &home, &overrides).unwrap().endpoint_for("x"), "http://kms-only:2");
        let flags = Overrides { endpoint_url: Some("http://flag:3".into()), ..Overrides::default() };
        assert_eq!(resolve(&env, &home, &flags).unwrap().endpoint_for("x"), "http://flag:3");
        // The switch that turns configured endpoints off leaves AWS's (and the flag's).
        let ignoring = [env.as_slice(), &[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]].concat();
        assert_eq!(resolve(&ignoring, &home, &overrides).unwrap().endpoint_for("x"), "https://kms.x.amazonaws.com");
        assert_eq!(resolve(&ignoring, &home, &flags).unwrap().endpoint_for("x"), "http://flag:3");
        env.push(("AWS_CA_BUNDLE", "/env/ca.pem"));
        assert_eq!(resolve(&env, &home, &flags).unwrap().ca_bundle.as_deref(), Some(Path::new("/env/ca.pem")));
        let bundle = Overrides { ca_bundle: Some("/flag/ca.pem".into()), ..Overrides::default() };
        assert_eq!(resolve(&env, &home, &bundle).unwrap().ca_bundle.as_deref(), Some(Path::new("/flag/ca.pem")));
    }

    #[test]
    fn a_profile_may_name_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let config = "[profile local]\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:4566\n";
        let home = home(dir.path(), CREDENTIALS, config);
        let env = [("AWS_PROFILE", "local"), ("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let settings = resolve(&env, &home, &Overrides::default()).unwrap();
        assert_eq!(settings.endpoint_for("eu-west-3"), "http://127.0.0.1:4566");
        let over = [env.as_slice(), &[("AWS_ENDPOINT_URL", "http://env:1")]].concat();
        assert_eq!(resolve(&over, &home, &Overrides::default()).unwrap().endpoint_for("x"), "http://env:1");
    }

    #[test]
    fn file_locations_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = write(dir.path(), "creds", "[p]\naws_access_key_id = AKP\naws_secret_access_key = s\n");
        let config = write(dir.path(), "conf", "[profile p]\nregion = me-south-1\n");
        let env = [
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_PROFILE", "p"),
        ];
        let settings = resolve(&env, Path::new("/nonexistent"), &Overrides::default()).unwrap();
        assert_eq!(
            (settings.credentials.access_key_id.as_str(), settings.region.as_deref()),
            ("AKP", Some("me-south-1"))
        );
    }

    #[test]
    fn what_cannot_be_resolved_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let home = home(dir.path(), "[half]\naws_access_key_id = AK\n", CONFIG);
        let none = resolve(&[], Path::new("/nonexistent"), &Overrides::default()).unwrap_err();
        assert!(matches!(none, ConfigError::NoCredentials { .. }), "{none}");
        let named = |name: &str| Overrides { profile: Some(name.into()), ..Overrides::default() };
        assert!(matches!(resolve(&[], &home, &named("nope")), Err(ConfigError::NoSuchProfile { .. })));
        assert!(matches!(resolve(&[], &home, &named("half")), Err(ConfigError::HalfAKey { .. })));
        let roles = resolve(&[], &home, &named("roles")).unwrap_err();
        assert!(matches!(&roles, ConfigError::UnsupportedSource { setting, .. } if setting == "role_arn"), "{roles}");
        // The [sso-session corp] section is not a profile.
        assert!(matches!(resolve(&[], &home, &named("corp")), Err(ConfigError::NoSuchProfile { .. })));
        let env = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let settings = resolve(&env, Path::new("/nonexistent"), &Overrides::default()).unwrap();
        assert!(matches!(settings.region_for("alias/x"), Err(ConfigError::NoRegion { .. })));
        // An empty variable counts as unset.
        let empty = [("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "s")];
        assert!(resolve(&empty, Path::new("/nonexistent"), &Overrides::default()).is_err());
    }

    #[test]
    fn arns_name_their_region() {
        assert_eq!(arn_region("arn:aws:kms:us-east-1:000000000000:key/abc"), Some("us-east-1"));
        assert_eq!(arn_region("arn:aws-cn:kms:cn-north-1:000000000000:alias/x"), Some("cn-north-1"));
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_region("alias/x"), None);
        assert_eq!(arn_region("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
    }
}
