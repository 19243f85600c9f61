//! Renewal over the link: a node asks its parent for a new certificate once a share of its
//! certificate's life has passed, and swaps it in without a restart.
//!
//! The node makes a new key, which never leaves it, and a certificate request naming its own
//! region ([`crate::pki::request_certificate`]); it sends the request over a mutual-TLS
//! connection its current certificate authenticates (`Sync.Renew`); the parent's issuing CA
//! signs it for that region only, under the subtree rule
//! ([`crate::pki::CertificateAuthority::sign_request`]); the node checks the chain it gets back
//! against its roots and its region, writes it and the key to its `tls/` directory, and
//! replaces its certificate in place ([`crate::tls::NodeTls::replace`]), so every later dial
//! and handshake uses it while links already open run on.
//!
//! When a renewal is due is a pure function ([`due_at`]); [`keep_renewed`] is the loop around
//! it and [`renew_once`] one attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::region::RegionCode;
use crate::store::StoreHandle;
use crate::sync::{LinkConfig, SyncError};
use crate::wall_clock::{Toward, step_toward};

/// The share of a certificate's life after which it is renewed, unless configured otherwise:
/// a year's certificate at eight months, leaving four for a parent that is unreachable a while.
pub const DEFAULT_RENEW_AT: f64 = 2.0 / 3.0;

/// How long after a refusal that asking again will not change the node asks again: six hours
/// while its certificate is valid, an hour once it has ended.
const AFTER_REJECTION: Duration = Duration::from_secs(6 * 3600);

/// When a certificate valid from `not_before` to `not_after` is due for renewal: once `share`
/// (0 to 1) of its life has passed.
pub fn due_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>, share: f64) -> DateTime<Utc> {
    let life = (not_after - not_before).num_milliseconds().max(0) as f64;
    let share = share.clamp(0.0, 1.0);
    not_before + chrono::Duration::milliseconds((life * share) as i64)
}

/// How long to wait after a failed attempt: a tenth of what is left of the certificate's life,
/// between five seconds and five minutes.
pub fn retry_after(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let left = (not_after - now).to_std().unwrap_or(Duration::ZERO);
    (left / 10).clamp(Duration::from_secs(5), Duration::from_secs(300))
}

