//! Rate-limit header fields, opt in with
//! [`RateLimitLayer::headers`](super::RateLimitLayer::headers): what the GCRA decision of a
//! request says about its key, on every answer of the route (admitted or refused).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::quota::Quota;

/// Which rate-limit header fields a [`RateLimitLayer`](super::RateLimitLayer) adds to every
/// answer of its route, admitted or refused (see [`headers`](super::RateLimitLayer::headers)).
///
/// The values come from the state the decision left (no second lookup), of one quota: the
/// one with the least remaining; of several with as little, the one whose `reset` is the
/// longest (so with nothing remaining, `reset` is when the next request will be admitted).
///
/// - `remaining`: how many more requests would be admitted right now by that quota;
/// - `reset`: whole seconds, rounded up, until its remaining grows by one. A GCRA has no
///   window that resets at once: it frees one request every `period / limit`. With nothing
///   remaining this is when the next request will be admitted (on the 429, the same value as
///   `Retry-After`). A decision always leaves the quota short of full (an admitted request
///   used one), so it is never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitHeaders {
    /// None (the default).
    #[default]
    Off,
    /// `RateLimit-Policy` and `RateLimit` as the IETF httpapi draft
    /// [draft-ietf-httpapi-ratelimit-headers-10](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/)
    /// defines them (structured fields):
    /// `RateLimit-Policy: "per-minute";q=50;w=60, "per-day";q=10000;w=86400` lists every
    /// quota (`q` requests per window `w`, in seconds rounded up); `RateLimit:
    /// "per-minute";r=49;t=2` reports one (`r` remaining, `t` the reset in seconds). A
    /// quota's name is its period (`per-second`, `per-minute`, `per-hour`, `per-day`, else
    /// `per-<seconds>s`, or `per-<nanoseconds>ns`), with `-<index>` added if an earlier
    /// quota has the same.
    Draft,
    /// The de-facto trio of one quota: `x-ratelimit-limit` (its requests per period),
    /// `x-ratelimit-remaining` and `x-ratelimit-reset` (seconds from now, not a timestamp).
    XRateLimit,
}

/// Where a key stands after a decision, by the quota reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// The quota's index.
    pub(crate) quota: usize,
    pub(crate) remaining: u32,
    /// Until its remaining grows by one.
    pub(crate) reset: Duration,
}

/// One quota's remaining and reset, from `x` = now + tolerance - the theoretical arrival
/// time the decision left (at least now), in a time scaled by `scale` where requests are
/// `interval` apart. A request is admitted while `x >= 0`, each one taking `interval`.
pub(crate) fn standing(x: i128, interval: i128, scale: i128) -> (u32, Duration) {
    let (interval, scale) = (interval.max(1), scale.max(1));
    let remaining = x.div_euclid(interval).saturating_add(1).max(0);
    // The next multiple of `interval` above `x` (or 0 from below): one more request then.
    let until = if x < 0 {
        x.saturating_neg()
    } else {
        interval - x.rem_euclid(interval)
    };
    let nanos = until.saturating_add(scale - 1) / scale;
    (
        u32::try_from(remaining).unwrap_or(u32::MAX),
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
    )
}

/// The standing reported of each quota's (in order): the least remaining, then the longest
/// reset. `None` without quotas.
pub(crate) fn tightest(standings: impl Iterator<Item = (u32, Duration)>) -> Option<Standing> {
    standings
        .enumerate()
        .map(|(quota, (remaining, reset))| Standing {
            quota,
            remaining,
            reset,
        })
        .reduce(|best, next| {
            let tighter = (next.remaining, std::cmp::Reverse(next.reset))
                < (best.remaining, std::cmp::Reverse(best.reset));
            if tighter { next } else { best }
        })
}

fn seconds_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

fn name(period: Duration) -> String {
    match (period.as_secs(), period.subsec_nanos()) {
        (1, 0) => "per-second".into(),
        (60, 0) => "per-minute".into(),
        (3_600, 0) => "per-hour".into(),
        (86_400, 0) => "per-day".into(),
        (seconds, 0) => format!("per-{seconds}s"),
        _ => format!("per-{}ns", period.as_nanos()),
    }
}

