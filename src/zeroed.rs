//! Tables of zeros that are written, not only mapped.
//!
//! `vec![0; n]` asks the allocator for zeroed memory, and for tens of megabytes it hands back
//! pages fresh from the kernel that no one has touched: zero without being written. An
//! open-addressed table reads a slot before it writes it, so each page is first mapped to the
//! kernel's shared zero page on that read, then faulted again on the first write, when the
//! kernel swaps in a page of its own and must flush the old mapping from every core the
//! process runs on (an interrupt to the other core, each one a VM exit on a virtual machine).
//! A rerun at a million patients took ~18,000 such faults in its two largest tables, and its
//! fingerprints' loader spent two thirds of its time in the kernel. Writing the zeros first
//! costs one fault a page and no flush.

/// `len` copies of `zero`, each written.
pub(crate) fn written<T: Copy>(len: usize, zero: T) -> Vec<T> {
    let mut table = Vec::with_capacity(len);
    table.resize(len, zero);
    table
}

#[cfg(test)]
mod tests {
    use super::written;

    #[test]
    fn a_table_holds_as_many_zeros_as_asked() {
        let table = written(1 << 20, (0u64, 0u64));
        assert_eq!(table.len(), 1 << 20);
        assert!(table.iter().all(|&slot| slot == (0, 0)));
        assert!(written(0, 0u32).is_empty());
    }
}
