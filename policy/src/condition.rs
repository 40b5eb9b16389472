//! The `Condition` element: operators, their values compiled at parse time, and their evaluation.
//!
//! From "IAM JSON policy elements: Condition operators" and "Conditions with multiple context keys
//! or values": operators are AND'ed, keys under one operator AND'ed, values of one key OR'ed — NOR'ed
//! under a negated operator. A key the request lacks makes a condition false, except that a negated
//! operator (`StringNotEquals`, `NotIpAddress`, `ArnNotLike`, ...) is then true, `...IfExists` is
//! true, `ForAllValues:` is true and `ForAnyValue:` false; `Null` tests presence itself.
//!
//! With several request values and no set qualifier, a positive operator holds when any request
//! value matches any policy value, and a negated one when none does (the negation of the positive
//! operator). Under `ForAllValues:` / `ForAnyValue:` the operator, negated or not, is applied to each
//! request value on its own and the results are AND'ed / OR'ed ("Single-valued vs. multivalued
//! context keys").

use std::net::IpAddr;

use serde_json::Value;

use crate::context::{Env, Key};
use crate::date::{self, Instant};
use crate::error::{ErrorKind, PolicyError, Result};
use crate::pattern::{Case, Pattern};

/// One operator applied to one key: `"StringEquals": {"aws:username": ["a", "b"]}` yields one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// The operator as written (for `is_public` and diagnostics).
    pub(crate) operator: Operator,
    pub(crate) key: Key,
    pub(crate) values: Values,
}

/// A parsed operator name: `ForAnyValue:StringNotLikeIfExists` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) family: Family,
    /// `StringNotEquals`, `NumericNotEquals`, `DateNotEquals`, `NotIpAddress`, `ArnNot*`, ...
    pub(crate) negated: bool,
    /// `...IfExists`.
    pub(crate) if_exists: bool,
    /// `ForAllValues:` / `ForAnyValue:`.
    pub(crate) set: Option<SetQualifier>,
}

/// The set qualifier of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// What an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    Binary,
    IpAddress,
    /// `ArnEquals` and `ArnLike` "behave identically".
    Arn,
    Null,
}

/// How a numeric or date operator compares the request's value with the policy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

/// A condition's policy values, read for its operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    /// String, ARN-as-string and Bool operators: patterns (with wildcards for `StringLike`).
    Patterns(Vec<Pattern>),
    /// ARN operators: each value's six `:`-separated parts, or `None` for a value that has fewer
    /// (which matches nothing).
    Arns(Vec<Option<Box<[Pattern; 6]>>>),
    Numbers(Vec<f64>),
    Dates(Vec<Instant>),
    Networks(Vec<Network>),
    /// `BinaryEquals`: base64 text, compared exactly.
    Binary(Vec<String>),
    /// `Null`: `true` (the key must be absent) or `false` (present).
    Null(Vec<bool>),
}

/// An address range of `IpAddress` (a bare address is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Network {
    address: IpAddr,
    pub(crate) prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => prefix.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Network { address, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl Operator {
    /// Reads an operator's name; operator names compare without regard to case.
    fn parse(name: &str) -> Option<Operator> {
        let mut rest = name;
        let mut set = None;
        if let Some((qualifier, after)) = rest.split_once(':') {
            set = Some(match qualifier.to_ascii_lowercase().as_str() {
                "forallvalues" => SetQualifier::ForAllValues,
                "foranyvalue" => SetQualifier::ForAnyValue,
                _ => return None,
            });
            rest = after;
        }
        let lower = rest.to_ascii_lowercase();
        let (base, if_exists) = match lower.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (lower.as_str(), false),
        };
        use Comparison as C;
        use Family as F;
        let (family, negated) = match base {
            "stringequals" => (F::StringEquals, false),
            "stringnotequals" => (F::StringEquals, true),
            "stringequalsignorecase" => (F::StringEqualsIgnoreCase, false),
            "stringnotequalsignorecase" => (F::StringEqualsIgnoreCase, true),
            "stringlike" => (F::StringLike, false),
            "stringnotlike" => (F::StringLike, true),
            "numericequals" => (F::Numeric(C::Equals), false),
            "numericnotequals" => (F::Numeric(C::Equals), true),
            "numericlessthan" => (F::Numeric(C::LessThan), false),
            "numericlessthanequals" => (F::Numeric(C::LessThanEquals), false),
            "numericgreaterthan" => (F::Numeric(C::GreaterThan), false),
            "numericgreaterthanequals" => (F::Numeric(C::GreaterThanEquals), false),
            "dateequals" => (F::Date(C::Equals), false),
            "datenotequals" => (F::Date(C::Equals), true),
            "datelessthan" => (F::Date(C::LessThan), false),
            "datelessthanequals" => (F::Date(C::LessThanEquals), false),
            "dategreaterthan" => (F::Date(C::GreaterThan), false),
            "dategreaterthanequals" => (F::Date(C::GreaterThanEquals), false),
            "bool" => (F::Bool, false),
            "binaryequals" => (F::Binary, false),
            "ipaddress" => (F::IpAddress, false),
            "notipaddress" => (F::IpAddress, true),
            "arnequals" | "arnlike" => (F::Arn, false),
            "arnnotequals" | "arnnotlike" => (F::Arn, true),
            "null" if !if_exists && set.is_none() => (F::Null, false),
            _ => return None,
        };
        Some(Operator { family, negated, if_exists, set })
    }
}

