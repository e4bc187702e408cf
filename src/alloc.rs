//! The process's allocator: mimalloc, asked for plain allocations whenever the alignment allows.
//!
//! The `mimalloc` crate's allocator hands every request to `mi_malloc_aligned`, whose fast path
//! only serves a block that happens to sit at the asked alignment on a page with free blocks at
//! hand; otherwise it takes the generic aligned path. Decoding allocates and frees a few small
//! strings and vectors per event, and many of those requests would take that slower path.
//! Every mimalloc block is aligned to at least a word, so requests that need no more than that
//! go to `mi_malloc`, as C's `malloc` would.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment that every block mimalloc returns has: its size classes are whole words.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, with word-aligned requests served by its unaligned entry points.
pub struct Allocator;

/// Whether a block from the unaligned entry points is aligned enough for a layout of `align`.
#[inline]
fn plain(align: usize) -> bool {
    align <= WORD
}

// SAFETY: every block comes from mimalloc and goes back to it with `mi_free`, which takes
// blocks from the aligned and the unaligned entry points alike. A block from `mi_malloc`,
// `mi_zalloc` or `mi_realloc` is aligned to a word, which is all that `plain` layouts ask.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions have no preconditions.
        unsafe {
            if plain(layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe {
            if plain(layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every small size and alignment come back aligned as asked, keep their
    /// contents through growth and shrinking, and zeroed ones are zero.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_contents() {
        let allocator = Allocator;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 24, 40, 100, 1000, 5000, 70_000] {
                let size = size.max(align);
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: the layout has a non-zero size; each block is freed once with it.
                unsafe {
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert!(!zeroed.is_null());
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size}/{align}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    allocator.dealloc(zeroed, layout);

                    let p = allocator.alloc(layout);
                    assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                    for i in 0..size {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let grown = allocator.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown {size}/{align}");
                    assert!((0..size).all(|i| *grown.add(i) == (i % 251) as u8));
                    let bigger = Layout::from_size_align(size * 3, align).expect("layout");
                    let shrunk = allocator.realloc(grown, bigger, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size}/{align}");
                    assert!((0..size.div_ceil(2)).all(|i| *shrunk.add(i) == (i % 251) as u8));
                    let small = Layout::from_size_align(size.div_ceil(2), align).expect("layout");
                    allocator.dealloc(shrunk, small);
                }
            }
        }
    }
}
