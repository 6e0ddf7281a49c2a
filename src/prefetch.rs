//! Asking the processor for memory ahead of a look-up, without waiting for it: a large table's
//! look-ups (a million patients' slots are tens of megabytes) are each a cache miss, and work
//! done between the request and the read hides it.

/// Asks for the cache line holding `item`. A hint: it reads nothing the program sees.
pub(crate) fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which `_mm_prefetch` needs, is part of every x86_64; a prefetch reads
    // nothing the program sees and cannot fault, and the address is of a live reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(item).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}
