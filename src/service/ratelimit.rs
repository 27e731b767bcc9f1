//! Per-IP token-bucket rate limits for expensive unauthenticated requests (login, registration).

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Instant};

use crate::{config::RateLimitConfig, error::Error};

/// What is being limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Login,
    Register,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Above this many tracked clients, idle (full) buckets are dropped.
const MAX_TRACKED: usize = 10_000;

/// Token buckets keyed by action and client IP.
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<(Action, IpAddr), Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn limits(&self, action: Action) -> (f64, f64) {
        match action {
            Action::Login => (self.config.login_per_second, self.config.login_burst as f64),
            Action::Register => (
                self.config.registration_per_second,
                self.config.registration_burst as f64,
            ),
        }
    }

    /// Takes one token for `action` from `ip`'s bucket, or says how long to wait.
    pub fn check(&self, action: Action, ip: Option<IpAddr>) -> Result<(), Error> {
        let Some(ip) = ip.filter(|_| self.config.enabled) else {
            return Ok(());
        };
        let (rate, burst) = self.limits(action);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|(a, _), b| {
                let (rate, burst) = self.limits(*a);
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry((action, ip)).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_secs = if rate > 0.0 {
                (1.0 - bucket.tokens) / rate
            } else {
                3600.0
            };
            Err(Error::limit_exceeded((wait_secs * 1000.0).ceil() as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_and_disabled_means_unlimited() {
        let config = RateLimitConfig {
            login_burst: 2,
            login_per_second: 0.001,
            ..Default::default()
        };
        let limiter = RateLimiter::new(config.clone());
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(limiter.check(Action::Login, ip).is_ok());
        assert!(limiter.check(Action::Login, ip).is_ok());
        let err = limiter.check(Action::Login, ip).unwrap_err();
        assert_eq!(err.errcode(), "M_LIMIT_EXCEEDED");
        assert!(
            limiter.check(Action::Register, ip).is_ok(),
            "separate bucket per action"
        );
        let off = RateLimiter::new(RateLimitConfig {
            enabled: false,
            ..config
        });
        for _ in 0..10 {
            assert!(off.check(Action::Login, ip).is_ok());
        }
    }
}
