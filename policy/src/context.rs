//! The request context: the condition keys of one request and their values.
//!
//! "Key names are case-insensitive. For example, `aws:CurrentTime` is equivalent to
//! `AWS:currenttime`" (IAM policy elements: Variables and tags), so keys are kept lowercased — tag
//! keys in `aws:PrincipalTag/...`, `aws:ResourceTag/...` and `aws:RequestTag/...` included, as IAM
//! compares tag keys without regard to case. Values are strings; each operator reads them as it
//! needs (numbers, dates, addresses) when it compares.

use crate::principal::Principal;

/// The condition keys of one request and their values (`aws:SourceIp` → `192.0.2.10`,
/// `kms:EncryptionContextKeys` → [`AppName`, `Purpose`]).
///
/// The principal-derived keys (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`,
/// `aws:userid`, `aws:PrincipalType`, `aws:PrincipalTag/*`, `aws:PrincipalIsAWSService`,
/// `aws:PrincipalServiceName`) come from the request's [`Principal`]; a caller need not add them
/// and cannot override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Each key (lowercased) with its values in the order given. A short list beats a hash map for
    /// the dozen keys a request carries.
    entries: Vec<(String, Vec<String>)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// Adds `value` to `key`'s values (a key given twice is multivalued).
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.values_mut(key).push(value.into());
        self
    }

    /// Adds every one of `values` to `key`'s values. A key given with no values is present but
    /// empty, which every operator treats as absent ("If the key values in the request resolve to
    /// an empty data set ..., ForAllValues returns true, and ForAnyValue returns false").
    pub fn insert_all<I, S>(&mut self, key: &str, values: I) -> &mut Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.values_mut(key).extend(values.into_iter().map(Into::into));
        self
    }

    /// The context with `value` added to `key`, for building one in an expression.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.insert(key, value);
        self
    }

    /// The values of `key` (in any case), if it was given.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entries.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, values)| values.as_slice())
    }

    /// The values of a key already lowercased.
    pub(crate) fn get_lowercase(&self, key: &str) -> Option<&[String]> {
        self.entries.iter().find(|(name, _)| name == key).map(|(_, values)| values.as_slice())
    }

    fn values_mut(&mut self, key: &str) -> &mut Vec<String> {
        let key = key.to_ascii_lowercase();
        match self.entries.iter().position(|(name, _)| *name == key) {
            Some(index) => &mut self.entries[index].1,
            None => {
                self.entries.push((key, Vec::new()));
                &mut self.entries.last_mut().expect("just pushed").1
            }
        }
    }
}

/// A condition key as a policy names it, read once at parse time: lowercased, and, for the keys
/// the principal supplies, which of them it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// The key, lowercased.
    pub(crate) name: String,
    /// Set when the evaluator takes the value from the principal.
    derived: Option<Derived>,
}

/// The keys whose values come from the request's principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Derived {
    PrincipalArn,
    PrincipalAccount,
    Username,
    Userid,
    PrincipalType,
    IsAwsService,
    ServiceName,
    /// `aws:PrincipalTag/<tag key>`, the tag key lowercased.
    PrincipalTag(String),
}

impl Key {
    pub(crate) fn new(key: &str) -> Key {
        let name = key.trim().to_ascii_lowercase();
        let derived = match name.as_str() {
            "aws:principalarn" => Some(Derived::PrincipalArn),
            "aws:principalaccount" => Some(Derived::PrincipalAccount),
            "aws:username" => Some(Derived::Username),
            "aws:userid" => Some(Derived::Userid),
            "aws:principaltype" => Some(Derived::PrincipalType),
            "aws:principalisawsservice" => Some(Derived::IsAwsService),
            "aws:principalservicename" => Some(Derived::ServiceName),
            other => other.strip_prefix("aws:principaltag/").map(|tag| Derived::PrincipalTag(tag.to_owned())),
        };
        Key { name, derived }
    }
}

/// What a statement is evaluated against: the principal and the request's context.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) context: &'a Context,
}

impl<'a> Env<'a> {
    /// The values of `key`, or `None` when the request has none (absent or empty).
    pub(crate) fn values(&self, key: &Key) -> Option<&'a [String]> {
        let values = match &key.derived {
            Some(derived) => self.principal.derived(derived).or_else(|| self.context.get_lowercase(&key.name)),
            None => self.context.get_lowercase(&key.name),
        };
        values.filter(|values| !values.is_empty())
    }

    /// The value a policy variable stands for: the key's one value. A key with several values
    /// stands for none, as it cannot be written as one string.
    pub(crate) fn single(&self, key: &Key) -> Option<&'a str> {
        match self.values(key) {
            Some([value]) => Some(value.as_str()),
            _ => None,
        }
    }
}
