//! The global allocator: mimalloc, through its C library's bindings.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

/// mimalloc as the global allocator. Every mimalloc block is aligned to at
/// least 8 bytes (16 from 16 bytes of size), so the common alignments take
/// the plain entry points; the `mimalloc` crate always called the aligned
/// ones, whose extra checks were about 2% of the instructions of a render
/// of the built-in stacks (callgrind).
pub struct MiMalloc;

/// An alignment every block `mi_malloc` returns already has.
const PLAIN_ALIGN: usize = 8;

/// A new block from `plain(size)` when every block has `layout`'s
/// alignment, else from `aligned(size, alignment)`.
///
/// # Safety
/// `layout`'s size is not zero (GlobalAlloc's contract).
#[inline(always)]
unsafe fn new_block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: plain C calls with a size (and an alignment, a power of two).
    unsafe {
        if layout.align() <= PLAIN_ALIGN { plain(layout.size()) } else { aligned(layout.size(), layout.align()) }.cast()
    }
}

// SAFETY: mimalloc is a thread-safe allocator; every pointer handed out
// comes from it and goes back to it; a layout whose alignment the plain
// entry points do not guarantee goes to the aligned ones.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: a size that is not zero.
        unsafe { new_block(layout, mi_malloc, mi_malloc_aligned) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { new_block(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the result
        // keeps the alignment, as in `alloc`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `size` bytes at `p` with a pattern `holds` recognises.
    unsafe fn fill(p: *mut u8, size: usize) {
        for i in 0..size {
            // SAFETY: the caller owns `size` bytes at `p`.
            unsafe { *p.add(i) = (i % 251) as u8 };
        }
    }

    unsafe fn holds(p: *const u8, size: usize) -> bool {
        // SAFETY: the caller owns `size` bytes at `p`.
        (0..size).all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
    }

    /// Every size and alignment pair gets memory of that alignment, which
    /// keeps its bytes through growing and shrinking; zeroed memory is zero.
    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes() {
        let sizes = [1, 7, 8, 9, 15, 16, 17, 24, 40, 100, 1000, 4096, 70_000, 1 << 20];
        let aligns = [1, 2, 4, 8, 16, 32, 64, 4096];
        let a = MiMalloc;
        for &size in &sizes {
            for &align in &aligns {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every pointer is checked before it
                // is used and freed with the layout it was allocated with.
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null() && (z as usize).is_multiple_of(align), "zeroed {size}/{align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0), "zeroed {size}/{align}");
                    a.dealloc(z, layout);
                    for new_size in [size * 3, size.div_ceil(2)] {
                        let p = a.alloc(layout);
                        assert!(!p.is_null() && (p as usize).is_multiple_of(align), "alloc {size}/{align}");
                        fill(p, size);
                        let q = a.realloc(p, layout, new_size);
                        assert!(
                            !q.is_null() && (q as usize).is_multiple_of(align),
                            "realloc {size}/{align} -> {new_size}"
                        );
                        assert!(holds(q, size.min(new_size)), "realloc {size}/{align} -> {new_size} lost bytes");
                        a.dealloc(q, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
    }
}