/// Why a renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("the node links without TLS: there is no certificate to renew")]
    NoCertificate,
    #[error(transparent)]
    Link(#[from] SyncError),
    #[error("the parent refused: {0}")]
    Refused(String),
    /// The parent answered with a status that will not change by asking again soon: it is of
    /// an older release (UNIMPLEMENTED), holds no issuing CA (FAILED_PRECONDITION), or refuses
    /// this node's certificate (PERMISSION_DENIED).
    #[error("the parent refuses to renew ({code:?}): {message}")]
    Rejected { code: tonic::Code, message: String },
    #[error(transparent)]
    Certificate(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Asks the parent at `addr` for a new certificate for `me` now and puts it in place. Returns
/// when the new certificate ends.
pub async fn renew_once(
    store: &StoreHandle,
    me: RegionCode,
    name: &str,
    addr: &str,
    config: &LinkConfig,
) -> Result<DateTime<Utc>, RenewError> {
    let tls = config.tls.clone().ok_or(RenewError::NoCertificate)?;
    let parent = me.parent().ok_or(RenewError::Refused(
        "the national node has no parent to renew with".into(),
    ))?;
    let name = name.to_string();
    let request = tokio::task::spawn_blocking(move || crate::pki::request_certificate(&me, &name))
        .await
        .map_err(|e| RenewError::Refused(e.to_string()))??;
    let (channel, seen) = crate::sync::client::connect(addr, parent, config).await?;
    crate::sync::client::refuse_revoked_parent(store, parent, seen).await?;
    let answer = renda_proto::v1::sync_client::SyncClient::new(channel)
        .renew(renda_proto::v1::RenewRequest {
            csr: request.csr_der,
        })
        .await
        .map_err(|status| match status.code() {
            code @ (tonic::Code::Unimplemented
            | tonic::Code::FailedPrecondition
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument) => RenewError::Rejected {
                code,
                message: status.message().to_string(),
            },
            _ => RenewError::Refused(status.message().to_string()),
        })?
        .into_inner();
    let swap = tls.clone();
    let key = request.key_pem;
    tokio::task::spawn_blocking(move || swap.replace(&answer.chain_pem, &key))
        .await
        .map_err(|e| RenewError::Refused(e.to_string()))??;
    let not_after = tls.not_after();
    // Stated in the node's rollup, which the write wakes.
    store
        .write(move |tx| tx.record_certificate(Some(not_after)))
        .await?;
    Ok(not_after)
}

/// Runs until `shutdown`, renewing the node's certificate with its parent at `addr` whenever
/// `share` of its life has passed; a failure is retried ([`retry_after`]), logged as an error
/// once the certificate has a week or less left, since the node's links then stop when it ends.
pub async fn keep_renewed(
    store: StoreHandle,
    me: RegionCode,
    name: String,
    addr: String,
    config: LinkConfig,
    share: f64,
    shutdown: CancellationToken,
) {
    let Some(tls) = config.tls.clone() else {
        return;
    };
    loop {
        match step_toward(due_at(tls.not_before(), tls.not_after(), share), &shutdown).await {
            Toward::Due => {}
            Toward::Slept => continue,
            Toward::Shutdown => return,
        }
        let life = tls.not_after() - tls.not_before();
        let wait = match renew_once(&store, me, &name, &addr, &config).await {
            Ok(not_after) => {
                tracing::info!(%not_after, serial = %tls.serial(), "the node's certificate was renewed by its parent");
                // A certificate already due again was cut short by its CA's own end: asking
                // at once would only get another; the parent's operator must rotate that CA.
                if due_at(tls.not_before(), tls.not_after(), share) > Utc::now() {
                    continue;
                }
                tracing::warn!(%not_after, "the renewed certificate is due again at once: the parent's issuing CA ends too soon and needs rotating");
                retry_after(tls.not_after(), Utc::now())
            }
            Err(e) => {
                let now = Utc::now();
                let left = tls.not_after() - now;
                // An error when the links are about to stop: the last week, or the last tenth
                // of a short certificate's life.
                if left <= chrono::Duration::days(7).min(life / 10) {
                    tracing::error!(error = %e, days_left = left.num_days(), "the certificate could not be renewed and ends soon: the node's links stop when it does");
                } else {
                    tracing::warn!(error = %e, "the certificate could not be renewed; trying again later");
                }
                match e {
                    RenewError::Rejected { .. } if left > chrono::Duration::zero() => {
                        AFTER_REJECTION
                            .min(left.to_std().unwrap_or(Duration::ZERO) / 2)
                            .max(retry_after(tls.not_after(), now))
                    }
                    RenewError::Rejected { .. } => Duration::from_secs(3600),
                    _ if left <= chrono::Duration::zero() => Duration::from_secs(300),
                    _ => retry_after(tls.not_after(), now),
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_after_its_share_of_the_life() {
        let from = Utc::now();
        let year = chrono::Duration::days(365);
        let due = due_at(from, from + year, 2.0 / 3.0);
        assert!((due - from - chrono::Duration::days(243)).num_hours().abs() <= 24);
        assert_eq!(due_at(from, from + year, 0.0), from);
        assert_eq!(
            due_at(from, from + year, 7.0),
            from + year,
            "a share is at most 1"
        );
        // An end before the start (a broken certificate) is due at once.
        assert_eq!(due_at(from, from - year, 0.5), from);
    }

    #[test]
    fn a_failed_attempt_is_retried_sooner_as_the_end_nears() {
        let now = Utc::now();
        assert_eq!(
            retry_after(now + chrono::Duration::days(100), now),
            Duration::from_secs(300)
        );
        assert_eq!(
            retry_after(now + chrono::Duration::seconds(200), now),
            Duration::from_secs(20)
        );
        assert_eq!(
            retry_after(now - chrono::Duration::days(1), now),
            Duration::from_secs(5)
        );
    }
}