/// Parses a `Condition` element. `variables`: whether the policy's version substitutes variables.
pub(crate) fn parse_block(value: &Value, variables: bool) -> Result<Vec<Condition>> {
    let syntax = || PolicyError::new(ErrorKind::InvalidElement("Condition"));
    let Value::Object(block) = value else {
        return Err(syntax());
    };
    let mut conditions = Vec::new();
    for (name, keys) in block {
        let operator =
            Operator::parse(name).ok_or_else(|| PolicyError::new(ErrorKind::InvalidConditionOperator(name.clone())))?;
        let Value::Object(keys) = keys else {
            return Err(syntax());
        };
        for (key, values) in keys {
            if !key.contains(':') || key.starts_with(':') {
                return Err(PolicyError::new(ErrorKind::InvalidConditionKey(key.clone())));
            }
            let texts = condition_values(values).ok_or_else(syntax)?;
            let values = compile(name, operator, &texts, variables)?;
            conditions.push(Condition { operator, key: Key::new(key), values });
        }
    }
    Ok(conditions)
}

/// A condition's values as text: a string, number or boolean, or a list of them.
fn condition_values(value: &Value) -> Option<Vec<String>> {
    let one = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|text| vec![text]),
    }
}

fn compile(name: &str, operator: Operator, texts: &[String], variables: bool) -> Result<Values> {
    let invalid = |text: &str| {
        PolicyError::new(ErrorKind::InvalidConditionValue { operator: name.to_owned(), value: text.to_owned() })
    };
    let values = match operator.family {
        Family::StringEquals | Family::StringEqualsIgnoreCase => {
            Values::Patterns(texts.iter().map(|text| Pattern::parse(text, false, variables)).collect())
        }
        Family::StringLike => {
            Values::Patterns(texts.iter().map(|text| Pattern::parse(text, true, variables)).collect())
        }
        Family::Bool => {
            let patterns: Vec<Pattern> = texts.iter().map(|text| Pattern::parse(text, false, variables)).collect();
            for (text, pattern) in texts.iter().zip(&patterns) {
                if !pattern.has_variables() && !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false")
                {
                    return Err(invalid(text));
                }
            }
            Values::Patterns(patterns)
        }
        Family::Arn => Values::Arns(
            texts
                .iter()
                .map(|text| {
                    let parts: Vec<&str> = text.splitn(6, ':').collect();
                    <[&str; 6]>::try_from(parts)
                        .ok()
                        .map(|parts| Box::new(parts.map(|part| Pattern::parse(part, true, variables))))
                })
                .collect(),
        ),
        Family::Numeric(_) => {
            Values::Numbers(texts.iter().map(|text| number(text).ok_or_else(|| invalid(text))).collect::<Result<_>>()?)
        }
        Family::Date(_) => Values::Dates(
            texts.iter().map(|text| date::parse(text).ok_or_else(|| invalid(text))).collect::<Result<_>>()?,
        ),
        Family::IpAddress => Values::Networks(
            texts.iter().map(|text| Network::parse(text).ok_or_else(|| invalid(text))).collect::<Result<_>>()?,
        ),
        Family::Binary => {
            for text in texts {
                if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                    return Err(invalid(text));
                }
            }
            Values::Binary(texts.to_vec())
        }
        Family::Null => Values::Null(
            texts
                .iter()
                .map(|text| match text.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(invalid(text)),
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(values)
}

/// A decimal number: digits with an optional sign, point and exponent (no `inf`, no `NaN`).
fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    let plain = text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !plain || !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn compare<T: PartialOrd>(request: T, policy: T, comparison: Comparison) -> bool {
    match comparison {
        Comparison::Equals => request == policy,
        Comparison::LessThan => request < policy,
        Comparison::LessThanEquals => request <= policy,
        Comparison::GreaterThan => request > policy,
        Comparison::GreaterThanEquals => request >= policy,
    }
}

impl Condition {
    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, env: &Env<'_>) -> bool {
        let request = env.values(&self.key);
        if let Values::Null(expected) = &self.values {
            let absent = request.is_none();
            return expected.contains(&absent);
        }
        let operator = self.operator;
        let Some(request) = request else {
            if operator.if_exists {
                return true;
            }
            return match operator.set {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => operator.negated,
            };
        };
        let one = |value: &String| self.matches_any(value, env) != operator.negated;
        match operator.set {
            Some(SetQualifier::ForAllValues) => request.iter().all(one),
            Some(SetQualifier::ForAnyValue) => request.iter().any(one),
            None => request.iter().any(|value| self.matches_any(value, env)) != operator.negated,
        }
    }

    /// Whether one request value matches any of the policy's values (the operator un-negated).
    fn matches_any(&self, value: &str, env: &Env<'_>) -> bool {
        match (&self.values, self.operator.family) {
            (Values::Patterns(patterns), family) => {
                let case = match family {
                    Family::StringEqualsIgnoreCase => Case::Insensitive,
                    Family::Bool => Case::AsciiInsensitive,
                    _ => Case::Sensitive,
                };
                patterns.iter().any(|pattern| pattern.matches(value, case, env))
            }
            (Values::Arns(arns), _) => {
                let mut parts = value.splitn(6, ':');
                let parts: [&str; 6] = std::array::from_fn(|_| parts.next().unwrap_or(""));
                if value.matches(':').count() < 5 {
                    return false;
                }
                arns.iter().flatten().any(|pattern| {
                    pattern.iter().zip(parts).all(|(pattern, part)| pattern.matches(part, Case::Sensitive, env))
                })
            }
            (Values::Numbers(numbers), Family::Numeric(comparison)) => {
                number(value).is_some_and(|value| numbers.iter().any(|&policy| compare(value, policy, comparison)))
            }
            (Values::Dates(dates), Family::Date(comparison)) => {
                date::parse(value).is_some_and(|value| dates.iter().any(|&policy| compare(value, policy, comparison)))
            }
            (Values::Networks(networks), _) => value
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|address| networks.iter().any(|network| network.contains(address))),
            (Values::Binary(binary), _) => binary.iter().any(|policy| policy == value),
            _ => false,
        }
    }

    /// Whether the condition confines a request to fixed values of its key: positive, not
    /// `...IfExists` nor `ForAllValues:` (which a request without the key satisfies), and every
    /// value without wildcards and variables; an address range no broader than `/8` (IPv4) or
    /// `/32` (IPv6). Used by [`crate::Policy::is_public`].
    pub(crate) fn confines_to_fixed_values(&self) -> bool {
        let operator = self.operator;
        if operator.negated || operator.if_exists || operator.set == Some(SetQualifier::ForAllValues) {
            return false;
        }
        match &self.values {
            Values::Patterns(patterns) => {
                !patterns.is_empty()
                    && matches!(
                        operator.family,
                        Family::StringEquals | Family::StringEqualsIgnoreCase | Family::StringLike
                    )
                    && patterns.iter().all(|pattern| pattern.as_literal().is_some_and(|text| !text.is_empty()))
            }
            Values::Arns(arns) => {
                !arns.is_empty()
                    && arns.iter().all(|arn| {
                        arn.as_ref().is_some_and(|parts| parts.iter().all(|part| part.as_literal().is_some()))
                    })
            }
            Values::Networks(networks) => {
                !networks.is_empty()
                    && networks.iter().all(|network| network.prefix >= if network.address.is_ipv4() { 8 } else { 32 })
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_read_with_qualifiers_and_if_exists() {
        let operator = Operator::parse("ForAnyValue:StringNotLikeIfExists").expect("valid");
        assert_eq!(operator.family, Family::StringLike);
        assert!(operator.negated && operator.if_exists);
        assert_eq!(operator.set, Some(SetQualifier::ForAnyValue));
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("StringEqualz").is_none());
        assert!(Operator::parse("ForSomeValues:StringEquals").is_none());
        assert!(Operator::parse("BinaryNotEquals").is_none());
    }

    #[test]
    fn networks_default_to_a_single_address_and_mask_their_host_bits() {
        let network = Network::parse("203.0.113.0/24").expect("valid");
        assert!(network.contains("203.0.113.255".parse().expect("ip")));
        assert!(!network.contains("203.0.114.0".parse().expect("ip")));
        let single = Network::parse("192.0.2.7").expect("valid");
        assert_eq!(single.prefix, 32);
        let v6 = Network::parse("2001:DB8:1234:5678::/64").expect("valid");
        assert!(v6.contains("2001:db8:1234:5678:ffff::1".parse().expect("ip")));
        assert!(!v6.contains("203.0.113.1".parse().expect("ip")));
        assert!(Network::parse("0.0.0.0/0").expect("valid").contains("8.8.8.8".parse().expect("ip")));
        for bad in ["300.1.1.1", "10.0.0.0/33", "10.0.0.0/", "example.com"] {
            assert!(Network::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn numbers_are_decimal_text_only() {
        assert_eq!(number("10"), Some(10.0));
        assert_eq!(number("-2.5e1"), Some(-25.0));
        assert_eq!(number("inf"), None);
        assert_eq!(number("NaN"), None);
        assert_eq!(number("ten"), None);
    }
}
