//! The account's keys counted and found: user-quotas, user-instances and resource_instances (keys by tag), read
//! from the core's key records of the caller's account in kmsim's region.
//!
//! Like the real service, these count only the customer's own keys (Huawei: "the quota does not include Default
//! Master Keys"; user-instances' `instance_num` is the number of non-default keys), in any state.

use serde_json::{Map, Value, json};

use super::{Call, OtcError, key_info};
use crate::model::{KeyManager, KeyRecord};

/// The CMK quota user-quotas reports: the value of Huawei's and OTC's API reference example. kmsim does not
/// enforce it (create-key goes on beyond it, and `used` then exceeds `quota`).
pub const CMK_QUOTA: usize = 20;
/// The grants-per-CMK quota user-quotas reports (the API reference example's); not enforced either.
pub const GRANTS_PER_CMK_QUOTA: usize = 100;

/// Most `tags` a resource_instances filter takes (a key has at most 10 tag keys).
const MAX_FILTER_TAGS: usize = 10;
/// Longest tag key and tag value a filter takes, in characters.
const MAX_TAG_KEY_CHARS: usize = 36;
const MAX_TAG_VALUE_CHARS: usize = 43;
/// Longest `matches` value, in characters.
const MAX_MATCH_VALUE_CHARS: usize = 255;

/// What resource_instances asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// A page of the matching keys, and their number.
    Filter,
    /// Only their number.
    Count,
}

/// One `tags` entry of a resource_instances filter: a key that has the tag `key` with one of `values` (any value
/// when there are none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TagFilter {
    key: String,
    values: Vec<String>,
}

impl TagFilter {
    fn matches(&self, record: &KeyRecord) -> bool {
        record.tags.iter().any(|t| t.key == self.key && (self.values.is_empty() || self.values.contains(&t.value)))
    }
}

impl Call<'_> {
    /// The caller's own (non-default) keys.
    fn customer_keys(&self) -> Result<Vec<KeyRecord>, OtcError> {
        Ok(self.own_keys()?.into_iter().filter(|r| r.manager == KeyManager::Customer).collect())
    }

    /// user-quotas: the keys made (`CMK`) and the most grants on any one of them (`grant_per_CMK`).
    pub(super) fn user_quotas(&mut self) -> Result<Value, OtcError> {
        let keys = self.customer_keys()?;
        let most_grants = keys.iter().map(|r| r.grants.len()).max().unwrap_or(0);
        Ok(json!({"quotas": {"resources": [
            {"type": "CMK", "used": keys.len(), "quota": CMK_QUOTA},
            {"type": "grant_per_CMK", "used": most_grants, "quota": GRANTS_PER_CMK_QUOTA},
        ]}}))
    }

    /// user-instances: the number of the caller's keys.
    pub(super) fn user_instances(&mut self) -> Result<Value, OtcError> {
        Ok(json!({"instance_num": self.customer_keys()?.len()}))
    }

    /// resource_instances: the caller's keys that have every tag of `tags` and whose alias contains the
    /// `resource_name` of `matches`; `filter` answers a page of them (`offset`, `limit`), `count` their number.
    pub(super) fn resource_instances(&mut self) -> Result<Value, OtcError> {
        let action = match self.str("action")? {
            "filter" => Action::Filter,
            "count" => Action::Count,
            other => return Err(OtcError::bad("KMS.0404", format!("Invalid action {other}: filter or count."))),
        };
        let limit = match self.opt_int("limit")? {
            None => 10,
            Some(n @ 1..=1000) => n as usize,
            Some(_) => return Err(OtcError::bad("KMS.1601", "limit must be between 1 and 1000.")),
        };
        let offset = match self.opt_int("offset")? {
            None => 0,
            Some(n) if n >= 0 => n as usize,
            Some(_) => return Err(OtcError::bad("KMS.0417", "offset must be a number greater than or equal to 0.")),
        };
        let tags = tag_filters(self.body.get("tags"))?;
        let name = resource_name_match(self.body.get("matches"))?;
        let mut found = Vec::new();
        for record in self.customer_keys()? {
            if !tags.iter().all(|t| t.matches(&record)) {
                continue;
            }
            let alias = self.key_alias(&record.id)?;
            if name.as_deref().is_some_and(|n| !alias.contains(n)) {
                continue;
            }
            found.push((record, alias));
        }
        let total = found.len();
        if action == Action::Count {
            return Ok(json!({"total_count": total}));
        }
        let resources: Vec<Value> = found
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(record, alias)| {
                let tags: Vec<Value> = record.tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect();
                json!({
                    "resource_id": record.id,
                    "resource_detail": key_info(record, alias, &self.key.domain_id),
                    "resource_name": alias,
                    "tags": tags,
                })
            })
            .collect();
        Ok(json!({"resources": resources, "total_count": total}))
    }
}