/// What a layer writes, prepared once: the quotas' names and the policy field.
#[derive(Debug)]
pub(crate) struct Report {
    style: RateLimitHeaders,
    limits: Box<[u32]>,
    names: Box<[String]>,
    policy: Option<HeaderValue>,
}

impl Report {
    /// `None` when off or without quotas (nothing is limited then).
    pub(crate) fn new(style: RateLimitHeaders, quotas: &[Quota]) -> Option<Report> {
        if style == RateLimitHeaders::Off || quotas.is_empty() {
            return None;
        }
        let mut names: Vec<String> = Vec::with_capacity(quotas.len());
        for (index, quota) in quotas.iter().enumerate() {
            let mut name = name(quota.period());
            if names.contains(&name) {
                name = format!("{name}-{index}");
            }
            names.push(name);
        }
        let policy = (style == RateLimitHeaders::Draft).then(|| {
            let items: Vec<String> = quotas
                .iter()
                .zip(&names)
                .map(|(quota, name)| {
                    let window = seconds_up(quota.period());
                    format!("\"{name}\";q={};w={window}", quota.limit())
                })
                .collect();
            items.join(", ")
        });
        Some(Report {
            style,
            limits: quotas.iter().map(Quota::limit).collect(),
            names: names.into(),
            // Names are `[a-z0-9-]` and the rest digits: always a valid value.
            policy: policy.and_then(|p| HeaderValue::try_from(p).ok()),
        })
    }

    /// Write the fields of `standing` into `headers` (replacing any of the same name).
    pub(crate) fn write(&self, standing: Standing, headers: &mut HeaderMap) {
        let reset = seconds_up(standing.reset);
        match self.style {
            RateLimitHeaders::Off => {}
            RateLimitHeaders::Draft => {
                if let Some(policy) = &self.policy {
                    headers.insert(HeaderName::from_static("ratelimit-policy"), policy.clone());
                }
                let Some(name) = self.names.get(standing.quota) else {
                    return;
                };
                let value = format!("\"{name}\";r={};t={reset}", standing.remaining);
                if let Ok(value) = HeaderValue::try_from(value) {
                    headers.insert(HeaderName::from_static("ratelimit"), value);
                }
            }
            RateLimitHeaders::XRateLimit => {
                let Some(&limit) = self.limits.get(standing.quota) else {
                    return;
                };
                headers.insert(
                    HeaderName::from_static("x-ratelimit-limit"),
                    HeaderValue::from(limit),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-remaining"),
                    HeaderValue::from(standing.remaining),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-reset"),
                    HeaderValue::from(reset),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(quotas: &[Quota]) -> String {
        let report = Report::new(RateLimitHeaders::Draft, quotas).unwrap();
        report.policy.unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn names_are_unique_and_windows_whole_seconds() {
        assert_eq!(
            policy(&[Quota::per_minute(10), Quota::per_minute(100)]),
            "\"per-minute\";q=10;w=60, \"per-minute-1\";q=100;w=60"
        );
        assert_eq!(
            policy(&[
                Quota::new(5, Duration::from_millis(500)),
                Quota::new(7, Duration::from_secs(90))
            ]),
            "\"per-500000000ns\";q=5;w=1, \"per-90s\";q=7;w=90"
        );
    }

    #[test]
    fn nothing_without_quotas_or_when_off() {
        assert!(Report::new(RateLimitHeaders::Draft, &[]).is_none());
        assert!(Report::new(RateLimitHeaders::Off, &[Quota::per_second(1)]).is_none());
    }

    #[test]
    fn standing_saturates_at_the_extremes() {
        assert_eq!(
            standing(i128::MAX, 1, 1),
            (u32::MAX, Duration::from_nanos(1))
        );
        assert_eq!(
            standing(i128::MIN, 1, 1),
            (0, Duration::from_nanos(u64::MAX))
        );
        // Scaled by 3: 10 scaled units are 4 ns rounded up.
        assert_eq!(standing(-10, 30, 3), (0, Duration::from_nanos(4)));
        assert_eq!(standing(0, 30, 3), (1, Duration::from_nanos(10)));
    }
}
