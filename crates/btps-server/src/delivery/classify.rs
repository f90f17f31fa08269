//! What a delivery attempt means (PROTOCOL.md §2.6, §11.1) and when the next one is due.
//! Pure functions: the worker feeds them the seam's result, the attempt count and the time.

use std::time::Duration;

use btps_types::{ErrorCode, UnixMillis};

use super::options::DeliveryOptions;
use super::seam::{DeliverError, PeerReply};

/// The meaning of one delivery attempt's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// The receiver has the artifact: a success reply (`already accepted` included), or 409
    /// `BTP_ERROR_DUPLICATE`.
    Delivered,
    /// Worth another attempt later; the error of this one.
    Retry(String),
    /// No attempt will succeed; the reason shown to the sender.
    Final(String),
}

/// Status codes a sender retries when the reply carries an `errorCode` (§2.6).
const RETRYABLE: [u16; 4] = [408, 429, 500, 503];

/// Classifies the result of one attempt (§11.1):
///
/// * a success reply → [`AttemptVerdict::Delivered`];
/// * 409 with `errorCode` `BTP_ERROR_DUPLICATE` → delivered (the receiver has it);
/// * 408, 429, 500 or 503 with an `errorCode` → retry;
/// * an error reply **without** `errorCode` comes from a btps-node peer, which answers 500
///   for every refusal: final, with the peer's message as the reason;
/// * any other error reply → final;
/// * [`DeliverError::Temporary`] → retry; [`DeliverError::Permanent`] → final.
///
/// # Examples
///
/// ```
/// use btps_server::{AttemptVerdict, DeliverError, PeerReply, classify};
/// assert_eq!(classify(&Ok(PeerReply::ok("success"))), AttemptVerdict::Delivered);
/// let busy = PeerReply::error(503, Some("BTP_ERROR_SERVER_BUSY"), "Server busy, retry later");
/// assert!(matches!(classify(&Ok(busy)), AttemptVerdict::Retry(_)));
/// let node = PeerReply::error(500, None, "BTPS trust request is not allowed");
/// assert_eq!(
///     classify(&Ok(node)),
///     AttemptVerdict::Final("BTPS trust request is not allowed".into())
/// );
/// let down = DeliverError::Temporary("connection refused".into());
/// assert!(matches!(classify(&Err(down)), AttemptVerdict::Retry(_)));
/// ```
pub fn classify(result: &Result<PeerReply, DeliverError>) -> AttemptVerdict {
    let reply = match result {
        Ok(reply) => reply,
        Err(DeliverError::Temporary(e)) => return AttemptVerdict::Retry(e.clone()),
        Err(DeliverError::Permanent(e)) => return AttemptVerdict::Final(e.clone()),
    };
    if reply.ok {
        return AttemptVerdict::Delivered;
    }
    let Some(code) = reply.error_code.as_deref() else {
        // A btps-node peer: every refusal is 500 without errorCode; its message is all the
        // sender learns.
        return AttemptVerdict::Final(reply.message.clone());
    };
    if reply.code == ErrorCode::Duplicate.status() && code == ErrorCode::Duplicate.as_str() {
        return AttemptVerdict::Delivered;
    }
    let text = format!("{code} ({}): {}", reply.code, reply.message);
    if RETRYABLE.contains(&reply.code) {
        AttemptVerdict::Retry(text)
    } else {
        AttemptVerdict::Final(text)
    }
}

/// What the worker records for an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delivered: move to the sentbox.
    Delivered,
    /// Attempt again at `at`.
    Retry {
        /// When.
        at: UnixMillis,
        /// This attempt's error.
        error: String,
    },
    /// Final failure.
    Final(String),
}