/// resource_instances' `tags`: `[{"key": k, "values": [v, ...]}]`, at most [`MAX_FILTER_TAGS`] distinct keys.
fn tag_filters(tags: Option<&Value>) -> Result<Vec<TagFilter>, OtcError> {
    let list = match tags {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(OtcError::bad("KMS.0412", "Invalid tags: a list of {key, values}.")),
    };
    if list.len() > MAX_FILTER_TAGS {
        return Err(OtcError::bad("KMS.0407", format!("At most {MAX_FILTER_TAGS} tags.")));
    }
    let mut filters: Vec<TagFilter> = Vec::with_capacity(list.len());
    for tag in list {
        let tag = tag.as_object().ok_or_else(|| OtcError::bad("KMS.0412", "Invalid tags: a list of {key, values}."))?;
        let key = match tag.get("key") {
            Some(Value::String(k)) if !k.is_empty() && k.chars().count() <= MAX_TAG_KEY_CHARS => k.clone(),
            _ => {
                return Err(OtcError::bad(
                    "KMS.0406",
                    format!("Invalid tag key: 1 to {MAX_TAG_KEY_CHARS} characters."),
                ));
            }
        };
        if filters.iter().any(|f| f.key == key) {
            return Err(OtcError::bad("KMS.0412", format!("The tag key {key} is repeated.")));
        }
        let values = tag_values(tag, &key)?;
        filters.push(TagFilter { key, values });
    }
    Ok(filters)
}

/// The `values` of one filter tag: distinct strings of at most [`MAX_TAG_VALUE_CHARS`] characters.
fn tag_values(tag: &Map<String, Value>, key: &str) -> Result<Vec<String>, OtcError> {
    let invalid = || OtcError::bad("KMS.0405", format!("Invalid values of the tag {key}."));
    let list = match tag.get("values") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid()),
    };
    let mut values: Vec<String> = Vec::with_capacity(list.len());
    for value in list {
        match value {
            Value::String(v) if v.chars().count() <= MAX_TAG_VALUE_CHARS && !values.contains(v) => {
                values.push(v.clone())
            }
            _ => return Err(invalid()),
        }
    }
    Ok(values)
}

