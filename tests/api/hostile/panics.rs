//! Panics: a hook that counts them (and where they happened).

use super::*;

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

/// Panics on the server's runtime, by site ("file:line: message") with counts.
pub(super) type PanicLog = Arc<Mutex<BTreeMap<String, usize>>>;

/// Counts panics on threads of the server's runtime, chaining to the previous hook for the
/// first panic at each site (repeats are only counted, so a hot panic does not flood the log).
pub(super) fn install_panic_counter() -> PanicLog {
    let log: PanicLog = Arc::default();
    let previous = std::panic::take_hook();
    let hook_log = log.clone();
    std::panic::set_hook(Box::new(move |info| {
        let ours = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(THREAD_NAME));
        if !ours {
            return previous(info);
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string payload>".into());
        let site = match info.location() {
            Some(l) => format!("{}:{}: {message}", l.file(), l.line()),
            None => message,
        };
        let first = {
            let mut log = hook_log.lock().unwrap_or_else(|e| e.into_inner());
            let count = log.entry(site).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            previous(info);
        }
    }));
    log
}