/// The step after an attempt with `verdict`, when `prior` attempts were recorded before it
/// and the entry was stored at `stored_at`: the n-th failed attempt (n = `prior` + 1) is
/// retried after `retry_delays[n - 1]`; once the delays are used up, or when the retry would
/// fall after `stored_at + lifetime`, the failure is final.
pub(crate) fn next_step(
    verdict: AttemptVerdict,
    prior: u32,
    now: UnixMillis,
    stored_at: UnixMillis,
    opts: &DeliveryOptions,
) -> Step {
    let error = match verdict {
        AttemptVerdict::Delivered => return Step::Delivered,
        AttemptVerdict::Final(reason) => return Step::Final(reason),
        AttemptVerdict::Retry(error) => error,
    };
    let attempts = prior.saturating_add(1);
    let Some(delay) = opts.retry_delays.get(prior as usize) else {
        return Step::Final(format!("{error} (gave up after {attempts} attempts)"));
    };
    let at = now.saturating_add_millis(millis(*delay));
    let deadline = stored_at.saturating_add_millis(millis(opts.lifetime));
    if at > deadline {
        return Step::Final(format!(
            "{error} (delivery lifetime of {} s over after {attempts} attempts)",
            opts.lifetime.as_secs()
        ));
    }
    Step::Retry { at, error }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ok: bool, code: u16, error_code: Option<&str>, message: &str) -> AttemptVerdict {
        classify(&Ok(PeerReply {
            ok,
            code,
            error_code: error_code.map(str::to_owned),
            message: message.to_owned(),
        }))
    }

    #[test]
    fn success_and_duplicate_are_delivered() {
        assert_eq!(reply(true, 200, None, "success"), AttemptVerdict::Delivered);
        assert_eq!(
            reply(true, 200, None, "already accepted"),
            AttemptVerdict::Delivered
        );
        assert_eq!(
            reply(
                false,
                409,
                Some("BTP_ERROR_DUPLICATE"),
                "Artifact already received"
            ),
            AttemptVerdict::Delivered
        );
    }

    #[test]
    fn other_conflicts_are_final() {
        assert_eq!(
            reply(
                false,
                409,
                Some("BTP_ERROR_TRUST_ALREADY_ACTIVE"),
                "BTPS trust record already exist. Request invalid"
            ),
            AttemptVerdict::Final(
                "BTP_ERROR_TRUST_ALREADY_ACTIVE (409): BTPS trust record already exist. Request invalid"
                    .into()
            )
        );
        // A duplicate code under another status is not the receiver's dedup answer.
        assert!(matches!(
            reply(false, 400, Some("BTP_ERROR_DUPLICATE"), "x"),
            AttemptVerdict::Final(_)
        ));
    }

    #[test]
    fn retryable_statuses_with_an_error_code() {
        for (code, error) in [
            (408, "BTP_ERROR_SOCKET_TIMEOUT"),
            (429, "BTP_ERROR_RATE_LIMITER"),
            (500, "BTP_UNKNOWN_ERROR"),
            (503, "BTP_ERROR_SERVER_BUSY"),
            (503, "BTP_ERROR_DNS_UNAVAILABLE"),
        ] {
            assert_eq!(
                reply(false, code, Some(error), "m"),
                AttemptVerdict::Retry(format!("{error} ({code}): m")),
                "{code} {error}"
            );
        }
    }

    #[test]
    fn other_error_replies_are_final() {
        for (code, error) in [
            (400, "BTP_ERROR_VALIDATION"),
            (400, "BTP_ERROR_STALE_ARTIFACT"),
            (401, "BTP_ERROR_DELEGATION_SIG_VERIFICATION"),
            (403, "BTP_ERROR_TRUST_NOT_ALLOWED"),
            (404, "BTP_ERROR_IDENTITY_NOT_FOUND"),
            (413, "BTP_ERROR_LINE_TOO_LONG"),
        ] {
            assert!(
                matches!(
                    reply(false, code, Some(error), "m"),
                    AttemptVerdict::Final(_)
                ),
                "{code} {error}"
            );
        }
    }

    #[test]
    fn btps_node_errors_are_final_with_the_peer_message() {
        // btps-node answers 500 without errorCode for every refusal, trust included.
        assert_eq!(
            reply(
                false,
                500,
                None,
                "BTPS trust request is not allowed at this time. Contact receiver"
            ),
            AttemptVerdict::Final(
                "BTPS trust request is not allowed at this time. Contact receiver".into()
            )
        );
        assert_eq!(
            reply(false, 503, None, "busy"),
            AttemptVerdict::Final("busy".into())
        );
    }

    #[test]
    fn transport_failures() {
        assert_eq!(
            classify(&Err(DeliverError::Temporary("connect: refused".into()))),
            AttemptVerdict::Retry("connect: refused".into())
        );
        assert_eq!(
            classify(&Err(DeliverError::Permanent("no host record".into()))),
            AttemptVerdict::Final("no host record".into())
        );
    }

    fn at(ms: i64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    #[test]
    fn retries_follow_the_schedule_then_give_up() {
        let opts = DeliveryOptions::default();
        let retry = || AttemptVerdict::Retry("e".into());
        let mut now = 1_000_000;
        let stored = at(now);
        for (prior, minutes) in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16)] {
            assert_eq!(
                next_step(retry(), prior, at(now), stored, &opts),
                Step::Retry {
                    at: at(now + minutes * 60_000),
                    error: "e".into()
                },
                "after attempt {}",
                prior + 1
            );
            now += minutes * 60_000;
        }
        assert_eq!(
            next_step(retry(), 5, at(now), stored, &opts),
            Step::Final("e (gave up after 6 attempts)".into())
        );
        assert_eq!(
            next_step(AttemptVerdict::Delivered, 5, at(now), stored, &opts),
            Step::Delivered
        );
        assert_eq!(
            next_step(
                AttemptVerdict::Final("no".into()),
                0,
                at(now),
                stored,
                &opts
            ),
            Step::Final("no".into())
        );
    }

    #[test]
    fn the_lifetime_bounds_retries() {
        let opts = DeliveryOptions {
            retry_delays: vec![Duration::from_secs(60); 10],
            lifetime: Duration::from_secs(150),
            ..DeliveryOptions::default()
        };
        let retry = || AttemptVerdict::Retry("e".into());
        let stored = at(0);
        assert!(matches!(
            next_step(retry(), 0, at(60_000), stored, &opts),
            Step::Retry { .. }
        ));
        assert_eq!(
            next_step(retry(), 1, at(120_000), stored, &opts),
            Step::Final("e (delivery lifetime of 150 s over after 2 attempts)".into())
        );
    }
}