/// resource_instances' `matches`: `[{"key": "resource_name", "value": v}]`, the only field it searches.
fn resource_name_match(matches: Option<&Value>) -> Result<Option<String>, OtcError> {
    let list = match matches {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(OtcError::bad("KMS.0415", "Invalid matches: a list of {key, value}.")),
    };
    let mut name = None;
    for item in list {
        let item =
            item.as_object().ok_or_else(|| OtcError::bad("KMS.0415", "Invalid matches: a list of {key, value}."))?;
        match item.get("key") {
            Some(Value::String(k)) if k == "resource_name" && name.is_none() => {}
            _ => return Err(OtcError::bad("KMS.0403", "Invalid match key: resource_name, once.")),
        }
        match item.get("value") {
            Some(Value::String(v)) if !v.is_empty() && v.chars().count() <= MAX_MATCH_VALUE_CHARS => {
                name = Some(v.clone())
            }
            _ => {
                return Err(OtcError::bad(
                    "KMS.0402",
                    format!("Invalid match value: 1 to {MAX_MATCH_VALUE_CHARS} characters."),
                ));
            }
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use auth::Accounts;

    use super::*;
    use crate::model::Tag;
    use crate::otc::OtcVerb;
    use crate::otc::tests::run;
    use crate::service::Kms;

    fn code<T: std::fmt::Debug>(result: Result<T, OtcError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn tag_filters_are_checked_as_the_reference_says() {
        assert_eq!(tag_filters(None).unwrap(), vec![]);
        let filters = tag_filters(Some(&json!([{"key": "env", "values": ["a", "b"]}, {"key": "team"}]))).unwrap();
        assert_eq!(filters[0], TagFilter { key: "env".into(), values: vec!["a".into(), "b".into()] });
        assert_eq!(filters[1].values, Vec::<String>::new());
        for (tags, expected) in [
            (json!("env"), "KMS.0412"),
            (json!(["env"]), "KMS.0412"),
            (json!([{"key": "a"}, {"key": "a"}]), "KMS.0412"),
            (json!([{"key": ""}]), "KMS.0406"),
            (json!([{"key": "k".repeat(37)}]), "KMS.0406"),
            (json!([{"key": "k", "values": "v"}]), "KMS.0405"),
            (json!([{"key": "k", "values": ["v".repeat(44)]}]), "KMS.0405"),
            (json!([{"key": "k", "values": ["v", "v"]}]), "KMS.0405"),
            (json!((0..11).map(|i| json!({"key": i.to_string()})).collect::<Vec<_>>()), "KMS.0407"),
        ] {
            assert_eq!(code(tag_filters(Some(&tags))), expected, "{tags}");
        }
    }

    fn create_key(kms: &Kms, alias: &str, tags: &[(&str, &str)]) -> String {
        let key_id = run(kms, OtcVerb::CreateKey, json!({"key_alias": alias})).unwrap()["key_info"]["key_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag { key: (*k).into(), value: (*v).into() }).collect();
        let caller = Accounts::with_defaults().iter().next().unwrap().caller("eu-de");
        kms.tag_resource(&caller, &key_id, &tags).unwrap();
        key_id
    }

    #[test]
    fn resource_instances_find_keys_by_every_tag_and_by_name() {
        let kms = Kms::in_memory().unwrap();
        let prod_db = create_key(&kms, "prod-db", &[("env", "prod"), ("team", "db")]);
        let dev_db = create_key(&kms, "dev-db", &[("env", "dev"), ("team", "db")]);
        let prod_web = create_key(&kms, "prod-web", &[("env", "prod")]);
        let ids = |answer: &Value| -> Vec<String> {
            let mut ids: Vec<String> = answer["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["resource_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let sorted = |mut v: Vec<&String>| {
            v.sort();
            v.into_iter().cloned().collect::<Vec<_>>()
        };
        let filter = |body: Value| run(&kms, OtcVerb::ResourceInstances, body).unwrap();
        let all = filter(json!({"action": "filter"}));
        assert_eq!(ids(&all), sorted(vec![&prod_db, &dev_db, &prod_web]));
        assert_eq!(all["total_count"], 3);
        let prod = filter(json!({"action": "filter", "tags": [{"key": "env", "values": ["prod"]}]}));
        assert_eq!(ids(&prod), sorted(vec![&prod_db, &prod_web]));
        let db_anywhere = filter(json!({"action": "filter", "tags": [{"key": "env", "values": ["prod", "dev"]},
                                                                   {"key": "team", "values": []}]}));
        assert_eq!(ids(&db_anywhere), sorted(vec![&prod_db, &dev_db]));
        let named = filter(json!({"action": "filter", "matches": [{"key": "resource_name", "value": "web"}]}));
        assert_eq!(ids(&named), vec![prod_web.clone()]);
        assert_eq!(named["resources"][0]["resource_name"], "prod-web");
        assert_eq!(named["resources"][0]["resource_detail"]["key_alias"], "prod-web");
        assert_eq!(named["resources"][0]["tags"], json!([{"key": "env", "value": "prod"}]));
        let count = filter(json!({"action": "count", "tags": [{"key": "team"}]}));
        assert_eq!(count, json!({"total_count": 2}));
        let page = filter(json!({"action": "filter", "limit": "2", "offset": "1"}));
        assert_eq!((page["resources"].as_array().unwrap().len(), &page["total_count"]), (2, &json!(3)));
        let beyond = filter(json!({"action": "filter", "offset": 5}));
        assert_eq!(beyond, json!({"resources": [], "total_count": 3}));
        for (body, expected) in [
            (json!({}), "KMS.0204"),
            (json!({"action": "list"}), "KMS.0404"),
            (json!({"action": "filter", "limit": "0"}), "KMS.1601"),
            (json!({"action": "filter", "limit": "1001"}), "KMS.1601"),
            (json!({"action": "filter", "offset": "-1"}), "KMS.0417"),
            (json!({"action": "filter", "offset": "x"}), "KMS.0308"),
        ] {
            assert_eq!(code(run(&kms, OtcVerb::ResourceInstances, body.clone())), expected, "{body}");
        }
    }

    #[test]
    fn quotas_and_instances_count_the_customer_keys_not_the_default_ones() {
        let kms = Kms::in_memory().unwrap();
        let quotas = |kms: &Kms| run(kms, OtcVerb::UserQuotas, json!({})).unwrap();
        let instances = |kms: &Kms| run(kms, OtcVerb::UserInstances, json!({})).unwrap();
        assert_eq!(instances(&kms), json!({"instance_num": 0}));
        let expected = |cmks: usize, grants: usize| {
            json!({"quotas": {"resources": [
                {"type": "CMK", "used": cmks, "quota": CMK_QUOTA},
                {"type": "grant_per_CMK", "used": grants, "quota": GRANTS_PER_CMK_QUOTA},
            ]}})
        };
        assert_eq!(quotas(&kms), expected(0, 0));
        let first = create_key(&kms, "first", &[]);
        create_key(&kms, "second", &[]);
        // A service default key is not counted.
        let accounts = Accounts::with_defaults();
        let caller = accounts.iter().next().unwrap().caller("eu-de");
        kms.service_managed_key(&caller, "alias/obs/default", "Default key for OBS").unwrap();
        for grantee in ["a", "b"] {
            let body = json!({"key_id": first, "grantee_principal": grantee, "operations": ["describe-key"]});
            run(&kms, OtcVerb::CreateGrant, body).unwrap();
        }
        assert_eq!(instances(&kms), json!({"instance_num": 2}));
        assert_eq!(quotas(&kms), expected(2, 2));
    }

    #[test]
    fn matches_search_the_resource_name_only() {
        assert_eq!(resource_name_match(None).unwrap(), None);
        let m = json!([{"key": "resource_name", "value": "db"}]);
        assert_eq!(resource_name_match(Some(&m)).unwrap().as_deref(), Some("db"));
        for (matches, expected) in [
            (json!({"key": "resource_name"}), "KMS.0415"),
            (json!(["db"]), "KMS.0415"),
            (json!([{"key": "key_id", "value": "x"}]), "KMS.0403"),
            (json!([{"key": "resource_name", "value": "a"}, {"key": "resource_name", "value": "b"}]), "KMS.0403"),
            (json!([{"key": "resource_name", "value": ""}]), "KMS.0402"),
            (json!([{"key": "resource_name", "value": "x".repeat(256)}]), "KMS.0402"),
        ] {
            assert_eq!(code(resource_name_match(Some(&matches))), expected, "{matches}");
        }
    }
}
