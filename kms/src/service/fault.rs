//! The KMS's side of fault injection: the rules (`/_sim/faults`) that fire on a KMS call, whichever front end or
//! service made it, with the key it names resolved as the call itself would resolve it.

use faults::{Call, Fired, Service};
use shared::RequestContext;

use super::Kms;

impl Kms {
    /// The fault rules that fire on the call of `context`, made in `dialect` (`aws`, `otc` or `internal`), naming
    /// `key` (an id, ARN, alias or alias ARN) or the key of `blob` (a ciphertext blob); `None` when none fires,
    /// at the cost of one atomic load when no rule is held.
    pub fn fault(
        &self,
        context: &RequestContext,
        dialect: &str,
        key: Option<&str>,
        blob: Option<&[u8]>,
    ) -> Option<Fired> {
        if !self.faults.active(Service::Kms) {
            return None;
        }
        let caller = &context.caller;
        let resolve = |name: &str| self.resolve(caller, name, true).ok().map(|live| live.record.id.clone());
        let key_id = match (key, blob) {
            (Some(name), _) => resolve(name),
            (None, Some(blob)) => crate::blob::parse(blob).ok().map(|header| header.key_id.to_owned()),
            (None, None) => None,
        };
        let call = Call {
            dialect,
            operation: context.operation,
            principal: &caller.principal_arn,
            access_key: &caller.access_key_id,
            key_id: key_id.as_deref(),
            ..Call::default()
        };
        self.faults.check(Service::Kms, &call, &resolve)
    }
}
