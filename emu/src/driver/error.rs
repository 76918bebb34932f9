//! `CUresult` codes, their names and descriptions as the CUDA driver gives them, and the two lookups.

use std::ffi::c_char;

/// A CUDA driver result code (`CUresult`, a C enum: 32 bits).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CUresult(pub u32);

/// What every entry returns inside the driver: `Err` carries the code to hand back.
pub type Result<T = ()> = std::result::Result<T, CUresult>;

/// Every code the emulator can return or name: (code, name, description as the CUDA driver words it).
const CODES: &[(u32, &str, &str)] = &[
    (0, "CUDA_SUCCESS", "no error"),
    (1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"),
    (2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
    (3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
    (4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
    (100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
    (101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
    (200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
    (201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
    (209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"),
    (218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"),
    (222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."),
    (400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
    (401, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"),
    (500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"),
    (600, "CUDA_ERROR_NOT_READY", "device not ready"),
    (700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
    (701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
    (716, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"),
    (719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
    (801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"),
    (900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"),
    (901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"),
    (903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED", "capture was not initiated in this stream"),
    (
        906,
        "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
        "operation would make the legacy stream depend on a capturing blocking stream",
    ),
    (
        908,
        "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
        "attempt to terminate a thread-local capture sequence from another thread",
    ),
    (999, "CUDA_ERROR_UNKNOWN", "unknown error"),
];

impl CUresult {
    pub const SUCCESS: Self = Self(0);
    pub const INVALID_VALUE: Self = Self(1);
    pub const OUT_OF_MEMORY: Self = Self(2);
    pub const NOT_INITIALIZED: Self = Self(3);
    pub const INVALID_DEVICE: Self = Self(101);
    pub const INVALID_IMAGE: Self = Self(200);
    pub const INVALID_CONTEXT: Self = Self(201);
    pub const NO_BINARY_FOR_GPU: Self = Self(209);
    pub const INVALID_PTX: Self = Self(218);
    pub const UNSUPPORTED_PTX_VERSION: Self = Self(222);
    pub const INVALID_HANDLE: Self = Self(400);
    pub const ILLEGAL_STATE: Self = Self(401);
    pub const NOT_FOUND: Self = Self(500);
    pub const NOT_READY: Self = Self(600);
    pub const ILLEGAL_ADDRESS: Self = Self(700);
    pub const MISALIGNED_ADDRESS: Self = Self(716);
    pub const LAUNCH_FAILED: Self = Self(719);
    pub const NOT_SUPPORTED: Self = Self(801);
    pub const STREAM_CAPTURE_UNSUPPORTED: Self = Self(900);
    pub const STREAM_CAPTURE_INVALIDATED: Self = Self(901);
    pub const STREAM_CAPTURE_UNMATCHED: Self = Self(903);
    pub const STREAM_CAPTURE_IMPLICIT: Self = Self(906);
    pub const STREAM_CAPTURE_WRONG_THREAD: Self = Self(908);
    pub const UNKNOWN: Self = Self(999);

    fn entry(self) -> Option<&'static (u32, &'static str, &'static str)> {
        CODES.iter().find(|(code, _, _)| *code == self.0)
    }

    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.1)
    }

    /// `Ok(())` for `CUDA_SUCCESS`.
    pub fn ok(self) -> Result {
        if self == Self::SUCCESS { Ok(()) } else { Err(self) }
    }
}

impl std::fmt::Debug for CUresult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "CUresult({})", self.0),
        }
    }
}

/// NUL-terminated copies of the names and descriptions, made once, handed out as `const char*` for the process's
/// life (as the driver's own strings are).
fn c_strings() -> &'static [(u32, std::ffi::CString, std::ffi::CString)] {
    static STRINGS: std::sync::OnceLock<Vec<(u32, std::ffi::CString, std::ffi::CString)>> = std::sync::OnceLock::new();
    STRINGS.get_or_init(|| {
        CODES
            .iter()
            .map(|&(code, name, text)| {
                (code, std::ffi::CString::new(name).expect("no NUL"), std::ffi::CString::new(text).expect("no NUL"))
            })
            .collect()
    })
}

fn lookup(error: CUresult, out: *mut *const c_char, name: bool) -> Result {
    if out.is_null() {
        return Err(CUresult::INVALID_VALUE);
    }
    let Some((_, n, s)) = c_strings().iter().find(|(code, _, _)| *code == error.0) else {
        // SAFETY: checked non-null; the caller provides room for one pointer.
        unsafe { *out = std::ptr::null() };
        return Err(CUresult::INVALID_VALUE);
    };
    // SAFETY: as above; the string lives for the process.
    unsafe { *out = if name { n.as_ptr() } else { s.as_ptr() } };
    Ok(())
}

/// # Safety
/// `p_str` must be null or point to writable room for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    super::entry("cuGetErrorName", || lookup(error, p_str, true))
}

/// # Safety
/// `p_str` must be null or point to writable room for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    super::entry("cuGetErrorString", || lookup(error, p_str, false))
}
